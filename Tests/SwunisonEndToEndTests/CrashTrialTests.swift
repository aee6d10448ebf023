import Foundation
import SwunisonTestSupport
import Testing

/// Crash injection (issue 13): random changes on both sides, then a run that kills itself
/// (SIGKILL, `SWUNISON_CRASH_AT=N`, read by debug builds only) at the N-th change to a replica or
/// commit. After each crash: every file holds one whole version (old or new, never a mix), no
/// temporary file sits under a real name, the next run converges with every conflict loser in
/// the backups, and the run after it has nothing to do.
///
/// `SWUNISON_CRASH_TRIALS` sets the number of trials (default 50; the soak runs 500), and
/// `SWUNISON_CRASH_SEED` the first seed.
@Suite("crash injection")
struct CrashTrialTests {
    static var trials: Int { ProcessInfo.processInfo.environment["SWUNISON_CRASH_TRIALS"].flatMap(Int.init) ?? 50 }
    static var firstSeed: UInt64 { ProcessInfo.processInfo.environment["SWUNISON_CRASH_SEED"].flatMap(UInt64.init) ?? 1 }

    @Test(.timeLimit(.minutes(15)))
    func killedAtARandomChangeLosesNothingAndConverges() throws {
        var crashed = 0
        for trial in 0..<Self.trials {
            let seed = Self.firstSeed + UInt64(trial)
            if try Self.runTrial(seed: seed) { crashed += 1 }
        }
        print("crash injection: \(crashed) of \(Self.trials) runs killed mid-run (seeds \(Self.firstSeed)...\(Self.firstSeed + UInt64(Self.trials) - 1))")
        // Most trials must really crash mid-run, or the test proves little.
        #expect(crashed * 2 >= Self.trials, "only \(crashed) of \(Self.trials) trials crashed")
    }

    /// One trial; returns whether the run was killed.
    static func runTrial(seed: UInt64) throws -> Bool {
        var random = SplitMix(seed: seed)
        let s = try Sandbox("crash-\(seed)")
        try s.profile("t", ["batch = true", "prefer = newer", "maxbackups = 3"])
        // A tree both sides share after a first sync.
        var versions: [String: Set<String>] = [:]  // path -> every content it may hold
        func content(_ path: String, _ tag: String) -> String {
            "\(path) \(tag) " + String(repeating: "x", count: Int(random.next() % 3000))
        }
        let base = Date().timeIntervalSince1970 - 1000
        for d in 0..<3 {
            for f in 0..<6 {
                let path = "d\(d)/f\(f)"
                let text = content(path, "old")
                try s.write("a", path, text, mtime: base)
                try s.write("b", path, text, mtime: base)
                versions[path] = [text]
            }
        }
        let first = try s.run(["t"])
        guard first.status == 0 else { Issue.record("seed \(seed): first run \(first)"); return false }

        // Random changes on both sides: edits (some of the same file on both: conflicts),
        // deletions, new files, a new directory.
        var conflicts: [String: (loser: String, winner: String)] = [:]
        for path in versions.keys.sorted() {
            switch random.next() % 6 {
            case 0:
                let text = content(path, "A")
                try s.write("a", path, text, mtime: base + 100)
                versions[path]!.insert(text)
            case 1:
                let text = content(path, "B")
                try s.write("b", path, text, mtime: base + 100)
                versions[path]!.insert(text)
            case 2:
                let older = content(path, "A-old"), newer = content(path, "B-new")
                try s.write("a", path, older, mtime: base + 100)
                try s.write("b", path, newer, mtime: base + 200)
                versions[path]!.formUnion([older, newer])
                conflicts[path] = (older, newer)
            case 3:
                try FileManager.default.removeItem(atPath: s.a + "/" + path)
            default:
                break
            }
        }
        for n in 0..<Int(random.next() % 5) {
            let side = n % 2 == 0 ? "a" : "b"
            let path = "new\(side)/n\(n)"
            let text = content(path, "new")
            try s.write(side, path, text, mtime: base + 300)
            versions[path] = [text]
        }

        // The run that dies at a random change or commit.
        let crashAt = 1 + Int(random.next() % 150)
        let killed = try SwunisonBinary.run(["t"], environment: ["SWUNISON": s.profiles, "HOME": s.dir.path,
                                                                 "SWUNISON_CRASH_AT": "\(crashAt)"])
        let didCrash = killed.status == 9 || killed.status == 137
        try checkWholeVersions(s, versions, seed: seed, after: "the crash at \(crashAt)")

        // The next run converges; the one after has nothing to do.
        let next = try s.run(["t"])
        #expect(next.status == 0, "seed \(seed), crash at \(crashAt): \(next)")
        let after = try s.run(["t"])
        #expect(after.status == 0 && after.stdout.contains("Nothing to do"), "seed \(seed), crash at \(crashAt): \(after)")
        #expect(s.inStep, "seed \(seed), crash at \(crashAt): the trees differ")
        try checkWholeVersions(s, versions, seed: seed, after: "convergence")
        for root in [s.a, s.b] {
            #expect(temporaryFiles(under: root).isEmpty, "seed \(seed): temporary files left in \(root)")
        }
        // Every conflict's loser is kept.
        let kept = Set(s.backups().map(\.1))
        for (path, versions) in conflicts {
            #expect(s.read("a", path) == versions.winner, "seed \(seed): \(path) did not converge to the newer version")
            #expect(kept.contains(versions.loser), "seed \(seed), crash at \(crashAt): the loser of \(path) is not in the backups")
        }
        return didCrash
    }

    /// Every file under a real name holds one whole version it may hold.
    static func checkWholeVersions(_ s: Sandbox, _ versions: [String: Set<String>], seed: UInt64, after: String) throws {
        for root in [s.a, s.b] {
            for path in files(under: root) where !path.split(separator: "/").last!.hasPrefix(".swunison.") {
                let text = TestFiles.read(root + "/" + path) ?? ""
                #expect(versions[path]?.contains(text) == true,
                        "seed \(seed), after \(after): \(root)/\(path) holds \(text.prefix(40))… (\(text.count) bytes): no whole version")
            }
        }
    }

    static func files(under root: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: root)
        var out: [String] = []
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                out.append(path)
            }
        }
        return out
    }

    static func temporaryFiles(under root: String) -> [String] {
        files(under: root).filter { $0.split(separator: "/").last!.hasPrefix(".swunison.") }
    }
}

/// A small seeded generator (SplitMix64), so that a failing trial can be replayed by its seed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
