import SwunisonFS
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile

/// The two replicas of a run, addressed by side.
public struct ReplicaPair: Sendable {
    public let a: any Replica
    public let b: any Replica

    public init(a: any Replica, b: any Replica) { self.a = a; self.b = b }

    public subscript(side: Side) -> any Replica { side == .a ? a : b }
}

/// What Propagate needs from the profile.
public struct PropagationOptions: Sendable {
    /// Attributes that take part in comparisons (perms, owner, group, times).
    public var attributes: AttributeSelection
    /// Whether a file overwritten or deleted by a non-conflict propagation is kept in the backup
    /// location (`backup` / `backupnot`). Conflict losers are always kept (Invariant 3).
    public var shouldBackup: @Sendable (RelativePath) -> Bool
    /// How many operations may be in flight at once (many for a distant replica).
    public var maxConcurrentOperations: Int
    /// How much file content those operations may carry at once (each copy counts its size, up
    /// to 4 MiB); one operation always runs, whatever its size.
    public var maxBytesInFlight: Int64 = 64 << 20
    /// Asked before each operation starts: true stops starting new ones (SIGTERM in watch
    /// mode). Those in flight finish; the rest are left for the next run, neither done nor failed.
    public var shouldStop: @Sendable () -> Bool = { false }

    public init(attributes: AttributeSelection, shouldBackup: @escaping @Sendable (RelativePath) -> Bool = { _ in true },
                maxConcurrentOperations: Int = 32) {
        self.attributes = attributes; self.shouldBackup = shouldBackup
        self.maxConcurrentOperations = maxConcurrentOperations
    }
}

/// The state of a path after it was propagated successfully: what both replicas now agree on,
/// and the entries written on each side (with the fingerprint the write produced).
public struct PathResult: Sendable {
    public var path: RelativePath
    /// The agreed entry (nil = the path is now absent on both sides).
    public var agreed: Entry?
    /// Entries written on side A / B by this run (absent key = that side was not changed).
    public var writtenA: Entry??
    public var writtenB: Entry??

    public func written(_ side: Side) -> Entry?? { side == .a ? writtenA : writtenB }
}

/// A path that could not be propagated, and why.
public struct PathFailure: Sendable, CustomStringConvertible {
    public var path: RelativePath
    public var side: Side
    public var message: String
    /// True for transient failures (changed during sync, lost connection) worth a retry.
    public var isRetryable: Bool

    public var description: String { message }
}

/// Where the previous version of a path was kept.
public struct BackupRecord: Sendable {
    public var path: RelativePath
    public var side: Side
    public var location: String
    /// The version kept lost a conflict (the summary names each of these).
    public var isConflictLoser: Bool
}

/// How one plan item ended.
public enum ItemOutcome: Sendable, Equatable {
    /// Every path of the item was propagated (or only the archive needed updating).
    case done
    /// Not attempted: an unresolved conflict or the user's choice.
    case skipped
    /// At least one path failed.
    case failed
    /// Left for the next run: the run was asked to stop before all of it was done.
    case notStarted
}

/// The outcome of propagating a plan.
public struct PropagationResult: Sendable {
    /// Paths that now agree on both sides, to be recorded in the archive (Invariant 4).
    public var succeeded: [PathResult] = []
    public var failures: [PathFailure] = []
    public var backups: [BackupRecord] = []
    /// One outcome per plan item, in plan order.
    public var outcomes: [ItemOutcome] = []
    /// Bytes of file content copied.
    public var bytesCopied: Int64 = 0
    /// Operations not started because the run was asked to stop.
    public var notStarted = 0
}

