import Dispatch
import SwunisonReplica
import Glibc
import Logging
import Synchronization
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage

/// A fatal condition that stops the run before anything is changed (exit code 3).
public enum SessionError: Error, Sendable, CustomStringConvertible {
    /// A root (or top-level path) was emptied on one side only (Invariant 6, `confirmbigdel`).
    case bigDeletion(side: String, paths: [String], count: Int)
    /// A replica could not be scanned at all.
    case scanFailed(side: String, message: String)
    /// A replica reported a path no scan of this profile can report (ignored, outside the
    /// profile's `path`s, a temporary name): a broken or hostile peer (``ScanScope``).
    case outOfScope(side: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .bigDeletion(side, paths, count):
            let what = paths == ["."] ? "the whole root" : paths.joined(separator: ", ")
            return "\(side) looks emptied (\(what) is gone there): propagating that would delete \(count) paths on the "
                + "other side. Nothing was changed. If the deletion is intended, run again with -confirmbigdel=false; "
                + "otherwise check that the root is mounted and correct."
        case let .scanFailed(side, message):
            return "cannot scan \(side): \(message)"
        case let .outOfScope(side, path, reason):
            return "\(side) reported \(path), which is \(reason): an honest replica never reports such a path, so "
                + "the peer is broken or hostile. Nothing was changed; the run stopped."
        }
    }
}

/// One synchronisation run: Scan → Reconcile → (review) → Propagate → commit, and retries.
///
/// Session only sequences the phases; each phase lives in its own module. The archive and both
/// replicas' scan caches change only after propagation, and only for paths that succeeded
/// (Invariant 4): a crash at any moment leaves snapshot ids that no longer match, and the next
/// run falls back to comparing everything with the archive, which converges.
public final class Session: Sendable {
    private let options: SessionOptions
    private let replicas: ReplicaPair
    private let archive: Archive
    private let interface: any SessionInterface
    private let logger: Logger
    /// The profile's ignore rules, to check what the scans report.
    private let scopeRules: IgnoreRules

    public init(options: SessionOptions, replicas: ReplicaPair, archive: Archive,
                interface: any SessionInterface, logger: Logger) {
        // A pattern that does not compile fails each replica's scan before it reports anything.
        self.scopeRules = (try? IgnoreRules(ignore: options.ignore, ignoreNot: options.ignoreNot)) ?? .none
        self.options = options
        self.replicas = replicas
        self.archive = archive
        self.interface = interface
        self.logger = logger
    }

    /// Runs the synchronisation, with up to `retry` extra rounds for paths that failed, or for a
    /// round whose scan or commit lost its connection.
    /// - Throws: `SessionError` (or a storage/replica error) for fatal conditions; per-path
    ///   failures are in the summary instead.
    public func run() async throws -> RunSummary {
        var summary = RunSummary()
        summary.dryRun = options.dryRun
        var paths = options.paths
        var round = 0
        var retrying = false
        while true {
            let before = summary
            let outcome: [RelativePath]?
            do {
                outcome = try await runRound(paths: paths, isRetry: retrying, summary: &summary)
            } catch let error as ReplicaError where error.isLostConnection && round < options.retry && !options.shouldStop() {
                // A link lost in the scan or the commit (in between, it fails paths, retried
                // below): the round recorded nothing (Invariant 4), so it runs again whole, over
                // the new connection the next call makes, as `retry` promises.
                summary = before
                round += 1
                interface.notice("\(error); running this round again (\(round) of \(options.retry))")
                logger.warning("round lost its connection (\(error)); retry \(round) runs it again")
                continue
            }
            guard let retryPaths = outcome, round < options.retry, !retryPaths.isEmpty, !options.shouldStop() else { break }
            round += 1
            retrying = true
            interface.notice("retrying \(retryPaths.count) failed path\(retryPaths.count == 1 ? "" : "s") (\(round) of \(options.retry))")
            logger.info("retry round \(round) for \(retryPaths.count) paths")
            // Rescan the directories of the failed paths, not just the paths: a transfer cut off
            // by a lost connection leaves its temp file beside its target, and the scan of that
            // directory is what removes it once its owner is gone.
            paths = RelativePath.minimalSubtrees(retryPaths.map(retryScope))
        }
        return summary
    }

