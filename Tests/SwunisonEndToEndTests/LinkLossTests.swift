import Foundation
import SwunisonTestSupport
import Testing

/// Link loss (issue 13): the remote side of an ssh root dies in mid-run, either by crash
/// injection in `swunison server` (`SWUNISON_CRASH_AT=N`, set by a `servercmd` wrapper, since
/// sshd passes the client's environment on to nobody) or by SIGKILL from outside, to sshd's
/// per-connection process or to the server, at a random moment of scan, transfer or commit.
/// After each: every file holds one whole version, nothing is lost, the run did not claim
/// success for work it did not do, the next run converges and the one after has nothing to do.
///
/// `SWUNISON_LINK_TRIALS` sets the number of server crash trials (default 10) and
/// `SWUNISON_LINK_CUTS` the number of killed links (default 3); `SWUNISON_LINK_SEED` the first
/// seed of both. Serialized: each trial already runs a client, an sshd and a server.
@Suite("link loss", .serialized)
struct LinkLossTests {
    static var trials: Int { ProcessInfo.processInfo.environment["SWUNISON_LINK_TRIALS"].flatMap(Int.init) ?? 10 }
    static var cuts: Int { ProcessInfo.processInfo.environment["SWUNISON_LINK_CUTS"].flatMap(Int.init) ?? 3 }
    static var firstSeed: UInt64 { ProcessInfo.processInfo.environment["SWUNISON_LINK_SEED"].flatMap(UInt64.init) ?? 1 }

    @Test("the server killed at a random change or commit: whole versions, the loss reported or redone, then convergence",
          .timeLimit(.minutes(30)))
    func serverKilledAtARandomChange() throws {
        var exits: [Int32] = []
        let started = Date()
        for trial in 0..<Self.trials {
            let seed = Self.firstSeed + UInt64(trial)
            if let status = try Self.serverCrashTrial(seed: seed) { exits.append(status) }
        }
        let crashed = exits.count
        print("link loss: server killed mid-run in \(crashed) of \(Self.trials) trials (seeds \(Self.firstSeed)..."
              + "\(Self.firstSeed + UInt64(Self.trials) - 1); \(Self.tally(exits))), \(Int(Date().timeIntervalSince(started))) s")
        // Most trials must really crash mid-run, or the test proves little.
        #expect(crashed * 2 >= Self.trials, "only \(crashed) of \(Self.trials) trials crashed")
    }

    /// One trial; returns the exit status of the run if its server was killed.
    static func serverCrashTrial(seed: UInt64) throws -> Int32? {
        var random = SplitMix(seed: seed)
        let s = try SSHSandbox("link-\(seed)")
        let retry = Int(random.next() % 2)
        let lines = ["batch = true", "prefer = newer", "maxbackups = 3", "retry = \(retry)"]
        try s.profile(serverCommand: try serverCommand(s, name: "server"), lines)
        var versions = try TwoSidedChanges(s.sandbox, random: &random, files: 18)
        let first = try s.run()
        guard first.status == 0 else { Issue.record("seed \(seed): first run \(first)"); return nil }
        try versions.change(s.sandbox, random: &random)

        // Some trials start from a lost server cache: the server's scan is then a full one,
        // which rewrites its cache (the first crash point).
        let lostCache = random.next() % 3 == 0
        if lostCache { try FileManager.default.removeItem(atPath: s.sandbox.dir.appending("server-state/caches")) }
        // The run whose server dies at a random change or commit (a run reaches 40 to 90 of
        // them). Servers started again by a reconnection die at the same point.
        let crashAt = 1 + Int(random.next() % 70)
        let statuses = s.sandbox.dir.appending("server-statuses")
        try s.profile(serverCommand: try serverCommand(s, name: "crashing-server", crashAt: crashAt, statuses: statuses), lines)
        let run = try s.run(timeout: 120)
        let serverStatuses = (TestFiles.read(statuses) ?? "").split(separator: "\n")
        let didCrash = serverStatuses.contains("137")
        let context = "seed \(seed), server crash at \(crashAt), retry = \(retry)\(lostCache ? ", server cache lost" : ""), "
            + "servers exited \(serverStatuses)"
        checkRun(run, killed: didCrash, retry: retry, remote: s.url(s.remote), context: context)
        versions.checkWholeVersions(s.sandbox, after: context)

        try s.profile(serverCommand: try serverCommand(s, name: "server"), lines)
        try checkConvergence(s, versions, context: context)
        return didCrash ? run.status : nil
    }