/// Carries out a plan through two Replicas and reports exactly what happened.
///
/// Each item becomes operations on the losing/receiving side. Deletions run first, deepest paths
/// first, so a directory is removed only after its contents; then creations and updates,
/// shallowest first, so a file is written only after its directory exists. Within one depth the
/// operations run concurrently (bounded), which is what keeps a distant replica busy instead of
/// waiting one round trip per file. A failed operation never stops the run: the path is reported,
/// and anything that depends on it (a file in a directory that could not be created, a directory
/// whose contents could not be removed) is skipped.
public final class Propagator: Sendable {
    private let replicas: ReplicaPair
    private let options: PropagationOptions

    public init(replicas: ReplicaPair, options: PropagationOptions) {
        self.replicas = replicas
        self.options = options
    }

    /// Runs the items whose decision is a propagation; conflicts are reported as skipped.
    /// - Parameter progress: called after each operation with the path and bytes copied.
    public func run(_ items: [PlanItem], progress: (@Sendable (RelativePath, Int64) -> Void)? = nil) async -> PropagationResult {
        var result = PropagationResult()
        result.outcomes = Array(repeating: .done, count: items.count)
        var ledger = Ledger()
        ledger.reserve(items.reduce(0) { $0 + 1 + $1.descendants.count })
        var deletions: [[Operation]] = []
        var creations: [[Operation]] = []

        func add(_ op: Operation) {
            let d = op.depth
            if op.isDeletion {
                while deletions.count <= d { deletions.append([]) }
                deletions[d].append(op)
            } else {
                while creations.count <= d { creations.append([]) }
                creations[d].append(op)
            }
            ledger.expect(op)
        }

        for (index, item) in items.enumerated() {
            let from: Side
            let isConflict: Bool
            switch item.decision {
            case .conflict:
                result.outcomes[index] = .skipped
                continue
            case .archiveOnly:
                for state in item.allStates {
                    result.succeeded.append(PathResult(path: state.path, agreed: state.a ?? state.b))
                }
                continue
            case .propagate(let side):
                from = side; isConflict = false
            case .resolvedConflict(let side, _):
                from = side; isConflict = true
            }
            let to = from.other
            for state in item.allStates {
                let source = state.entry(on: from)
                let target = state.entry(on: to)
                if options.attributes.equivalent(source, target) {
                    // Already in step (e.g. an unchanged file inside a restored directory).
                    result.succeeded.append(PathResult(path: state.path, agreed: source))
                    continue
                }
                let slot = ledger.begin(state.path, agreed: source, item: index)
                let backup = isConflict || options.shouldBackup(state.path)
                func op(_ action: Operation.Action, source: Entry?, expected: Entry?) -> Operation {
                    Operation(action: action, path: state.path, target: to, source: source, expected: expected,
                              backup: backup, isConflictLoser: isConflict, slot: slot)
                }
                guard let source else {
                    // Deleted on the source side: remove it on the target (Invariant 3 keeps a copy).
                    if let target { add(op(.remove, source: nil, expected: target)) }
                    continue
                }
                var expected = target
                if let existing = target, existing.kind != source.kind,
                   existing.kind == .directory || source.kind == .directory {
                    // A kind change to or from a directory cannot be one rename: remove first
                    // (a directory's contents are removed by their own deletions, deeper first).
                    add(op(.remove, source: nil, expected: existing))
                    expected = nil
                }
                switch source.kind {
                case .directory:
                    add(op(expected == nil ? .makeDirectory : .setAttributes, source: source, expected: expected))
                case .symlink:
                    add(op(.makeSymlink, source: source, expected: expected))
                case .file:
                    if let existing = expected, existing.kind == .file, existing.sameContent(as: source) {
                        add(op(.setAttributes, source: source, expected: existing))
                    } else {
                        add(op(.copyFile, source: source, expected: expected))
                    }
                }
            }
        }

        // Deepest deletions first, then creations from the top down.
        for level in deletions.reversed() where !level.isEmpty {
            await runLevel(level, ledger: &ledger, result: &result, progress: progress)
        }
        for level in creations where !level.isEmpty {
            await runLevel(level, ledger: &ledger, result: &result, progress: progress)
        }

        let (succeeded, failedItems, abandonedItems) = ledger.finish()
        result.succeeded.append(contentsOf: succeeded)
        for index in abandonedItems { result.outcomes[index] = .notStarted }
        for index in failedItems { result.outcomes[index] = .failed }
        return result
    }

