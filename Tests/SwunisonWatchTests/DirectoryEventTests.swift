import Foundation
import Glibc
import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// Directories: watches follow them as they appear, move and go.
@Suite struct DirectoryEventTests {
    @Test func directoryCreateChmodRenameAndRemoveAreReported() async throws {
        let tree = try WatchTree("dirs")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        try tree.mkdir("d")
        #expect(covers(try await collect(subscription, untilCovered: "d"), "d"))
        try tree.chmod("d", 0o700)
        #expect(covers(try await collect(subscription, untilCovered: "d"), "d"))
        try tree.rename("d", "e")
        let renamed = try await collect(subscription) { covers($0, "d") && covers($0, "e") }
        #expect(covers(renamed, "d") && covers(renamed, "e"))
        try tree.remove("e")
        #expect(covers(try await collect(subscription, untilCovered: "e"), "e"))
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 1)
    }

    @Test func mkdirWithFilesWrittenAtOnceIsReportedAndWatched() async throws {
        let tree = try WatchTree("mkdirp")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()

        // Files land before the watcher can add watches to the new directories: the notice for
        // `a` covers them all (the engine rescans `a` whole).
        try tree.mkdir("a/b/c")
        try tree.write("a/1")
        try tree.write("a/b/2")
        try tree.write("a/b/c/3")
        let seen = try await collect(subscription) { n in ["a/1", "a/b/2", "a/b/c/3"].allSatisfy { covers(n, $0) } }
        #expect(["a/1", "a/b/2", "a/b/c/3"].allSatisfy { covers(seen, $0) })
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 4)

        try tree.write("a/b/c/later")
        let later = try await collect(subscription, untilCovered: "a/b/c/later")
        #expect(changed(later).contains("a/b/c/later"))
    }

    @Test func directoryMovedWithinTheTreeKeepsItsWatchesUnderTheNewPath() async throws {
        let tree = try WatchTree("movewithin")
        try tree.mkdir("d/e/f")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        #expect(watcher.watchCount == 4)

        try tree.mkdir("m")
        try tree.rename("d", "m/d2")
        let moved = try await collect(subscription) { covers($0, "d") && covers($0, "m/d2") }
        #expect(covers(moved, "d") && covers(moved, "m/d2"))
        #expect(try kernelWatchCount(watcher) == 5)

        try tree.write("m/d2/e/f/file")
        let inside = try await collect(subscription, untilCovered: "m/d2/e/f/file")
        #expect(changed(inside).contains("m/d2/e/f/file"))
        #expect(!changed(inside).contains { $0.hasPrefix("d/") })
    }

    @Test func directoryMovedOutLosesItsWatchesAndMovedInIsWatched() async throws {
        let tree = try WatchTree("moveout")
        try tree.mkdir("in/x/y")
        let (watcher, _) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        #expect(watcher.watchCount == 4)

        try tree.rename("in", tree.outside + "/in")
        #expect(covers(try await collect(subscription, untilCovered: "in"), "in"))
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 1)
        #expect(try kernelWatchCount(watcher) == 1)

        // Changes out there are not heard of any more.
        try FileManager.default.createDirectory(atPath: tree.outside + "/in/x/new", withIntermediateDirectories: false)
        #expect(Glibc.chmod(tree.outside + "/in/x/y", 0o700) == 0)
        let quiet = try await settle(tree, subscription)
        #expect(changed(quiet).isEmpty)

        // Moved back in under another name: watched like a new directory.
        try tree.rename(tree.outside + "/in", "back")
        #expect(covers(try await collect(subscription, untilCovered: "back"), "back"))
        _ = try await settle(tree, subscription)
        #expect(watcher.watchCount == 5)
        try tree.mkdir("back/x/new/deeper")
        #expect(changed(try await collect(subscription, untilCovered: "back/x/new/deeper")).contains("back/x/new/deeper"))
    }

    @Test func symlinksToDirectoriesAreNeverFollowed() async throws {
        let tree = try WatchTree("symlinks")
        try FileManager.default.createDirectory(atPath: tree.outside + "/target/inner", withIntermediateDirectories: true)
        try tree.symlink("present", to: tree.outside + "/target")
        let (watcher, report) = try startWatcher(tree)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        #expect(report.watched == 1)

        // Invariant 5: a link to a directory is reported as itself, and gets no watch.
        try tree.symlink("added", to: tree.outside + "/target")
        #expect(changed(try await collect(subscription, untilCovered: "added")) == ["added"])
        try FileManager.default.createDirectory(atPath: tree.outside + "/target/new", withIntermediateDirectories: false)
        let after = try await settle(tree, subscription)
        #expect(changed(after).isEmpty)
        #expect(watcher.watchCount == 1)
        #expect(try kernelWatchCount(watcher) == 1)
    }

    @Test func ignoredDirectoriesGetNoWatchAndNoNotice() async throws {
        let tree = try WatchTree("ignored")
        try tree.mkdir("build/sub")
        try tree.mkdir("src")
        let options = TreeWatcher.Options(shouldWatch: { $0.lastComponent?.string != "build" })
        let (watcher, report) = try startWatcher(tree, options: options)
        defer { watcher.stop() }
        let subscription = watcher.subscribe()
        #expect(report.watched == 2 && report.needed == 2 && report.unwatched.isEmpty)

        try tree.write("build/out.o")
        try tree.mkdir("build/sub/deeper")
        try tree.mkdir("src/build/x")
        try tree.write("src/build/x/y.o")
        try tree.write("src/main.c")
        let seen = try await collect(subscription, untilCovered: "src/main.c")
        let after = try await settle(tree, subscription)
        #expect(changed(seen + after) == ["src/main.c"])
        #expect(watcher.watchCount == 2)
    }
}
