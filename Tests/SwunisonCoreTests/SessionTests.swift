import Foundation
import Logging
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport

/// A run over two real local replicas, with hooks between the phases (Mutagen's `retweak`):
/// the interface's `review` is called after the scan and before propagation, so a test can
/// change the disk exactly there.
final class HookedInterface: SessionInterface, @unchecked Sendable {
    var onReview: (@Sendable ([PlanItem]) -> Void)?
    /// Called when both scans are done, before anything else looks at their results.
    var onScanFinished: (@Sendable () -> Void)?
    private(set) var reviews = 0
    init(onReview: (@Sendable ([PlanItem]) -> Void)? = nil) { self.onReview = onReview }
    func scanStarted() {}
    func scanFinished(a: ScanResult, b: ScanResult) { onScanFinished?() }
    func review(_ items: [PlanItem]) async -> [PlanItem]? {
        reviews += 1
        onReview?(items)
        return items
    }
    func propagated(_ path: RelativePath, bytes: Int64) {}
    func notice(_ message: String) {}
}

struct Fixture {
    let dir: TemporaryDirectory
    var a: String { dir.appending("a") }
    var b: String { dir.appending("b") }
    var state: String { dir.appending("state") }

    init(_ label: String) throws {
        dir = try TemporaryDirectory(label)
        for d in [a, b, state] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
    }

    func replica(_ root: String) throws -> LocalReplica {
        try LocalReplica(root: root, cacheDirectory: state + "/caches", backupDirectory: state + "/backup",
                         maxBackups: 2, attributes: AttributeSelection())
    }

    func run(retry: Int = 0, prefer: Prefer? = .newer, links: Bool = true,
             interface: HookedInterface = HookedInterface()) async throws -> RunSummary {
        let archive = try Archive.open(path: state + "/archive.db", roots: [a, b])
        var options = SessionOptions(reconcile: ReconcileOptions(prefer: prefer), cacheKey: "test")
        options.retry = retry
        options.links = links
        let session = Session(options: options, replicas: ReplicaPair(a: try replica(a), b: try replica(b)),
                              archive: archive, interface: interface, logger: Logger(label: "test"))
        return try await session.run()
    }
}

