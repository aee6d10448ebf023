import Dispatch
import SwunisonReplica
import Glibc
import Synchronization
import SwunisonFS
import SwunisonModel
import SwunisonStorage
import SwunisonWatch

/// A replica on this host: a root directory, served with system calls beneath it, and its scan
/// cache (the baseline that lets a scan report only what changed).
///
/// `swunison server` serves a `LocalReplica` over the wire, so the remote side runs this same code.
/// Thread safety: file operations may run concurrently (each uses its own descriptors beneath
/// the shared root descriptor); the scan cache is used under a lock.
public final class LocalReplica: StagesBaselineUpdates, @unchecked Sendable {
    public let displayName: String
    /// The root's files, through a descriptor opened once. Replaced when the root itself was
    /// replaced (watch mode saw it deleted and made again): a descriptor of the old, deleted
    /// directory would write where nobody can see it.
    private let currentFiles: CurrentFiles
    private var files: ReplicaFiles { currentFiles.files }
    private let root: String
    private let backupDirectory: String
    private let maxBackups: Int
    private let cacheDirectory: String
    private let attributes: AttributeSelection
    /// The cache to commit to when no scan ran in this session (a reconnected server).
    private let defaultCacheKey: String?
    /// The open scan cache and its lock. The lock is held from the first scan (or commit) until
    /// `close`: one run per replica cache at a time, even when the runs come from different
    /// client hosts (Invariant 7, on the server side too).
    private let cacheState = Mutex<(cache: ScanCache?, lock: ArchiveLock?, staged: BaselineUpdateTransaction?)>((nil, nil, nil))
    /// Shared syncfs rounds that make written content durable before it is renamed into place.
    private let durability: GroupSync
    /// The watch in progress (watch mode), told of this replica's own changes.
    private let watching = Mutex<TreeWatchSubscription?>(nil)
    /// swunison's own files inside this root: never scanned, watched or changed.
    public let ownState: OwnState
    /// What this replica's scans have covered: the subtrees scanned so far (their union: a retry
    /// or a watch cycle scans less than the profile's `path`s, never more) and the latest scan's
    /// ignore rules. No change is made to a path outside it (nor to a temporary name), whatever a
    /// peer asks (on a server, the client may be hostile).
    private let scanned = Mutex<ScanScope?>(nil)

    /// Opens a root.
    /// - Parameters:
    ///   - root: the root directory's path; it must exist and be a directory.
    ///   - displayName: the root as the user wrote it.
    ///   - cacheDirectory: where scan caches live (created if needed).
    ///   - backupDirectory: where replaced and losing versions are kept (Invariant 3).
    ///   - maxBackups: generations kept per path (at least one is always kept).
    ///   - attributes: which attributes are propagated.
    /// - Throws: ``ReplicaError/badRoot(root:message:)`` when the root is missing or not a directory
    ///   — never treated as an empty replica (Invariant 6).
    ///   - cacheKey: the scan cache to use when a commit arrives before any scan.
    ///   - ownFiles: swunison's own files and directories on this host (absolute paths: state
    ///     directory, backups, log, status file); those inside the root are left alone.
    public init(root: String, displayName: String? = nil, cacheDirectory: String, backupDirectory: String,
                maxBackups: Int, attributes: AttributeSelection, cacheKey: String? = nil, ownFiles: [String] = []) throws {
        self.displayName = displayName ?? root
        var st = Glibc.stat()
        if fstatat(AT_FDCWD, root, &st, 0) != 0 {
            let e = errno
            throw ReplicaError.badRoot(root: root, message: e == ENOENT
                ? "does not exist (is the disk mounted? create the directory if this is a new replica)"
                : String(cString: strerror(e)))
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw ReplicaError.badRoot(root: root, message: "is not a directory")
        }
        let files: ReplicaFiles
        do {
            files = try ReplicaFiles(root: root, backupDirectory: backupDirectory, maxBackups: maxBackups)
        } catch {
            throw ReplicaError.badRoot(root: root, message: "\(error)")
        }
        let current = CurrentFiles(files)
        currentFiles = current
        self.root = root
        self.backupDirectory = backupDirectory
        self.maxBackups = maxBackups
        durability = GroupSync {
            let files = current.files
            do throws(FileOperationError) { try files.syncFileSystem() } catch { throw Self.replicaError(error) }
        }
        self.cacheDirectory = cacheDirectory
        self.attributes = attributes
        self.defaultCacheKey = cacheKey
        self.ownState = OwnState(root: root, files: ownFiles + [cacheDirectory, backupDirectory])
    }

