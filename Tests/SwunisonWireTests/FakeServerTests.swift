import Foundation
import Logging
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// A whole run (Session, LocalReplica A, RemoteReplica B) against a fake, hostile server that
/// answers the scan with a path meant to escape the root (Invariant 5). The client must stop
/// with an error that says so, and nothing may change on either side of A's root.
@Suite struct FakeServerTests {
    /// Encodes a scan batch holding one file named `placeholder`, then overwrites those bytes
    /// with `hostile` (same length), as a malicious server would send it: the encoder itself
    /// refuses such paths, so they can only be forged.
    static func forgedScanBatch(id: UInt64, hostile: String) throws -> [UInt8] {
        let placeholder = String(repeating: "q", count: hostile.utf8.count)
        let entry = Entry(kind: .file, size: 1, mtime: 1_700_000_000_000_000_000, mode: 0o644,
                          digest: SHA256Sample.one)
        var bytes = try FrameEncoder().encode(Frame(id, .scanBatch([
            ScanChange(path: try RelativePath(validating: placeholder), old: nil, new: entry),
        ])))
        let needle = Array(placeholder.utf8)
        let start = try #require((0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
        bytes.replaceSubrange(start..<(start + needle.count), with: Array(hostile.utf8))
        return bytes
    }

    @Test(arguments: ["..", "../escaped", "/etc/passwd", "a/../../escaped", "ok/./x", "a//b"])
    func aHostileScanPathStopsTheRunAndTouchesNothing(hostile: String) async throws {
        let run = try await Self.runAgainstFakeServer(options: Self.options()) { id in
            try Self.forgedScanBatch(id: id, hostile: hostile)
        }
        #expect(run.error.contains("hostile path"), "\(run.error)")
        try run.expectNothingChanged()
    }

    /// Paths an honest scan never reports, in a well-formed reply: each stops the run before
    /// anything changes (`SessionError.outOfScope`), the directories' modes included.
    @Test(arguments: [
        (["Path .ssh"], [], [".ssh", ".ssh/authorized_keys2"]),
        (["Path .ssh"], [], [".ssh/rc"]),
        (["Name *.tmp"], [], ["x.tmp"]),
        (["BelowPath secret"], [], ["secret/deep/file"]),
        ([], ["docs"], ["docs", "docs/a", "other"]),
        ([], [], [".swunison.123.abc.tmp"]),
        ([], [], ["d", "d/.swunison.9.x.tmp/inner"]),
    ] as [([String], [String], [String])])
    func anOutOfScopePathStopsTheRunAndTouchesNothing(ignore: [String], paths: [String], reported: [String]) async throws {
        var options = Self.options()
        options.ignore = ignore
        options.paths = try paths.map { try RelativePath(validating: $0) }
        let changes = try reported.map { path in
            ScanChange(path: try RelativePath(validating: path), old: nil,
                       new: path == reported.last ? Entry(kind: .file, size: 1, mtime: 1_700_000_000_000_000_000, mode: 0o644,
                                                          digest: SHA256Sample.one)
                                                  : Entry(kind: .directory, mode: 0o755))
        }
        let run = try await Self.runAgainstFakeServer(options: options) { id in
            try FrameEncoder().encode(Frame(id, .scanBatch(changes)))
        }
        #expect(reported.contains { run.error.contains("reported \($0), which is") }, "\(run.error)")
        #expect(run.error.contains("Nothing was changed"), "\(run.error)")
        try run.expectNothingChanged()
    }

