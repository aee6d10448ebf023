import Foundation
import Synchronization
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonTestSupport

/// A replica that forwards to a real one and records how many writes overlapped.
final class CountingReplica: ForwardingReplica, @unchecked Sendable {
    private let counts = Mutex<(now: Int, peak: Int)>((0, 0))
    var peakConcurrentWrites: Int { counts.withLock { $0.peak } }

    override func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                            backup: Bool) async throws -> Entry {
        counts.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        defer { counts.withLock { $0.now -= 1 } }
        // Hold the slot a little, so that overlapping writes would be seen.
        try await Task.sleep(for: .milliseconds(20))
        return try await inner.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
    }

    /// A batch counts as its files.
    override func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        counts.withLock { $0.now += writes.count; $0.peak = max($0.peak, $0.now) }
        defer { counts.withLock { $0.now -= writes.count } }
        try await Task.sleep(for: .milliseconds(20))
        return try await inner.writeFiles(writes)
    }
}

@Suite("Propagation limits")
struct PropagatorLimitsTests {
    @Test("file content in flight is bounded: large files run a few at a time, small ones many at once")
    func bytesInFlightAreBounded() async throws {
        let f = try Fixture("core-bytes-in-flight")
        let big = String(repeating: "x", count: 3 << 20)
        for i in 0..<6 { try TestFiles.write(f.a + "/big\(i)", big) }
        for i in 0..<40 { try TestFiles.write(f.a + "/small\(i)", "s\(i)") }

        let a = try f.replica(f.a), b = CountingReplica(try f.replica(f.b))
        // A full scan of A gives each file's entry with its digest; one plan item per file, as
        // reconcile makes them for new files on A.
        let seen = Mutex<[ScanChange]>([])
        _ = try await a.scan(ScanRequest(cacheKey: "limits-a")) { batch in seen.withLock { $0 += batch } }
        let changes = seen.withLock { $0 }.filter { $0.new?.kind == .file }
        let plan = changes.map { c in
            PlanItem(state: PathState(path: c.path, archive: nil, a: c.new, b: nil),
                     decision: .propagate(from: .a), changeA: .new(.file), changeB: .unchanged)
        }
        let bigs = plan.filter { $0.path.description.hasPrefix("big") }
        let smallItems = plan.filter { $0.path.description.hasPrefix("small") }
        #expect(bigs.count == 6 && smallItems.count == 40)

        // 64 operations may run at once, but only 7 MiB of content.
        func propagator(to target: any Replica) -> Propagator {
            var options = PropagationOptions(attributes: AttributeSelection(), maxConcurrentOperations: 64)
            options.maxBytesInFlight = 7 << 20
            return Propagator(replicas: ReplicaPair(a: a, b: target), options: options)
        }
        let bigOnly = propagator(to: b)
        let result = await bigOnly.run(bigs)
        #expect(result.failures.isEmpty, "\(result.failures)")
        // 3 MiB each against a 7 MiB budget: at most two at once.
        #expect(b.peakConcurrentWrites == 2)

        let smalls = CountingReplica(try f.replica(f.b))
        let many = propagator(to: smalls)
        let second = await many.run(smallItems)
        #expect(second.failures.isEmpty, "\(second.failures)")
        #expect(smalls.peakConcurrentWrites > 2)
        #expect(TestFiles.read(f.b + "/big5") == big && TestFiles.read(f.b + "/small39") == "s39")
        await a.close(); await b.close()
    }
}

/// A replica whose disk is "full" while any other write is in flight: a write that overlaps
/// another fails with `ENOSPC`, one on its own succeeds (or always fails, for `alwaysFull`).
final class CrowdedDiskReplica: ForwardingReplica, @unchecked Sendable {
    private let state = Mutex<(inFlight: Int, attempts: [String: Int])>((0, [:]))
    let alwaysFull: Set<String>
    init(_ inner: any Replica, alwaysFull: Set<String> = []) {
        self.alwaysFull = alwaysFull
        super.init(inner)
    }
    func attempts(_ name: String) -> Int { state.withLock { $0.attempts[name, default: 0] } }

    private func enter(_ path: RelativePath) -> Bool {
        state.withLock { s in
            s.inFlight += 1
            s.attempts[path.description, default: 0] += 1
            return s.inFlight > 1 || alwaysFull.contains(path.description)
        }
    }

    override func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                            backup: Bool) async throws -> Entry {
        let full = enter(path)
        defer { state.withLock { $0.inFlight -= 1 } }
        try await Task.sleep(for: .milliseconds(50))
        if full { throw ReplicaError.system(path: path, operation: "write", errno: ENOSPC, message: "No space left on device") }
        return try await inner.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
    }
}

@Suite("Propagation on a full disk")
struct PropagatorOutOfSpaceTests {
    @Test("copies that found the disk full beside others get one more try alone; a copy that never fits fails")
    func outOfSpaceCopiesAreRetriedAloneOnce() async throws {
        let f = try Fixture("core-out-of-space")
        // Large enough not to go in a batch: each is a writeFile of its own.
        for i in 0..<4 { try TestFiles.write(f.a + "/f\(i)", String(repeating: "\(i)", count: 200 << 10)) }
        let a = try f.replica(f.a), b = CrowdedDiskReplica(try f.replica(f.b), alwaysFull: ["f3"])
        let seen = Mutex<[ScanChange]>([])
        _ = try await a.scan(ScanRequest(cacheKey: "out-of-space-a")) { batch in seen.withLock { $0 += batch } }
        let plan = seen.withLock { $0 }.filter { $0.new?.kind == .file }.map { c in
            PlanItem(state: PathState(path: c.path, archive: nil, a: c.new, b: nil),
                     decision: .propagate(from: .a), changeA: .new(.file), changeB: .unchanged)
        }
        #expect(plan.count == 4)
        let propagator = Propagator(replicas: ReplicaPair(a: a, b: b),
                                    options: PropagationOptions(attributes: AttributeSelection(), maxConcurrentOperations: 8))
        let result = await propagator.run(plan)
        // All four ran at once; all but the first found the disk full. f0-f2 fit on their own.
        #expect(result.failures.map(\.path.description) == ["f3"], "\(result.failures)")
        #expect(result.failures.first?.message.contains("No space left on device") == true)
        for i in 0..<3 {
            #expect(TestFiles.read(f.b + "/f\(i)") == String(repeating: "\(i)", count: 200 << 10))
        }
        #expect((0..<3).map { b.attempts("f\($0)") }.reduce(0, +) == 5)
        // Tried twice, never more.
        #expect(b.attempts("f3") == 2)
        #expect(!TestFiles.exists(f.b + "/f3"))
        await a.close(); await b.close()
    }
}
