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

/// A replica whose link breaks once, in the scan or in the commit (as `ReconnectingReplica`
/// reports it: `ReplicaError.connection`; its next call would reconnect).
final class LinkLostOnce: ForwardingReplica, @unchecked Sendable {
    enum Phase { case scan, commit }
    let phase: Phase
    private let lost = Mutex(false)
    init(_ inner: any Replica, in phase: Phase) { self.phase = phase; super.init(inner) }

    private func loseOnce(_ now: Phase) throws {
        guard now == phase else { return }
        let first = lost.withLock { wasLost in
            defer { wasLost = true }
            return !wasLost
        }
        guard first else { return }
        throw ReplicaError.connection("connection to b lost: the peer closed the connection: end of stream")
    }
    override func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        try loseOnce(.scan)
        return try await super.scan(request, sink: sink)
    }
    override func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        try loseOnce(.commit)
        try await super.commitBaseline(updates, snapshot: snapshot)
    }
}

@Suite("A round that loses its connection")
struct LostRoundTests {
    func run(_ f: Fixture, retry: Int, losing phase: LinkLostOnce.Phase?) async throws -> RunSummary {
        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        var options = SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "test")
        options.retry = retry
        let b: any Replica = try phase.map { LinkLostOnce(try f.replica(f.b), in: $0) } ?? f.replica(f.b)
        let session = Session(options: options, replicas: ReplicaPair(a: try f.replica(f.a), b: b),
                              archive: archive, interface: HookedInterface(), logger: Logger(label: "test"))
        return try await session.run()
    }

    @Test("lost in the scan or the commit: retry runs the round again and it completes (exit 0)",
          arguments: [LinkLostOnce.Phase.scan, .commit])
    func retried(_ phase: LinkLostOnce.Phase) async throws {
        let f = try Fixture("core-lost-\(phase)")
        try TestFiles.write(f.a + "/x", "1")
        #expect(try await run(f, retry: 0, losing: nil).exitCode == 0)
        try TestFiles.write(f.a + "/x", "2")
        try TestFiles.write(f.b + "/y", "3")
        let summary = try await run(f, retry: 1, losing: phase)
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(summary.transferred == 2)
        #expect(TestFiles.read(f.b + "/x") == "2" && TestFiles.read(f.a + "/y") == "3")
        let again = try await run(f, retry: 0, losing: nil)
        #expect(again.items.isEmpty, "\(again.items)")
    }

    @Test("lost in the scan or the commit without retry: the run stops with the connection's error; the next converges",
          arguments: [LinkLostOnce.Phase.scan, .commit])
    func notRetried(_ phase: LinkLostOnce.Phase) async throws {
        let f = try Fixture("core-lost-stop-\(phase)")
        try TestFiles.write(f.a + "/x", "1")
        #expect(try await run(f, retry: 0, losing: nil).exitCode == 0)
        try TestFiles.write(f.a + "/x", "2")
        await #expect(throws: ReplicaError.self) { try await run(f, retry: 0, losing: phase) }
        #expect(try await run(f, retry: 0, losing: nil).exitCode == 0)
        #expect(TestFiles.read(f.b + "/x") == "2")
        #expect(try await run(f, retry: 0, losing: nil).items.isEmpty)
    }
}

@Suite("Reconnection after a lost link")
struct ReconnectionTests {
    /// A connection that is gone: every commit fails as a lost link does.
    final class Gone: ForwardingReplica, @unchecked Sendable {
        override func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
            throw ReplicaError.connection("connection to b lost")
        }
    }

    @Test("the calls in flight when a link drops share one new connection")
    func concurrentCallsShareOneReconnection() async throws {
        let f = try Fixture("reconnect-once")
        let connects = Atomic<Int>(0)
        let b = ReconnectingReplica(displayName: "b", initial: Gone(try f.replica(f.b)), maxAttempts: 1,
                                    initialDelay: .milliseconds(1)) {
            connects.add(1, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(100))  // a connection takes a while to make
            return try f.replica(f.b)
        }
        await #expect(throws: ReplicaError.self) { try await b.commitBaseline([], snapshot: 1) }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { _ = try? await b.commitBaseline([], snapshot: 1) } }
        }
        await b.close()
        #expect(connects.load(ordering: .relaxed) == 1)
    }
}
