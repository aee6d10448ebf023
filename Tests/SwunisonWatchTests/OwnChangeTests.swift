import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// A subscriber's own changes are not reported back to it (no ping-pong), but are to the others,
/// and a user's change right after one is.
@Suite struct OwnChangeTests {
    @Test func ownWriteIsSuppressedForItsSubscriptionOnly() async throws {
        let tree = try WatchTree("own")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let writer = watcher.subscribe()
        let peer = watcher.subscribe()

        writer.beginOwnChange(path("f"))
        try tree.write("f", "ours")
        writer.endOwnChange(path("f"), state: try tree.entry("f"))

        #expect(changed(try await collect(peer, untilCovered: "f")) == ["f"])
        #expect(changed(try await settle(tree, writer)).isEmpty)

        // A user's change right after ours is reported.
        try tree.append("f", " and theirs")
        #expect(changed(try await collect(writer, untilCovered: "f")) == ["f"])
    }

    @Test func eventsParkedWhileTheChangeIsUnderWayAreJudgedAtItsEnd() async throws {
        let tree = try WatchTree("parked")
        try tree.write("g", "old")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let writer = watcher.subscribe()
        let peer = watcher.subscribe()

        // The events are handled before the change ends (the peer has them), so they wait.
        writer.beginOwnChange(path("g"))
        writer.beginOwnChange(path("h"))
        try tree.rename("g", "h")
        _ = try await collect(peer) { covers($0, "g") && covers($0, "h") }
        writer.endOwnChange(path("g"), state: nil)
        writer.endOwnChange(path("h"), state: try tree.entry("h"))
        #expect(changed(try await settle(tree, writer)).isEmpty)

        // Parked, then the user changed it before our change was declared done: reported.
        writer.beginOwnChange(path("h"))
        try tree.write("h", "ours")
        let ours = try tree.entry("h")
        _ = try await collect(peer, untilCovered: "h")
        try tree.chmod("h", 0o600)
        _ = try await collect(peer, untilCovered: "h")
        writer.endOwnChange(path("h"), state: ours)
        #expect(changed(try await collect(writer, untilCovered: "h")) == ["h"])
    }

    @Test func removingADirectoryCoversEverythingBeneathIt() async throws {
        let tree = try WatchTree("ownremove")
        try tree.mkdir("d/e")
        try tree.write("d/e/f")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let writer = watcher.subscribe()
        let peer = watcher.subscribe()

        writer.beginOwnChange(path("d"))
        try tree.remove("d")
        writer.endOwnChange(path("d"), state: nil)
        #expect(covers(try await collect(peer, untilCovered: "d"), "d"))
        #expect(changed(try await settle(tree, writer)).isEmpty)
    }

    @Test func stateComparisonLooksAtWhatAWriteChanges() throws {
        let tree = try WatchTree("compare")
        try tree.write("f", "abc")
        try tree.mkdir("d")
        let file = try #require(try tree.entry("f"))
        let directory = try #require(try tree.entry("d"))
        func status(_ relative: String) throws -> FileStatus? {
            var raw = stat()
            return Glibc.lstat(tree.absolute(relative), &raw) == 0 ? FileStatus(raw: raw) : nil
        }
        #expect(OwnChanges.status(try status("f"), matches: file))
        #expect(OwnChanges.status(try status("d"), matches: directory))
        #expect(OwnChanges.status(nil, matches: nil))
        #expect(!OwnChanges.status(nil, matches: file))
        #expect(!OwnChanges.status(try status("f"), matches: nil))
        #expect(!OwnChanges.status(try status("f"), matches: directory))

        try tree.append("f", "d")
        #expect(!OwnChanges.status(try status("f"), matches: file))
        // A directory's own times change with its children; that is not a change of ours undone.
        try tree.write("d/child")
        #expect(OwnChanges.status(try status("d"), matches: directory))
        try tree.chmod("d", 0o700)
        #expect(!OwnChanges.status(try status("d"), matches: directory))
    }

    @Test func marksExpireAfterAMinute() {
        var own = OwnChanges()
        let minute = OwnChanges.lifetimeNanoseconds
        own.begin(path("a"), now: 0)
        let whileUnderWay = own.verdict(for: path("a"), now: 1)
        let deadline = own.nextParkedDeadline
        let expired = own.expireParked(now: minute)
        let afterwards = own.verdict(for: path("a"), now: minute + 1)
        #expect(whileUnderWay == .parked && deadline == minute)
        #expect(expired == [path("a")] && afterwards == .report)

        let parked = own.end(path("b"), state: nil, now: 10)
        let beneathRemoved = own.verdict(for: path("b/x/y"), now: 20)
        let unmarked = own.verdict(for: path("c"), now: 20)
        let tooLate = own.verdict(for: path("b"), now: 10 + minute)
        #expect(parked.isEmpty)
        #expect(beneathRemoved == .judge(path: path("b"), state: nil))
        #expect(unmarked == .report && tooLate == .report)

        // Beneath a directory that is still there, an event is somebody else's.
        let file = Entry(kind: .file, size: 1)
        let directory = Entry(kind: .directory)
        _ = own.end(path("d"), state: directory, now: 30)
        _ = own.end(path("d/f"), state: file, now: 30)
        let inside = own.verdict(for: path("d/g"), now: 40)
        let exact = own.verdict(for: path("d/f"), now: 40)
        #expect(inside == .report && exact == .judge(path: path("d/f"), state: file))
    }
}