    /// A server that streams a file past its size, or past the read window without waiting for
    /// credit: the client cuts the stream off (the file changed, or the server is hostile)
    /// instead of buffering without bound.
    @Test(.timeLimit(.minutes(1)), arguments: [(Int64(10), 2, "changed during sync"), (Int64(1) << 30, 80, "more than its read window")])
    func aServerStreamingPastTheSizeOrTheWindowIsCutOff(size: Int64, chunks: Int, expected: String) async throws {
        let server = try await FakeServer.start { peer, frame in
            guard case .openFile = frame.message else { return }
            try peer.send(Frame(frame.requestID, .ok))
            let chunk = [UInt8](repeating: 1, count: 64 << 10)
            for _ in 0..<chunks { try peer.send(Frame(frame.requestID, .fileChunk(chunk))) }
        }
        defer { server.stop() }
        let remote = server.remote
        var entry = Entry(kind: .file, size: size, mtime: 1_700_000_000_000_000_000, mode: 0o644)
        entry.digest = SHA256Sample.one
        let reader = try await remote.openFile(try RelativePath(validating: "f"), expected: entry)
        try await Task.sleep(for: .milliseconds(500))  // every chunk has arrived, none read yet
        let error = await #expect(throws: ReplicaError.self) {
            while try await reader.read() != nil {}
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains(expected), "\(String(describing: error))")
        await reader.close()
    }

    static func options() -> SessionOptions {
        SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "fake")
    }

    /// What a run against the fake server left.
    struct FakeRun {
        let error: String
        let dir: TemporaryDirectory
        let rootA: String
        let rootMode: mode_t
        let archive: Archive

        /// A holds exactly what it held, with the same mode, nothing appeared beside it, and
        /// the archive recorded nothing.
        func expectNothingChanged() throws {
            #expect(try FileManager.default.contentsOfDirectory(atPath: rootA) == ["keep"])
            #expect(TestFiles.read(rootA + "/keep") == "kept")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a", "state"])
            var st = stat()
            #expect(stat(rootA, &st) == 0 && st.st_mode & 0o7777 == rootMode)
            #expect(try archive.isEmpty)
        }
    }

    /// Runs a session (local A, B behind a fake server that handshakes and opens as a real one
    /// would, then answers the scan with `scanReply(requestID)`'s bytes).
    static func runAgainstFakeServer(options: SessionOptions,
                                     scanReply: @escaping @Sendable (UInt64) throws -> [UInt8]) async throws -> FakeRun {
        let dir = try TemporaryDirectory("wire-fake-server")
        let rootA = dir.appending("a"), state = dir.appending("state")
        for d in [rootA, state] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        chmod(rootA, 0o750)
        try TestFiles.write(rootA + "/keep", "kept")

        let server = try await FakeServer.start { peer, frame in
            if case .scan = frame.message {
                try peer.sendRaw(try scanReply(frame.requestID))
                try peer.send(Frame(frame.requestID, .scanDone(ScanResult(isDelta: false, entryCount: 1, problems: []))))
            } else {
                try peer.send(Frame(frame.requestID, .failure(.other("fake server: no \(frame.message.name)"))))
            }
        }
        defer { server.stop() }
        let remote = server.remote
        let local = try LocalReplica(root: rootA, cacheDirectory: state + "/caches", backupDirectory: state + "/backup",
                                     maxBackups: 1, attributes: AttributeSelection())
        let archive = try Archive.open(path: state + "/archive.db", roots: [rootA, "fake"])
        let session = Session(options: options, replicas: ReplicaPair(a: local, b: remote), archive: archive,
                              interface: SilentInterface(), logger: Logger(label: "test"))
        let error = await #expect(throws: (any Error).self) { _ = try await session.run() }
        await local.close()
        return FakeRun(error: error.map { "\($0)" } ?? "", dir: dir, rootA: rootA, rootMode: 0o750, archive: archive)
    }
}

/// A fake server over pipes: it handshakes and opens as a real one would and hands every other
/// request to `answer`; `remote` is the real client connected to it.
final class FakeServer: @unchecked Sendable {
    let remote: RemoteReplica
    private let serverEnd: FileDescriptorStream
    private let task: Task<Void, any Error>

    private init(remote: RemoteReplica, serverEnd: FileDescriptorStream, task: Task<Void, any Error>) {
        self.remote = remote; self.serverEnd = serverEnd; self.task = task
    }

    static func start(answer: @escaping @Sendable (RawPeer, Frame) throws -> Void) async throws -> FakeServer {
        let (clientEnd, serverEnd) = try PipeStream.pair()
        let peer = RawPeer(stream: serverEnd)
        let task = Task {
            try await onThread { () throws -> Void in
                while let frame = try peer.next() {
                    switch frame.message {
                    case .hello:
                        try peer.send(Frame(frame.requestID, .hello(Hello(versions: ProtocolVersions.supported,
                                                                    features: ProtocolVersions.features))))
                    case .open:
                        try peer.send(Frame(frame.requestID, .ok))
                    default:
                        try answer(peer, frame)
                    }
                }
            }
        }
        do {
            let remote = try await RemoteReplica.connect(over: clientEnd, spec: ReplicaSpec(root: "/srv/fake"),
                                                         displayName: "fake-server")
            return FakeServer(remote: remote, serverEnd: serverEnd, task: task)
        } catch {
            serverEnd.close(); task.cancel()
            throw error
        }
    }

    func stop() { serverEnd.close(); task.cancel() }
}

/// Digests used by the forged entries (content never travels in these tests).
enum SHA256Sample {
    static let one = Digest(w0: 1, w1: 2)
}

/// A SessionInterface that accepts every plan and prints nothing.
final class SilentInterface: SessionInterface, @unchecked Sendable {
    func scanStarted() {}
    func scanFinished(a: ScanResult, b: ScanResult) {}
    func review(_ items: [PlanItem]) async -> [PlanItem]? { items }
    func propagated(_ path: RelativePath, bytes: Int64) {}
    func notice(_ message: String) {}
}
