import Foundation
import Logging
import Synchronization
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport

/// A replica that forwards to a real one, records the batches it is given, and can fail a
/// cache commit.
final class RecordingReplica: ForwardingReplica, @unchecked Sendable {
    private let log = Mutex<(readBatches: [Int], writeBatches: [Int], singleWrites: Int)>(([], [], 0))
    var readBatches: [Int] { log.withLock { $0.readBatches } }
    var writeBatches: [Int] { log.withLock { $0.writeBatches } }
    var singleWrites: Int { log.withLock { $0.singleWrites } }
    let failCommit: Bool

    init(_ inner: any Replica, failCommit: Bool = false) {
        self.failCommit = failCommit
        super.init(inner)
    }

    override func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        log.withLock { $0.readBatches.append(requests.count) }
        return try await inner.readFiles(requests)
    }
    override func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        log.withLock { $0.writeBatches.append(writes.count) }
        return try await inner.writeFiles(writes)
    }
    override func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                            backup: Bool) async throws -> Entry {
        log.withLock { $0.singleWrites += 1 }
        return try await inner.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
    }
    override func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        if failCommit { throw ReplicaError.other("test: the cache commit fails") }
        try await inner.commitBaseline(updates, snapshot: snapshot)
    }
}

private func path(_ text: String) -> RelativePath { try! RelativePath(validating: text) }

/// Every entry a full scan of `replica` reports, by path.
private func scanned(_ replica: any Replica, key: String) async throws -> [RelativePath: Entry] {
    let seen = Mutex<[RelativePath: Entry]>([:])
    _ = try await replica.scan(ScanRequest(cacheKey: key)) { batch in
        seen.withLock { for c in batch { if let e = c.new { $0[c.path] = e } } }
    }
    return seen.withLock { $0 }
}