    /// Runs one depth level's operations concurrently, at most `maxConcurrentOperations` at once.
    ///
    /// Copies of small files go in batches (``Replica/readFiles(_:)`` then
    /// ``Replica/writeFiles(_:)``), each batch counting as its files towards the limits: a first
    /// sync of many small files then costs a hop (or a round trip) per batch instead of several
    /// per file. Every other operation runs on its own.
    private func runLevel(_ ops: [Operation], ledger: inout Ledger, result: inout PropagationResult,
                          progress: (@Sendable (RelativePath, Int64) -> Void)?) async {
        /// Whether `op` may run; a blocked one is recorded as failed here.
        func mayRun(_ op: Operation) -> Bool {
            guard let reason = ledger.blockedReason(op) else { return true }
            ledger.fail(op, message: reason, retryable: false)
            result.failures.append(PathFailure(path: op.path, side: op.target, message: "\(op.path): \(reason)",
                                               isRetryable: false))
            return false
        }
        let limit = max(1, options.maxConcurrentOperations)
        let batchFiles = Self.batchFiles(forLimit: limit)
        // Copies that ran out of space while others ran beside them: a large file's temporary
        // copy can fill the disk for a moment and fail small ones that would fit on their own.
        var outOfSpace: [Operation] = []
        func record(_ completed: Completed) {
            let op = completed.op
            switch completed.outcome {
            case .success(let done):
                ledger.complete(op, written: done.written)
                if let location = done.backupLocation {
                    result.backups.append(BackupRecord(path: op.path, side: op.target, location: location,
                                                       isConflictLoser: op.isConflictLoser))
                }
                result.bytesCopied += done.bytesCopied
                progress?(op.path, done.bytesCopied)
            case .failure(let error):
                let retryable = (error as? ReplicaError)?.isRetryable ?? false
                let message = "\(error)"
                ledger.fail(op, message: message, retryable: retryable)
                result.failures.append(PathFailure(path: op.path, side: op.target, message: message,
                                                   isRetryable: retryable))
            }
        }
        await withTaskGroup(of: [Completed].self) { group in
            // Keep up to `limit` operations running; start the next ones as others finish.
            var started = 0
            var running = 0
            var bytesInFlight: Int64 = 0
            // Small copies gathered per receiving side, not yet started.
            var gathering = SmallCopyBatches()
            while started < ops.count || running > 0 {
                if started < ops.count && options.shouldStop() {
                    // Asked to stop: what has not started is left for the next run.
                    for op in ops[started...] { ledger.abandon(op) }
                    result.notStarted += ops.count - started
                    started = ops.count
                }
                while started < ops.count && running < limit {
                    let op = ops[started]
                    // Content in flight is bounded too: hundreds of large files at once would
                    // each buffer up to their flow-control window on the receiving side.
                    let weight = Self.contentWeight(op)
                    if running > 0 && bytesInFlight + weight > options.maxBytesInFlight { break }
                    started += 1
                    guard mayRun(op) else { continue }
                    running += 1
                    bytesInFlight += weight
                    if Self.isSmallCopy(op) {
                        if let full = gathering.add(op, weight: weight, maxFiles: batchFiles, maxBytes: Self.maxBatchBytes) {
                            group.addTask { [self] in await performBatch(full) }
                        }
                        continue
                    }
                    group.addTask { [self] in
                        // The await stands on its own line: Swift 6.3.1's optimiser returned a wrong
                        // captured value from `return (captured, .success(try await f()))`.
                        do {
                            let done = try await self.perform(op)
                            return [Completed(op: op, outcome: .success(done))]
                        } catch {
                            return [Completed(op: op, outcome: .failure(error))]
                        }
                    }
                }
                // Nothing more joins a partial batch before something finishes: start it now.
                for partial in gathering.takeAll() {
                    group.addTask { [self] in await performBatch(partial) }
                }
                guard let finished = await group.next() else { break }
                for completed in finished {
                    running -= 1
                    bytesInFlight -= Self.contentWeight(completed.op)
                    if ops.count > 1, case .failure(let error) = completed.outcome, (error as? ReplicaError)?.isOutOfSpace == true {
                        outOfSpace.append(completed.op)
                    } else {
                        record(completed)
                    }
                }
            }
        }
        // Now that the level's other copies are done (and their temporary files gone), each copy
        // that found the disk full gets one more try, on its own.
        for op in outOfSpace {
            do {
                let done = try await perform(op)
                record(Completed(op: op, outcome: .success(done)))
            } catch {
                record(Completed(op: op, outcome: .failure(error)))
            }
        }
    }

