import SwunisonFS

/// Why a tree cannot be watched, or a watch ended. Each case names the root; its description
/// says what failed and what to do.
public enum WatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `inotify_init1` failed with `EMFILE`: the user has `fs.inotify.max_user_instances` inotify
    /// instances already (nil when `/proc` could not tell the value).
    case tooManyInstances(root: String, maxUserInstances: Int?)
    /// `inotify_init1`, `pipe` or `pthread_create` failed otherwise.
    case cannotStart(root: String, SystemCallError)
    /// `/proc/self/fd` is missing: directories cannot be watched through their open descriptor,
    /// and watching them by path could follow a symlink planted in the tree (Invariant 5).
    case procUnavailable(root: String)
    /// The root cannot be opened as a directory.
    case rootUnavailable(root: String, SystemCallError)
    /// Not even the root got a watch (`ENOSPC`: `fs.inotify.max_user_watches` is used up).
    case noWatchesLeft(root: String, maxUserWatches: Int?)
    /// The root's watch failed otherwise.
    case cannotWatchRoot(root: String, SystemCallError)
    /// ``TreeWatcher/start()`` was called twice.
    case alreadyStarted(root: String)
    /// Reading the inotify descriptor failed: no more notices can come.
    case readFailed(root: String, SystemCallError)
    /// The watcher or the subscription was stopped.
    case stopped(root: String)
    /// A second ``TreeWatchSubscription/next()`` was called while one was waiting.
    case alreadyWaiting(root: String)

    public var description: String {
        switch self {
        case let .tooManyInstances(root, max):
            let value = max.map { " (\($0))" } ?? ""
            return "cannot watch \(root): this user already has the kernel's limit of inotify instances\(value); "
                + "stop other watchers or raise it with `sysctl -w fs.inotify.max_user_instances=N`"
        case let .cannotStart(root, error):
            return "cannot watch \(root): \(error)"
        case let .procUnavailable(root):
            return "cannot watch \(root): /proc is not mounted (watches are added through /proc/self/fd); "
                + "mount /proc or sync without watch mode"
        case let .rootUnavailable(root, error):
            return "cannot watch \(root): the root cannot be opened as a directory (\(error.message))"
        case let .noWatchesLeft(root, max):
            let value = max.map { " (\($0))" } ?? ""
            return "cannot watch \(root): the kernel's fs.inotify.max_user_watches\(value) is used up by this user's "
                + "processes; raise it with `sysctl -w fs.inotify.max_user_watches=N`"
        case let .cannotWatchRoot(root, error):
            return "cannot watch \(root): \(error)"
        case let .alreadyStarted(root):
            return "the watcher of \(root) was started twice (a bug in swunison)"
        case let .readFailed(root, error):
            return "watching \(root) failed: \(error); restart watch mode"
        case let .stopped(root):
            return "the watch of \(root) was stopped"
        case let .alreadyWaiting(root):
            return "two waits for changes in \(root) at once (a bug in swunison: one consumer per subscription)"
        }
    }
}