    /// One scan-reconcile-propagate-commit cycle over `paths`. Returns the paths worth retrying
    /// (nil when the run stopped: dry run, user quit).
    private func runRound(paths: [RelativePath], isRetry: Bool, summary: inout RunSummary) async throws -> [RelativePath]? {
        let snapshots = try archive.snapshots
        // A first sync compares no file with an archived digest, so the scans need not read the
        // files: new ones get their digest while they are copied, and paths both replicas have
        // are hashed below, before reconciliation compares them (DESIGN-NOTES, "A first sync
        // reads each file once").
        let deferDigests = try options.fastcheck && archive.isEmpty
        let scanStarted = ContinuousClock.now
        interface.scanStarted()
        async let scanA = scan(.a, paths: paths, expected: snapshots.a, deferDigests: deferDigests)
        async let scanB = scan(.b, paths: paths, expected: snapshots.b, deferDigests: deferDigests)
        // The archive is one SQLite connection, used by one task at a time: each side is
        // compared with it once both scans are done, one side after the other.
        let sideA = try compareWithArchive(try await scanA, paths: paths)
        let sideB = try compareWithArchive(try await scanB, paths: paths)
        interface.scanFinished(a: sideA.result, b: sideB.result)
        logger.info("scanned: A \(sideA.result.entryCount) entries, \(sideA.changes.count) changed (\(sideA.result.isDelta ? "delta" : "full")); B \(sideB.result.entryCount) entries, \(sideB.changes.count) changed (\(sideB.result.isDelta ? "delta" : "full")) in \(seconds(ContinuousClock.now - scanStarted)), \(residentMemory())")

        // Paths a scan could not read are left out of this run on both sides.
        var problems = sideA.result.problems.map { (Side.a, $0) } + sideB.result.problems.map { (Side.b, $0) }
        if !options.links {
            for (side, scan) in [(Side.a, sideA), (Side.b, sideB)] {
                for change in scan.changes where change.new?.kind == .symlink || change.old?.kind == .symlink {
                    problems.append((side, ScanProblem(path: change.path,
                        message: "is a symbolic link and links = false: not synchronised (set links = true to synchronise it)")))
                }
            }
        }
        let excluded = problems.map(\.1.path)

        func keep(_ c: ScanChange) -> Bool { !excluded.contains { c.path.isDescendant(orEqualTo: $0) } }
        var states = try ChangeMerger.merge(a: excluded.isEmpty ? sideA.changes : sideA.changes.filter(keep),
                                            b: excluded.isEmpty ? sideB.changes : sideB.changes.filter(keep))
        if deferDigests { problems += try await completeDigests(&states) }
        if !isRetry { summary.problems += problems }
        var items = reconcile(states, options: options.reconcile)
        states = []

        try checkBigDeletion(items: items, scanA: sideA, scanB: sideB, paths: paths)
        logger.info("planned \(items.count) items in \(seconds(ContinuousClock.now - scanStarted)), \(residentMemory())")

        if !isRetry {
            guard let reviewed = await interface.review(items) else {
                summary.quit = true
                summary.items = items
                return nil
            }
            items = reviewed
            summary.items = items
        }
        if options.dryRun { return nil }

        var propagation = PropagationOptions(attributes: options.attributes, shouldBackup: options.shouldBackup,
                                             maxConcurrentOperations: options.maxConcurrentOperations)
        propagation.shouldStop = options.shouldStop
        let propagator = Propagator(replicas: replicas, options: propagation)
        let interface = self.interface
        let clock = ContinuousClock()
        let started = clock.now
        let result = await propagator.run(items) { path, bytes in interface.propagated(path, bytes: bytes) }
        let propagated = clock.now
        logger.info("propagated \(items.count) items (\(result.succeeded.count) paths, \(result.failures.count) failures) in \(seconds(propagated - started)), \(residentMemory())")

        try await commit(result, sideA: sideA, sideB: sideB, problemsA: sideA.result.problems,
                         problemsB: sideB.result.problems)
        logger.info("committed in \(seconds(clock.now - propagated))")

        // Tally this round. A retry round's items replace the failures they retry.
        if isRetry {
            summary.failed = 0
            summary.failures = []
        }
        for (index, outcome) in result.outcomes.enumerated() {
            switch outcome {
            case .done:
                if case .conflict = items[index].decision { continue }
                summary.transferred += 1
            case .skipped: if !isRetry { summary.skipped += 1 }
            case .failed: summary.failed += 1
            case .notStarted: summary.notStarted += 1
            }
        }
        summary.failures += result.failures
        summary.backups += result.backups
        summary.bytesCopied += result.bytesCopied
        for failure in result.failures { logger.warning("failed: \(failure.message)") }

        let retryable = result.failures.filter(\.isRetryable).map(\.path)
        return Array(Set(retryable))
    }