    /// Opens the root again by its path: watch mode saw it deleted (or unmounted) and there
    /// again, and operations must reach the new directory, not the old descriptor's.
    func reopenRoot() throws(ReplicaError) {
        do {
            currentFiles.replace(with: try ReplicaFiles(root: root, backupDirectory: backupDirectory, maxBackups: maxBackups))
        } catch {
            throw ReplicaError.badRoot(root: displayName, message: "\(error)")
        }
    }

    // MARK: Scan

    /// Files hashed at once by a full scan: one per CPU, 2 to 4 (`SWUNISON_HASH_THREADS`
    /// overrides; 1 hashes in the walk's own thread).
    static let hashThreads: Int = {
        if let text = getenv("SWUNISON_HASH_THREADS"), let n = Int(String(cString: text)), n > 0 { return min(n, 64) }
        return min(4, max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
    }()

    public func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        let cache = try openCache(key: request.cacheKey)
        let isDelta = try cache.snapshot != nil && cache.snapshot == request.expectedSnapshot
        let rules = try IgnoreRules(ignore: request.ignore, ignoreNot: request.ignoreNot)
        scanned.withLock { scope in
            // An empty list is the whole root, which covers everything.
            let paths = scope.map { $0.paths.isEmpty || request.paths.isEmpty ? [] : RelativePath.minimalSubtrees($0.paths + request.paths) } ?? request.paths
            scope = ScanScope(paths: paths, rules: rules)
        }
        // swunison's own files are out whatever `ignorenot` says.
        let own = ownState
        let isIgnored: (@Sendable (RelativePath) -> Bool)? = rules.isEmpty && own.isEmpty ? nil
            : { @Sendable in own.covers($0) || rules.isIgnored($0) }
        let rootPath = files.rootPath
        let options = {
            var options = ScanOptions(paths: request.paths, delta: isDelta, fastcheck: request.fastcheck,
                                      attributes: request.attributes, isIgnored: isIgnored, now: Self.now(),
                                      hashThreads: Self.hashThreads)
            options.deferDigests = request.deferDigests
            return options
        }()

        return try await withCheckedThrowingContinuation { continuation in
            // The walk is blocking system calls: run it on its own thread, not the async pool.
            DispatchQueue.global().async {
                var rewrite: BackgroundRewrite?
                do {
                    let root = try DirectoryFD.openRoot(rootPath)
                    var cursor = try cache.cursor(under: request.paths)
                    // A full scan rebuilds this cache from what is on disk (snapshot cleared until the
                    // run commits); a delta scan leaves it alone except for fingerprint refreshes.
                    rewrite = isDelta ? nil : BackgroundRewrite(try cache.beginRewrite(under: request.paths))
                    let outcome = try SwunisonFS.scan(root: root, baseline: &cursor, options: options) { [rewrite] batch in
                        try rewrite?.add(batch)
                        try sink(batch)
                    }
                    try rewrite?.commit()
                    if isDelta && !outcome.refreshed.isEmpty { try cache.refreshFingerprints(outcome.refreshed) }
                    continuation.resume(returning: ScanResult(
                        isDelta: isDelta, entryCount: outcome.entryCount,
                        problems: outcome.problems))
                } catch let error as ReplicaError {
                    rewrite?.abandon()
                    continuation.resume(throwing: error)
                } catch {
                    rewrite?.abandon()
                    continuation.resume(throwing: ReplicaError.badRoot(root: self.displayName, message: "scan failed: \(error)"))
                }
            }
        }
    }

    // MARK: Content

