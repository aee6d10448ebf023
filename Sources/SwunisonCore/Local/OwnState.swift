import Glibc
import SwunisonFS
import SwunisonModel
import SwunisonReplica

/// swunison's own files that lie inside a root: the state directory (archives, caches, locks),
/// the backup directory, the log file and the status file.
///
/// With `root = /home/me` (the most common setup) `~/.swunison` is inside the root. Synchronising
/// it would copy archives and caches that change during the run (every run would end with
/// failures), and would let the other side rewrite this host's profiles or delete its backups.
/// So these paths are never scanned, watched or changed: they are ignored on both sides as if
/// the profile said `ignore = BelowPath …`, and the replica refuses any change at or beneath
/// them (and the removal of a directory that holds one).
public struct OwnState: Sendable, Equatable {
    /// The own paths inside the root, relative to it.
    public let paths: [RelativePath]

    public static let none = OwnState(paths: [])

    public init(paths: [RelativePath]) { self.paths = paths }

    /// The ones of `files` (absolute paths; they need not exist yet) that lie inside `root`,
    /// compared after resolving symlinks and `..` in the directories that exist.
    public init(root: String, files: [String]) {
        guard let resolvedRoot = resolvedPath(root) else {
            self.init(paths: [])
            return
        }
        var inside: [RelativePath] = []
        for file in files {
            // (A root that is itself swunison's state directory, or inside it, is what the user
            // asked to synchronise: only what lies strictly inside the root counts.)
            guard let resolved = resolvedPath(file), let relative = relativePath(of: resolved, inside: resolvedRoot) else { continue }
            if !inside.contains(relative) { inside.append(relative) }
        }
        self.init(paths: inside)
    }

    public var isEmpty: Bool { paths.isEmpty }

    /// Whether `path` is an own path or lies beneath one.
    public func covers(_ path: RelativePath) -> Bool {
        paths.contains { path.isDescendant(orEqualTo: $0) }
    }

    /// Whether `path` is an own path, lies beneath one, or is a directory that holds one.
    public func touches(_ path: RelativePath) -> Bool {
        paths.contains { path.isDescendant(orEqualTo: $0) || $0.isDescendant(orEqualTo: path) }
    }

    /// Whether a change of `path` that replaces `replacing` must be refused: it would touch an own
    /// path, or (replacing a directory) remove one held beneath it.
    func forbids(_ path: RelativePath, replacing: Entry?) -> Bool {
        replacing?.kind == .directory ? touches(path) : covers(path)
    }

    /// `ignore` specifications that leave the own paths out of a scan (of either side).
    public var ignorePatterns: [String] {
        paths.map { PathPattern.belowPathSpec($0) }
    }

    /// Why a change of `path` is refused, for the replica's error.
    func refusal(_ path: RelativePath) -> ReplicaError {
        let own = paths.first { path.isDescendant(orEqualTo: $0) || $0.isDescendant(orEqualTo: path) }!
        return .other("\(path.isRoot ? "." : path.description): not changed: it is (or holds) swunison's own state on this "
            + "host (\(own)); ignore it in the profile (ignore = BelowPath \(own))")
    }
}
