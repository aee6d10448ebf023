import Foundation
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// An idle watcher sleeps in `poll` without a timeout: no periodic wake-ups.
@Suite struct IdleTests {
    @Test func anIdleWatcherNeverWakesUp() async throws {
        let tree = try WatchTree("idle")
        try tree.mkdir("a/b")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        // One round of events, so the thread has run and gone back to sleep.
        _ = try await settle(tree, subscription)
        let id = watcher.loop.threadID.load(ordering: .relaxed)
        try #require(id > 0)

        func wakeUps() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/task/\(id)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") }
            return Int(line?.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? -1
        }
        let before = try wakeUps()
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try wakeUps() == before)
    }
}
