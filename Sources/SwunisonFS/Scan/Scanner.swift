import Glibc
import SwunisonModel

/// Scans a replica root (or the subtrees in `options.paths`) and streams what differs from its
/// baseline to `sink`, in walk order (see ``RelativePath``), in batches of `options.batchSize`.
///
/// The walk reads each directory with `getdents64`, sorts the names by raw bytes and `fstatat`s
/// them without following symlinks (Invariant 5), merging with `baseline` as it goes: one
/// cursor step per baseline row, never a lookup per path. Files are hashed unless fastcheck can
/// reuse the baseline digest (or the caller defers digests, ``ScanOptions/deferDigests``).
/// Unreadable paths become ``ScanProblem``s and their baseline rows are left alone (never
/// reported as deleted); ignored paths and swunison's own `.swunison.*` files are never
/// reported; stale temp files of dead runs are removed.
///
/// - Parameters:
///   - root: the replica root, opened with ``DirectoryFD/openRoot(_:)``.
///   - baseline: the replica's baseline in walk order, restricted to `options.paths` if any.
///     It is read to the end.
///   - sink: receives each batch of changes, in walk order.
/// - Throws: ``ScanError`` when the root vanished, is not a directory or cannot be read
///   (Invariant 6: never reported as mass deletion); errors from the cursor or the sink.
public func scan<Cursor: BaselineCursor>(root: DirectoryFD, baseline: inout Cursor, options: ScanOptions,
                                         sink: ([ScanChange]) throws -> Void) throws -> ScanOutcome {
    // The walk itself is not generic: a cursor type from another module would otherwise leave
    // the whole hot loop unspecialised (runtime generic metadata lookups on every row).
    var cursor = baseline
    defer { baseline = cursor }
    return try withoutActuallyEscaping(sink) { sink in
        try withoutActuallyEscaping({ (row: inout BaselineRow) throws -> Bool in try cursor.next(into: &row) }) { next in
            let walk = ScanWalk(root: root, next: next, options: options, sink: sink)
            try walk.run()
            return walk.outcome
        }
    }
}

/// One scan in progress: the walk stack, the baseline lookahead and the pending batch.
private final class ScanWalk {
    /// A directory whose names are being visited.
    struct Frame {
        var directory: DirectoryFD
        /// Index of the next name in the frame's listing (`levels[depth]`).
        var next: Int
        /// Length of `path` to restore when the frame is popped.
        var restoreLength: Int
    }

    let root: DirectoryFD
    /// The baseline cursor's `next(into:)`.
    let nextRow: (inout BaselineRow) throws -> Bool
    let options: ScanOptions
    let sink: ([ScanChange]) throws -> Void
    var outcome = ScanOutcome()

    /// Requested subtrees, sorted, nested ones merged; empty = the whole root.
    let targets: [RelativePath]
    /// The next baseline row not yet matched or disposed of, when `hasHead` (one row reused
    /// for the whole walk: no allocation per baseline row).
    var head = BaselineRow()
    var hasHead = false
    /// A baseline row found ignored while draining; its descendants are skipped silently.
    var protectedPrefix: RelativePath?

    /// Bytes of the path being visited (components joined by `/`); reused, never reallocated
    /// once grown.
    var path: [UInt8] = []
    var frames: [Frame] = []
    /// One listing per walk depth, reused for every directory at that depth.
    var levels: [DirectoryListing] = []
    let direntBuffer: UnsafeMutableRawBufferPointer
    let hasher = ContentHasher()
    /// Full scans with `options.hashThreads > 1`: the files of each batch are hashed in the
    /// background (see ``ParallelHasher``) while the walk goes on; a batch waits in `hashing`,
    /// its changes without digests, until its group is done, then goes to the sink in order.
    /// Delta scans hash inline: they hash few files, and a file that cannot be read must be
    /// settled before the walk disposes of the baseline rows after it.
    let parallelHasher: ParallelHasher?
    var pendingHashes: [ParallelHasher.Job] = []
    /// Index in `batch` of each pending job's change.
    var pendingIndices: [Int] = []
    /// Batches whose files are being hashed, oldest first.
    var hashing: [(batch: [ScanChange], indices: [Int], group: ParallelHasher.Group)] = []
    /// A batch is handed over once this many of its files wait for hashing (each job holds its
    /// directory open: at most `maxPendingHashes * (maxHashingBatches + 1)` descriptors).
    static let maxPendingHashes = 256
    /// Batches hashed ahead of the sink.
    static let maxHashingBatches = 2
    var batch: [ScanChange] = []
    /// Files modified after this instant get an untrusted fingerprint.
    let recentThreshold: Nanoseconds