    public func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        // Opened where it is first read (see LocalFileReader): no hop of its own.
        LocalFileReader { [self] () throws(FileOperationError) in
            try files.openForReading(path, expected: withOwnFingerprint(expected, at: path)!)
        }
    }

    /// Files up to this size that arrive in chunks (from the wire) are gathered in memory and
    /// written in one step.
    static let smallFileLimit: Int64 = 1 << 20

    public func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader,
                          replacing: Entry?, backup: Bool) async throws -> Entry {
        try await ownChange(path, replacing: replacing) {
            try await self.writeOneFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
        }
    }

    private func writeOneFile(_ path: RelativePath, entry: Entry, from source: any FileReader,
                              replacing: Entry?, backup: Bool) async throws -> Entry {
        let expected = withOwnFingerprint(replacing, at: path)
        let attributes = self.attributes
        let writer: AtomicFileWriter
        if let local = source as? LocalFileReader {
            // Both sides on this host: write and seal in one hop to a blocking thread.
            writer = try await blocking { [self] () throws(FileOperationError) in
                try local.openIfNeeded()
                let writer = try files.beginWrite(path, entry: entry, forNewFile: expected == nil)
                try local.copy(into: writer)
                try writer.seal(replacing: expected, attributes: attributes)
                return writer
            }
        } else if entry.size <= Self.smallFileLimit {
            // A small file from the wire: gather its chunks (already in memory), then create,
            // write and seal it in one hop instead of one per step.
            var chunks: [[UInt8]] = []
            var received = 0
            while Int64(received) <= entry.size, let chunk = try await source.read() {
                received += chunk.count
                chunks.append(chunk)
            }
            let gathered = chunks
            writer = try await blocking { [self] () throws(FileOperationError) in
                let writer = try files.beginWrite(path, entry: entry, forNewFile: expected == nil)
                for chunk in gathered { try writer.append(chunk) }
                try writer.seal(replacing: expected, attributes: attributes)
                return writer
            }
        } else {
            writer = try await blocking { [self] () throws(FileOperationError) in try files.beginWrite(path, entry: entry, forNewFile: expected == nil) }
            do {
                while let chunk = try await source.read() {
                    try await blocking { () throws(FileOperationError) in try writer.append(chunk) }
                }
                try await blocking { () throws(FileOperationError) in
                    try writer.seal(replacing: expected, attributes: attributes)
                }
            } catch {
                writer.abort()
                throw error
            }
        }
        do {
            // Data before name (Invariant 1), one syncfs for every writer that is ready.
            try await durability.waitUntilDurable()
            return try await blocking { () throws(FileOperationError) in
                try writer.finish(replacing: expected, backup: backup)
            }
        } catch {
            writer.abort()
            throw error
        }
    }

    public func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        let expected = requests.map { withOwnFingerprint($0.expected, at: $0.path)! }
        return await onIOThread { [files] in
            var parents = ParentDirectoryCache()
            return requests.indices.map { index in
                Result { () throws(FileOperationError) -> [UInt8] in
                    try files.readWhole(requests[index].path, expected: expected[index], reusing: &parents)
                }.mapError { Self.replicaError($0) }
            }
        }
    }

    /// All files in one hop to an I/O thread, with one read buffer and parent directories kept
    /// open from one file to the next, as ``readFiles(_:)`` does.
    public func digestFiles(_ requests: [FileReadRequest]) async throws -> [Result<Digest, ReplicaError>] {
        let expected = requests.map { withOwnFingerprint($0.expected, at: $0.path)! }
        return await onIOThread { [files] in
            var parents = ParentDirectoryCache()
            let hasher = XXH3Hasher()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
            defer { buffer.deallocate() }
            return requests.indices.map { index in
                Result { () throws(FileOperationError) -> Digest in
                    try files.digest(requests[index].path, expected: expected[index], hasher: hasher, buffer: buffer,
                                     reusing: &parents)
                }.mapError { Self.replicaError($0) }
            }
        }
    }

    /// Every file of the batch is created, filled and sealed in one hop to an I/O thread (the
    /// parent directory opened once per run of files in it), made durable by one shared syncfs
    /// (Invariant 1), then renamed into place in a second hop.
    public func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        let refusals = writes.map { refusal(of: $0.path, replacing: $0.replacing) }
        if refusals.contains(where: { $0 != nil }) {
            // Rare (a peer sending swunison's own files, or paths the profile ignores): refuse
            // those, write the rest.
            var written = try await writeFiles(zip(writes, refusals).compactMap { $1 == nil ? $0 : nil }).makeIterator()
            return refusals.map { refusal in refusal.map { .failure($0) } ?? written.next()! }
        }
        let watch = ownChanges
        for write in writes { watch?.beginOwnChange(write.path) }
        let results = try await writeBatch(writes)
        if let watch {
            for (write, result) in zip(writes, results) {
                switch result {
                case .success(let entry): watch.endOwnChange(write.path, state: entry)
                case .failure: watch.cancelOwnChange(write.path)
                }
            }
        }
        return results
    }

    private func writeBatch(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        let expected = writes.map { withOwnFingerprint($0.replacing, at: $0.path) }
        let attributes = self.attributes
        var sealed = await onIOThread { [files] in
            var parents = ParentDirectoryCache()
            return writes.indices.map { index in
                Result { () throws(FileOperationError) -> AtomicFileWriter in
                    let write = writes[index]
                    let writer = try files.beginWrite(write.path, entry: write.entry, reusing: &parents,
                                                      forNewFile: expected[index] == nil, attributes: attributes)
                    try writer.append(write.content)
                    try writer.seal(replacing: expected[index], attributes: attributes)
                    return writer
                }.mapError { Self.replicaError($0) }
            }
        }
        if sealed.contains(where: { if case .success = $0 { true } else { false } }) {
            do {
                // Data before names (Invariant 1), one syncfs for the batch and every other writer.
                try await durability.waitUntilDurable()
            } catch {
                let failure = ReplicaError(error)
                for case .success(let writer) in sealed { writer.abort() }
                sealed = sealed.map { _ in .failure(failure) }
            }
        }
        let ready = sealed
        return await onIOThread {
            ready.indices.map { index in
                ready[index].flatMap { writer in
                    Result { () throws(FileOperationError) -> Entry in
                        try writer.finish(replacing: expected[index], backup: writes[index].backup)
                    }.mapError { Self.replicaError($0) }
                }
            }
        }
    }

    // MARK: Tree

    public func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await ownChange(path, replacing: replacing) { try await self.blocking { [self] () throws(FileOperationError) in
            try files.makeDirectory(path, entry: entry, replacing: withOwnFingerprint(replacing, at: path),
                                    backup: backup, attributes: attributes)
        } }
    }

    public func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await ownChange(path, replacing: replacing) { try await self.blocking { [self] () throws(FileOperationError) in
            try files.makeSymlink(path, target: entry.linkTarget ?? [], replacing: withOwnFingerprint(replacing, at: path),
                                  backup: backup)
        } }
    }

    public func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        try await ownChange(path, replacing: expected, leaves: { _ in nil }) { try await self.blocking { [self] () throws(FileOperationError) in
            try files.remove(path, expected: withOwnFingerprint(expected, at: path)!, backup: backup)
        } }
    }

    public func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        if let refusal = refusal(of: path, replacing: nil) { throw refusal }
        return try await blocking { [self] () throws(FileOperationError) in
            try files.backup(path, expected: withOwnFingerprint(expected, at: path)!)
        }
    }

    public func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        try await ownChange(path, replacing: nil) { try await self.blocking { [self] () throws(FileOperationError) in
            try files.setAttributes(path, expected: withOwnFingerprint(expected, at: path)!, to: entry,
                                    selection: attributes)
        } }
    }

    // MARK: Watch

    public func watch(_ request: WatchRequest) async throws -> any ChangeSource {
        let rules: IgnoreRules
        do { rules = try IgnoreRules(ignore: request.ignore, ignoreNot: request.ignoreNot) } catch {
            throw ReplicaError.other("watch: \(error)")
        }
        let scope = request.paths
        let own = ownState
        // A path is relevant inside the profile's `path`s, and so are the directories above
        // them (renaming one of those moves the paths).
        let inScope: @Sendable (RelativePath) -> Bool = { path in
            scope.isEmpty || scope.contains { path.isDescendant(orEqualTo: $0) || $0.isDescendant(orEqualTo: path) }
        }
        let options = TreeWatcher.Options(limit: request.watchLimit, holdWhileWritingNanoseconds: request.holdWhileWritingNanoseconds,
                                          shouldWatch: { inScope($0) && !own.covers($0) && !rules.isIgnored($0) })
        let rootPath = files.rootPath
        // Profiles watching this root with the same settings share its watches (a hub).
        var st = Glibc.stat()
        let identity = stat(rootPath, &st) == 0 ? "\(st.st_dev):\(st.st_ino)" : rootPath
        let key = ([identity, "\(request.watchLimit ?? -1)", "\(request.holdWhileWritingNanoseconds)"]
            + scope.map(\.description) + ["|"] + request.ignore + ["|"] + request.ignoreNot
            + ["|"] + own.paths.map(\.description)).joined(separator: "\u{1}")
        let started = await withCheckedContinuation { (c: CheckedContinuation<Result<(TreeWatcher, WatchSetupReport), WatcherError>, Never>) in
            BlockingWorkers.shared.run {
                c.resume(returning: Result { () throws(WatcherError) in
                    try SharedTreeWatchers.watcher(rootPath: rootPath, options: options, sharingKey: key)
                })
            }
        }
        let watcher: TreeWatcher, report: WatchSetupReport
        switch started {
        case .success(let made): (watcher, report) = made
        case .failure(.tooManyInstances):
            // No inotify instance to be had: never an exit; the root is rescanned now and then.
            return UnwatchedRoot()
        case .failure(let error):
            throw ReplicaError.badRoot(root: displayName, message: "cannot watch: \(error)")
        }
        let subscription = watcher.subscribe { inScope($0) && !own.covers($0) && !rules.isIgnored($0) }
        watching.withLock { $0 = subscription }
        let first: [ChangeNotice] = report.unwatched.isEmpty ? []
            : [.unwatched(report.unwatched, needed: report.needed, available: report.available)]
        return LocalWatch(subscription: subscription, replica: self, first: first)
    }

    /// The current watch's subscription, told of this replica's own changes (no ping-pong).
    private var ownChanges: TreeWatchSubscription? { watching.withLock { $0 } }

    func watchStopped(_ subscription: TreeWatchSubscription) {
        watching.withLock { if $0 === subscription { $0 = nil } }
    }

    /// Why a change of `path` (replacing `replacing`) is refused, or nil: it is swunison's own
    /// (``OwnState``), or it lies outside what the scans covered (outside the scanned subtrees,
    /// ignored, beneath an ignored directory, a temporary name; nothing is refused that way
    /// before the first scan).
    private func refusal(of path: RelativePath, replacing: Entry?) -> ReplicaError? {
        if ownState.forbids(path, replacing: replacing) { return ownState.refusal(path) }
        guard let scope = scanned.withLock({ $0 }), let reason = scope.violation(path) else { return nil }
        return .other("\(path): not changed: it is \(reason) (a client never asks that of an honest replica)")
    }

    /// Runs a change of `path` made by this replica, telling the watch (if any) before and
    /// after, so that its events are not reported back as somebody else's change. Refuses it
    /// first when ``refusal(of:replacing:)`` says so; `replacing` is what the change removes (a
    /// directory removed could hold some).
    private func ownChange<T: Sendable>(_ path: RelativePath, replacing: Entry?, leaves state: @escaping (T) -> Entry? = { $0 as? Entry },
                                        _ body: () async throws -> T) async throws -> T {
        if let refusal = refusal(of: path, replacing: replacing) { throw refusal }
        guard let watch = ownChanges else { return try await body() }
        watch.beginOwnChange(path)
        do {
            let result = try await body()
            watch.endOwnChange(path, state: state(result))
            return result
        } catch {
            watch.cancelOwnChange(path)
            throw error
        }
    }

    public func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        let cache = try cacheForCommit()
        // Every rename this run made must be on disk before the baseline (and then the archive)
        // says so; one syncfs covers them all (Invariant 4). Staged updates are not committed yet.
        do { try files.syncFileSystem() } catch { throw Self.replicaError(error) }
        try cacheState.withLock { state in
            let transaction = try state.staged ?? cache.beginUpdate()
            state.staged = nil
            try transaction.add(updates.lazy.map { ($0.path, $0.entry) })
            try transaction.commit(snapshot: snapshot)
        }
    }

    /// Applies the first updates of the coming ``commitBaseline(_:snapshot:)`` now, inside its
    /// still open transaction, so that a server writes its cache while the rest of a large
    /// commit is still on the wire. Nothing is visible until that commit; ``close()`` (or a
    /// failure) rolls it back. Blocking: call it from a thread that may wait.
    public func stageBaseline(_ updates: [BaselineUpdate]) throws {
        let cache = try cacheForCommit()
        try cacheState.withLock { state in
            if state.staged == nil { state.staged = try cache.beginUpdate() }
            do {
                try state.staged!.add(updates.lazy.map { ($0.path, $0.entry) })
            } catch {
                state.staged = nil
                throw error
            }
        }
    }

    /// The cache a commit writes to: the one the scan opened, or (a commit without a scan in
    /// this session, as after a reconnection) the default one.
    private func cacheForCommit() throws -> ScanCache {
        var cache = cacheState.withLock { $0.cache }
        if cache == nil, let key = defaultCacheKey { cache = try openCache(key: key) }
        guard let cache else {
            throw ReplicaError.other("\(displayName): no scan in this session, nothing to commit")
        }
        return cache
    }

    /// Opens (once) and locks the scan cache named `key` (Invariant 7, per replica).
    private func openCache(key: String) throws -> ScanCache {
        // The key comes from the client (over the wire, from a peer): one plain name, never a
        // path that leaves the cache directory.
        guard Self.isSafeCacheKey(key) else {
            throw ReplicaError.other("cache key \(key.debugDescription) refused: it must be one name of letters, digits, "
                + "'.', '_' and '-' (at most 128, not starting with '.')")
        }
        try makeDirectories(cacheDirectory)
        let cachePath = cacheDirectory + "/" + key + ".db"
        return try cacheState.withLock { state in
            if let open = state.cache { return open }
            if state.lock == nil { state.lock = try ArchiveLock.acquire(path: cachePath) }
            let opened = try ScanCache.open(path: cachePath)
            state.cache = opened
            return opened
        }
    }

    static func isSafeCacheKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard (1...128).contains(bytes.count), bytes[0] != UInt8(ascii: ".") else { return false }
        return bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    public func close() async {
        cacheState.withLock { state in
            state.staged = nil  // rolls back updates staged for a commit that never came
            state.cache = nil
            state.lock?.release()
            state.lock = nil
        }
    }

    // MARK: Helpers

    /// The expected entry with this replica's own fingerprint, when the caller only knows the
    /// archived state (whose fingerprint, if any, belongs to the other replica). Without one,
    /// the expected-state check falls back to comparing digests (Invariant 2).
    private func withOwnFingerprint(_ entry: Entry?, at path: RelativePath) -> Entry? {
        guard var entry, entry.kind == .file, entry.fingerprint == nil else { return entry }
        let cached = cacheState.withLock { try? $0.cache?.lookup(path) } ?? nil
        if let cached, cached.sameContent(as: entry), let fingerprint = cached.fingerprint,
           fingerprint != .untrusted, fingerprint.size == entry.size {
            entry.fingerprint = fingerprint
        }
        return entry
    }

    /// Runs a blocking file operation on one of the I/O workers rather than the async
    /// executor's few threads, so that many opens, writes and renames overlap, and maps its error
    /// for the Replica protocol.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(FileOperationError) -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            BlockingWorkers.shared.run {
                continuation.resume(with: Result { () throws(FileOperationError) -> T in try body() }
                    .mapError { Self.replicaError($0) })
            }
        }
    }

    /// Runs blocking work that reports its own failures on one of the I/O workers.
    private func onIOThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            BlockingWorkers.shared.run { continuation.resume(returning: body()) }
        }
    }

    static func replicaError(_ error: FileOperationError) -> ReplicaError {
        switch error {
        case .changedDuringSync(let path): return .changedDuringSync(path)
        case .digestMismatch(let path): return .digestMismatch(path)
        case .unsupportedKind: return .other("\(error)")
        case let .system(path, operation, call):
            // The message is the cause alone: the description adds the path and operation.
            return .system(path: path, operation: operation, errno: call.errno, message: FileOperationError.cause(of: call))
        }
    }

    private static func now() -> Nanoseconds {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

/// `mkdir -p` with mode 0700 (profile and cache directories hold private state).
public func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o700) != 0 && errno != EEXIST {
            throw ReplicaError.other("cannot create directory \(current): \(String(cString: strerror(errno)))")
        }
    }
}