    /// Files up to this size are copied in batches.
    static let smallFileLimit: Int64 = 128 << 10
    /// Content of one batch, at most (a batch with one file may be larger).
    static let maxBatchBytes: Int64 = 1 << 20

    /// Files per batch: enough that a batch amortises its hop, few enough that several batches
    /// (and the I/O threads behind them) work at once within the operation limit.
    static func batchFiles(forLimit limit: Int) -> Int { min(64, max(1, limit / 8)) }

    /// Whether `op` is a copy that can go in a batch: a small file whose replaced version (if
    /// any) needs no backup call of its own first.
    private static func isSmallCopy(_ op: Operation) -> Bool {
        guard op.action == .copyFile, let source = op.source, source.size <= smallFileLimit else { return false }
        return !(op.backup && op.expected?.kind == .file)
    }

    /// Copies a batch of small files, all with the same receiving side: one read of them all on
    /// the sending side, one write of those read on the receiving side.
    private func performBatch(_ ops: [Operation]) async -> [Completed] {
        let to = ops[0].target
        var outcomes = [Result<OperationResult, Error>?](repeating: nil, count: ops.count)
        let requests = ops.map { FileReadRequest(path: $0.path, expected: $0.source!) }
        let contents: [Result<[UInt8], ReplicaError>]
        do {
            contents = try await replicas[to.other].readFiles(requests)
        } catch {
            return ops.map { Completed(op: $0, outcome: .failure(error)) }
        }
        var writes: [FileWrite] = []
        var writing: [Int] = []
        writes.reserveCapacity(ops.count)
        for (index, content) in contents.enumerated() {
            switch content {
            case .success(let bytes):
                let op = ops[index]
                var entry = op.source!
                // A first sync's scan left new files unhashed: the digest the receiver checks
                // before its rename is taken here, of the bytes the sender read (which checked
                // that the file did not change while it read them).
                if entry.digest == nil { entry.digest = XXH3Hasher.digest(bytes) }
                writes.append(FileWrite(path: op.path, entry: entry, content: bytes, replacing: op.expected,
                                        backup: false))
                writing.append(index)
            case .failure(let error):
                outcomes[index] = .failure(error)
            }
        }
        if !writes.isEmpty {
            do {
                let written = try await replicas[to].writeFiles(writes)
                for (index, outcome) in zip(writing, written) {
                    outcomes[index] = outcome
                        .map { OperationResult(written: $0, bytesCopied: ops[index].source!.size) }
                        .mapError { $0 as Error }
                }
            } catch {
                for index in writing { outcomes[index] = .failure(error) }
            }
        }
        return zip(ops, outcomes).map { op, outcome in
            Completed(op: op, outcome: outcome ?? .failure(ReplicaError.other("\(op.path): no result for a batched copy")))
        }
    }

