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

/// Batch runs make a remote replica's first connection while the other replica is scanned
/// (`ReconnectingReplica(connecting:)`); these tests use a real LocalReplica behind it.
@Suite("First connection made during the other side's scan")
struct FirstConnectionTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "host key for 127.0.0.1 changed: refused" }
    }

    func session(_ f: Fixture, b: any Replica) throws -> Session {
        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        return Session(options: SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "test"),
                       replicas: ReplicaPair(a: try f.replica(f.a), b: b),
                       archive: archive, interface: HookedInterface(), logger: Logger(label: "test"))
    }

    @Test("calls wait for the connection being made; it is made once and used by every call")
    func callsWaitForTheFirstConnection() async throws {
        let f = try Fixture("first-connection-ok")
        try TestFiles.write(f.a + "/x", "from a")
        try TestFiles.write(f.b + "/y", "from b")
        let connecting = Task { () async throws -> any Replica in
            try await Task.sleep(for: .milliseconds(200))  // slower than A's scan
            return try f.replica(f.b)
        }
        let reconnects = Atomic<Int>(0)
        let b = ReconnectingReplica(displayName: "b", connecting: connecting) {
            reconnects.add(1, ordering: .relaxed)
            return try f.replica(f.b)
        }
        let summary = try await session(f, b: b).run()
        await b.close()
        #expect(summary.exitCode == 0)
        #expect(TestFiles.read(f.b + "/x") == "from a")
        #expect(TestFiles.read(f.a + "/y") == "from b")
        #expect(reconnects.load(ordering: .relaxed) == 0)
    }

    @Test("a failed first connection stops the run with its own error, is never retried, and B is untouched")
    func failedFirstConnectionIsFatalAndNotRetried() async throws {
        let f = try Fixture("first-connection-refused")
        try TestFiles.write(f.a + "/x", "from a")
        let connecting = Task { () async throws -> any Replica in throw Refused() }
        let reconnects = Atomic<Int>(0)
        let b = ReconnectingReplica(displayName: "b", connecting: connecting, maxAttempts: 3, initialDelay: .milliseconds(1)) {
            reconnects.add(1, ordering: .relaxed)
            return try f.replica(f.b)
        }
        let s = try session(f, b: b)
        await #expect {
            _ = try await s.run()
        } throws: { error in
            guard let failure = error as? FirstConnectionFailure else { return false }
            return failure.underlying is Refused && "\(failure)" == "host key for 127.0.0.1 changed: refused"
        }
        // Every later call fails the same way, without reconnecting.
        await #expect(throws: FirstConnectionFailure.self) {
            _ = try await b.remove(RelativePath(validating: "x"), expected: Entry(kind: .file), backup: true)
        }
        #expect(reconnects.load(ordering: .relaxed) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.b).isEmpty)
        var archived = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b]).cursor()
        #expect(try archived.next() == nil)
        await b.close()
    }
}