/// Streams a local file in 1 MiB chunks.
///
/// The file is opened (and checked against what the scan saw, Invariant 2) on first use, not by
/// `openFile`: a copy between two local roots then opens, copies and seals in one hop to a
/// blocking thread instead of two, which is a good part of the per-file cost of a first sync of
/// many small files. Used by one consumer at a time.
final class LocalFileReader: FileReader, @unchecked Sendable {
    private let open: @Sendable () throws(FileOperationError) -> FileReadHandle
    private var opened: FileReadHandle?
    private static let chunkSize = 1 << 20
    /// Bytes handed out so far: never more than the file had when it was opened.
    private var delivered = 0

    init(open: @escaping @Sendable () throws(FileOperationError) -> FileReadHandle) { self.open = open }

    /// The open file, opening it the first time.
    private func handle() throws(FileOperationError) -> FileReadHandle {
        if let opened { return opened }
        let handle = try open()
        opened = handle
        return handle
    }

    func read() async throws -> [UInt8]? {
        let handle: FileReadHandle
        do throws(FileOperationError) { handle = try self.handle() } catch { throw LocalReplica.replicaError(error) }
        // The content as long as it was at the open, then a check that nothing wrote to the file
        // meanwhile (a file appended to during the copy is copied next run, not torn now; and
        // the receiver never gets more than the size it was told: a longer stream is refused).
        let remaining = max(0, Int(handle.entry.size) - delivered)
        if remaining == 0 {
            do throws(FileOperationError) { try handle.checkUnchangedSinceOpen() } catch { throw LocalReplica.replicaError(error) }
            return nil
        }
        let size = min(Self.chunkSize, remaining)
        var chunk = [UInt8](repeating: 0, count: size)
        let n = try chunk.withUnsafeMutableBytes { buffer throws(ReplicaError) -> Int in
            do throws(FileOperationError) { return try handle.read(into: buffer) } catch { throw LocalReplica.replicaError(error) }
        }
        if n == 0 {
            // Shorter than at the open: it changed.
            do throws(FileOperationError) { try handle.checkUnchangedSinceOpen() } catch { throw LocalReplica.replicaError(error) }
            return nil
        }
        delivered += n
        chunk.removeLast(size - n)
        return chunk
    }

