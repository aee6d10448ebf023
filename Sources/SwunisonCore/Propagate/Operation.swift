import SwunisonModel
import SwunisonReplica

/// One change to make on one replica, derived from a plan item: the smallest unit Propagate runs
/// and records. Operations on a path run only after its parent directory exists (creations go
/// shallowest first) and directories are removed only after their contents (deletions go
/// deepest first).
struct Operation: Sendable {
    enum Action: Sendable {
        /// Copy a file's content from the source replica.
        case copyFile
        /// Content is equal; only the selected attributes differ.
        case setAttributes
        case makeDirectory
        case makeSymlink
        /// Remove what the target replica has at the path (file, symlink or emptied directory).
        case remove
    }

    var action: Action
    var path: RelativePath
    /// The replica that is changed.
    var target: Side
    /// The entry to create or copy (from the other replica); nil for `.remove`.
    var source: Entry?
    /// What the target replica holds now, as the scan saw it (nil = absent). Invariant 2.
    var expected: Entry?
    /// Keep the replaced or removed version in the backup location first (Invariant 3).
    var backup: Bool
    /// The target holds the losing version of a conflict.
    var isConflictLoser: Bool
    /// The ledger slot of this operation's path (see `Ledger`).
    var slot: Int

    var depth: Int { path.depth }
    var isDeletion: Bool { action == .remove }
}

extension Operation.Action: Equatable {}