@Suite("Session on two local replicas")
struct SessionTests {
    @Test("a directory swapped for a symlink between scan and write: nothing is written through it, the path fails")
    func directorySwappedForASymlinkBetweenScanAndWrite() async throws {
        let f = try Fixture("core-swap")
        try TestFiles.write(f.a + "/d/keep", "k")
        try TestFiles.write(f.b + "/d/keep", "k")
        #expect(try await f.run().exitCode == 0)
        try TestFiles.write(f.a + "/d/new", "through the link?")
        let outside = f.dir.appending("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        // After the scans, before propagation: B's d becomes a symlink to a directory outside.
        let interface = HookedInterface { _ in
            try? FileManager.default.moveItem(atPath: f.b + "/d", toPath: f.dir.appending("moved-d"))
            try? FileManager.default.createSymbolicLink(atPath: f.b + "/d", withDestinationPath: outside)
        }
        let summary = try await f.run(interface: interface)
        #expect(summary.exitCode == 2)
        #expect(summary.failures.contains { $0.path.description == "d/new" }, "\(summary.failures)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.b + "/d") == outside)
    }

    @Test("links = false: a changed symlink is reported and left alone on both sides (Unison's behaviour); links = true syncs it")
    func linksFalseLeavesSymlinksAlone() async throws {
        let f = try Fixture("core-links")
        try TestFiles.write(f.a + "/file", "content")
        try FileManager.default.createSymbolicLink(atPath: f.a + "/link", withDestinationPath: "file")
        let first = try await f.run(links: false)
        #expect(first.exitCode == 2)
        #expect(first.problems.contains { $0.1.path.description == "link" && $0.1.message.contains("links = false") })
        #expect(TestFiles.read(f.b + "/file") == "content")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: f.b + "/link")) == nil)
        // Other changes still propagate; the unsynchronised symlink is reported again, and a new
        // one on B is left alone too.
        try FileManager.default.removeItem(atPath: f.a + "/file")
        try FileManager.default.createSymbolicLink(atPath: f.b + "/other", withDestinationPath: "gone")
        let second = try await f.run(links: false)
        #expect(second.problems.map(\.1.path.description).sorted() == ["link", "other"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.b + "/other") == "gone")
        // With links = true both symlinks propagate.
        let third = try await f.run(links: true)
        #expect(third.exitCode == 0)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.b + "/link") == "file")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: f.a + "/other") == "gone")
    }

    @Test("a file changed between scan and propagation is not clobbered, and the retry copies the new content")
    func changedDuringSyncIsRetried() async throws {
        let f = try Fixture("core-retweak")
        try TestFiles.write(f.a + "/doc", "first")
        #expect(try await f.run().exitCode == 0)
        try TestFiles.write(f.a + "/doc", "second", mtime: Date().timeIntervalSince1970 - 10)
        let a = f.a
        // After the plan is made, edit the source again: the copy must notice and not write "second"
        // or a mix; the retry round then copies "third".
        let hook = HookedInterface { _ in try? TestFiles.write(a + "/doc", "third!", mtime: Date().timeIntervalSince1970 - 5) }
        let summary = try await f.run(retry: 1, interface: hook)
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(TestFiles.read(f.b + "/doc") == "third!")
    }

    @Test("a source changed after the scan fails its copy before anything is created on the target (no retry: exit 2)")
    func changedSourceFailsBeforeTheTargetIsTouched() async throws {
        let f = try Fixture("core-retweak-source")
        try TestFiles.write(f.a + "/doc", "first")
        try TestFiles.write(f.a + "/new", "new file")
        #expect(try await f.run().exitCode == 0)
        try TestFiles.write(f.a + "/doc", "second", mtime: Date().timeIntervalSince1970 - 10)
        try FileManager.default.removeItem(atPath: f.b + "/new")
        try TestFiles.write(f.a + "/new", "new again", mtime: Date().timeIntervalSince1970 - 10)
        let a = f.a
        let hook = HookedInterface { _ in
            try? TestFiles.write(a + "/doc", "third!", mtime: Date().timeIntervalSince1970 - 5)
            try? TestFiles.write(a + "/new", "edited meanwhile", mtime: Date().timeIntervalSince1970 - 5)
        }
        let summary = try await f.run(retry: 0, interface: hook)
        #expect(summary.exitCode == 2)
        #expect(summary.failures.filter { $0.message.contains("changed during sync") }.count == 2, "\(summary.failures)")
        #expect(TestFiles.read(f.b + "/doc") == "first")
        #expect(!FileManager.default.fileExists(atPath: f.b + "/new"))
        // No temporary file was left (or created) beside the targets.
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.b).sorted() == ["doc"])
        #expect(try await f.run().exitCode == 0)
        #expect(TestFiles.read(f.b + "/new") == "edited meanwhile")
    }

    @Test("without retries the changed path is reported as a failure (exit 2) and the target keeps its old content")
    func changedDuringSyncWithoutRetry() async throws {
        let f = try Fixture("core-retweak2")
        try TestFiles.write(f.a + "/doc", "first")
        #expect(try await f.run().exitCode == 0)
        try TestFiles.write(f.b + "/doc", "edited on b", mtime: Date().timeIntervalSince1970 - 10)
        let b = f.b
        // The target changes after the scan: Invariant 2 forbids overwriting it.
        try TestFiles.write(f.a + "/doc", "edited on a", mtime: Date().timeIntervalSince1970 - 100)
        let hook = HookedInterface { _ in try? TestFiles.write(b + "/doc", "edited again on b") }
        let summary = try await f.run(retry: 0, interface: hook)
        #expect(summary.exitCode == 2)
        #expect(summary.failures.contains { $0.message.contains("changed during sync") }, "\(summary.failures)")
        #expect(TestFiles.read(f.b + "/doc") == "edited again on b")
        // Nothing was lost: the next run sees the new state and settles it.
        #expect(try await f.run().exitCode == 0)
        #expect(TestFiles.read(f.a + "/doc") == TestFiles.read(f.b + "/doc"))
    }

    @Test("a directory deleted on one side while the other changed inside it is restored whole (prefer = newer)")
    func deletedDirectoryVersusChangeInside() async throws {
        let f = try Fixture("core-delchange")
        for i in 1...3 { try TestFiles.write(f.a + "/d/f\(i)", "\(i)") }
        #expect(try await f.run().exitCode == 0)
        try FileManager.default.removeItem(atPath: f.a + "/d")
        try TestFiles.write(f.b + "/d/f2", "changed on b")
        let summary = try await f.run()
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(TestFiles.read(f.a + "/d/f1") == "1")
        #expect(TestFiles.read(f.a + "/d/f2") == "changed on b")
        #expect(TestFiles.read(f.a + "/d/f3") == "3")
    }

    @Test("no policy: a conflict is skipped (exit 1) and both versions stay")
    func noPolicy() async throws {
        let f = try Fixture("core-nopolicy")
        try TestFiles.write(f.a + "/x", "a")
        try TestFiles.write(f.b + "/x", "b")
        let summary = try await f.run(prefer: nil)
        #expect(summary.exitCode == 1)
        #expect(summary.skipped == 1)
        #expect(TestFiles.read(f.a + "/x") == "a" && TestFiles.read(f.b + "/x") == "b")
    }

    @Test("after a crash between cache and archive commits the next run converges (full comparison)")
    func mismatchedSnapshots() async throws {
        let f = try Fixture("core-snap")
        try TestFiles.write(f.a + "/x", "1")
        #expect(try await f.run().exitCode == 0)
        // Simulate a lost archive commit: the archive forgets its snapshot ids.
        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        try archive.commit(updates: [], snapshotA: nil, snapshotB: nil)
        try TestFiles.write(f.b + "/y", "2")
        let summary = try await f.run()
        #expect(summary.exitCode == 0)
        #expect(TestFiles.read(f.a + "/y") == "2")
        let again = try await f.run()
        #expect(again.items.isEmpty, "\(again.items)")
    }

    @Test("the first run after the upgrade to XXH3 digests propagates one-sided edits and deletions without conflicts")
    func upgradeFromSHA256Digests() async throws {
        let f = try Fixture("core-xxh3")
        for name in ["same", "gone", "edited", "d/inner"] { try TestFiles.write(f.a + "/" + name, "v1 of \(name)") }
        #expect(try await f.run().exitCode == 0)
        // Turn the state into what an older swunison left: a schema-1 archive with 32-byte
        // digests, and schema-2 caches (their rows are dropped by the migration whatever they hold).
        do {
            let archive = try Database(path: f.state + "/archive.db", role: .archive)
            try archive.execute("""
                UPDATE entries SET digest = zeroblob(32) WHERE digest IS NOT NULL;
                DELETE FROM swunison_migrations WHERE version > 1; PRAGMA user_version = 1;
                """)
            let caches = try FileManager.default.contentsOfDirectory(atPath: f.state + "/caches").filter { $0.hasSuffix(".db") }
            #expect(caches.count == 2)
            for name in caches {
                let cache = try Database(path: f.state + "/caches/" + name, role: .scanCache)
                try cache.execute("DELETE FROM swunison_migrations WHERE version > 2; PRAGMA user_version = 2;")
            }
        }
        try FileManager.default.removeItem(atPath: f.a + "/gone")
        try TestFiles.write(f.b + "/edited", "v2 of edited, longer")
        let summary = try await f.run()
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(summary.backups.allSatisfy { !$0.isConflictLoser }, "no conflict (\(summary.backups))")
        #expect(summary.items.map(\.path.description).sorted() == ["edited", "gone"], "\(summary.items)")
        #expect(!FileManager.default.fileExists(atPath: f.b + "/gone"))
        #expect(TestFiles.read(f.a + "/edited") == "v2 of edited, longer")
        #expect(TestFiles.read(f.a + "/d/inner") == "v1 of d/inner" && TestFiles.read(f.b + "/same") == "v1 of same")
        let again = try await f.run()
        #expect(again.items.isEmpty, "\(again.items)")
    }
}

@Suite("LocalReplica")
struct LocalReplicaTests {
    @Test("a second session on the same replica cache is refused until the first closes (Invariant 7)")
    func cacheLock() async throws {
        let f = try Fixture("core-cachelock")
        let first = try f.replica(f.a), second = try f.replica(f.a)
        let request = ScanRequest(cacheKey: "pair")
        _ = try await first.scan(request) { _ in }
        await #expect(throws: (any Error).self) { _ = try await second.scan(request) { _ in } }
        await first.close()
        _ = try await second.scan(request) { _ in }
        await second.close()
    }

    @Test("a missing root and a root that is a file are reported as bad roots, never as empty replicas")
    func badRoots() throws {
        let f = try Fixture("core-badroot")
        #expect(throws: ReplicaError.self) { try f.replica(f.dir.appending("nope")) }
        try TestFiles.write(f.dir.appending("file"), "x")
        #expect(throws: ReplicaError.self) { try f.replica(f.dir.appending("file")) }
    }
}