@Suite("Small files copied in batches")
struct BatchCopyTests {
    @Test("LocalReplica.writeFiles: one result per file, in order; a bad file fails alone and leaves nothing")
    func localWriteFilesReportsEachFile() async throws {
        let f = try Fixture("core-batch-write")
        try FileManager.default.createDirectory(atPath: f.a + "/d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: f.b + "/d", withIntermediateDirectories: true)
        for name in ["d/1", "d/2", "d/3", "d/4"] { try TestFiles.write(f.a + "/" + name, "content of \(name)") }
        try TestFiles.write(f.b + "/d/3", "already here")
        let a = try f.replica(f.a), b = try f.replica(f.b)
        let entries = try await scanned(a, key: "batch-a")

        var writes = try ["d/1", "d/2", "d/3", "d/4", "missing/5"].map { name -> FileWrite in
            let source = try #require(entries[path(name == "missing/5" ? "d/1" : name)])
            return FileWrite(path: path(name), entry: source, content: Array((TestFiles.read(f.a + "/" + (name == "missing/5" ? "d/1" : name)) ?? "").utf8),
                             replacing: nil, backup: false)
        }
        writes[1].content = Array("not what the digest says".utf8)
        let results = try await b.writeFiles(writes)

        #expect(results.count == 5)
        #expect((try? results[0].get())?.digest == writes[0].entry.digest)
        #expect(TestFiles.read(f.b + "/d/1") == "content of d/1")
        guard case .failure(.digestMismatch(let p)) = results[1] else { Issue.record("\(results[1])"); return }
        #expect(p == path("d/2") && !TestFiles.exists(f.b + "/d/2"))
        // Something appeared where a new file was to go: never clobbered.
        guard case .failure(.changedDuringSync) = results[2] else { Issue.record("\(results[2])"); return }
        #expect(TestFiles.read(f.b + "/d/3") == "already here")
        #expect(TestFiles.read(f.b + "/d/4") == "content of d/4")
        guard case .failure(.system) = results[4] else { Issue.record("\(results[4])"); return }
        let left = try FileManager.default.contentsOfDirectory(atPath: f.b + "/d").sorted()
        #expect(left == ["1", "3", "4"])
        await a.close(); await b.close()
    }

    @Test("LocalReplica.readFiles: contents in order; a file changed since the scan fails alone")
    func localReadFilesChecksEachFile() async throws {
        let f = try Fixture("core-batch-read")
        for i in 0..<3 { try TestFiles.write(f.a + "/f\(i)", String(repeating: "\(i)", count: 1000 * (i + 1))) }
        let a = try f.replica(f.a)
        let entries = try await scanned(a, key: "batch-read")
        try TestFiles.write(f.a + "/f1", "rewritten", mtime: Date().timeIntervalSince1970 + 100)
        let requests = try (0..<3).map { FileReadRequest(path: path("f\($0)"), expected: try #require(entries[path("f\($0)")])) }
            + [FileReadRequest(path: path("gone"), expected: try #require(entries[path("f0")]))]
        let results = try await a.readFiles(requests)

        #expect(results.count == 4)
        #expect((try? results[0].get()) == Array(String(repeating: "0", count: 1000).utf8))
        guard case .failure(.changedDuringSync(let p)) = results[1] else { Issue.record("\(results[1])"); return }
        #expect(p == path("f1"))
        #expect((try? results[2].get()) == Array(String(repeating: "2", count: 3000).utf8))
        guard case .failure(.changedDuringSync) = results[3] else { Issue.record("\(results[3])"); return }
        await a.close()
    }

    @Test("propagation copies small files in batches and large ones on their own; a changed source fails only its file")
    func propagatorBatchesSmallCopies() async throws {
        let f = try Fixture("core-batch-propagate")
        for d in 0..<3 {
            try FileManager.default.createDirectory(atPath: f.a + "/d\(d)", withIntermediateDirectories: true)
            for i in 0..<50 { try TestFiles.write(f.a + "/d\(d)/f\(i)", "file \(d)/\(i)") }
        }
        let large = String(repeating: "L", count: 300 << 10)
        try TestFiles.write(f.a + "/d0/large", large)

        let a = RecordingReplica(try f.replica(f.a)), b = RecordingReplica(try f.replica(f.b))
        let entries = try await scanned(a, key: "propagate-a")
        // One item per path as reconcile makes them for new paths on A: directories first.
        let items = entries.keys.sorted { RelativePath.compare($0.bytes, $1.bytes) < 0 }.map { p in
            PlanItem(state: PathState(path: p, archive: nil, a: entries[p]!, b: nil),
                     decision: .propagate(from: .a), changeA: .new(entries[p]!.kind), changeB: .unchanged)
        }
        // Changed after the scan: its copy must fail, the others not.
        try TestFiles.write(f.a + "/d1/f7", "changed", mtime: Date().timeIntervalSince1970 + 100)

        var options = PropagationOptions(attributes: AttributeSelection(), maxConcurrentOperations: 256)
        options.maxBytesInFlight = 64 << 20
        let result = await Propagator(replicas: ReplicaPair(a: a, b: b), options: options).run(items)

        #expect(result.failures.map(\.path) == [path("d1/f7")])
        #expect(result.failures.first?.isRetryable == true)
        #expect(result.succeeded.count == entries.count - 1)
        #expect(TestFiles.read(f.b + "/d2/f49") == "file 2/49" && TestFiles.read(f.b + "/d0/large") == large)
        #expect(!TestFiles.exists(f.b + "/d1/f7"))
        // 150 small files in batches of at most 32 (256 / 8), the large one on its own.
        #expect(b.writeBatches.reduce(0, +) == 149)
        #expect(b.writeBatches.count >= 5 && b.writeBatches.allSatisfy { $0 <= 32 })
        #expect(a.readBatches.reduce(0, +) == 150)
        #expect(b.singleWrites == 1)
        await a.close(); await b.close()
    }

    @Test("the archive is written while the caches commit but not committed when a cache commit fails")
    func archiveWaitsForTheCaches() async throws {
        let f = try Fixture("core-commit-gate")
        for i in 0..<20 { try TestFiles.write(f.a + "/f\(i)", "f\(i)") }
        func session(failingB: Bool) throws -> Session {
            let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
            let replicas = ReplicaPair(a: try f.replica(f.a), b: RecordingReplica(try f.replica(f.b), failCommit: failingB))
            return Session(options: SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "test"),
                           replicas: replicas, archive: archive, interface: HookedInterface(), logger: Logger(label: "test"))
        }
        await #expect(throws: (any Error).self) { _ = try await session(failingB: true).run() }
        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        let before = try archive.snapshots
        #expect(before.a == nil && before.b == nil)
        var rows = try archive.cursor(under: [])
        #expect(try rows.next() == nil)

        // The files did arrive; the next run finds them equal and records them.
        #expect(TestFiles.read(f.b + "/f19") == "f19")
        let summary = try await session(failingB: false).run()
        #expect(summary.failed == 0)
        let after = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        let snapshots = try after.snapshots
        #expect(snapshots.a != nil && snapshots.b != nil)
    }
}