    @Test("the link killed at a random moment of a busy run (sshd's connection or the server): the same checks",
          .timeLimit(.minutes(30)))
    func linkKilledAtARandomMoment() throws {
        var exits: [Int32] = []
        let started = Date()
        for trial in 0..<Self.cuts {
            let seed = Self.firstSeed + UInt64(trial)
            if let status = try Self.linkCutTrial(seed: seed) { exits.append(status) }
        }
        let killed = exits.count
        print("link loss: link cut mid-run in \(killed) of \(Self.cuts) trials (seeds \(Self.firstSeed)..."
              + "\(Self.firstSeed + UInt64(Self.cuts) - 1); \(Self.tally(exits))), \(Int(Date().timeIntervalSince(started))) s")
        #expect(killed * 2 >= Self.cuts, "only \(killed) of \(Self.cuts) links were cut mid-run")
    }

    /// What a link cut kills: sshd's process for the connection (`sshd: USER@notty`, which
    /// holds the channel), or the `swunison server` it started.
    enum CutTarget: CaseIterable { case sshd, server }

    /// One trial; returns the exit status of the run if its link was cut while it went on.
    static func linkCutTrial(seed: UInt64) throws -> Int32? {
        var random = SplitMix(seed: seed)
        let s = try SSHSandbox("cut-\(seed)")
        let retry = Int(random.next() % 2)
        let target = CutTarget.allCases[Int(random.next() % 2)]
        let lines = ["batch = true", "prefer = newer", "maxbackups = 3", "retry = \(retry)"]
        try s.profile(serverCommand: try serverCommand(s, name: "server"), lines)
        // Many small files (the scans and the commits take a while), changed on both sides...
        var versions = try TwoSidedChanges(s.sandbox, random: &random, files: 600)
        let first = try s.run()
        guard first.status == 0 else { Issue.record("seed \(seed): first run \(first)"); return nil }
        try versions.change(s.sandbox, random: &random)
        // ... and a few large new ones on each side (the transfer takes a while).
        for n in 0..<6 {
            let side = n < 4 ? "a" : "b"
            let path = "large\(side)/l\(n)"
            let text = "\(path) new " + String(repeating: "y", count: (1 + Int(random.next() % 4)) << 20)
            try s.sandbox.write(side, path, text)
            versions.versions[path] = [text]
        }

        // Such a run takes about 2 s here; cut it anywhere in its first 1.5 s.
        let delay = Double(random.next() % 1500) / 1000
        var cut: String?
        let run = try s.run(timeout: 120, after: delay) {
            cut = Self.kill(target, of: s)
            return cut != nil
        }
        let context = "seed \(seed), \(target) killed after \(delay) s (\(cut ?? "the run ended first")), retry = \(retry)"
        checkRun(run, killed: cut != nil, retry: retry, remote: s.url(s.remote), context: context)
        versions.checkWholeVersions(s.sandbox, after: context)
        try checkConvergence(s, versions, context: context)
        return cut != nil ? run.status : nil
    }

