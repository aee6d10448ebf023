import Foundation
import Glibc
import Synchronization
import Testing
@testable import SwunisonCore
import SwunisonFS
import SwunisonModel
import SwunisonReconcile
import SwunisonTestSupport

/// The status file: its JSON (round trip, escaping, tolerant reading, bad files), its atomic
/// write, and what a report means for monitoring.
@Suite struct StatusReportTests {
    typealias Timestamp = StatusReport.Timestamp

    static let t0 = Timestamp(secondsSinceEpoch: 1_796_285_702)  // 2026-12-03T08:15:02Z

    static func path(_ text: String) -> RelativePath { try! RelativePath(validating: text) }

    /// A report with every field set.
    static func full() -> StatusReport {
        StatusReport(
            profile: "default", mode: .watch, pid: 4242, version: "0.1.0",
            updated: Timestamp(secondsSinceEpoch: t0.secondsSinceEpoch + 90), state: .idle, stateSince: t0,
            lastSuccess: t0,
            lastCycle: StatusReport.Cycle(kind: .scoped, started: Timestamp(secondsSinceEpoch: t0.secondsSinceEpoch - 12),
                                          finished: t0, pathsScanned: 200_000, pathsChanged: 3,
                                          bytesCopied: 5_000_000_000, transferred: 3, skipped: 1, failed: 0, exitCode: 1),
            pending: [path("docs/a.txt"), .root], pendingCount: 7,
            conflicts: [path("shared/notes.md")], conflictCount: 1,
            lastError: "cannot reach far-away.example.org: Connection refused",
            counts: StatusReport.Counts(cycles: 12, transferred: 340, failed: 2, conflicts: 5),
            roots: [StatusReport.RootStatus(root: "/srv/data"),
                    StatusReport.RootStatus(root: "ssh://backup@far-away.example.org//srv/data", state: .disconnected,
                                            detail: "Connection refused")])
    }

    // MARK: JSON

    @Test func everyFieldRoundTrips() throws {
        let report = Self.full()
        #expect(try StatusReport(decoding: report.encoded()) == report)

        var bare = StatusReport(starting: "p", mode: .once, roots: ["/a", "/b"], at: Self.t0)
        #expect(bare.state == .starting && bare.pid == getpid() && bare.version == SwunisonVersion.current)
        #expect(try StatusReport(decoding: bare.encoded()) == bare)
        bare.lastCycle = Self.full().lastCycle
        #expect(try StatusReport(decoding: bare.encoded()) == bare)
    }

    @Test(arguments: StatusReport.State.allCases)
    func everyStateRoundTrips(_ state: StatusReport.State) throws {
        var report = Self.full()
        report.state = state
        for mode in StatusReport.Mode.allCases {
            report.mode = mode
            for rootState in StatusReport.RootState.allCases {
                report.roots[0].state = rootState
                #expect(try StatusReport(decoding: report.encoded()) == report)
            }
        }
    }

