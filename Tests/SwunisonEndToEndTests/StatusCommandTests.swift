import Foundation
import Testing
import SwunisonTestSupport

/// `swunison status PROFILE`, run as a monitoring check runs it: status files written here by
/// hand (with Foundation's JSON writer, so the reader is checked against another writer's
/// formatting), every exit code, the human output and `--json`.
@Suite("swunison status")
struct StatusCommandTests {
    /// A sandbox whose profile `t` keeps its status in `<dir>/t.status`.
    static func sandbox(_ label: String) throws -> (Sandbox, String) {
        let s = try Sandbox(label)
        let file = s.dir.appending("t.status")
        try s.profile("t", ["batch = true", "statusfile = \(file)"])
        return (s, file)
    }

    static func iso(_ secondsAgo: TimeInterval, from now: Date = Date()) -> String {
        ISO8601DateFormatter().string(from: now.addingTimeInterval(-secondsAgo))
    }

    /// A healthy watcher's report: this test process as its writer, idle, a success a minute ago.
    static func report(_ s: Sandbox, _ change: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        let now = Date()
        func iso(_ secondsAgo: TimeInterval) -> String { Self.iso(secondsAgo, from: now) }
        var report: [String: Any] = [
            "format": "swunison-status", "formatVersion": 1, "profile": "t", "mode": "watch",
            "pid": Int(getpid()), "version": "0.1.0", "updated": iso(2), "state": "idle", "stateSince": iso(120),
            "lastSuccess": iso(60),
            "lastCycle": ["kind": "scoped", "started": iso(65), "finished": iso(60), "pathsScanned": 1234,
                          "pathsChanged": 3, "bytesCopied": 3 << 20, "transferred": 3, "skipped": 0, "failed": 0,
                          "exitCode": 0] as [String: Any],
            "pendingCount": 0, "pending": [String](), "conflictCount": 0, "conflicts": [String](),
            "lastError": NSNull(),
            "counts": ["cycles": 12, "transferred": 340, "failed": 0, "conflicts": 1],
            "roots": [["root": s.a, "state": "ok", "detail": NSNull()], ["root": s.b, "state": "ok"]] as [[String: Any]],
        ]
        change(&report)
        return report
    }

