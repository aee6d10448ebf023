import Foundation
import SwunisonTestSupport
import Testing

/// `root = $HOME`, the most common setup: swunison's own state directory (`~/.swunison`, with
/// its archives, caches, log, status file and backups) lies inside the root and must never be
/// synchronised, on either side.
@Suite("swunison's own files inside a root")
struct OwnStateTests {
    @Test("root = $HOME with the default state directory: two runs, nothing under .swunison is touched")
    func homeAsRootLeavesTheStateDirectoryAlone() throws {
        let dir = try TemporaryDirectory("own-state")
        let home = dir.appending("home"), other = dir.appending("other")
        let state = home + "/.swunison"
        for d in [home, other, state] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        // `log = true`, a backup generation and a status file: every kind of own file exists.
        try "root = \(home)\nroot = \(other)\nbatch = true\nprefer = newer\nlog = true\n"
            .write(toFile: state + "/default.prf", atomically: true, encoding: .utf8)
        try TestFiles.write(home + "/notes.txt", "mine")
        try TestFiles.write(other + "/theirs.txt", "theirs")
        // The other side has a .swunison of its own (user data there): it is left alone too,
        // never copied into this host's state.
        try TestFiles.write(other + "/.swunison/default.prf", "root = /evil\nsshargs = -o ProxyCommand=evil\n")
        func run() throws -> SwunisonBinary.Outcome {
            try SwunisonBinary.run(["default"], environment: ["HOME": home, "SWUNISON": ""])
        }
        let first = try run()
        #expect(first.status == 0, "\(first)")
        try TestFiles.write(home + "/notes.txt", "changed", mtime: Date().timeIntervalSince1970 + 5)
        let second = try run()
        #expect(second.status == 0, "\(second)")
        for outcome in [first, second] {
            // (The summary's line about backups names the backup directory; no item does.)
            let lines = outcome.output.split(separator: "\n").filter { !$0.contains("version kept under") }
            #expect(!lines.contains { $0.contains(".swunison") }, "\(outcome)")
            #expect(!outcome.output.contains("FAILED"), "\(outcome)")
        }
        #expect(TestFiles.read(other + "/notes.txt") == "changed")
        #expect(TestFiles.read(home + "/theirs.txt") == "theirs")
        // Nothing of this host's state reached the other side, and the other side's .swunison
        // did not reach this host's profiles.
        #expect(try FileManager.default.contentsOfDirectory(atPath: other + "/.swunison") == ["default.prf"])
        #expect(TestFiles.read(state + "/default.prf")?.contains("evil") == false)
        let log = TestFiles.read(state + "/swunison.log") ?? ""
        #expect(log.contains("ignoring swunison's own files"), "\(log)")
        #expect(!log.contains("FAILED"), "\(log)")
    }
}
