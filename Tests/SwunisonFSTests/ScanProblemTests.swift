import Foundation
import Glibc
import Synchronization
import SwunisonFS
import SwunisonModel
import Testing

/// Records the paths an ignore closure was asked about.
final class ScanIgnoreLog: Sendable {
    let asked = Mutex<[String]>([])
}

@Suite struct ScanProblemTests {
    @Test func fifoIsSkippedWithAProblemAndDoesNotHang() throws {
        let tree = try ScanFixture()
        try tree.mkfifo("pipe")
        try tree.write("plain", "p")

        let run = try tree.scan(delta: false)

        #expect(run.paths == ["plain"])
        #expect(run.outcome.problems.map(\.path.description) == ["pipe"])
        #expect(run.outcome.problems.first?.message.contains("fifo") == true)
        #expect(run.outcome.entryCount == 1)
    }

    /// Runs as root too: a directory replaced by a FIFO cannot be read, and neither it nor
    /// anything the baseline had beneath it may be reported deleted.
    @Test func unreadablePathsBaselineRowsAreNotReportedDeleted() throws {
        let tree = try ScanFixture()
        try tree.mkdir("p")
        try tree.write("p/x", "x")
        try tree.mkdir("p/y")
        try tree.write("q", "q")
        let baseline = try tree.baseline()
        try tree.remove("p")
        try tree.mkfifo("p")
        try tree.remove("q")

        let run = try tree.scan(baseline: baseline)

        #expect(run.paths == ["q"])
        #expect(run.change("q")?.new == nil)
        #expect(run.outcome.problems.map(\.path.description) == ["p"])
    }

    @Test(.enabled(if: getuid() != 0, "root reads anything; the FIFO test covers problems as root"))
    func unreadableDirectoryIsAProblemNotADeletion() throws {
        let tree = try ScanFixture()
        try tree.mkdir("locked")
        try tree.write("locked/inner", "i")
        try tree.write("z", "z")
        let baseline = try tree.baseline()
        try tree.chmod("locked", 0o000)

        let run = try tree.scan(baseline: baseline)

        // The directory itself is still seen (its mode changed); its contents are unknown, not gone.
        #expect(run.paths == ["locked"])
        #expect(run.change("locked")?.new?.mode == 0)
        #expect(run.outcome.problems.map(\.path.description) == ["locked"])
    }

    @Test(.enabled(if: getuid() != 0, "root reads anything; the FIFO test covers problems as root"))
    func unreadableFileIsAProblemNotADeletion() throws {
        let tree = try ScanFixture()
        try tree.write("secret", "s")
        let baseline = try tree.baseline()
        try tree.write("secret", "changed", mode: 0o000)

        let run = try tree.scan(baseline: baseline)

        #expect(run.changes.isEmpty)
        #expect(run.outcome.problems.map(\.path.description) == ["secret"])
    }

    @Test func ignoredDirectoryIsSkippedWhole() throws {
        let tree = try ScanFixture()
        try tree.mkdir("cache")
        try tree.write("cache/old", "o")
        try tree.mkdir("gone-ignored")
        try tree.write("gone-ignored/x", "x")
        try tree.write("kept", "k")
        let baseline = try tree.baseline()
        try tree.remove("cache/old")
        try tree.write("cache/new", "n")
        try tree.remove("gone-ignored")
        try tree.write("kept", "changed")

        let log = ScanIgnoreLog()
        let run = try tree.scan(baseline: baseline, isIgnored: { path in
            log.asked.withLock { $0.append(path.description) }
            return path.description == "cache" || path.description == "gone-ignored"
        })

        #expect(run.paths == ["kept"])
        #expect(run.outcome.entryCount == 1)
        let asked = log.asked.withLock { $0 }
        #expect(!asked.contains { $0.hasPrefix("cache/") }, "the ignored directory was entered: \(asked)")
    }

    @Test func staleTemporaryFilesOfDeadRunsAreRemovedAndNoneReported() throws {
        let tree = try ScanFixture()
        let child = try Process.run(URL(fileURLWithPath: "/bin/true"), arguments: [])
        child.waitUntilExit()
        let deadPID = child.processIdentifier
        try #require(kill(deadPID, 0) != 0 && errno == ESRCH)
        let stale = ".swunison.\(deadPID).f.abc123.tmp"
        let live = ".swunison.\(getpid()).f.abc123.tmp"
        try tree.write(stale, "partial")
        try tree.write(live, "in progress")
        try tree.write(".swunison.backup", "not a temp name")
        try tree.write("real", "r")

        let run = try tree.scan(delta: false)

        #expect(run.paths == ["real"])
        #expect(run.outcome.removedTemporaryFiles == 1)
        #expect(!tree.exists(stale))
        #expect(tree.exists(live))
        #expect(tree.exists(".swunison.backup"))
    }

    @Test func removedRootIsAnErrorNotMassDeletion() throws {
        let tree = try ScanFixture()
        try tree.mkdir("r")
        try tree.write("r/f", "f")
        let root = try DirectoryFD.openRoot(tree.rootPath + "/r")
        var cursor = ArrayBaselineCursor([BaselineEntry(path: try scanPath("f"), entry: Entry(kind: .file))])
        try tree.remove("r")

        var reported: [ScanChange] = []
        #expect(throws: ScanError.rootVanished) {
            _ = try scan(root: root, baseline: &cursor, options: ScanOptions(now: scanClockNow())) { reported += $0 }
        }
        #expect(reported.isEmpty)
    }

    @Test func rootMustBeADirectory() throws {
        let tree = try ScanFixture()
        try tree.write("file", "f")
        try tree.symlink("link-to-dir", to: tree.rootPath)
        #expect(throws: SystemCallError("open", errno: ENOTDIR)) { _ = try DirectoryFD.openRoot(tree.rootPath + "/file") }
        // The root itself may be reached through a symlink (the user named it).
        _ = try DirectoryFD.openRoot(tree.rootPath + "/link-to-dir")
    }
}
