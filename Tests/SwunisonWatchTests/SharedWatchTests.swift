import Foundation
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// One watcher, many subscriptions: one set of watches, each subscription its own notices.
@Suite struct SharedWatchTests {
    @Test func twoSubscriptionsShareOneSetOfWatches() async throws {
        let tree = try WatchTree("shared")
        try tree.mkdir("a/b")
        try tree.mkdir("c")
        let (watcher, report) = try startWatcher(tree)
        defer { watcher.stop() }
        let first = watcher.subscribe()
        let second = watcher.subscribe()
        #expect(report.watched == 4)
        #expect(watcher.watchCount == 4)
        #expect(try kernelWatchCount(watcher) == 4)

        try tree.write("a/b/f")
        #expect(changed(try await collect(first, untilCovered: "a/b/f")) == ["a/b/f"])
        #expect(changed(try await collect(second, untilCovered: "a/b/f")) == ["a/b/f"])
        #expect(try kernelWatchCount(watcher) == 4)
    }

    @Test func aSubscriptionHearsOnlyThePathsItCaresAbout() async throws {
        let tree = try WatchTree("relevant")
        try tree.mkdir("a")
        try tree.mkdir("c")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let onlyA = watcher.subscribe { $0.isDescendant(orEqualTo: path("a")) || $0.lastComponent?.string.hasPrefix("marker") == true }

        try tree.write("c/not-mine")
        try tree.write("a/mine")
        let seen = try await collect(onlyA, untilCovered: "a/mine")
        let after = try await settle(tree, onlyA)
        #expect(changed(seen + after) == ["a/mine"])
    }
}