    /// Opens the file if that has not happened yet (call it before creating anything on the
    /// other side, so a source that changed since the scan costs nothing there).
    func openIfNeeded() throws(FileOperationError) { _ = try handle() }

    /// Copies the file's content (as long as it was when opened) straight into `writer`, with one
    /// buffer and no hop between threads; the writer's digest check catches a file that changed
    /// meanwhile.
    func copy(into writer: AtomicFileWriter) throws(FileOperationError) {
        let handle = try self.handle()
        var remaining = Int(handle.entry.size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, min(remaining, Self.chunkSize)), alignment: 16)
        defer { buffer.deallocate() }
        while remaining > 0 {
            let n = try handle.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(remaining, buffer.count)]))
            if n == 0 { break }
            try writer.append(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            remaining -= n
        }
    }

    func close() async { opened?.close() }
}

/// A full scan's cache rewrite, written on a thread of its own so that the walk never waits for
/// SQLite: in a first scan of 200,000 files the inserts were about a third of the walk thread's
/// time, and the walk is the scan's critical path. At most a few batches wait in between, so
/// memory stays bounded when SQLite is the slower of the two.
final class BackgroundRewrite: @unchecked Sendable {
    private let rewrite: CacheRewrite
    private let queue = DispatchQueue(label: "swunison.cache-rewrite")
    private let slots = DispatchSemaphore(value: 8)
    /// The first failure (checked by the walk without waiting for the queue).
    private let failure = Mutex<(any Error)?>(nil)

