import Foundation
import Testing
import SwunisonTestSupport

/// Faults a user meets: unreadable files, a run killed in mid-propagation.
@Suite("faults")
struct FaultTests {
    /// Runs the binary as user `nobody`, so permission bits apply (root ignores them).
    @Test("unreadable files and directories are reported (exit 2); everything else is synchronised",
          .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func unreadable() throws {
        let s = try Sandbox("e2e-unreadable")
        try s.profile()
        try s.write("a", "ok/file", "fine")
        try s.write("a", "secret-file", "s")
        try s.write("a", "secret-dir/inside", "i")
        for path in [s.dir.path, s.a, s.b, s.profiles, s.a + "/ok", s.a + "/ok/file", s.a + "/secret-dir"] {
            chown(path, 65534, 65534)
        }
        chmod(s.dir.path, 0o755)
        // Owned by root and mode 000: nobody can read them.
        chown(s.a + "/secret-file", 0, 0); chmod(s.a + "/secret-file", 0)
        chown(s.a + "/secret-dir", 0, 0); chmod(s.a + "/secret-dir", 0)
        let run = try SwunisonBinary.run(
            [], environment: ["SWUNISON": s.profiles, "HOME": s.dir.path],
            wrapper: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], arguments2: ["t"])
        #expect(run.status == 2, "\(run)")
        #expect(run.output.contains("secret-file"), "\(run)")
        #expect(run.output.contains("secret-dir"), "\(run)")
        #expect(TestFiles.read(s.b + "/ok/file") == "fine")
        #expect(!TestFiles.exists(s.b + "/secret-file"))
    }

    @Test("kill -9 in mid-propagation, then a rerun: converges, nothing lost, no temp file left")
    func killedRun() throws {
        let s = try Sandbox("e2e-kill")
        try s.profile()
        // Enough content that propagation is still running when the kill arrives.
        let chunk = Data(repeating: 0x61, count: 4 << 20)
        for i in 0..<40 {
            try FileManager.default.createDirectory(atPath: s.a + "/d\(i % 4)", withIntermediateDirectories: true)
            try chunk.write(to: URL(fileURLWithPath: s.a + "/d\(i % 4)/big\(i)"))
        }
        for i in 0..<200 { try s.write("b", "small/f\(i)", "b\(i)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: SwunisonBinary.path)
        process.arguments = ["t"]
        var env = ProcessInfo.processInfo.environment
        env["SWUNISON"] = s.profiles; env["HOME"] = s.dir.path
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.4)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // Whatever arrived is complete: every file under its real name has full content.
        for i in 0..<40 where TestFiles.exists(s.b + "/d\(i % 4)/big\(i)") {
            #expect(FileManager.default.contents(atPath: s.b + "/d\(i % 4)/big\(i)") == chunk)
        }
        let rerun = try s.run(["t"])
        #expect(rerun.status == 0, "\(rerun)")
        #expect(s.inStep)
        let again = try s.run(["t"])
        #expect(again.status == 0 && again.stdout.contains("Nothing to do"), "\(again)")
        let leftovers = (FileManager.default.enumerator(atPath: s.a)?.allObjects as? [String] ?? [])
            + (FileManager.default.enumerator(atPath: s.b)?.allObjects as? [String] ?? [])
        #expect(!leftovers.contains { ($0 as NSString).lastPathComponent.hasPrefix(".swunison") }, "\(leftovers.filter { $0.contains(".swunison") })")
    }
}
