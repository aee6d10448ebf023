import Glibc
import SwunisonFS
import SwunisonModel

/// One inotify instance watching a directory tree, shared by any number of subscriptions (a hub
/// whose root several profiles sync: K peers must not cost K times the watches).
///
/// Every directory gets a watch (files are heard of through their directory), added through its
/// open descriptor so that no symlink is ever followed (Invariant 5). Events become
/// ``ChangeNotice``s: where to rescan, never what changed. Files being written are held until
/// closed. A root that goes away is a notice (`.rootMissing`, then `.rootBack`), never an error.
///
/// Lifetime: ``start()`` once, ``subscribe(isRelevant:)`` any number of times, ``stop()`` (or
/// drop the watcher and its subscriptions) to remove the watches.
public final class TreeWatcher: Sendable {
    public struct Options: Sendable {
        /// `watchlimit`: at most this many watches; nil = as many as the kernel allows.
        public var limit: Int?
        /// `maxdelay`: a file being written is held at most this long, then reported anyway.
        public var holdWhileWritingNanoseconds: Int64
        /// False for a directory that needs no watch, nor anything beneath it (an ignored
        /// subtree): nothing in it is reported.
        public var shouldWatch: @Sendable (RelativePath) -> Bool

        public init(limit: Int? = nil, holdWhileWritingNanoseconds: Int64 = 30_000_000_000,
                    shouldWatch: @escaping @Sendable (RelativePath) -> Bool = { _ in true }) {
            self.limit = limit
            self.holdWhileWritingNanoseconds = holdWhileWritingNanoseconds
            self.shouldWatch = shouldWatch
        }
    }

    /// The root, as given.
    public let rootPath: String
    let loop: WatchLoop

    /// Creates the inotify instance; nothing is watched before ``start()``.
    /// - Throws: ``WatcherError/tooManyInstances(root:maxUserInstances:)`` when the user's
    ///   `fs.inotify.max_user_instances` is reached; ``WatcherError/procUnavailable(root:)``;
    ///   ``WatcherError/cannotStart(root:_:)``.
    public init(rootPath: String, options: Options = Options()) throws(WatcherError) {
        self.rootPath = rootPath
        guard access("/proc/self/fd", F_OK) == 0 else { throw .procUnavailable(root: rootPath) }
        let inotify: Inotify
        switch Result(catching: { () throws(SystemCallError) in try Inotify() }) {
        case .success(let created): inotify = created
        case .failure(let error) where error.errno == EMFILE:
            throw .tooManyInstances(root: rootPath, maxUserInstances: KernelLimits.maxUserInstances)
        case .failure(let error): throw .cannotStart(root: rootPath, error)
        }
        let wake: WakePipe
        switch Result(catching: { () throws(SystemCallError) in try WakePipe() }) {
        case .success(let created): wake = created
        case .failure(let error): throw .cannotStart(root: rootPath, error)
        }
        loop = WatchLoop(rootPath: rootPath, options: options, inotify: inotify, wake: wake)
    }

    deinit { loop.stop() }

    /// Walks the tree and adds a watch to every directory, then starts the watcher's thread.
    /// Blocking: call it before the first scan, so that nothing changed between the scan and
    /// the watch goes unheard.
    /// - Returns: what could be watched; directories beyond the limit are listed, not an error.
    /// - Throws: ``WatcherError`` when the root cannot be opened or watched.
    public func start() throws(WatcherError) -> WatchSetupReport {
        try loop.start()
    }

    /// A new subscription, hearing every notice from now on for the paths `isRelevant` accepts
    /// (it should accept the directories above its paths too: renaming one moves them).
    public func subscribe(isRelevant: @escaping @Sendable (RelativePath) -> Bool = { _ in true }) -> TreeWatchSubscription {
        let inbox = Inbox(rootPath: rootPath, isRelevant: isRelevant)
        loop.add(inbox)
        return TreeWatchSubscription(watcher: self, inbox: inbox, root: loop.root)
    }

    /// Removes every watch and ends the thread; every subscription's `next()` then throws
    /// ``WatcherError/stopped(root:)``.
    public func stop() {
        loop.stop()
    }

    /// How many directories are watched now (one inotify watch each, for all subscriptions).
    public var watchCount: Int { loop.watchCount.load(ordering: .relaxed) }

    func unsubscribe(_ inbox: Inbox) {
        loop.remove(inbox)
    }
}