    /// What an operation may hold in memory on either side while it runs: a copy's content, up to
    /// the 4 MiB a stream buffers at most; nothing for the others.
    private static func contentWeight(_ op: Operation) -> Int64 {
        guard op.action == .copyFile, let size = op.source?.size else { return 0 }
        return min(size, 4 << 20)
    }

    /// A finished operation and how it went.
    private struct Completed: Sendable {
        var op: Operation
        var outcome: Result<OperationResult, Error>
    }

    private struct OperationResult: Sendable {
        var written: Entry?
        var backupLocation: String?
        var bytesCopied: Int64 = 0
    }

    /// Performs one operation on the target replica.
    private func perform(_ op: Operation) async throws -> OperationResult {
        let target = replicas[op.target]
        switch op.action {
        case .remove:
            // Only reached with an expected entry (see `run`).
            guard let expected = op.expected else { return OperationResult(written: nil) }
            let location = try await target.remove(op.path, expected: expected, backup: op.backup && expected.kind != .directory)
            return OperationResult(written: nil, backupLocation: op.backup ? location : nil)
        case .makeDirectory:
            let entry = try await target.makeDirectory(op.path, entry: op.source!, replacing: op.expected, backup: op.backup)
            return OperationResult(written: entry)
        case .makeSymlink:
            var location: String?
            if op.backup, let existing = op.expected, existing.kind == .file {
                location = try await target.backup(op.path, expected: existing)
            }
            let entry = try await target.makeSymlink(op.path, entry: op.source!, replacing: op.expected, backup: false)
            return OperationResult(written: entry, backupLocation: location)
        case .setAttributes:
            let entry = try await target.setAttributes(op.path, expected: op.expected!, to: op.source!)
            return OperationResult(written: entry)
        case .copyFile:
            var source = op.source!
            if source.digest == nil {
                // Left unhashed by a first sync's scan; the receiver needs it before its rename.
                let from = replicas[op.target.other]
                source.digest = try await from.digestFiles([FileReadRequest(path: op.path, expected: source)])[0].get()
            }
            var location: String?
            if op.backup, let existing = op.expected, existing.kind == .file {
                // Keep the version about to be replaced before anything else happens (Invariant 3).
                location = try await target.backup(op.path, expected: existing)
            }
            let reader = try await replicas[op.target.other].openFile(op.path, expected: source)
            do {
                let entry = try await target.writeFile(op.path, entry: source, from: reader,
                                                       replacing: op.expected, backup: false)
                await reader.close()
                return OperationResult(written: entry, backupLocation: location, bytesCopied: source.size)
            } catch {
                await reader.close()
                throw error
            }
        }
    }
}

/// Small copies waiting to be started as batches, one batch per receiving side.
private struct SmallCopyBatches {
    private var toA: [Operation] = []
    private var toB: [Operation] = []
    private var bytesA: Int64 = 0
    private var bytesB: Int64 = 0

    /// Adds `op`; returns its side's batch when that is full (and starts a new one).
    mutating func add(_ op: Operation, weight: Int64, maxFiles: Int, maxBytes: Int64) -> [Operation]? {
        if op.target == .a {
            toA.append(op); bytesA += weight
            guard toA.count >= maxFiles || bytesA >= maxBytes else { return nil }
            defer { toA = []; bytesA = 0 }
            return toA
        }
        toB.append(op); bytesB += weight
        guard toB.count >= maxFiles || bytesB >= maxBytes else { return nil }
        defer { toB = []; bytesB = 0 }
        return toB
    }

    /// The batches not yet full, emptied.
    mutating func takeAll() -> [[Operation]] {
        defer { toA = []; toB = []; bytesA = 0; bytesB = 0 }
        return [toA, toB].filter { !$0.isEmpty }
    }
}

