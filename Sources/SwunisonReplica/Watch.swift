import SwunisonModel

// Watch mode's part of the contract: a replica says where it changed, the engine rescans there.
//
// The seam follows the two best-known sync engines. Mutagen's endpoints have `Poll`: block until
// something changed, then let the controller scan. Syncthing's `fs.Watch` yields events naming
// paths, which it turns into scans of just those paths. swunison does both: `next()` blocks
// until something changed (no polling, no CPU while idle), and each notice names where to
// rescan. A notice never says *what* changed; the scan and the archive decide that, exactly as
// in a batch run, so a lost or doubled notice costs a scan, never a wrong propagation.

/// What to watch: the same scope and ignore rules as a scan of the same run.
public struct WatchRequest: Sendable, Equatable {
    /// Subtrees to watch (the profile's `path`); empty = the whole root.
    public var paths: [RelativePath]
    /// `ignore` / `ignorenot` patterns, as in ``ScanRequest``: an ignored directory gets no watch.
    public var ignore: [String]
    public var ignoreNot: [String]
    /// At most this many inotify watches (`watchlimit`); nil = as many as the kernel allows.
    public var watchLimit: Int?
    /// How long a file that is still being written (modified, not yet closed) is held back
    /// before it is reported anyway, in nanoseconds (`maxdelay`).
    public var holdWhileWritingNanoseconds: Int64
    /// Identifies the root pair, as in ``ScanRequest/cacheKey``: one root watched for two peers
    /// (a hub) keeps one set of watches, but each peer hears of the other's writes.
    public var cacheKey: String

    public init(paths: [RelativePath] = [], ignore: [String] = [], ignoreNot: [String] = [], watchLimit: Int? = nil,
                holdWhileWritingNanoseconds: Int64 = 30_000_000_000, cacheKey: String) {
        self.paths = paths; self.ignore = ignore; self.ignoreNot = ignoreNot; self.watchLimit = watchLimit
        self.holdWhileWritingNanoseconds = holdWhileWritingNanoseconds; self.cacheKey = cacheKey
    }
}

/// A change seen on a watched replica: where to rescan.
public enum ChangeNotice: Sendable, Equatable, CustomStringConvertible {
    /// `path` (a file, or a directory and everything beneath it) may have changed, appeared or
    /// gone: rescan it. A new or moved-in directory is reported as itself, so its whole content
    /// is scanned (files may land in it before its watch does).
    case changed(RelativePath)
    /// Events were lost (the kernel's queue overflowed): rescan the whole replica.
    case overflow
    /// These subtrees have no watches (the watch limit was reached): nothing is heard from
    /// them, so they must be rescanned now and then. `needed` is how many watches the tree
    /// wanted, `available` how many could be had; both 0 when no inotify instance could be had
    /// at all (`fs.inotify.max_user_instances`), and the subtree is the root.
    case unwatched([RelativePath], needed: Int, available: Int)
    /// The root itself went away (deleted, unmounted, replaced): stop propagating to and from
    /// it until ``rootBack``. Never to be read as "everything was deleted" (Invariant 6).
    case rootMissing(String)
    /// The root is there again (watches are back in place): rescan all of it.
    case rootBack

    public var description: String {
        switch self {
        case .changed(let path): return "changed \(path.isRoot ? "." : path.description)"
        case .overflow: return "overflow"
        case let .unwatched(paths, needed, available):
            return "unwatched \(paths.count) subtrees (needed \(needed) watches, \(available) available)"
        case .rootMissing(let why): return "root missing: \(why)"
        case .rootBack: return "root back"
        }
    }
}

/// Where a watched replica's notices come from (``Replica/watch(_:)``).
public protocol ChangeSource: AnyObject, Sendable {
    /// Waits until there is at least one notice, then returns every notice gathered so far, in
    /// the order seen. Throws when the watch itself failed (the connection to a remote replica
    /// broke, the watcher was stopped); a root that went away is a notice, not an error.
    func next() async throws -> [ChangeNotice]
    /// Removes the watches; a pending `next()` throws.
    func stop() async
}

/// Why a replica cannot be watched.
public struct WatchUnavailable: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