    /// What one side's scan produced, with `old` always the archive's entry.
    private struct SideScan: Sendable {
        var result: ScanResult
        /// In walk order (new entries carry this side's fingerprints).
        var changes: [ScanChange]
        /// Cache rows to rewrite at the commit: files whose row had no digest, hashed again
        /// because their fingerprint changed, and found equal to the archive.
        var refreshes: [BaselineUpdate] = []

        /// The change reported for `path`, found by binary search (no per-path index in memory).
        func reported(_ path: RelativePath) -> ScanChange? {
            var low = 0, high = changes.count
            while low < high {
                let mid = (low + high) / 2
                let order = RelativePath.compare(changes[mid].path.bytes, path.bytes)
                if order == 0 { return changes[mid] }
                if order < 0 { low = mid + 1 } else { high = mid }
            }
            return nil
        }
    }

    private func scan(_ side: Side, paths: [RelativePath], expected: UInt64?, deferDigests: Bool) async throws -> SideScan {
        var request = ScanRequest(paths: paths, ignore: options.ignore, ignoreNot: options.ignoreNot,
                                  expectedSnapshot: expected, fastcheck: options.fastcheck,
                                  attributes: options.attributes, cacheKey: options.cacheKey(for: side))
        request.deferDigests = deferDigests
        let collector = ChangeCollector(scope: ScanScope(paths: paths, rules: scopeRules), side: replicas[side].displayName)
        let result: ScanResult
        do {
            result = try await replicas[side].scan(request) { batch in try collector.append(batch) }
        } catch let error as SessionError {
            throw error
        } catch let error as ReplicaError {
            throw error
        } catch let error as FirstConnectionFailure {
            throw error
        } catch {
            throw SessionError.scanFailed(side: replicas[side].displayName, message: "\(error)")
        }
        return SideScan(result: result, changes: collector.take())
    }