    init(root: DirectoryFD, next: @escaping (inout BaselineRow) throws -> Bool, options: ScanOptions,
         sink: @escaping ([ScanChange]) throws -> Void) {
        self.root = root
        self.nextRow = next
        self.options = options
        self.sink = sink
        self.targets = Self.normalise(options.paths)
        self.recentThreshold = options.now - 1_000_000_000
        direntBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        parallelHasher = !options.delta && options.hashThreads > 1 ? ParallelHasher(threads: options.hashThreads) : nil
        batch.reserveCapacity(options.batchSize)
    }

    deinit { direntBuffer.deallocate() }

    /// Sorts the requested paths and drops those inside another; the root swallows everything.
    static func normalise(_ paths: [RelativePath]) -> [RelativePath] {
        if paths.isEmpty || paths.contains(where: \.isRoot) { return [] }
        var out: [RelativePath] = []
        for p in paths.sorted(by: <) {
            if let last = out.last, p.isDescendant(orEqualTo: last) { continue }
            out.append(p)
        }
        return out
    }

    // MARK: - Driving the walk

    func run() throws {
        try checkRoot()
        try advance()
        if targets.isEmpty {
            // A descriptor of our own: the caller's root may be in use elsewhere, and a directory
            // descriptor carries a read offset.
            let walkRoot: DirectoryFD
            switch Result(catching: { () throws(SystemCallError) in try root.openDirectory(at: .root) }) {
            case .success(let directory): walkRoot = directory
            case .failure(let error): throw ScanError.rootUnreadable(error)
            }
            let listing = level(0)
            let listed = Result { () throws(SystemCallError) in try listing.read(directory: walkRoot.fd, buffer: direntBuffer) }
            if case .failure(let error) = listed { throw ScanError.rootUnreadable(error) }
            path.removeAll(keepingCapacity: true)
            frames.append(Frame(directory: walkRoot, next: 0, restoreLength: 0))
            try runFrames()
        } else {
            for target in targets { try scanTarget(target) }
        }
        try drain(before: nil)
        // A root removed during the walk would have looked empty from some point on.
        try checkRoot()
        try flush()
        while !hashing.isEmpty { try completeOldestHashing() }
        outcome.hashedBytes = hasher.bytesRead + (parallelHasher?.bytesRead ?? 0)
    }

    /// Invariant 6: a root that is gone or not a directory stops the scan with an error.
    func checkRoot() throws {
        // (Result rather than do/catch around typed throws: Swift 6.3.1 miscompiles the latter here.)
        let status: FileStatus
        switch Result(catching: { () throws(SystemCallError) in try FileStatus(fd: root.fd) }) {
        case .success(let s): status = s
        case .failure(let error): throw ScanError.rootUnreadable(error)
        }
        guard status.kind == .directory else { throw ScanError.rootNotDirectory }
        guard status.raw.st_nlink > 0 else { throw ScanError.rootVanished }
    }

    /// Scans one requested subtree: its entry, then (for a directory) everything beneath it.
    /// A target whose parent is missing, a symlink or not a directory is absent (its baseline
    /// rows are reported deleted by the next drain).
    func scanTarget(_ target: RelativePath) throws {
        guard let parent = target.parent, let name = target.lastComponent else { return }
        let parentDirectory: DirectoryFD
        switch Result(catching: { () throws(SystemCallError) in try root.openDirectory(at: parent) }) {
        case .success(let directory): parentDirectory = directory
        case .failure(let error):
            if error.errno == ENOENT || error.errno == ENOTDIR || error.errno == ELOOP { return }
            path = target.bytes
            try problem("cannot open parent directory: \(error.message)")
            return
        }
        path = parent.bytes
        var terminated = name.bytes
        terminated.append(0)
        try terminated.withUnsafeBufferPointer { bytes in
            try visit(name: bytes.baseAddress!, length: name.bytes.count, in: parentDirectory, depth: 0)
        }
        try runFrames()
    }