    /// SIGKILLs the process `target` names, if it runs; returns its pid and command line.
    static func kill(_ target: CutTarget, of s: SSHSandbox) -> String? {
        for pid in s.server.sessionProcesses {
            let argv = ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "")
                .replacingOccurrences(of: "\0", with: " ")
            let matches = switch target {
            case .sshd: argv.hasPrefix("sshd: ") && argv.contains("@notty")
            case .server: argv.contains(SwunisonBinary.path) && argv.contains(" server")
            }
            if matches && Glibc.kill(pid, SIGKILL) == 0 { return "\(pid) \(argv.trimmingCharacters(in: .whitespaces))" }
        }
        return nil
    }

    /// "exit 0: 3, exit 2: 5": how the runs that lost their link ended.
    static func tally(_ exits: [Int32]) -> String {
        Dictionary(grouping: exits, by: { $0 }).sorted { $0.key < $1.key }
            .map { "exit \($0.key): \($0.value.count)" }.joined(separator: ", ")
    }

    /// What a run whose link died may do: exit 0 only after it reconnected and redid the lost
    /// work (`retry`); exit 2 naming the lost connection among the failed paths; exit 3 naming
    /// it when it was lost in the scan or the commit with no retry left (as Unison's "Lost
    /// connection with the server"). Never exit 0 as if nothing had happened, never hang.
    static func checkRun(_ run: SwunisonBinary.Outcome, killed: Bool, retry: Int, remote: String, context: String) {
        #expect(!run.stderr.contains("[test harness: stopped"), "\(context): the run hung: \(run)")
        guard killed else {
            #expect(run.status == 0, "\(context): the link was not cut, yet \(run)")
            return
        }
        switch run.status {
        case 0:
            #expect(retry > 0 && run.stderr.contains("reconnecting to"),
                    "\(context): exit 0 although the link died and was not reopened: \(run)")
        case 2:
            // "[FAILED] connection to ..." for one path, "[FAILED] N paths (...): connection to ..." for more.
            #expect(lines(of: run.stderr, containing: "[FAILED] ").contains { $0.contains(": connection to") || $0.hasPrefix("[FAILED] connection to") },
                    "\(context): exit 2 without naming the lost connection: \(run)")
        case 3:
            // Also a server killed before its hello: the first connection is never retried.
            #expect(lines(of: run.stderr, containing: "swunison: ").contains { $0.contains(remote) },
                    "\(context): exit 3 without naming the lost connection: \(run)")
        default:
            Issue.record("\(context): the run lost its link and exited \(run.status): \(run)")
        }
    }

    /// The next run converges (exit 0), the one after has nothing to do, the trees are equal,
    /// hold whole versions and no temporary file, and every conflict's loser is kept.
    static func checkConvergence(_ s: SSHSandbox, _ versions: TwoSidedChanges, context: String) throws {
        waitForTemporaryFileOwners(s.remote)
        let next = try s.run(timeout: 120)
        #expect(next.status == 0, "\(context): the next run: \(next)")
        let after = try s.run(timeout: 120)
        #expect(after.status == 0 && after.stdout.contains("Nothing to do"), "\(context): the run after: \(after)")
        #expect(s.inStep, "\(context): the trees differ\n\(s.listings)")
        versions.checkWholeVersions(s.sandbox, after: "\(context), convergence")
        for root in [s.local, s.remote] {
            let left = SSHSandbox.temporaryFiles(under: root)
            #expect(left.isEmpty, "\(context): temporary files left in \(root): \(left), owners \(SSHSandbox.owners(of: left))")
        }
        versions.checkConflicts(s.sandbox, context: context)
    }

    /// A killed server's temporary files are removed by the next scan once their owner is gone;
    /// a container whose pid 1 reaps orphans late keeps it a zombie (alive to kill(pid, 0)) for
    /// a while: wait for it, as a real host's init would have reaped it at once.
    static func waitForTemporaryFileOwners(_ root: String) {
        let deadline = Date().addingTimeInterval(15)
        while SSHSandbox.owners(of: SSHSandbox.temporaryFiles(under: root)).contains(where: { !$0.hasSuffix("gone") }),
              Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// A `servercmd` for this sandbox: the built binary with its state directory in the sandbox
    /// (not the user's ~/.swunison), optionally dying at crash point `crashAt`, and appending its
    /// exit status (137 for SIGKILL) to `statuses`.
    static func serverCommand(_ s: SSHSandbox, name: String, crashAt: Int? = nil, statuses: String? = nil) throws -> String {
        let path = s.sandbox.dir.appending(name)
        let state = "SWUNISON='\(s.sandbox.dir.appending("server-state"))'"
        let crash = crashAt.map { " SWUNISON_CRASH_AT=\($0)" } ?? ""
        var script = "#!/bin/sh\n"
        if let statuses {
            // Not `exec`: the shell waits to record how the server ended.
            script += "\(state)\(crash) '\(SwunisonBinary.path)' \"$@\"\nstatus=$?\necho $status >> '\(statuses)'\nexit $status\n"
        } else {
            script += "\(state)\(crash) exec '\(SwunisonBinary.path)' \"$@\"\n"
        }
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }
}

/// A tree both sides share after a first run, then random changes on both sides: edits (some of
/// the same file on both, with either side newer: conflicts), deletions, new files. Remembers
/// every content each path may hold, and each conflict's winner and loser.
struct TwoSidedChanges {
    /// path -> every content it may hold
    var versions: [String: Set<String>] = [:]
    var conflicts: [String: (loser: String, winner: String)] = [:]
    let base = Date().timeIntervalSince1970 - 1000