    /// Turns a scan's report into changes against the archive (its `old` entries are the
    /// archive's). Uses the archive: never call it for both sides at once.
    private func compareWithArchive(_ scan: SideScan, paths: [RelativePath]) throws -> SideScan {
        let result = scan.result
        var changes = scan.changes
        // The replica's cache did not match the archive: compare everything it has with the
        // archive. Against an empty archive (a first sync) that comparison is the scan itself:
        // every entry is new and nothing is deleted (ChangeMerger still checks the walk order).
        if try !result.isDelta && !(result.problems.isEmpty && archive.isEmpty) {
            let excluded = result.problems.map(\.path)
            var diff = FullScanDiff(archive: try archive.cursor(under: paths), selection: options.attributes,
                                    excluded: excluded)
            changes = try diff.feed(changes) + diff.finish()
        }
        // A delta scan's `old` is the replica's cache row, which stands for the archive's entry.
        // A first sync leaves the rows of files it did not write without a digest (their
        // fingerprint stands for the archived content); when such a file's fingerprint changed
        // the scanner reports it, and here the archive's own entry, with its digest, takes the
        // row's place, so that no comparison falls back to sizes and mtimes. A file found equal
        // to it only needs its row updated (the scanner's fingerprint refresh, done here).
        var refreshes: [BaselineUpdate] = []
        if result.isDelta && changes.contains(where: { $0.old?.kind == .file && $0.old?.digest == nil }) {
            var kept: [ScanChange] = []
            kept.reserveCapacity(changes.count)
            for var change in changes {
                if let old = change.old, old.kind == .file, old.digest == nil {
                    let archived = try archive.lookup(change.path)
                    change.old = archived
                    if let archived, let new = change.new, new.digest != nil, options.attributes.equivalent(archived, new) {
                        refreshes.append(BaselineUpdate(path: change.path, entry: new))
                        continue
                    }
                }
                kept.append(change)
            }
            changes = kept
        }
        // A side's `old` is the archive's entry: the fingerprint it may carry belongs to the
        // reporting replica, never to the other one, so it is dropped here.
        for i in changes.indices { changes[i].old?.fingerprint = nil }
        return SideScan(result: result, changes: changes, refreshes: refreshes)
    }

    /// After scans that deferred digests: asks each replica for the digests of files that both
    /// replicas have with the same size (files of different sizes differ whatever their digests),
    /// so that reconciliation compares contents, never sizes and mtimes alone. A file that cannot
    /// be hashed leaves its path out of this run, as a scan problem would; it is returned as one.
    private func completeDigests(_ states: inout [PathState]) async throws -> [(Side, ScanProblem)] {
        var wanted: [[(index: Int, request: FileReadRequest)]] = [[], []]
        for (index, state) in states.enumerated() {
            guard let a = state.a, let b = state.b, a.kind == .file, b.kind == .file, a.size == b.size,
                  a.digest == nil || b.digest == nil else { continue }
            if a.digest == nil { wanted[0].append((index, FileReadRequest(path: state.path, expected: a))) }
            if b.digest == nil { wanted[1].append((index, FileReadRequest(path: state.path, expected: b))) }
        }
        if wanted[0].isEmpty && wanted[1].isEmpty { return [] }
        let started = ContinuousClock.now
        // Batches of a few hundred, a few at once per side: a distant replica hashes while the
        // next requests are on the wire.
        let batchSize = 256, inFlight = 4
        var failed: [(Side, ScanProblem)] = []
        try await withThrowingTaskGroup(of: (Side, [(Int, Result<Digest, ReplicaError>)]).self) { group in
            var next = [0, 0], running = 0
            func startMore() {
                for side in [Side.a, .b] {
                    let s = Int(side.rawValue)
                    while running < inFlight * 2 && next[s] < wanted[s].count {
                        let batch = Array(wanted[s][next[s]..<min(next[s] + batchSize, wanted[s].count)])
                        next[s] += batch.count
                        running += 1
                        let replica = replicas[side]
                        group.addTask {
                            let digests = try await replica.digestFiles(batch.map(\.request))
                            return (side, Array(zip(batch.map(\.index), digests)))
                        }
                    }
                }
            }
            startMore()
            while let (side, results) = try await group.next() {
                running -= 1
                for (index, result) in results {
                    switch result {
                    case .success(let digest):
                        if side == .a { states[index].a?.digest = digest } else { states[index].b?.digest = digest }
                    case .failure(let error):
                        let message: String
                        if case .changedDuringSync = error {
                            message = "changed while being compared with the other replica's copy; left alone in this run"
                        } else {
                            message = "cannot be hashed to compare it with the other replica's copy (\(error)); left alone in this run"
                        }
                        failed.append((side, ScanProblem(path: states[index].path, message: message)))
                    }
                }
                startMore()
            }
        }
        if !failed.isEmpty {
            let paths = Set(failed.map(\.1.path))
            states.removeAll { paths.contains($0.path) }
        }
        logger.info("hashed \(wanted[0].count) files on A and \(wanted[1].count) on B that both replicas have, in \(seconds(ContinuousClock.now - started))")
        return failed
    }