    /// Visits the names of the frames on the stack until it is empty.
    func runFrames() throws {
        while let top = frames.last {
            let depth = frames.count - 1
            let listing = levels[depth]
            if top.next >= listing.count {
                path.removeSubrange(top.restoreLength...)
                frames.removeLast()
                continue
            }
            frames[depth].next += 1
            try listing.withName(top.next) { name, length in
                try visit(name: name, length: length, in: top.directory, depth: depth + 1)
            }
        }
    }

    /// The reusable listing for walk depth `depth`.
    func level(_ depth: Int) -> DirectoryListing {
        while levels.count <= depth { levels.append(DirectoryListing()) }
        return levels[depth]
    }

    // MARK: - One name

    /// Visits one name in `directory`: decides whether it changed and, for a readable
    /// directory, pushes a frame for its contents (listing at `depth`).
    /// - Parameter name: the name's bytes, NUL-terminated at `name[length]`.
    func visit(name: UnsafePointer<UInt8>, length: Int, in directory: DirectoryFD, depth: Int) throws {
        let cName = UnsafeRawPointer(name).assumingMemoryBound(to: CChar.self)
        if isSwunisonTemporary(name, length) {
            // swunison's own temp/partial files are never reported.
            if removeIfStale(name: name, length: length, in: directory) { outcome.removedTemporaryFiles += 1 }
            return
        }
        let restoreLength = path.count
        if restoreLength > 0 { path.append(0x2F) }
        path.append(contentsOf: UnsafeBufferPointer(start: name, count: length))
        var pushedFrame = false
        defer { if !pushedFrame { path.removeSubrange(restoreLength...) } }

        if let isIgnored = options.isIgnored, isIgnored(RelativePath(uncheckedBytes: path)) {
            try drain(before: path)
            try skipSubtree()
            return
        }

        let status: FileStatus
        let statResult = Result { () throws(SystemCallError) in try fileStatus(cName: cName, in: directory.fd) }
        switch statResult {
        case .success(let s?): status = s
        case .success(nil): return  // vanished since the listing: absent, drained later
        case .failure(let error):
            try problem("cannot stat: \(error.message)")
            return
        }
        guard let kind = status.kind else {
            try problem("is a \(status.typeName), not synchronised")
            return
        }

        try drain(before: path)
        var old: Entry?
        if hasHead && head.pathBytes == path {
            old = head.entry
            try advance()
        }

        var entry: Entry
        switch kind {
        case .directory:
            entry = status.entry(kind: .directory)
        case .symlink:
            entry = status.entry(kind: .symlink)
            let target = Result { () throws(SystemCallError) in
                try readLink(cName: cName, in: directory.fd, sizeHint: Int(status.size))
            }
            switch target {
            case .success(let bytes): entry.linkTarget = bytes
            case .failure(let error) where error.errno == ENOENT:
                try problem("vanished while being read; will be rescanned", keepingEntry: true)
                return
            case .failure(let error):
                try problem("cannot read link: \(error.message)")
                return
            }
        case .file:
            if options.fastcheck, let old, old.kind == .file,
               let fingerprint = old.fingerprint, fingerprint == status.fingerprint {
                // Fastcheck: size, mtime, ctime and inode unchanged, so the content is too. A
                // row without a digest (left by a first sync's deferred scan) stays without one:
                // its fingerprint stands for the archived content (see `report`).
                entry = status.entry(kind: .file)
                entry.digest = old.digest
            } else if options.deferDigests {
                // A first sync: the digest is taken while the file is copied (or asked for when
                // the other replica has the path too), not read once more here.
                entry = status.entry(kind: .file)
            } else if parallelHasher != nil {
                // Hashed in the background with the rest of its batch (`completeOldestHashing`).
                var name = Array(UnsafeBufferPointer(start: name, count: length))
                name.append(0)
                pendingHashes.append(ParallelHasher.Job(directory: directory, name: name, status: status))
                pendingIndices.append(batch.count)
                outcome.entryCount += 1
                try emit(ScanChange(path: RelativePath(uncheckedBytes: path), old: nil, new: status.entry(kind: .file)))
                if pendingHashes.count >= Self.maxPendingHashes { try flush() }
                return
            } else {
                switch hasher.hash(name: cName, in: directory.fd, expected: status) {
                case .hashed(let digest, let readStatus):
                    outcome.hashedFiles += 1
                    entry = readStatus.entry(kind: .file)
                    entry.digest = digest
                case .gone:
                    // Not reported deleted on the strength of a transient state: the next run sees it gone.
                    try problem("vanished while being read; will be rescanned", keepingEntry: true)
                    return
                case .failed(let message):
                    try problem(message)
                    return
                }
            }
            if entry.mtime > recentThreshold {
                // Possibly still being written: hash again next time instead of trusting the cache.
                entry.fingerprint = .untrusted
            }
        }

        outcome.entryCount += 1
        try report(old: old, new: entry)

        if kind == .directory {
            pushedFrame = try enter(cName, in: directory, depth: depth, restoreLength: restoreLength)
        }
    }

