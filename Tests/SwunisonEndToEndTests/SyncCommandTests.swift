import Foundation
import Testing
import SwunisonTestSupport

/// The built `swunison` binary on two local roots, as a user runs it: exit codes, output, files.
@Suite("swunison on two local roots")
struct SyncCommandTests {
    @Test("first run copies both ways, a second run has nothing to do")
    func firstRunAndNoChange() throws {
        let s = try Sandbox("e2e-first")
        try s.write("a", "d1/f1", "one")
        try s.write("a", "d1/d2/deep", "deep")
        try s.write("b", "onlyb/x", "b")
        try FileManager.default.createDirectory(atPath: s.a + "/empty", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: s.a + "/link", withDestinationPath: "d1/f1")
        chmod(s.a + "/d1/f1", 0o751)
        try s.profile()
        let first = try s.run(["t"])
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout.contains("new dir  ---->") && first.stdout.contains("<---- new dir"), "\(first)")
        #expect(first.stdout.contains("Synchronization complete (4 items transferred, 0 skipped, 0 failed)"), "\(first)")
        #expect(s.inStep, "\(s.listing(s.a)) vs \(s.listing(s.b))")
        let second = try s.run(["t"])
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout.contains("Nothing to do"), "\(second)")
    }

    @Test("prefer = newer settles conflicts and keeps the loser; modification beats deletion")
    func preferNewer() throws {
        let s = try Sandbox("e2e-newer")
        for i in 1...3 { try s.write("a", "f\(i)", "base \(i)") }
        try s.profile()
        #expect(try s.run(["t"]).status == 0)
        let now = Date().timeIntervalSince1970
        try s.write("a", "f1", "loser-a", mtime: now - 7200)
        try s.write("b", "f1", "winner-b", mtime: now - 3600)
        try FileManager.default.removeItem(atPath: s.a + "/f2")
        try s.write("b", "f2", "modified-b", mtime: now - 999_999)
        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("a", "f1") == "winner-b")
        #expect(s.read("a", "f2") == "modified-b", "modification must beat deletion")
        #expect(s.backups().contains { $0.1 == "loser-a" }, "\(s.backups())")
        #expect(run.stdout.contains("losing version of f1"), "\(run)")
        #expect(s.inStep)
    }

    @Test("equal modification times leave a conflict unresolved: exit 1, both versions intact")
    func equalMtimes() throws {
        let s = try Sandbox("e2e-equal")
        try s.profile()
        try s.write("a", "f", "one", mtime: 1_577_836_800)
        try s.write("b", "f", "two", mtime: 1_577_836_800)
        let run = try s.run(["t"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.contains("[CONFLICT] Skipping f"), "\(run)")
        #expect(run.stdout.contains("changed") || run.stdout.contains("new file"), "\(run)")
        #expect(s.read("a", "f") == "one" && s.read("b", "f") == "two")
    }

    @Test("repeat = SECONDS runs again after that long (Unison's repeat), picking up new changes")
    func repeatRunsAgain() throws {
        let s = try Sandbox("e2e-repeat")
        try s.profile("t", ["batch = true", "prefer = newer", "repeat = 1"])
        try s.write("a", "first", "1")
        // A file that appears after the first run must arrive with a later one.
        let path = s.a + "/second"
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.0) { try? TestFiles.write(path, "2") }
        let run = try SwunisonBinary.run(["t"], environment: ["SWUNISON": s.profiles, "HOME": s.dir.path], timeout: 10)
        #expect(run.stdout.contains("next run in 1 s (repeat = 1)"), "\(run)")
        #expect(s.read("b", "first") == "1" && s.read("b", "second") == "2", "\(run)")
    }

    @Test("--dry-run prints the plan and changes neither replica nor archive")
    func dryRun() throws {
        let s = try Sandbox("e2e-dry")
        try s.profile()
        try s.write("a", "x", "x")
        let dry = try s.run(["t", "--dry-run"])
        #expect(dry.status == 0, "\(dry)")
        #expect(dry.stdout.contains("new file ---->") && dry.stdout.contains("x"), "\(dry)")
        #expect(!TestFiles.exists(s.b + "/x"))
        // The archive did not record anything: the real run still has the item to do.
        let real = try s.run(["t"])
        #expect(real.stdout.contains("new file ---->"), "\(real)")
        #expect(s.read("b", "x") == "x")
    }

    @Test("bad profiles exit 3 naming file and line, and touch nothing",
          arguments: [("frobnicate = 1", "frobnicate"), ("batch = yes", "batch"), ("include nosuchfile", "nosuchfile"),
                      ("root = /tmp/third-root", "root"), ("this line has no equals", "line without")])
    func badProfile(line: String, mentions: String) throws {
        let s = try Sandbox("e2e-badprf")
        try s.profile("t", ["batch = true", line])
        try s.write("a", "ghost", "g")
        let run = try s.run(["t"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("t.prf:5"), "\(run)")
        #expect(run.stderr.contains(mentions), "\(run)")
        #expect(!TestFiles.exists(s.b + "/ghost"))
    }

    @Test("a missing root is fatal (exit 3) and deletes nothing on the other side")
    func missingRoot() throws {
        let s = try Sandbox("e2e-missing")
        try s.profile()
        try s.write("a", "keep", "k")
        #expect(try s.run(["t"]).status == 0)
        try FileManager.default.moveItem(atPath: s.a, toPath: s.a + "-moved")
        let run = try s.run(["t"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains(s.a), "\(run)")
        #expect(s.read("b", "keep") == "k")
    }

    @Test("a root that is a file, not a directory, is fatal")
    func rootIsFile() throws {
        let s = try Sandbox("e2e-rootfile")
        try FileManager.default.removeItem(atPath: s.a)
        try "x".write(toFile: s.a, atomically: true, encoding: .utf8)
        try s.profile()
        let run = try s.run(["t"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("not a directory"), "\(run)")
    }

    @Test("an emptied root stops the run with confirmbigdel (exit 3), and propagates with it off")
    func emptiedRoot() throws {
        let s = try Sandbox("e2e-bigdel")
        try s.profile()
        for i in 1...5 { try s.write("a", "d/f\(i)", "\(i)") }
        #expect(try s.run(["t"]).status == 0)
        try FileManager.default.removeItem(atPath: s.a + "/d")
        let halted = try s.run(["t", "-confirmbigdel=true"])
        #expect(halted.status == 3, "\(halted)")
        #expect(halted.stderr.contains("emptied"), "\(halted)")
        #expect(s.read("b", "d/f1") == "1")
        let allowed = try s.run(["t", "-confirmbigdel=false"])
        #expect(allowed.status == 0, "\(allowed)")
        #expect(!TestFiles.exists(s.b + "/d"))
        #expect(s.backups().count == 5, "deleted files are kept as backups: \(s.backups())")
    }

    @Test("a second run on the same archive is refused while the first holds the lock")
    func lockHeld() throws {
        let s = try Sandbox("e2e-lock")
        try s.profile()
        #expect(try s.run(["t"]).status == 0)
        let archives = try FileManager.default.contentsOfDirectory(atPath: s.profiles + "/archives")
        let lockFile = try #require(archives.first { $0.hasSuffix(".lock") })
        // Hold the lock from another process, as a running swunison would.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["-x", s.profiles + "/archives/" + lockFile, "sleep", "4"]
        try holder.run()
        Thread.sleep(forTimeInterval: 0.3)
        let run = try s.run(["t"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("lock"), "\(run)")
        holder.waitUntilExit()
        // Once the holder is gone (as when a run is killed), the lock is free again.
        #expect(try s.run(["t"]).status == 0)
    }

    @Test("--ignorearchives rebuilds the archive: a file deleted on one side comes back, never deleted")
    func ignoreArchives() throws {
        let s = try Sandbox("e2e-ignorear")
        try s.profile()
        try s.write("a", "f", "f")
        #expect(try s.run(["t"]).status == 0)
        try FileManager.default.removeItem(atPath: s.b + "/f")
        let run = try s.run(["t", "--ignorearchives"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("b", "f") == "f")
    }

    @Test("kind changes and attribute-only changes propagate")
    func kindAndAttributes() throws {
        let s = try Sandbox("e2e-kinds")
        try s.profile()
        try s.write("a", "was-file", "x")
        try s.write("a", "was-dir/inner", "y")
        try s.write("a", "mode", "m")
        #expect(try s.run(["t"]).status == 0)
        try FileManager.default.removeItem(atPath: s.a + "/was-file")
        try s.write("a", "was-file/now-inside", "z")
        try FileManager.default.removeItem(atPath: s.a + "/was-dir")
        try FileManager.default.createSymbolicLink(atPath: s.a + "/was-dir", withDestinationPath: "elsewhere")
        chmod(s.a + "/mode", 0o600)
        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("b", "was-file/now-inside") == "z")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: s.b + "/was-dir")) == "elsewhere")
        #expect(run.stdout.contains("props"), "\(run)")
        #expect(s.inStep, "\(s.listing(s.a)) vs \(s.listing(s.b))")
    }

    @Test("prefer = a root, path and ignore restrict what is synchronised")
    func preferRootPathIgnore() throws {
        let s = try Sandbox("e2e-prefroot")
        try s.profile("t", ["batch = true", "prefer = \(s.b)", "path = keep", "ignore = Name *.tmp"])
        try s.write("a", "keep/f", "from-a", mtime: Date().timeIntervalSince1970)
        try s.write("b", "keep/f", "from-b", mtime: Date().timeIntervalSince1970 - 3600)
        try s.write("a", "keep/scratch.tmp", "ignored")
        try s.write("a", "other/g", "outside path")
        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("a", "keep/f") == "from-b", "prefer = root B must win even though older")
        #expect(!TestFiles.exists(s.b + "/keep/scratch.tmp"))
        #expect(!TestFiles.exists(s.b + "/other"))
    }

    @Test("two roots on the command line with default.prf, preferences in both dash styles")
    func commandLineRoots() throws {
        let s = try Sandbox("e2e-cmdline")
        try "batch = true\n".write(toFile: s.profiles + "/default.prf", atomically: true, encoding: .utf8)
        try s.write("a", "f", "x")
        let run = try s.run([s.a, s.b, "--prefer", "newer", "-retry=2"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("b", "f") == "x")
    }

    @Test("interactive mode asks per item and applies the answers")
    func interactive() throws {
        let s = try Sandbox("e2e-interactive")
        try s.profile("t", [])
        try s.write("a", "one", "1")
        try s.write("a", "two", "2")
        // Items come sorted: "one" (accept with Enter), "two" (skip with /), then confirm.
        let run = try s.run(["t"], input: "\n/\ny\n")
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.contains("Proceed with propagating updates?"), "\(run)")
        #expect(s.read("b", "one") == "1")
        #expect(!TestFiles.exists(s.b + "/two"))
        let quit = try s.run(["t"], input: "q\n")
        #expect(quit.status == 3, "\(quit)")
        #expect(!TestFiles.exists(s.b + "/two"))
    }

    @Test("names that are not UTF-8, contain a newline, are 255 bytes long or nest deeply round-trip exactly")
    func awkwardNames() throws {
        let s = try Sandbox("e2e-names")
        try s.profile()
        let long = String(repeating: "n", count: 255)
        var deep = "deep"
        for i in 0..<60 { deep += "/l\(i)" }
        try s.write("a", long, "long")
        try s.write("a", deep + "/leaf", "deep")
        try s.write("a", "with\nnewline", "nl")
        // A Latin-1 name (invalid UTF-8), created with raw bytes.
        let latin1: [UInt8] = Array((s.a + "/caf").utf8) + [0xE9]
        let fd = latin1.withUnsafeBufferPointer { buf -> Int32 in
            var bytes = Array(buf) + [0]
            return bytes.withUnsafeMutableBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { open($0, O_CREAT | O_WRONLY, 0o644) }
            }
        }
        #expect(fd >= 0)
        _ = "latin1".withCString { write(fd, $0, 6) }
        close(fd)
        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        #expect(s.read("b", long) == "long")
        #expect(s.read("b", deep + "/leaf") == "deep")
        #expect(s.read("b", "with\nnewline") == "nl")
        var target: [UInt8] = Array((s.b + "/caf").utf8) + [0xE9, 0]
        let copied = target.withUnsafeMutableBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { access($0, F_OK) }
        }
        #expect(copied == 0, "the Latin-1 name must arrive byte for byte")
        #expect(try s.run(["t"]).status == 0)
    }
}
