import SwunisonModel

/// What ``TreeWatcher/start()`` could watch.
public struct WatchSetupReport: Sendable, Equatable, CustomStringConvertible {
    /// Directories watched.
    public var watched: Int
    /// The topmost directories left without a watch (the limit was reached), in walk order:
    /// nothing beneath them is heard of, so they must be rescanned now and then.
    public var unwatched: [RelativePath]
    /// Directories that wanted a watch (watched, or in an unwatched subtree).
    public var needed: Int
    /// How many watches could be had (see ``WatchLimitReason``).
    public var available: Int
    /// Which limit left directories unwatched; nil when every directory is watched.
    public var limitReason: WatchLimitReason?

    public init(watched: Int, unwatched: [RelativePath], needed: Int, available: Int, limitReason: WatchLimitReason?) {
        self.watched = watched; self.unwatched = unwatched; self.needed = needed
        self.available = available; self.limitReason = limitReason
    }

    public var description: String {
        guard let limitReason, !unwatched.isEmpty else { return "watching \(watched) directories" }
        let shown = unwatched.prefix(3).map { $0.isRoot ? "." : $0.description }.joined(separator: ", ")
        let more = unwatched.count > 3 ? " and \(unwatched.count - 3) more" : ""
        return "watching \(watched) of \(needed) directories (\(limitReason)); "
            + "not watched, rescanned now and then: \(shown)\(more)"
    }
}

/// Why a directory was left without a watch.
public enum WatchLimitReason: Sendable, Equatable, CustomStringConvertible {
    /// The profile's `watchlimit`.
    case watchLimit(Int)
    /// The kernel refused more watches (`ENOSPC`): `fs.inotify.max_user_watches` is shared by all
    /// of the user's processes. nil when `/proc` could not tell the value.
    case kernel(maxUserWatches: Int?)

    public var description: String {
        switch self {
        case .watchLimit(let limit):
            return "watchlimit = \(limit); raise it in the profile to watch more"
        case .kernel(let max):
            let value = max.map { " (\($0))" } ?? ""
            return "the kernel's fs.inotify.max_user_watches\(value) is used up by this user's processes; "
                + "raise it with `sysctl -w fs.inotify.max_user_watches=N`"
        }
    }
}