    /// The file's exact shape: stable key order, two-space indent, nulls written out. Monitoring
    /// scripts and people read it; a change here is a change of the format.
    @Test func theFileLooksLikeThis() {
        var report = StatusReport(starting: "default", mode: .watch, roots: ["/srv/a", "/srv/b"], at: Self.t0)
        report.pid = 77
        report.version = "0.1.0"
        report.setPending([Self.path("x/y")])
        let text = String(decoding: report.encoded(), as: UTF8.self)
        #expect(text == """
            {
              "format": "swunison-status",
              "formatVersion": 1,
              "profile": "default",
              "mode": "watch",
              "pid": 77,
              "version": "0.1.0",
              "updated": "2026-12-03T08:15:02Z",
              "state": "starting",
              "stateSince": "2026-12-03T08:15:02Z",
              "lastSuccess": null,
              "lastCycle": null,
              "pendingCount": 1,
              "pending": [
                "x/y"
              ],
              "conflictCount": 0,
              "conflicts": [],
              "lastError": null,
              "counts": {
                "cycles": 0,
                "transferred": 0,
                "failed": 0,
                "conflicts": 0
              },
              "roots": [
                {
                  "root": "/srv/a",
                  "state": "ok",
                  "detail": null
                },
                {
                  "root": "/srv/b",
                  "state": "ok",
                  "detail": null
                }
              ]
            }

            """)
    }

    @Test func stringsAreEscapedAsRFC8259Wants() throws {
        var report = Self.full()
        report.profile = "say \"hi\" \\ back"
        report.lastError = "line one\nline two\ttab\r\u{1}\u{1F}\u{7F} end"
        report.roots[0] = StatusReport.RootStatus(root: "/srv/été/日本/🎉", state: .missing, detail: "gone\u{0}?")
        let bytes = report.encoded()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""profile": "say \"hi\" \\ back""#))
        #expect(text.contains(#""lastError": "line one\nline two\ttab\r\u0001\u001f\u007f end""#)
                || text.contains(#""lastError": "line one\nline two\ttab\r\u0001\u001f"# + "\u{7F}" + #" end""#))
        #expect(text.contains("\"root\": \"/srv/été/日本/🎉\""))
        #expect(text.contains(#""detail": "gone\u0000?""#))
        // No raw control character anywhere but the newlines between lines.
        #expect(!bytes.contains { $0 < 0x20 && $0 != 0x0A })
        #expect(try StatusReport(decoding: bytes) == report)

        // Another JSON reader agrees.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object["profile"] as? String == report.profile)
        #expect(object["lastError"] as? String == report.lastError)
    }

    /// Any path's bytes come back exactly: quotes, newlines, control characters, non-ASCII,
    /// bytes that are not UTF-8, backslashes; the root is `.`.
    @Test func pathsRoundTripByteForByte() throws {
        let names: [[UInt8]] = [
            Array("with \"quotes\"/and spaces".utf8), Array("new\nline".utf8), Array("tab\there\r".utf8),
            Array("été/日本語/🎉".utf8), [0x66, 0xFF, 0xFE, 0x2F, 0x80], Array("back\\slash\\x41".utf8),
            [0x01, 0x7F, 0x1B], Array("\\n is not a newline".utf8),
        ]
        var report = Self.full()
        report.setPending(try names.map { try RelativePath(validating: $0) } + [.root])
        report.setConflicts(try names.reversed().map { try RelativePath(validating: $0) })
        let bytes = report.encoded()
        let decoded = try StatusReport(decoding: bytes)
        #expect(decoded.pending == report.pending)
        #expect(decoded.conflicts == report.conflicts)
        // Written as swunison prints paths: one readable line each, valid UTF-8 JSON.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        let pending = try #require(object["pending"] as? [String])
        #expect(pending.contains("f\\xff\\xfe/\\x80"))
        #expect(pending.contains("new\\nline"))
        #expect(pending.contains("back\\\\slash\\\\x41"))
        #expect(pending.contains("été/日本語/🎉"))
        #expect(pending.last == ".")
    }

    @Test func listsAreCutAtTheLimitButCounted() throws {
        var report = Self.full()
        let many = (0..<150).map { Self.path("dir/file\($0)") }
        report.setPending(many)
        report.setConflicts(many)
        #expect(report.pending.count == 150)
        let decoded = try StatusReport(decoding: report.encoded())
        #expect(decoded.pending == Array(many.prefix(100)) && decoded.pendingCount == 150)
        #expect(decoded.conflicts == Array(many.prefix(100)) && decoded.conflictCount == 150)
        report.setPending(Array(many.prefix(3)), count: 4000)
        #expect(report.pendingCount == 4000)
    }

    /// A newer swunison may add keys anywhere; this one skips them. Optional keys may be left out.
    @Test func readingSkipsUnknownKeysAndAcceptsMissingOptionals() throws {
        let text = #"""
            {"future": {"nested": [1, 2.5e-3, -0.0, true, false, null, {"x": "\u00e9\ud83c\udf89"}]},
             "format": "swunison-status", "formatVersion": 1, "profile": "p\/q", "mode": "repeat",
             "pid": 1, "version": "9.9.9", "updated": "2026-12-03T08:15:02.250Z", "state": "scanning",
             "stateSince": "2026-12-03t08:15:00z", "pendingCount": 0, "pending": [], "conflictCount": 0,
             "conflicts": [], "counts": {"cycles": 1, "transferred": 2, "failed": 3, "conflicts": 4, "new": "x"},
             "roots": [{"root": "/a", "state": "ok", "since": "?"}, {"root": "/b", "state": "missing"}],
             "lastCycle": {"kind": "full", "started": "2026-12-03T08:00:00Z", "finished": "2026-12-03T08:01:00Z",
               "pathsScanned": 10, "pathsChanged": 1, "bytesCopied": 0, "transferred": 1, "skipped": 0,
               "failed": 0, "exitCode": 0, "phase": {"a": []}},
             "zzz": []}
            """#
        let report = try StatusReport(decoding: Array(text.utf8))
        #expect(report.profile == "p/q" && report.mode == .repeat && report.version == "9.9.9")
        #expect(report.updated == Self.t0 && report.stateSince.secondsSinceEpoch == Self.t0.secondsSinceEpoch - 2)
        #expect(report.lastSuccess == nil && report.lastError == nil)
        #expect(report.lastCycle?.pathsScanned == 10 && report.lastCycle?.kind == .full)
        #expect(report.counts == StatusReport.Counts(cycles: 1, transferred: 2, failed: 3, conflicts: 4))
        #expect(report.roots.map(\.state) == [.ok, .missing] && report.roots[1].detail == nil)

        // A byte order mark and surrounding whitespace are fine too.
        let withBOM = [0xEF, 0xBB, 0xBF] + Array(" \r\n\t".utf8) + Self.full().encoded() + Array("  \n".utf8)
        #expect(try StatusReport(decoding: withBOM) == Self.full())
    }

    static let badDocuments: [(String, [UInt8], String)] = {
        let good = String(decoding: full().encoded(), as: UTF8.self)
        func replacing(_ old: String, _ new: String) -> [UInt8] {
            precondition(good.contains(old), old)
            return Array(good.replacingOccurrences(of: old, with: new).utf8)
        }
        return [
            ("empty", [], "not JSON"),
            ("text", Array("hello".utf8), "not JSON"),
            ("truncated", Array(good.utf8.dropLast(40)), "not JSON"),
            ("trailing garbage", Array((good + "}").utf8), "not JSON"),
            ("not UTF-8", Array(good.utf8) + [0xFF], "not JSON"),
            ("raw newline in a string", replacing("Connection refused\"", "Connection\nrefused\""), "not JSON"),
            ("bad escape", replacing("Connection refused\"", "Connection \\q\""), "not JSON"),
            ("deep nesting", Array((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8), "not JSON"),
            ("an array", Array("[]".utf8), "\"format\""),
            ("other JSON", Array(#"{"name": "x"}"#.utf8), "\"format\""),
            ("other format", replacing("\"swunison-status\"", "\"csync2\""), "\"format\""),
            ("newer format", replacing("\"formatVersion\": 1", "\"formatVersion\": 2"), "newer swunison (status format 2"),
            ("missing key", replacing("\"profile\": \"default\",", ""), "\"profile\" is missing"),
            ("wrong type", replacing("\"pid\": 4242", "\"pid\": \"4242\""), "\"pid\" is missing or is not an integer"),
            ("fractional count", replacing("\"pendingCount\": 7", "\"pendingCount\": 7.5"), "\"pendingCount\""),
            ("negative count", replacing("\"pendingCount\": 7", "\"pendingCount\": -7"), "\"pendingCount\""),
            ("unknown state", replacing("\"state\": \"idle\"", "\"state\": \"paused\""), "one of starting, scanning"),
            ("bad time", replacing("\"stateSince\": \"2026-12-03T08:15:02Z\"", "\"stateSince\": \"yesterday\""), "\"stateSince\""),
            ("bad exit code", replacing("\"exitCode\": 1", "\"exitCode\": 9"), "\"lastCycle.exitCode\""),
            ("bad root", replacing("\"state\": \"disconnected\"", "\"state\": \"gone\""), "\"roots[1].state\""),
            ("bad path", replacing("\"docs/a.txt\"", "\"docs/../etc\""), "\"pending\""),
            ("bad path escape", replacing("\"docs/a.txt\"", "\"docs\\\\qa\""), "\"pending\""),
        ]
    }()

    @Test(arguments: badDocuments.indices)
    func badDocumentsSayWhatIsWrong(_ index: Int) {
        let (label, bytes, expected) = Self.badDocuments[index]
        let error = #expect(throws: StatusFormatError.self, "\(label)") { try StatusReport(decoding: bytes) }
        #expect(error?.reason.contains(expected) == true, "\(label): \(error?.reason ?? "-")")
    }

    // MARK: Time

    @Test func timesAreISO8601UTCToTheSecond() throws {
        #expect(Timestamp(secondsSinceEpoch: 0).iso8601 == "1970-01-01T00:00:00Z")
        #expect(Self.t0.iso8601 == "2026-12-03T08:15:02Z")
        #expect(Timestamp(secondsSinceEpoch: 951_782_400).iso8601 == "2000-02-29T00:00:00Z")
        #expect(Timestamp(iso8601: "2026-12-03T08:15:02Z") == Self.t0)
        #expect(Timestamp(iso8601: "2026-12-03T08:15:02.999Z") == Self.t0)
        #expect(Timestamp(iso8601: "2000-02-29T00:00:00Z")?.secondsSinceEpoch == 951_782_400)
        // Another implementation agrees.
        let formatter = ISO8601DateFormatter()
        for seconds in [Int64(0), 1_000_000_000, 1_796_285_702, 4_102_444_799] {
            let text = Timestamp(secondsSinceEpoch: seconds).iso8601
            #expect(formatter.date(from: text)?.timeIntervalSince1970 == Double(seconds), "\(text)")
        }
        for bad in ["", "2026-12-03", "2026-12-03 08:15:02Z", "2026-12-03T08:15:02", "2026-12-03T08:15:02+01:00",
                    "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T08:15:02.Z",
                    "2026-12-03T08:15:02.1xZ", "+026-12-03T08:15:02Z", "2026-12-03T08:1a:02Z"] {
            #expect(Timestamp(iso8601: bad) == nil, "\(bad)")
        }
        let now = Timestamp.now().secondsSinceEpoch
        #expect(abs(now - Int64(Date().timeIntervalSince1970)) <= 1)
    }

    // MARK: The file

    @Test func writeThenReadAndNothingElseIsLeft() throws {
        let dir = try TemporaryDirectory("status-write")
        let path = dir.appending("new/dirs/p.status")
        var report = Self.full()
        let stamp = Timestamp(secondsSinceEpoch: Self.t0.secondsSinceEpoch + 5)
        try StatusFile.write(report, to: path, updated: stamp)
        report.updated = stamp
        #expect(try StatusFile.read(from: path) == report)
        #expect(try StatusFile.contents(of: path) == report.encoded())

        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o7777 == 0o644)
        #expect(stat(dir.appending("new/dirs"), &st) == 0 && st.st_mode & 0o777 == 0o700)

        for n in 1...20 {
            report.counts.cycles = n
            try StatusFile.write(report, to: path, updated: stamp)
        }
        #expect(try StatusFile.read(from: path).counts.cycles == 20)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appending("new/dirs")) == ["p.status"])
    }

    @Test func aFailedWriteLeavesTheOldFileAndNoTemporary() throws {
        let dir = try TemporaryDirectory("status-fail")
        // The rename fails: a directory holds the name.
        let blocked = dir.appending("blocked.status")
        try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
        let error = #expect(throws: StatusFileError.self) { try StatusFile.write(Self.full(), to: blocked) }
        guard case .cannotWrite(let file, let cause)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(file == blocked && cause.call == "rename")
        #expect("\(error!)".contains(blocked) && "\(error!)".contains("statusfile"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["blocked.status"])

        // The directory cannot be made: a file is in the way.
        try TestFiles.write(dir.appending("file"), "x")
        #expect(throws: StatusFileError.self) { try StatusFile.write(Self.full(), to: dir.appending("file/sub/p.status")) }
    }

    /// A full disk (a tiny tmpfs): the write fails, the previous report is intact, no temporary
    /// file is left. Needs root (mount); skipped otherwise.
    @Test(.enabled(if: getuid() == 0)) func aFullDiskLeavesTheOldFile() throws {
        let dir = try TemporaryDirectory("status-full")
        guard mount("tmpfs", dir.path, "tmpfs", 0, "size=64k") == 0 else {
            try Test.cancel("cannot mount a tmpfs here (errno \(errno))")
        }
        defer { umount2(dir.path, Int32(MNT_DETACH)) }
        let path = dir.appending("p.status")
        let old = Self.full()
        try StatusFile.write(old, to: path, updated: old.updated)
        var huge = old
        huge.lastError = String(repeating: "x", count: 200_000)
        #expect(throws: StatusFileError.self) { try StatusFile.write(huge, to: path) }
        #expect(try StatusFile.read(from: path) == old)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["p.status"])
    }

    @Test func theWriterWritesTheLatestReportOffTheCallersThread() throws {
        let dir = try TemporaryDirectory("status-writer")
        let writer = StatusFileWriter(path: dir.appending("w.status"))
        var report = Self.full()
        for n in 1...200 {
            report.counts.cycles = n
            writer.submit(report)
        }
        writer.flush()
        #expect(try StatusFile.read(from: writer.path).counts.cycles == 200)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.status"])
    }

    @Test func theWriterReportsAFailureOnceUntilAWriteSucceeds() throws {
        let dir = try TemporaryDirectory("status-writer-fail")
        let path = dir.appending("w.status")
        try FileManager.default.createDirectory(atPath: path + "/blocking", withIntermediateDirectories: true)
        let errors = Mutex<[StatusFileError]>([])
        let writer = StatusFileWriter(path: path) { error in errors.withLock { $0.append(error) } }
        for _ in 1...5 {
            writer.submit(Self.full())
            writer.flush()
        }
        #expect(errors.withLock { $0.count } == 1)
        try FileManager.default.removeItem(atPath: path)
        writer.submit(Self.full())
        writer.flush()
        #expect(try StatusFile.read(from: path).profile == "default")
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path + "/blocking", withIntermediateDirectories: true)
        writer.submit(Self.full())
        writer.flush()
        #expect(errors.withLock { $0.count } == 2)
    }

    @Test func readErrorsNameTheFile() throws {
        let dir = try TemporaryDirectory("status-read")
        let missing = dir.appending("none.status")
        #expect(throws: StatusFileError.missing(file: missing)) { try StatusFile.read(from: missing) }

        let directory = #expect(throws: StatusFileError.self) { try StatusFile.read(from: dir.path) }
        #expect(directory == .unreadable(file: dir.path, SystemCallError("read", errno: EISDIR)))

        let garbage = dir.appending("garbage.status")
        try TestFiles.write(garbage, "{\"format\": \"something else\"}")
        let foreign = #expect(throws: StatusFileError.self) { try StatusFile.read(from: garbage) }
        guard case .notAStatusFile(let file, _)? = foreign else { Issue.record("\(String(describing: foreign))"); return }
        #expect(file == garbage && "\(foreign!)".contains("is not a swunison status file"))

        let big = dir.appending("big.status")
        try Data(count: StatusFile.maximumSize + 1).write(to: URL(fileURLWithPath: big))
        let large = #expect(throws: StatusFileError.self) { try StatusFile.contents(of: big) }
        guard case .notAStatusFile(_, let reason)? = large else { Issue.record("\(String(describing: large))"); return }
        #expect(reason.contains("larger than"))
    }

    // MARK: Health

    struct HealthCase: Sendable, CustomStringConvertible {
        var description: String
        var change: @Sendable (inout StatusReport) -> Void
        var maxAge: Int64? = nil
        var writerIsRunning = true
        var level: StatusHealth.Level
        var reason: String? = nil
    }

    /// A healthy report: watch mode, idle, a recent success, both roots fine.
    static func healthy() -> StatusReport {
        var report = full()
        report.lastError = nil
        report.roots[1].state = .ok
        report.roots[1].detail = nil
        report.setConflicts([])
        report.lastCycle?.exitCode = 0
        return report
    }

    static let healthCases: [HealthCase] = [
        HealthCase(description: "healthy", change: { _ in }, level: .ok),
        HealthCase(description: "no success yet, no --max-age", change: { $0.lastSuccess = nil; $0.lastCycle = nil }, level: .ok),
        HealthCase(description: "a success within --max-age", change: { _ in }, maxAge: 60, level: .ok),
        HealthCase(description: "conflicts", change: { $0.setConflicts([path("a"), path("b")]) },
                   level: .conflicts, reason: "2 unresolved conflicts"),
        HealthCase(description: "last cycle exit 2", change: { $0.lastCycle?.exitCode = 2; $0.lastCycle?.failed = 4 },
                   level: .failing, reason: "the last cycle failed (exit 2, 4 failed)"),
        HealthCase(description: "last cycle exit 3", change: { $0.lastCycle?.exitCode = 3 },
                   level: .failing, reason: "exit 3, fatal"),
        HealthCase(description: "an error", change: { $0.lastError = "boom" }, level: .failing, reason: "error: boom"),
        HealthCase(description: "success too old", change: { _ in }, maxAge: 59, level: .failing,
                   reason: "is 60 s old, more than 59 s"),
        HealthCase(description: "never a success, with --max-age", change: { $0.lastSuccess = nil }, maxAge: 3600,
                   level: .failing, reason: "no successful cycle yet"),
        HealthCase(description: "root disconnected", change: { $0.enter(driverState: .disconnected(.b, "refused")) },
                   level: .failing, reason: "root ssh://backup@far-away.example.org//srv/data is disconnected (refused)"),
        HealthCase(description: "root missing", change: { $0.enter(driverState: .rootMissing(.a, "unmounted")) },
                   level: .failing, reason: "root /srv/data is missing (unmounted)"),
        HealthCase(description: "state says missing, no root marked", change: { $0.state = .rootMissing },
                   level: .failing, reason: "a root is missing"),
        HealthCase(description: "watcher stopped", change: { $0.enter(.stopped, at: t0) },
                   writerIsRunning: false, level: .failing, reason: "swunison stopped at 2026-12-03T08:15:02Z"),
        HealthCase(description: "repeat stopped", change: { $0.mode = .repeat; $0.state = .stopped },
                   writerIsRunning: false, level: .failing, reason: "swunison stopped"),
        HealthCase(description: "one run, finished", change: { $0.mode = .once; $0.state = .stopped },
                   writerIsRunning: false, level: .ok),
        HealthCase(description: "one run, killed mid-way", change: { $0.mode = .once; $0.state = .propagating },
                   writerIsRunning: false, level: .failing, reason: "(pid 4242) is gone, but the state is still propagating"),
        HealthCase(description: "watcher died", change: { _ in }, writerIsRunning: false, level: .failing,
                   reason: "is gone, but the state is still idle"),
        HealthCase(description: "failing and conflicts", change: { $0.lastError = "x"; $0.setConflicts([path("c")]) },
                   level: .failing, reason: "1 unresolved conflict"),
    ]

    @Test(arguments: healthCases)
    func healthIsJudgedAsAMonitoringCheckWould(_ c: HealthCase) {
        var report = Self.healthy()
        c.change(&report)
        let now = Timestamp(secondsSinceEpoch: Self.t0.secondsSinceEpoch + 60)
        let health = report.health(at: now, maxAgeSeconds: c.maxAge, writerIsRunning: c.writerIsRunning)
        #expect(health.level == c.level, "\(health.reasons)")
        #expect(health.reasons.isEmpty == (c.level == .ok), "\(health.reasons)")
        if let reason = c.reason {
            #expect(health.reasons.contains { $0.contains(reason) }, "\(health.reasons)")
        }
    }

    @Test func theWriterIsLookedUpByPid() {
        var report = Self.full()
        report.pid = getpid()
        #expect(report.writerIsRunning)
        report.pid = 2_000_000_000  // above any pid_max
        #expect(!report.writerIsRunning)
        report.pid = 0
        #expect(!report.writerIsRunning)
    }

    // MARK: What the watch driver says

    @Test func driverStatesMoveTheStateAndTheRoots() {
        var report = StatusReport(starting: "p", mode: .watch, roots: ["/a", "ssh://h//b"], at: Self.t0)
        let later = Timestamp(secondsSinceEpoch: Self.t0.secondsSinceEpoch + 10)
        report.enter(driverState: .disconnected(.b, "Connection refused"), at: later)
        #expect(report.state == .disconnected && report.stateSince == later)
        #expect(report.roots[1] == StatusReport.RootStatus(root: "ssh://h//b", state: .disconnected, detail: "Connection refused"))
        // The same state again keeps its start.
        report.enter(driverState: .disconnected(.b, "No route to host"), at: Timestamp(secondsSinceEpoch: later.secondsSinceEpoch + 5))
        #expect(report.stateSince == later && report.roots[1].detail == "No route to host")
        report.enter(driverState: .scanning)
        #expect(report.state == .scanning && report.roots.allSatisfy { $0.state == .ok && $0.detail == nil })
        report.enter(driverState: .rootMissing(.a, "not a directory"))
        #expect(report.roots[0].state == .missing && report.state == .rootMissing)
    }

    static func conflict(_ p: String) -> PlanItem {
        PlanItem(state: PathState(path: path(p), archive: nil, a: nil, b: nil), decision: .conflict(reason: "both changed"),
                 changeA: .changed, changeB: .changed)
    }

    @Test func driverCyclesCountAndKeepTheConflicts() {
        var report = StatusReport(starting: "p", mode: .watch, roots: ["/a", "/b"], at: Self.t0)
        let start = Self.t0.secondsSinceEpoch * 1_000_000_000

        // A full cycle with two conflicts and a transfer.
        var summary = RunSummary()
        summary.items = [Self.conflict("docs/x"), Self.conflict("other/y")]
        summary.transferred = 1
        summary.skipped = 2
        summary.bytesCopied = 10
        report.record(CycleReport(scope: .full, started: start, duration: .seconds(7), summary: summary), pathsScanned: 50)
        #expect(report.lastCycle == StatusReport.Cycle(kind: .full, started: Self.t0,
                                                       finished: Timestamp(secondsSinceEpoch: Self.t0.secondsSinceEpoch + 7),
                                                       pathsScanned: 50, pathsChanged: 2, bytesCopied: 10, transferred: 1,
                                                       skipped: 2, failed: 0, exitCode: 1))
        #expect(report.lastSuccess == report.lastCycle?.finished)
        #expect(report.conflicts == [Self.path("docs/x"), Self.path("other/y")] && report.conflictCount == 2)

        // A scoped cycle over docs: its conflict there is settled, the other one stays.
        report.record(CycleReport(scope: .paths([Self.path("docs")]), started: start + 60_000_000_000, duration: .seconds(1),
                                  summary: RunSummary()))
        #expect(report.conflicts == [Self.path("other/y")] && report.lastCycle?.kind == .scoped)

        // A cycle that stops with an error: exit 3, the error kept, no new success.
        let success = report.lastSuccess
        report.record(CycleReport(scope: .full, started: start + 120_000_000_000, duration: .seconds(1),
                                  error: "cannot scan /a: gone"))
        #expect(report.lastCycle?.exitCode == 3 && report.lastError == "cannot scan /a: gone" && report.lastSuccess == success)
        #expect(report.health(at: Self.t0, writerIsRunning: true).level == .failing)

        // The next good cycle clears it.
        report.record(CycleReport(scope: .full, started: start + 180_000_000_000, duration: .seconds(1), summary: RunSummary()))
        #expect(report.lastError == nil && report.conflicts.isEmpty)
        #expect(report.counts == StatusReport.Counts(cycles: 4, transferred: 1, failed: 0, conflicts: 2))
    }
}