/// Bookkeeping of which paths are still pending, which succeeded and which failed.
///
/// One slot per path, in arrays indexed by the slot number each operation carries: no
/// dictionary keyed by path, and the results are compacted in place at the end, because for an
/// initial sync of 200,000 files these records are most of the run's memory.
private struct Ledger {
    /// Per slot: the path, its agreed entry and what was written on each side.
    private var results: [PathResult] = []
    /// Per slot: operations not yet finished.
    private var remaining: [Int32] = []
    /// Per slot: an operation failed.
    private var failed: [Bool] = []
    /// Per slot: the plan item.
    private var items: [Int32] = []
    /// Paths where an operation failed; anything beneath them is skipped.
    private var failedPaths: Set<RelativePath> = []
    /// Directories that still hold something that could not be removed.
    private var blockedDirectories: Set<RelativePath> = []
    private var failedItems: Set<Int> = []
    /// Items with an operation that was never started (the run was stopped).
    private var abandonedItems: Set<Int> = []

    /// Room for `count` slots, allocated once.
    mutating func reserve(_ count: Int) {
        results.reserveCapacity(count); remaining.reserveCapacity(count)
        failed.reserveCapacity(count); items.reserveCapacity(count)
    }

    /// Opens a slot for `path`; returns its number.
    mutating func begin(_ path: RelativePath, agreed: Entry?, item: Int) -> Int {
        results.append(PathResult(path: path, agreed: agreed, writtenA: .none, writtenB: .none))
        remaining.append(0)
        failed.append(false)
        items.append(Int32(item))
        return results.count - 1
    }

    mutating func expect(_ op: Operation) { remaining[op.slot] += 1 }

    /// Why an operation must not run, if it must not.
    func blockedReason(_ op: Operation) -> String? {
        if op.isDeletion {
            if blockedDirectories.contains(op.path) { return "not removed: something inside it could not be removed" }
            return nil
        }
        if failedPaths.isEmpty { return nil }
        if failedPaths.contains(op.path) { return "skipped: its previous version could not be removed" }
        var ancestor = op.path.parent
        while let p = ancestor, !p.isRoot {
            if failedPaths.contains(p) { return "skipped: its directory \(p) could not be created" }
            ancestor = p.parent
        }
        return nil
    }

    mutating func complete(_ op: Operation, written: Entry?) {
        remaining[op.slot] -= 1
        if let digest = written?.digest, results[op.slot].agreed?.kind == .file, results[op.slot].agreed?.digest == nil {
            // A copy of a file the scan left unhashed: the archive records the digest it was copied with.
            results[op.slot].agreed?.digest = digest
        }
        if op.target == .a { results[op.slot].writtenA = .some(written) } else { results[op.slot].writtenB = .some(written) }
    }

    mutating func fail(_ op: Operation, message: String, retryable: Bool) {
        failed[op.slot] = true
        remaining[op.slot] -= 1
        failedItems.insert(Int(items[op.slot]))
        failedPaths.insert(op.path)
        if op.isDeletion {
            var ancestor = op.path.parent
            while let p = ancestor, !p.isRoot {
                blockedDirectories.insert(p)
                ancestor = p.parent
            }
        }
    }

    /// An operation that will not run (the run was stopped): its path is neither done nor
    /// failed, and is not recorded in the archive.
    mutating func abandon(_ op: Operation) {
        failed[op.slot] = true
        remaining[op.slot] -= 1
        abandonedItems.insert(Int(items[op.slot]))
        failedPaths.insert(op.path)
    }

    /// Paths whose every operation succeeded, the items that had a failure, and those stopped
    /// before they were done. Consumes the ledger's results (compacted in place, not copied).
    mutating func finish() -> ([PathResult], Set<Int>, Set<Int>) {
        var kept = 0
        for slot in results.indices where !failed[slot] && remaining[slot] == 0 {
            if kept != slot { results.swapAt(kept, slot) }
            kept += 1
        }
        results.removeSubrange(kept...)
        remaining = []; failed = []; items = []
        let done = results
        results = []
        return (done, failedItems, abandonedItems.subtracting(failedItems))
    }
}
