import SwunisonModel

/// What a scan covers and how it decides that a path changed.
public struct ScanOptions: Sendable {
    /// Subtrees to scan (the profile's `path`); empty means the whole root. The caller hands
    /// ``scan(root:baseline:options:sink:)`` a baseline cursor already restricted to them.
    public var paths: [RelativePath]
    /// True: report only paths that differ from the baseline, deletions included. False (full
    /// mode): report every present entry with `old == nil` and no deletions; the caller diffs
    /// against its archive. The baseline is consulted for fastcheck either way.
    public var delta: Bool
    /// Reuse a baseline digest when size, mtime, ctime and inode all equal its fingerprint.
    public var fastcheck: Bool
    /// Which attributes count as a change.
    public var attributes: AttributeSelection
    /// True for a path to leave out; an ignored directory is skipped whole, and baseline rows
    /// under an ignored path are never reported as deleted.
    public var isIgnored: (@Sendable (RelativePath) -> Bool)?
    /// When the scan started; files modified within a second of it get an untrusted fingerprint.
    public var now: Nanoseconds
    /// How many changes are handed to the sink at a time.
    public var batchSize: Int
    /// Full scans: how many files are hashed at once (1: one at a time, in the walk's thread).
    public var hashThreads: Int
    /// Report files that fastcheck cannot vouch for without a digest instead of reading them.
    /// For a first sync (empty archive), where nothing is compared with an archived digest: a
    /// file the other replica lacks gets its digest while it is copied, and the caller asks for
    /// the digests of paths both replicas have. The rows such a scan leaves without a digest are
    /// trusted on their fingerprint afterwards, and a file whose fingerprint changed is reported
    /// (see `report`). Unreadable files show up when they are copied, not as scan problems.
    public var deferDigests: Bool = false

    public init(paths: [RelativePath] = [], delta: Bool = true, fastcheck: Bool = true,
                attributes: AttributeSelection = AttributeSelection(),
                isIgnored: (@Sendable (RelativePath) -> Bool)? = nil, now: Nanoseconds, batchSize: Int = 512,
                hashThreads: Int = 1) {
        self.paths = paths; self.delta = delta; self.fastcheck = fastcheck; self.attributes = attributes
        self.isIgnored = isIgnored; self.now = now; self.batchSize = max(1, batchSize)
        self.hashThreads = max(1, hashThreads)
    }
}


/// How a scan went.
public struct ScanOutcome: Sendable {
    /// Entries present within the scanned paths (files, directories, symlinks; not the root,
    /// not ignored paths, not swunison's temp files).
    public var entryCount: Int = 0
    /// Paths that could not be read. In full mode the caller must treat everything beneath them
    /// as unknown, not as deleted.
    public var problems: [ScanProblem] = []
    /// Files whose content and attributes equal the baseline but whose fingerprint changed
    /// (inode or ctime, e.g. after a restore or `touch` with `times = false`): the baseline entry
    /// with the new fingerprint, for the caller to store. Not changes. Delta mode only.
    public var refreshed: [BaselineEntry] = []
    /// Bytes and files read for hashing (files whose digest could not be reused).
    public var hashedBytes: Int64 = 0
    public var hashedFiles: Int = 0
    /// Stale `.swunison.<pid>.*.tmp` files of dead processes removed during the scan.
    public var removedTemporaryFiles: Int = 0

    public init() {}
}

/// Why a whole scan failed. A root that vanished or is not a directory is never read as
/// "everything was deleted" (Invariant 6).
public enum ScanError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The root directory was removed (its link count is 0), before or during the scan.
    case rootVanished
    /// The root descriptor is not a directory.
    case rootNotDirectory
    /// The root directory itself could not be read.
    case rootUnreadable(SystemCallError)

    public var description: String {
        switch self {
        case .rootVanished: return "the root directory was removed"
        case .rootNotDirectory: return "the root is not a directory"
        case .rootUnreadable(let error): return "cannot read the root directory: \(error)"
        }
    }
}