    /// Writes `files` files in three directories, the same on both sides.
    init(_ s: Sandbox, random: inout SplitMix, files: Int) throws {
        for i in 0..<files {
            let path = "d\(i % 3)/f\(i)"
            let text = Self.content(path, "old", &random)
            try s.write("a", path, text, mtime: base)
            try s.write("b", path, text, mtime: base)
            versions[path] = [text]
        }
    }

    static func content(_ path: String, _ tag: String, _ random: inout SplitMix) -> String {
        "\(path) \(tag) " + String(repeating: "x", count: Int(random.next() % 3000))
    }

    /// Mostly changes on the local side (`a`), so that the remote side has much to write.
    mutating func change(_ s: Sandbox, random: inout SplitMix) throws {
        for path in versions.keys.sorted() {
            switch random.next() % 8 {
            case 0, 1:
                let text = Self.content(path, "A", &random)
                try s.write("a", path, text, mtime: base + 100)
                versions[path]!.insert(text)
            case 2:
                let text = Self.content(path, "B", &random)
                try s.write("b", path, text, mtime: base + 100)
                versions[path]!.insert(text)
            case 3:
                // A conflict; either side may hold the newer version.
                let aIsNewer = random.next() % 2 == 0
                let older = Self.content(path, "older", &random), newer = Self.content(path, "newer", &random)
                try s.write("a", path, aIsNewer ? newer : older, mtime: base + (aIsNewer ? 200 : 100))
                try s.write("b", path, aIsNewer ? older : newer, mtime: base + (aIsNewer ? 100 : 200))
                versions[path]!.formUnion([older, newer])
                conflicts[path] = (older, newer)
            case 4:
                try FileManager.default.removeItem(atPath: s.a + "/" + path)
            case 5:
                try FileManager.default.removeItem(atPath: s.b + "/" + path)
            default:
                break
            }
        }
        for n in 0..<Int(random.next() % 6) {
            let side = n % 3 == 2 ? "b" : "a"
            let path = "new\(side)/n\(n)"
            let text = Self.content(path, "new", &random)
            try s.write(side, path, text, mtime: base + 300)
            versions[path] = [text]
        }
    }

    /// Every file under a real name on either side holds one whole version it may hold.
    func checkWholeVersions(_ s: Sandbox, after: String) {
        for root in [s.a, s.b] {
            for path in CrashTrialTests.files(under: root) where !path.split(separator: "/").last!.hasPrefix(".swunison") {
                let text = TestFiles.read(root + "/" + path) ?? ""
                #expect(versions[path]?.contains(text) == true,
                        "after \(after): \(root)/\(path) holds \(text.prefix(40))… (\(text.count) bytes): no whole version")
            }
        }
    }

    /// Each conflict converged to its newer version and its loser is in the backups.
    func checkConflicts(_ s: Sandbox, context: String) {
        let kept = Set(s.backups().map(\.1))
        for (path, versions) in conflicts {
            #expect(s.read("a", path) == versions.winner, "\(context): \(path) did not converge to the newer version")
            #expect(kept.contains(versions.loser), "\(context): the loser of \(path) is not in the backups")
        }
    }
}

extension SSHSandbox {
    /// Starts the binary in the background (output to files: no pipe that another process could
    /// hold open) and, `delay` seconds later, calls `act` every 20 ms until it returns true (it
    /// did something) or the run ends. A run still going after `timeout` is killed and reported
    /// as hung in its stderr.
    func run(timeout: TimeInterval, after delay: TimeInterval, _ act: () -> Bool) throws -> SwunisonBinary.Outcome {
        let process = try BackgroundProcess(SwunisonBinary.path, ["t"],
                                            environment: ["SWUNISON": sandbox.profiles, "HOME": sandbox.dir.path,
                                                          "SWUNISON_SSH_DIR": sshDirectory],
                                            directory: sandbox.dir.path)
        var status = process.wait(seconds: delay)
        while status == nil && !act() { status = process.wait(seconds: 0.02) }
        var note = ""
        if status == nil { status = process.wait(seconds: timeout) }
        if status == nil {
            note = "\n[test harness: stopped after \(Int(timeout)) s]\n"
            process.signal(SIGKILL)
            status = process.wait(seconds: 10)
        }
        return SwunisonBinary.Outcome(status: status ?? -1, stdout: process.stdout, stderr: process.stderr + note)
    }
}