    /// Records what happened: each replica's cache first, then the archive (Invariant 4).
    private func commit(_ result: PropagationResult, sideA: SideScan, sideB: SideScan,
                        problemsA: [ScanProblem], problemsB: [ScanProblem]) async throws {
        let started = ContinuousClock.now
        var cacheUpdates: [Side: [BaselineUpdate]] = [.a: [], .b: []]
        // Which paths succeeded matters only to undo a full scan's cache rows (below).
        let needSucceeded = !sideA.result.isDelta || !sideB.result.isDelta
        var succeeded = Set<RelativePath>()
        if needSucceeded { succeeded.reserveCapacity(result.succeeded.count) }
        var listA: [BaselineUpdate] = [], listB: [BaselineUpdate] = []
        func record(_ path: PathResult, on side: Side, _ scan: SideScan, into updates: inout [BaselineUpdate]) {
            if case .some(let written) = path.written(side) {
                updates.append(BaselineUpdate(path: path.path, entry: written))
            } else if scan.result.isDelta, let change = scan.reported(path.path) {
                // (A full scan already rewrote that side's cache with what it reported.)
                updates.append(BaselineUpdate(path: path.path, entry: change.new))
            }
        }
        // 200,000 paths after a first sync: no per-path allocation in this loop.
        for path in result.succeeded {
            if needSucceeded { succeeded.insert(path.path) }
            record(path, on: .a, sideA, into: &listA)
            record(path, on: .b, sideB, into: &listB)
        }
        cacheUpdates[.a] = listA
        cacheUpdates[.b] = listB
        listA = []; listB = []
        for (side, scan) in [(Side.a, sideA), (Side.b, sideB)] where !scan.refreshes.isEmpty {
            // Rows that gain a digest (see `scan`): true whatever else happened in this run,
            // except where this run wrote the path on that side since (the written entry wins).
            let written = Set(result.succeeded.lazy.filter { $0.written(side) != nil }.map(\.path))
            cacheUpdates[side]!.append(contentsOf: scan.refreshes.filter { !written.contains($0.path) })
        }
        for (side, scan, problems) in [(Side.a, sideA, problemsA), (Side.b, sideB, problemsB)] where !scan.result.isDelta {
            // A full scan replaced the cache with what is on disk; paths that did not propagate
            // must go back to their archived state, so that they are reported again next time.
            for change in scan.changes where !succeeded.contains(change.path) {
                cacheUpdates[side]!.append(BaselineUpdate(path: change.path, entry: change.old))
            }
            for problem in problems {
                var rows = try archive.cursor(under: [problem.path])
                while let row = try rows.next() {
                    cacheUpdates[side]!.append(BaselineUpdate(path: row.path, entry: row.entry))
                }
            }
        }
        succeeded = []
        let snapshotA = UInt64.random(in: 1...UInt64.max)
        let snapshotB = UInt64.random(in: 1...UInt64.max)
        let cachesPrepared = ContinuousClock.now

        // Both caches commit at once, and before the archive's rows are even listed: a distant
        // replica spends that time receiving and writing its updates. The arrays are sorted in
        // place and handed over, no copies (for an initial sync they hold every path).
        func sorted(_ side: Side) -> [BaselineUpdate] {
            var updates = cacheUpdates.removeValue(forKey: side)!
            sortForCommit(&updates)
            return updates
        }
        let updatesA = sorted(.a), updatesB = sorted(.b)
        async let timeA = commitCache(.a, updatesA, snapshot: snapshotA)
        async let timeB = commitCache(.b, updatesB, snapshot: snapshotB)

        // Meanwhile the archive's rows are listed and written on a thread of their own; its
        // COMMIT waits for both caches and is rolled back if either fails (Invariant 4: the
        // archive comes last).
        var archiveUpdates: [BaselineUpdate] = []
        archiveUpdates.reserveCapacity(result.succeeded.count)
        for path in result.succeeded {
            archiveUpdates.append(BaselineUpdate(path: path.path, entry: path.agreed?.withoutFingerprint))
        }
        let archiveCount = archiveUpdates.count
        sortForCommit(&archiveUpdates)
        let prepared = ContinuousClock.now
        let cachesCommitted = CommitGate()
        let archiveWritten = Self.onOwnThread { [archive, archiveUpdates] () throws(StorageError) in
            try archive.commit(updates: archiveUpdates.lazy.map { ($0.path, $0.entry) },
                               snapshotA: snapshotA, snapshotB: snapshotB,
                               beforeCommit: { () throws(StorageError) in try cachesCommitted.wait() })
        }
        archiveUpdates = []
        let cacheTimes: [Duration]
        do {
            cacheTimes = try await [timeA, timeB]
        } catch {
            cachesCommitted.open(.failure(StorageError(.sqlite, role: .archive, file: "",
                                                       message: "not committed: a replica's cache could not be committed")))
            _ = await archiveWritten.result
            throw error
        }
        let archiveStarted = ContinuousClock.now
        cachesCommitted.open(.success(()))
        try await archiveWritten.value
        logger.info("commit times: cache updates \(seconds(cachesPrepared - started)), archive updates \(seconds(prepared - cachesPrepared)) (while the caches commit), cache A \(seconds(cacheTimes[0])), cache B \(seconds(cacheTimes[1])), archive (after the caches) \(seconds(ContinuousClock.now - archiveStarted)); \(residentMemory())")
        logger.info("committed \(archiveCount) archive updates")
    }