    init(_ rewrite: CacheRewrite) { self.rewrite = rewrite }

    /// Queues the entries of one scan batch (its deletions have nothing to add).
    /// - Throws: an earlier batch's failure, so the scan stops soon after it.
    func add(_ batch: [ScanChange]) throws {
        if let failure = failure.withLock({ $0 }) { throw failure }
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            guard failure.withLock({ $0 == nil }) else { return }
            do {
                try rewrite.add(batch.lazy.compactMap { c in c.new.map { BaselineEntry(path: c.path, entry: $0) } })
            } catch {
                failure.withLock { $0 = error }
            }
        }
    }

    /// Waits for the queued batches, then commits; throws the first failure instead.
    func commit() throws {
        try queue.sync { () throws in
            if let failure = failure.withLock({ $0 }) { throw failure }
            try rewrite.commit()
        }
    }

    /// Waits for the queued batches and rolls the rewrite back.
    func abandon() {
        queue.sync { rewrite.rollback() }
    }
}

/// A local replica's root files, replaceable as a whole (see `LocalReplica.reopenRoot`).
final class CurrentFiles: Sendable {
    private let current: Mutex<ReplicaFiles>
    init(_ files: ReplicaFiles) { current = Mutex(files) }
    var files: ReplicaFiles { current.withLock { $0 } }
    func replace(with files: ReplicaFiles) { current.withLock { $0 = files } }
}