    /// Opens and lists the directory just visited and pushes its frame; on failure records a
    /// problem (its baseline descendants are left alone) and returns false.
    /// - Parameter restoreLength: the length of `path` without this directory's name.
    func enter(_ cName: UnsafePointer<CChar>, in directory: DirectoryFD, depth: Int, restoreLength: Int) throws -> Bool {
        let opened = Result { () throws(SystemCallError) in try directory.openDirectory(cName: cName) }
        let child: DirectoryFD
        switch opened {
        case .success(let fd): child = DirectoryFD(adopting: fd)
        case .failure(let error):
            try problem("cannot open directory: \(error.message)", keepingEntry: true)
            return false
        }
        let listing = level(depth)
        let listed = Result { () throws(SystemCallError) in try listing.read(directory: child.fd, buffer: direntBuffer) }
        if case .failure(let error) = listed {
            try problem("cannot read directory: \(error.message)", keepingEntry: true)
            return false
        }
        frames.append(Frame(directory: child, next: 0, restoreLength: restoreLength))
        return true
    }

    // MARK: - Reporting

    /// Compares the entry on disk with the baseline and reports it if it changed (delta) or
    /// always (full mode); collects fingerprint-only refreshes.
    func report(old: Entry?, new: Entry) throws {
        guard options.delta else {
            try emit(ScanChange(path: RelativePath(uncheckedBytes: path), old: nil, new: new))
            return
        }
        // A row without a digest cannot vouch for content once the fingerprint changed (equal
        // sizes and mtimes prove nothing): such a file is reported, and the caller compares it
        // with the archive's digest.
        let unverifiable = old?.kind == .file && old?.digest == nil && new.digest != nil
        if let old, !unverifiable, options.attributes.equivalent(old, new) {
            if new.kind == .file && old.fingerprint != new.fingerprint {
                var refreshed = old
                refreshed.fingerprint = new.fingerprint
                outcome.refreshed.append(BaselineEntry(path: RelativePath(uncheckedBytes: path), entry: refreshed))
            }
            return
        }
        try emit(ScanChange(path: RelativePath(uncheckedBytes: path), old: old, new: new))
    }

    /// Records a problem at the current path and leaves its baseline rows (and those beneath
    /// it) alone: an unreadable path is never reported as deleted.
    /// - Parameter keepingEntry: the path's own row was already matched (a directory that was
    ///   reported but could not be entered).
    func problem(_ message: String, keepingEntry: Bool = false) throws {
        outcome.problems.append(ScanProblem(path: RelativePath(uncheckedBytes: path), message: message))
        if !keepingEntry { try drain(before: path) }
        try skipSubtree()
    }

    func emit(_ change: ScanChange) throws {
        batch.append(change)
        if batch.count >= options.batchSize { try flush() }
    }

    func flush() throws {
        if let parallelHasher {
            // Full scan with background hashing: hand the batch over, then let the oldest
            // batches through once their files are hashed.
            guard !batch.isEmpty else { return }
            hashing.append((batch, pendingIndices, parallelHasher.submit(pendingHashes)))
            batch = []
            batch.reserveCapacity(options.batchSize)
            pendingHashes.removeAll(keepingCapacity: true)
            pendingIndices.removeAll(keepingCapacity: true)
            while hashing.count > Self.maxHashingBatches { try completeOldestHashing() }
            return
        }
        guard !batch.isEmpty else { return }
        try sink(batch)
        batch.removeAll(keepingCapacity: true)
    }

