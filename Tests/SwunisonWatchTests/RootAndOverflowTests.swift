import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// Lost events and a root that goes away: notices, then watches put back.
@Suite struct RootAndOverflowTests {
    @Test func overflowIsReportedAndMissingWatchesAreAddedAgain() async throws {
        let tree = try WatchTree("overflow")
        try tree.mkdir("x/y")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        #expect(watcher.watchCount == 3)

        // Take x's watch away behind the watcher's back (adding the same directory again returns
        // its descriptor), as if the events that made it had been lost.
        let fd = watcher.loop.inotify.fd
        let wd = inotify_add_watch(fd, tree.absolute("x"), EventMask.tree.rawValue)
        #expect(wd > 0 && inotify_rm_watch(fd, wd) == 0)
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 1)

        watcher.loop.inject([InotifyEvent(wd: -1, mask: .queueOverflow)])
        let seen = try await collect(subscription) { $0.contains(.overflow) }
        #expect(seen == [.overflow])
        #expect(watcher.watchCount == 3)
        #expect(try kernelWatchCount(watcher) == 3)
        try tree.write("x/y/after")
        #expect(changed(try await collect(subscription, untilCovered: "x/y/after")).contains("x/y/after"))
    }

    @Test func rootDeletedThenRecreatedIsMissingThenBack() async throws {
        let tree = try WatchTree("rootgone")
        try tree.mkdir("sub")
        try tree.write("sub/file")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try FileManager.default.removeItem(atPath: tree.root)
        let missing = try await collect(subscription) { $0.contains { if case .rootMissing = $0 { true } else { false } } }
        #expect(missing.contains(.rootMissing("\(tree.root) was deleted")))
        #expect(watcher.watchCount == 0)

        try tree.mkdir("again/deeper")  // makes the root too
        let back = try await collect(subscription) { $0.contains(.rootBack) }
        #expect(back.last == .rootBack)
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 3)

        try tree.write("again/deeper/new")
        #expect(changed(try await collect(subscription, untilCovered: "again/deeper/new")).contains("again/deeper/new"))
    }

    @Test func rootMovedAwayIsMissingAndNotHeardOfThere() async throws {
        let tree = try WatchTree("rootmoved")
        try tree.mkdir("sub")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        let moved = tree.outside + "/moved-root"
        #expect(Glibc.rename(tree.root, moved) == 0)
        let missing = try await collect(subscription) { $0.contains { if case .rootMissing = $0 { true } else { false } } }
        #expect(missing.contains(.rootMissing("\(tree.root) was moved or renamed")))
        #expect(try kernelWatchCount(watcher) == 0)
    }

    @Test func startFailsClearlyWithoutARoot() throws {
        let tree = try WatchTree("noroot")
        let watcher = try TreeWatcher(rootPath: tree.root + "/missing")
        #expect(throws: WatcherError.rootUnavailable(root: tree.root + "/missing",
                                                    SystemCallError("open", errno: ENOENT))) { _ = try watcher.start() }
        #expect(WatcherError.rootUnavailable(root: "/r", SystemCallError("open", errno: ENOENT)).description
            == "cannot watch /r: the root cannot be opened as a directory (No such file or directory)")
    }

    @Test func stopEndsAPendingNext() async throws {
        let tree = try WatchTree("stop")
        let (watcher, _) = try startWatcher(tree)
        let subscription = watcher.subscribe()
        let other = watcher.subscribe()
        let waiting = Task { try await subscription.next() }
        await other.stop()
        await #expect(throws: WatcherError.stopped(root: tree.root)) { _ = try await other.next() }
        watcher.stop()
        await #expect(throws: WatcherError.stopped(root: tree.root)) { _ = try await waiting.value }
        #expect(watcher.watchCount == 0)
    }
}