/// A local replica's watch: its subscription's notices (the setup's unwatched subtrees first),
/// and the root reopened when it is back after it went away.
final class LocalWatch: ChangeSource, Sendable {
    private let subscription: TreeWatchSubscription
    private let replica: LocalReplica
    private let first: Mutex<[ChangeNotice]>

    init(subscription: TreeWatchSubscription, replica: LocalReplica, first: [ChangeNotice]) {
        self.subscription = subscription; self.replica = replica; self.first = Mutex(first)
    }

    func next() async throws -> [ChangeNotice] {
        let initial = first.withLock { f in defer { f = [] }; return f }
        if !initial.isEmpty { return initial }
        let notices = try await subscription.next()
        if notices.contains(.rootBack) {
            // Operations must reach the new directory: if it cannot be opened yet, the cycle's
            // scan says so, and the next rootBack tries again.
            try? replica.reopenRoot()
        }
        return notices
    }

    func stop() async {
        replica.watchStopped(subscription)
        await subscription.stop()
    }
}

/// The watch of a root that could get no inotify instance: it says so once (the whole root is
/// unwatched, so the driver rescans it now and then), then waits until stopped.
final class UnwatchedRoot: ChangeSource, Sendable {
    private struct State {
        var told = false
        var stopped = false
        var waiter: CheckedContinuation<[ChangeNotice], any Error>?
    }
    private let state = Mutex(State())

    func next() async throws -> [ChangeNotice] {
        try await withCheckedThrowingContinuation { c in
            let answer: Result<[ChangeNotice], any Error>? = state.withLock { s in
                if s.stopped { return .failure(WatchUnavailable("the watch was stopped")) }
                if !s.told {
                    s.told = true
                    return .success([.unwatched([.root], needed: 0, available: 0)])
                }
                s.waiter = c
                return nil
            }
            if let answer { c.resume(with: answer) }
        }
    }

    func stop() async {
        let waiter = state.withLock { s in
            s.stopped = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(throwing: WatchUnavailable("the watch was stopped"))
    }
}
