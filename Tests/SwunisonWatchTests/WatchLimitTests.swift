import Foundation
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// Beyond the watch limit, subtrees stay unwatched and are reported, never an error.
@Suite struct WatchLimitTests {
    /// root, a, a/a1, a/a2, b, b/b1, c: seven directories, walked in that order.
    func makeTree() throws -> WatchTree {
        let tree = try WatchTree("limit")
        try tree.mkdir("a/a1")
        try tree.mkdir("a/a2")
        try tree.mkdir("b/b1")
        try tree.mkdir("c")
        return tree
    }

    @Test func limitBelowTheDirectoryCountLeavesTheLastSubtreesUnwatched() async throws {
        let tree = try makeTree()
        let (watcher, report) = try startWatcher(tree, options: .init(limit: 4))
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        #expect(report == WatchSetupReport(watched: 4, unwatched: [path("b"), path("c")], needed: 7, available: 4,
                                           limitReason: .watchLimit(4)))
        #expect(report.description.contains("watching 4 of 7 directories"))
        #expect(try kernelWatchCount(watcher) == 4)

        // The watched part is heard as usual.
        try tree.write("a/a1/f")
        #expect(changed(try await collect(subscription, untilCovered: "a/a1/f")).contains("a/a1/f"))

        // A new directory beyond the limit is reported, and left unwatched.
        try tree.mkdir("a/a3")
        let seen = try await collect(subscription) { notices in
            notices.contains { if case .unwatched = $0 { return true } else { return false } }
        }
        #expect(covers(seen, "a/a3"))
        #expect(seen.contains(.unwatched([path("a/a3")], needed: 8, available: 4)))
        #expect(watcher.watchCount == 4)
    }

    @Test func everyDirectoryWatchedWithinTheLimit() throws {
        let tree = try makeTree()
        let (watcher, report) = try startWatcher(tree, options: .init(limit: 7))
        defer { watcher.stop() }
        #expect(report.watched == 7 && report.needed == 7 && report.unwatched.isEmpty && report.limitReason == nil)
        #expect(report.description == "watching 7 directories")
    }

    @Test func limitMessagesSayWhatToDo() {
        #expect(WatchLimitReason.watchLimit(10).description.contains("watchlimit"))
        #expect(WatchLimitReason.kernel(maxUserWatches: 8192).description.contains("fs.inotify.max_user_watches (8192)"))
        #expect(WatcherError.tooManyInstances(root: "/r", maxUserInstances: 128).description
            .contains("fs.inotify.max_user_instances"))
    }
}