    static func write(_ report: [String: Any], to file: String) throws {
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: file))
    }

    /// Writes the report, runs `swunison status t` with `arguments`.
    static func status(_ change: @escaping (inout [String: Any]) -> Void, _ arguments: [String] = [],
                       label: String = "e2e-status") throws -> SwunisonBinary.Outcome {
        let (s, file) = try sandbox(label)
        try write(report(s, change), to: file)
        return try s.run(["status", "t"] + arguments)
    }

    @Test("a healthy watcher: exit 0, the verdict first, then one line per topic")
    func healthy() throws {
        let (s, file) = try Self.sandbox("e2e-status-ok")
        try Self.write(Self.report(s), to: file)
        let run = try s.run(["status", "t"])
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "swunison t: OK (idle, last success 1 min ago)", "\(run)")
        for prefix in ["state         idle since ", "last success  ", "last cycle    scoped, finished ",
                       "pending       none", "conflicts     none", "last error    none", "root 1        \(s.a): ok",
                       "root 2        \(s.b): ok", "since start   12 cycles, 340 transferred, 0 failed, 1 conflict",
                       "process       pid \(getpid()) (running), swunison 0.1.0, watch mode; written "] {
            #expect(lines.contains { $0.hasPrefix(prefix) }, "no line \(prefix): \(run)")
        }
        #expect(run.stdout.contains("after 5 s: 1234 scanned, 3 changed, 3 transferred (3 MiB), 0 skipped, 0 failed, exit 0"),
                "\(run)")
        #expect(run.stdout.contains("(2 min ago)"), "\(run)")
        #expect(run.stderr.isEmpty, "\(run)")
    }

    @Test("unresolved conflicts: exit 1, the first few listed")
    func conflicts() throws {
        let paths = (1...7).map { "dir/conflict \($0)" }
        let run = try Self.status({ $0["conflicts"] = paths; $0["conflictCount"] = 7 })
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.hasPrefix("swunison t: CONFLICTS: 7 unresolved conflicts\n"), "\(run)")
        #expect(run.stdout.contains("conflicts     7: dir/conflict 1, dir/conflict 2, dir/conflict 3, dir/conflict 4, "
                                    + "dir/conflict 5, and 2 more"), "\(run)")
    }

    @Test("pending paths are listed, the root as '.'")
    func pending() throws {
        let run = try Self.status({ $0["pending"] = ["a/b", "."]; $0["pendingCount"] = 2; $0["state"] = "scanning" })
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("pending       2: a/b, .\n"), "\(run)")
    }

    @Test("failing: exit 2, and the first line says why", arguments: [
        ("last cycle failed", ["lastCycle.exitCode": 2, "lastCycle.failed": 4], "the last cycle failed (exit 2, 4 failed)"),
        ("fatal cycle", ["lastCycle.exitCode": 3], "the last cycle failed (exit 3, fatal)"),
        ("an error", ["lastError": "cannot scan /srv: Input/output error"], "error: cannot scan /srv: Input/output error"),
        ("disconnected", ["state": "disconnected", "roots.1.state": "disconnected", "roots.1.detail": "Connection refused"],
         "is disconnected (Connection refused)"),
        ("root missing", ["state": "rootMissing", "roots.0.state": "missing"], "is missing"),
        ("watcher stopped", ["state": "stopped"], "swunison stopped at "),
        ("writer gone", ["pid": 2_000_000_000], "(pid 2000000000) is gone, but the state is still idle"),
    ] as [(String, [String: any Sendable], String)])
    func failing(_ label: String, _ changes: [String: any Sendable], _ reason: String) throws {
        let run = try Self.status({ report in
            for (key, value) in changes {
                let parts = key.split(separator: ".").map(String.init)
                switch parts.count {
                case 1: report[key] = value
                case 2:
                    var inner = report[parts[0]] as! [String: Any]
                    inner[parts[1]] = value
                    report[parts[0]] = inner
                default:
                    var roots = report[parts[0]] as! [[String: Any]]
                    roots[Int(parts[1])!][parts[2]] = value
                    report[parts[0]] = roots
                }
            }
        }, label: "e2e-status-fail")
        #expect(run.status == 2, "\(label): \(run)")
        let first = run.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("swunison t: FAILING: ") && first.contains(reason), "\(label): \(run)")
    }

    @Test("a single run that finished (mode once, stopped) is healthy; one killed mid-way is not")
    func singleRuns() throws {
        let finished = try Self.status({ $0["mode"] = "once"; $0["state"] = "stopped"; $0["pid"] = 2_000_000_000 })
        #expect(finished.status == 0, "\(finished)")
        #expect(finished.stdout.contains("once mode"), "\(finished)")
        let killed = try Self.status({ $0["mode"] = "once"; $0["state"] = "propagating"; $0["pid"] = 2_000_000_000 })
        #expect(killed.status == 2, "\(killed)")
    }

    @Test("--max-age: a success older than that, or none, is a failure")
    func maxAge() throws {
        let (s, file) = try Self.sandbox("e2e-status-age")
        try Self.write(Self.report(s, { $0["lastSuccess"] = Self.iso(7200) }), to: file)
        #expect(try s.run(["status", "t"]).status == 0)
        #expect(try s.run(["status", "t", "--max-age", "86400"]).status == 0)
        let old = try s.run(["status", "t", "--max-age", "3600"])
        #expect(old.status == 2 && old.stdout.contains("more than 3600 s"), "\(old)")

        try Self.write(Self.report(s, { $0["lastSuccess"] = NSNull(); $0["lastCycle"] = NSNull() }), to: file)
        #expect(try s.run(["status", "t"]).status == 0)
        let never = try s.run(["status", "t", "--max-age", "3600"])
        #expect(never.status == 2 && never.stdout.contains("no successful cycle yet"), "\(never)")
        #expect(never.stdout.contains("last success  none yet") && never.stdout.contains("last cycle    none yet"), "\(never)")

        let zero = try s.run(["status", "t", "--max-age", "0"])
        #expect(zero.status != 0 && zero.stderr.contains("--max-age needs a number of seconds above 0"), "\(zero)")
    }

    @Test("--json prints the file as it is, with the exit code of its verdict")
    func json() throws {
        let (s, file) = try Self.sandbox("e2e-status-json")
        try Self.write(Self.report(s, { $0["conflicts"] = ["x"]; $0["conflictCount"] = 1; $0["future"] = ["a": 1] }),
                       to: file)
        let run = try s.run(["status", "t", "--json"])
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout == TestFiles.read(file), "\(run)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["state"] as? String == "idle" && object["conflictCount"] as? Int == 1)
        #expect(object["pid"] as? Int == Int(getpid()))
        #expect((object["roots"] as? [[String: Any]])?.map { $0["root"] as? String } == [s.a, s.b])
    }

    @Test("no status file yet: exit 3, and the message names the file and what to do")
    func missing() throws {
        let (s, file) = try Self.sandbox("e2e-status-missing")
        let run = try s.run(["status", "t"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr == "swunison: no status yet for profile t (no file \(file)): "
                + "start swunison t --watch or run swunison t\n", "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(try s.run(["status", "t", "--json"]).status == 3)
    }

    @Test("a file that is not a status file, or a bad profile: exit 3")
    func unusable() throws {
        let (s, file) = try Self.sandbox("e2e-status-bad")
        try TestFiles.write(file, "{\"format\": \"swunison-status\", \"formatVersion\": 1}")
        let bad = try s.run(["status", "t"])
        #expect(bad.status == 3 && bad.stderr.contains("\(file) is not a swunison status file"), "\(bad)")
        #expect(bad.stderr.contains("\"profile\" is missing"), "\(bad)")

        try TestFiles.write(file, "not json")
        #expect(try s.run(["status", "t"]).status == 3)

        let noProfile = try s.run(["status", "nonesuch"])
        #expect(noProfile.status == 3 && noProfile.stderr.contains("profile 'nonesuch' not found"), "\(noProfile)")

        try "root = /a\nfrobnicate = 1\n".write(toFile: s.profiles + "/broken.prf", atomically: true, encoding: .utf8)
        let broken = try s.run(["status", "broken"])
        #expect(broken.status == 3 && broken.stderr.contains("unknown preference 'frobnicate'"), "\(broken)")
    }

    /// Without `statusfile`, the file is beside the archive a sync run made for the same roots:
    /// `status` and `sync` compute the same archive name.
    @Test("by default the status file is beside the archive of the profile's roots")
    func besideTheArchive() throws {
        let s = try Sandbox("e2e-status-default")
        try s.profile()
        let sync = try s.run(["t"])
        #expect(sync.status == 0, "\(sync)")
        let archives = s.profiles + "/archives"
        let database = try #require(try FileManager.default.contentsOfDirectory(atPath: archives)
            .first { $0.hasSuffix(".db") })
        let expected = archives + "/" + database.dropLast(3) + ".status"
        // The sync run wrote it there itself.
        #expect(FileManager.default.fileExists(atPath: expected))
        let afterSync = try s.run(["status", "t"])
        #expect(afterSync.status == 0 && afterSync.stdout.contains("stopped"), "\(afterSync)")

        try Self.write(Self.report(s), to: expected)
        let run = try s.run(["status", "t"])
        #expect(run.status == 0, "\(run)")
        // Two roots on the command line find it too, as a sync run of them finds the archive.
        let byRoots = try s.run(["status", s.a, s.b])
        #expect(byRoots.status == 0, "\(byRoots)")
    }

    @Test("--help documents the exit codes")
    func help() throws {
        let run = try SwunisonBinary.run(["status", "--help"])
        #expect(run.status == 0, "\(run)")
        for text in ["0  healthy", "1  unresolved conflicts", "2  not working", "3  no status yet", "--max-age <seconds>",
                     "--json"] {
            #expect(run.stdout.contains(text), "\(text): \(run)")
        }
    }
}