    /// Commits one replica's cache; returns how long it took.
    private func commitCache(_ side: Side, _ updates: [BaselineUpdate], snapshot: UInt64) async throws -> Duration {
        let started = ContinuousClock.now
        try await replicas[side].commitBaseline(updates, snapshot: snapshot)
        return ContinuousClock.now - started
    }

    /// Runs blocking work on a Dispatch thread (never one of the few threads async code runs on,
    /// since it may wait for async work) and returns it as a task.
    private static func onOwnThread(_ body: @escaping @Sendable () throws(StorageError) -> Void) -> Task<Void, Error> {
        Task {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                DispatchQueue.global().async {
                    continuation.resume(with: Result { () throws(StorageError) in try body() }.mapError { $0 as Error })
                }
            }
        }
    }

    /// Sorts updates in walk order, with a deletion of a directory applied before anything
    /// recreated beneath it is written (deletions remove whole subtrees).
    private func sortForCommit(_ updates: inout [BaselineUpdate]) {
        updates.sort { l, r in
            let order = RelativePath.compare(l.path.bytes, r.path.bytes)
            if order == 0 { return l.entry == nil && r.entry != nil }
            return order < 0
        }
    }

    /// Invariant 6: a replica that looks emptied must not propagate mass deletion.
    private func checkBigDeletion(items: [PlanItem], scanA: SideScan, scanB: SideScan, paths: [RelativePath]) throws {
        guard options.confirmBigDeletes else { return }
        for (side, scan, other) in [(Side.a, scanA, scanB), (Side.b, scanB, scanA)] {
            // The side has nothing left in the scanned area while the other side still has entries.
            guard scan.result.entryCount == 0, other.result.entryCount > 0 else { continue }
            var deletions = 0
            for item in items {
                guard case .propagate(let from) = item.decision, from == side else {
                    if case .resolvedConflict(let from, _) = item.decision, from == side {
                        deletions += item.allStates.filter { $0.entry(on: side) == nil }.count
                    }
                    continue
                }
                deletions += item.allStates.filter { $0.entry(on: side) == nil && $0.entry(on: side.other) != nil }.count
            }
            if deletions > 0 {
                // A cycle over part of the tree: deleting all of that part empties nothing, as
                // long as the archive knows of entries elsewhere (which no notice said changed).
                if let whole = options.wholeScope, try archiveHasEntries(in: whole, outside: paths) { continue }
                throw SessionError.bigDeletion(side: replicas[side].displayName,
                                               paths: (options.wholeScope ?? paths).isEmpty ? ["."]
                                                   : (options.wholeScope ?? paths).map(\.description),
                                               count: deletions)
            }
        }
    }

    /// Whether the archive has an entry under `whole` (empty: anywhere) that is not under `part`.
    private func archiveHasEntries(in whole: [RelativePath], outside part: [RelativePath]) throws -> Bool {
        var cursor = try archive.cursor(under: whole)
        while let row = try cursor.next() {
            if !part.contains(where: { row.path.isDescendant(orEqualTo: $0) }) { return true }
        }
        return false
    }

    /// What a retry rescans for a failed path: its directory, kept within the profile's `path`s.
    private func retryScope(_ path: RelativePath) -> RelativePath {
        guard let parent = path.parent else { return path }
        if options.paths.isEmpty || options.paths.contains(where: { parent.isDescendant(orEqualTo: $0) }) {
            return parent
        }
        return path
    }

}

