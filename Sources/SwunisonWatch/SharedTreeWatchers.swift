import Synchronization

/// The process's tree watchers, one per root and watch settings: profiles that watch the same
/// root with the same settings (a hub syncing one root with several peers) share one inotify
/// instance and one set of watches, each with a subscription of its own. Watchers are held
/// weakly: they go with their last subscription.
public enum SharedTreeWatchers {
    private final class Entry: @unchecked Sendable {
        weak var watcher: TreeWatcher?
        let report: WatchSetupReport
        init(_ watcher: TreeWatcher, _ report: WatchSetupReport) { self.watcher = watcher; self.report = report }
    }

    private static let watchers = Mutex<[String: Entry]>([:])

    /// The started watcher for `sharingKey`, started now with `options` if there is none, and
    /// what its start could watch.
    /// - Parameter sharingKey: the root's identity and every setting that shapes the watches.
    public static func watcher(rootPath: String, options: TreeWatcher.Options,
                               sharingKey: String) throws(WatcherError) -> (TreeWatcher, WatchSetupReport) {
        try watchers.withLock { (all: inout [String: Entry]) throws(WatcherError) -> (TreeWatcher, WatchSetupReport) in
            all = all.filter { $0.value.watcher != nil }
            if let existing = all[sharingKey], let watcher = existing.watcher { return (watcher, existing.report) }
            let watcher = try TreeWatcher(rootPath: rootPath, options: options)
            let report = try watcher.start()
            all[sharingKey] = Entry(watcher, report)
            return (watcher, report)
        }
    }
}
