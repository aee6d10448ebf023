import SwunisonModel
import SwunisonReplica
import SwunisonReconcile

/// Everything a run needs from the profile, already typed and checked (the CLI builds it from
/// a `Profile`). Session never sees raw profile text.
public struct SessionOptions: Sendable {
    /// Subtrees to synchronise (`path`); empty = the whole roots.
    public var paths: [RelativePath] = []
    /// Set for a cycle over part of what the profile covers (watch mode: the subtrees that
    /// changed): what the profile covers as a whole (`path`; empty = the whole roots). The
    /// `confirmbigdel` check then asks whether a side would be left empty *there*, not merely
    /// in the few paths this cycle scans.
    public var wholeScope: [RelativePath]?
    /// `ignore` / `ignorenot` patterns, passed to each replica's scanner.
    public var ignore: [String] = []
    public var ignoreNot: [String] = []
    public var fastcheck = true
    public var attributes = AttributeSelection()
    /// Conflict policy and overrides.
    public var reconcile: ReconcileOptions
    /// Stop when a root or top-level path was emptied on one side only (`confirmbigdel`).
    public var confirmBigDeletes = true
    /// Failed paths are re-run up to this many times (`retry`).
    public var retry = 0
    /// Print the plan, change nothing (`--dry-run`).
    public var dryRun = false
    /// Backups for non-conflict overwrites and deletions (`backup` / `backupnot`).
    public var shouldBackup: @Sendable (RelativePath) -> Bool = { _ in true }
    /// Identifies the root pair for the replicas' scan caches.
    public var cacheKey: String
    /// The scan cache name of one side's replica.
    public func cacheKey(for side: Side) -> String { cacheKey + "-" + side.description }

    /// Synchronise symbolic links (`links`). When false, as in Unison, a symlink that changed
    /// (appeared, changed or went away) is an error of the scan: its path is left alone on both
    /// sides and reported, never followed and never deleted.
    public var links = true

    /// Operations in flight at once.
    public var maxConcurrentOperations = 32
    /// True once the run should stop (SIGTERM in watch mode): operations in flight finish, no
    /// new ones start, what succeeded is committed, and no retry round follows.
    public var shouldStop: @Sendable () -> Bool = { false }

    public init(reconcile: ReconcileOptions, cacheKey: String) {
        self.reconcile = reconcile
        self.cacheKey = cacheKey
    }
}
