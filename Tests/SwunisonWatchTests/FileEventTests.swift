import Foundation
import Glibc
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// Events on files become `.changed` notices, files being written are held until closed.
@Suite struct FileEventTests {
    @Test func createdFileIsReportedOnceAfterItIsClosed() async throws {
        let tree = try WatchTree("create")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.write("a.txt", "hello")
        let seen = try await collect(subscription, untilCovered: "a.txt")
        let after = try await settle(tree, subscription)
        #expect(changed(seen + after).filter { $0 == "a.txt" }.count == 1)
    }

    @Test func modifyAppendChmodAndDeleteAreReported() async throws {
        let tree = try WatchTree("modify")
        try tree.write("f", "one")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.write("f", "two")  // truncate and rewrite
        #expect(covers(try await collect(subscription, untilCovered: "f"), "f"))
        try tree.append("f")
        #expect(covers(try await collect(subscription, untilCovered: "f"), "f"))
        try tree.chmod("f", 0o600)
        #expect(covers(try await collect(subscription, untilCovered: "f"), "f"))
        try tree.remove("f")
        #expect(covers(try await collect(subscription, untilCovered: "f"), "f"))
    }

    @Test func renameReportsBothNames() async throws {
        let tree = try WatchTree("rename")
        try tree.mkdir("d")
        try tree.write("d/old")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.rename("d/old", "new")
        let seen = try await collect(subscription) { covers($0, "d/old") && covers($0, "new") }
        #expect(Set(changed(seen)) == ["d/old", "new"])
    }

    @Test func symlinksAndHardLinksAreReportedAtOnce() async throws {
        let tree = try WatchTree("links")
        try tree.write("target")
        // Held files would wait a minute: whatever arrives came at once.
        let (watcher, _) = try startWatcher(tree, options: .init(holdWhileWritingNanoseconds: 60_000_000_000))
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.symlink("soft", to: "target")
        try tree.link("hard", to: "target")
        let seen = try await collect(subscription, seconds: 10) { covers($0, "soft") && covers($0, "hard") }
        #expect(covers(seen, "soft") && covers(seen, "hard"))
    }

    @Test func fileWrittenForTwoSecondsIsReportedOnceAfterClose() async throws {
        let tree = try WatchTree("held")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        let fd = open(tree.absolute("big"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        #expect(fd >= 0)
        let chunk = [UInt8](repeating: 0x61, count: 4096)
        let clock = ContinuousClock()
        let writingEnds = clock.now + .seconds(2)
        var duringWrites: [ChangeNotice] = []
        while clock.now < writingEnds {
            #expect(write(fd, chunk, chunk.count) == chunk.count)
            try await Task.sleep(for: .milliseconds(100))
        }
        // While the file is open, other changes come through but the file does not.
        duringWrites += try await settle(tree, subscription, marker: "during")
        close(fd)
        let seen = try await collect(subscription, untilCovered: "big")
        let after = try await settle(tree, subscription, marker: "after")
        #expect(!covers(duringWrites, "big"))
        #expect(changed(seen + after).filter { $0 == "big" }.count == 1)
    }

    @Test func fileHeldTooLongIsReportedWhileStillOpen() async throws {
        let tree = try WatchTree("maxdelay")
        let (watcher, _) = try startWatcher(tree, options: .init(holdWhileWritingNanoseconds: 300_000_000))
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        let fd = open(tree.absolute("log"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(fd) }
        #expect(write(fd, "line\n", 5) == 5)
        #expect(covers(try await collect(subscription, untilCovered: "log"), "log"))
    }

    @Test func swunisonTemporaryNamesAreNeverReported() async throws {
        let tree = try WatchTree("temporary")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.write(".swunison.1234.abc.tmp", "partial")
        try tree.chmod(".swunison.1234.abc.tmp", 0o600)
        try tree.rename(".swunison.1234.abc.tmp", "final")
        try tree.mkdir(".swunison.dir/inner")
        try tree.write(".swunison.dir/inner/file")
        let seen = try await collect(subscription, untilCovered: "final")
        let after = try await settle(tree, subscription)
        #expect(changed(seen + after) == ["final"])
        #expect(watcher.watchCount == 1)  // the root only: no watch in a temporary directory
    }

    /// A file written unnamed (`O_TMPFILE`, as swunison itself writes) and linked in: its writes
    /// come under the kernel's placeholder name "#<inode>", which no close ever releases. Only
    /// the real name is reported, and no phantom "#…" path after the hold time.
    @Test func fileLinkedInFromAnUnnamedFileIsReportedByItsNameOnly() async throws {
        let tree = try WatchTree("tmpfile")
        try tree.write("#12", "a real file may have such a name")
        let (watcher, _) = try startWatcher(tree, options: .init(holdWhileWritingNanoseconds: 300_000_000))
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        let oTmpfile: Int32 = 0o20_000_000 | O_DIRECTORY  // O_TMPFILE (a macro Swift cannot import)
        let fd = open(tree.root, oTmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        #expect(write(fd, "content", 7) == 7)
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
        #expect(futimens(fd, &times) == 0)
        #expect(linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, tree.absolute("linked"), AT_SYMLINK_FOLLOW) == 0)
        close(fd)
        try tree.append("#12")
        let seen = try await collect(subscription, untilCovered: "#12")
        try await Task.sleep(for: .milliseconds(600))  // past the hold time
        let after = try await settle(tree, subscription)
        #expect(Set(changed(seen + after)) == ["linked", "#12"])
    }
}