/// A duration as `1.234 s`, for the log.
func seconds(_ duration: Duration) -> String {
    let (whole, fraction) = duration.components
    let milliseconds = whole * 1000 + fraction / 1_000_000_000_000_000
    return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - String(milliseconds % 1000).count))\(milliseconds % 1000) s"
}

/// The process's resident and peak resident set, as `RSS 12 MB (peak 40 MB)`, for the log.
func residentMemory() -> String {
    guard let file = fopen("/proc/self/status", "r") else { return "RSS unknown" }
    defer { fclose(file) }
    var rss = "?", peak = "?"
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let value = { String((Int(text.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) / 1024) }
        if text.hasPrefix("VmRSS:") { rss = value() }
        if text.hasPrefix("VmHWM:") { peak = value() }
    }
    return "RSS \(rss) MB (peak \(peak) MB)"
}

/// Collects scan batches arriving on the scanner's thread, each path checked against the scan's
/// scope on receipt (a path outside stops the scan: ``SessionError/outOfScope``).
private final class ChangeCollector: Sendable {
    private let state: Mutex<(changes: [ScanChange], check: ScanScopeCheck)>
    private let side: String

    init(scope: ScanScope, side: String) {
        state = Mutex(([], ScanScopeCheck(scope)))
        self.side = side
    }

    func append(_ batch: [ScanChange]) throws(SessionError) {
        try state.withLock { (s) throws(SessionError) in
            for change in batch {
                if let reason = s.check.violation(change) {
                    throw SessionError.outOfScope(side: side, path: change.path.description, reason: reason)
                }
            }
            s.changes.append(contentsOf: batch)
        }
    }

    func take() -> [ScanChange] {
        state.withLock { s in
            defer { s.changes = [] }
            return s.changes
        }
    }
}

/// A one-time signal from async code to a blocked thread: the outcome the thread waits for.
final class CommitGate: Sendable {
    private let state = Mutex<Result<Void, StorageError>?>(nil)
    private let semaphore = DispatchSemaphore(value: 0)

    func open(_ outcome: Result<Void, StorageError>) {
        let first = state.withLock { s -> Bool in
            guard s == nil else { return false }
            s = outcome
            return true
        }
        if first { semaphore.signal() }
    }

    /// Blocks until ``open(_:)``; throws what it was opened with.
    func wait() throws(StorageError) {
        semaphore.wait()
        semaphore.signal()
        try state.withLock { $0 }!.get()
    }
}
