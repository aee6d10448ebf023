import Foundation
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// The client's stall watchdog (issue 11): a connection whose requests make no progress for the
/// stall timeout fails them all with a report of what waited, on which side, instead of waiting
/// forever; a server that is merely busy is not a stall.
@Suite struct StallWatchdogTests {
    /// Lose a streamed write's `writeEnd` (as the race of issue 11 did): client and server each
    /// wait for the other. The watchdog ends it and the report says exactly that.
    @Test(.enabled(if: swunisonBinary() != nil), .timeLimit(.minutes(1)))
    func aLostEndIsAStallThatNamesTheWriteAndBothSides() async throws {
        let server = try await ServerChild("stall", displayName: "ssh://far/x")
        let (root, client) = (server.root, server.client)
        client.core.startWatching(timeout: .seconds(2))
        client.core.testHooks.withLock {
            $0.dropFrame = { frame in if case .writeEnd = frame.message { true } else { false } }
        }
        let data = randomBytes(299_846, seed: 7)
        let started = ContinuousClock.now
        let error = await #expect(throws: ReplicaError.self) {
            try await client.writeFile(Sample.path("f"), entry: fileEntry(data), from: ArrayReader(data, chunk: 1 << 20),
                                       replacing: nil, backup: false)
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .seconds(2) && waited < .seconds(15), "stalled after \(waited)")
        guard let report = stallReport(error) else { return }
        #expect(report.contains("no progress with ssh://far/x for 2 s"), "\(report)")
        #expect(report.contains("writeFile f (request"), "\(report)")
        #expect(report.contains("we sent all 299846 bytes and the end, and wait for its reply"), "\(report)")
        #expect(report.contains("the server waits for more of its content from us (299846 bytes received)"), "\(report)")
        #expect(!report.contains("\n"))
        // Nothing else goes to a stalled connection; every later request fails at once with it.
        let later = ContinuousClock.now
        await #expect(throws: ReplicaError.self) {
            _ = try await client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                               replacing: nil, backup: false)
        }
        #expect(ContinuousClock.now - later < .seconds(1))
        // Nothing half-written is left under the real name (Invariant 1).
        #expect(!FileManager.default.fileExists(atPath: root.appending("f")))
        await client.close()
    }

    /// A server that takes longer than the timeout over one request, but says it is working on
    /// it, is waited for.
    @Test(.timeLimit(.minutes(1))) func aBusyServerIsNotAStall() async throws {
        let dir = try TemporaryDirectory("busy")
        let (client, server) = try await Self.connect(to: SlowReplica(DirectoryReplica(root: dir.path), delay: .seconds(3)),
                                                      root: dir.path, stallTimeout: .seconds(1))
        let made = try await client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                                  replacing: nil, backup: false)
        #expect(made.kind == .directory)
        await client.close()
        try await server.value
    }

    /// A server that stops answering altogether (here: stopped with SIGSTOP) is a stall, and the
    /// report says the status question went unanswered.
    @Test(.enabled(if: swunisonBinary() != nil), .timeLimit(.minutes(1)))
    func aServerThatStopsAnsweringIsAStall() async throws {
        let server = try await ServerChild("stopped", displayName: "far")
        let (child, client) = (server.stream, server.client)
        client.core.startWatching(timeout: .seconds(1))
        kill(child.pid, SIGSTOP)
        defer { kill(child.pid, SIGKILL) }
        let error = await #expect(throws: ReplicaError.self) {
            _ = try await client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                               replacing: nil, backup: false)
        }
        guard let report = stallReport(error) else { return }
        #expect(report.contains("makeDirectory d (request"), "\(report)")
        #expect(report.contains("The server did not answer a status request sent"), "\(report)")
        await client.close()
    }

    /// A server without the `status` feature cannot say it is busy: it is judged by its frames
    /// alone, and the report says why it cannot tell more.
    @Test(.timeLimit(.minutes(1))) func aServerWithoutStatusIsJudgedByItsFrames() async throws {
        let dir = try TemporaryDirectory("old")
        let (client, server) = try await Self.connect(to: SlowReplica(DirectoryReplica(root: dir.path), delay: .seconds(3)),
                                                      root: dir.path, stallTimeout: .seconds(1),
                                                      features: ProtocolVersions.features.filter { $0 != ProtocolVersions.status })
        let error = await #expect(throws: ReplicaError.self) {
            _ = try await client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                               replacing: nil, backup: false)
        }
        guard let report = stallReport(error) else { return }
        #expect(report.contains("too old to say what it was doing"), "\(report)")
        await client.close()
        _ = await server.result
    }

    /// A client and an in-process server over pipes, serving `replica`.
    static func connect(to replica: any Replica, root: String, stallTimeout: Duration,
                        features: [String] = ProtocolVersions.features) async throws -> (RemoteReplica, Task<Void, any Error>) {
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s, features: features) { _ in replica }
        let run = Task { try await server.run() }
        // The watchdog starts once connected: a test process as loaded as CI's can take longer
        // than these short timeouts to run an in-process server's first task.
        let client = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: root), displayName: "slow")
        client.core.startWatching(timeout: stallTimeout)
        return (client, run)
    }
}

/// The message of a stall, or nil (and a recorded issue) for anything else.
func stallReport(_ error: ReplicaError?) -> String? {
    guard case .stalled(let report)? = error else {
        Issue.record("expected a stall, got \(String(describing: error))")
        return nil
    }
    return report
}

/// A replica whose `makeDirectory` takes `delay` (a slow disk, a long hash).
final class SlowReplica: ForwardingReplica, @unchecked Sendable {
    let delay: Duration
    init(_ inner: any Replica, delay: Duration) { self.delay = delay; super.init(inner) }

    override func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await Task.sleep(for: delay)
        return try await super.makeDirectory(path, entry: entry, replacing: replacing, backup: backup)
    }
}