    /// Waits for the oldest hashing batch, completes its changes and passes it to the sink. A
    /// file that vanished or cannot be read leaves the batch and becomes a problem, as when
    /// hashed inline (full mode: its baseline rows need no disposal).
    func completeOldestHashing() throws {
        var (changes, indices, group) = hashing.removeFirst()
        var failed: [Int] = []
        for (index, result) in zip(indices, group.wait()) {
            switch result {
            case .hashed(let digest, let readStatus):
                outcome.hashedFiles += 1
                var entry = readStatus.entry(kind: .file)
                entry.digest = digest
                if entry.mtime > recentThreshold { entry.fingerprint = .untrusted }
                changes[index].new = entry
            case .gone:
                outcome.problems.append(ScanProblem(path: changes[index].path, message: "vanished while being read; will be rescanned"))
                failed.append(index)
            case .failed(let message):
                outcome.problems.append(ScanProblem(path: changes[index].path, message: message))
                failed.append(index)
            }
        }
        outcome.entryCount -= failed.count
        for index in failed.reversed() { changes.remove(at: index) }
        if !changes.isEmpty { try sink(changes) }
    }

    // MARK: - Baseline cursor

    func advance() throws { hasHead = try nextRow(&head) }

    /// Disposes of every baseline row before `bound` in walk order (all rows when nil): none of
    /// them was seen on disk, so each is gone.
    func drain(before bound: [UInt8]?) throws {
        while hasHead {
            if let bound, RelativePath.compare(head.pathBytes, bound) >= 0 { return }
            try disposeGone(head.baselineEntry)
            try advance()
        }
    }

    /// Consumes, without reporting, the baseline rows at or beneath the current path.
    func skipSubtree() throws {
        while hasHead, Self.isDescendant(head.pathBytes, orEqualTo: path) { try advance() }
    }

    /// Reports a baseline row whose path is no longer on disk as deleted, unless it is not
    /// ours to judge: the root, an ignored path (or beneath one), a swunison temp file, or a
    /// path outside the requested subtrees. Full mode reports no deletions.
    func disposeGone(_ row: BaselineEntry) throws {
        guard options.delta, !row.path.isRoot else { return }
        if let protectedPrefix, row.path.isDescendant(orEqualTo: protectedPrefix) { return }
        protectedPrefix = nil
        if let name = row.path.lastComponent,
           name.bytes.withUnsafeBufferPointer({ isSwunisonTemporary($0.baseAddress!, $0.count) }) { return }
        if !targets.isEmpty && !targets.contains(where: { row.path.isDescendant(orEqualTo: $0) }) { return }
        if let isIgnored = options.isIgnored, let ignored = Self.ignoredAncestor(of: row.path, isIgnored) {
            protectedPrefix = ignored
            return
        }
        try emit(ScanChange(path: row.path, old: row.entry, new: nil))
    }

    /// The shortest prefix of `path` (itself included) that `isIgnored` matches, if any.
    static func ignoredAncestor(of path: RelativePath, _ isIgnored: (RelativePath) -> Bool) -> RelativePath? {
        let bytes = path.bytes
        for i in bytes.indices where bytes[i] == 0x2F {
            let prefix = RelativePath(uncheckedBytes: Array(bytes[..<i]))
            if isIgnored(prefix) { return prefix }
        }
        return isIgnored(path) ? path : nil
    }

    /// `path` is `ancestor` or lies beneath it (both as `/`-joined bytes).
    static func isDescendant(_ path: [UInt8], orEqualTo ancestor: [UInt8]) -> Bool {
        if ancestor.isEmpty { return true }
        guard path.count >= ancestor.count else { return false }
        return path.withUnsafeBufferPointer { p in
            ancestor.withUnsafeBufferPointer { a in
                memcmp(p.baseAddress!, a.baseAddress!, a.count) == 0
                    && (p.count == a.count || p[a.count] == 0x2F)
            }
        }
    }
}
