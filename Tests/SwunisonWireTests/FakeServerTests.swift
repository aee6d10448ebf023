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
        let dir = try TemporaryDirectory("wire-fake-server")
        let rootA = dir.appending("a"), state = dir.appending("state")
        for d in [rootA, state] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try TestFiles.write(rootA + "/keep", "kept")

        // The fake server: handshake and open as a real one would, then the forged scan reply.
        let (clientEnd, serverEnd) = try PipeStream.pair()
        let peer = RawPeer(stream: serverEnd)
        let server = Task {
            try await onThread { () throws -> Void in
                while let frame = try peer.next() {
                    switch frame.message {
                    case .hello:
                        try peer.send(Frame(frame.requestID, .hello(Hello(versions: ProtocolVersions.supported,
                                                                    features: ProtocolVersions.features))))
                    case .open:
                        try peer.send(Frame(frame.requestID, .ok))
                    case .scan:
                        try peer.sendRaw(try Self.forgedScanBatch(id: frame.requestID, hostile: hostile))
                        try peer.send(Frame(frame.requestID, .scanDone(ScanResult(isDelta: false, entryCount: 1, problems: []))))
                    default:
                        try peer.send(Frame(frame.requestID, .failure(.other("fake server: no \(frame.message.name)"))))
                    }
                }
            }
        }
        defer { serverEnd.close(); server.cancel() }

        let remote = try await RemoteReplica.connect(over: clientEnd, spec: ReplicaSpec(root: "/srv/fake"),
                                                     displayName: "fake-server")
        let local = try LocalReplica(root: rootA, cacheDirectory: state + "/caches", backupDirectory: state + "/backup",
                                     maxBackups: 1, attributes: AttributeSelection())
        let archive = try Archive.open(path: state + "/archive.db", roots: [rootA, "fake"])
        let session = Session(options: SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "fake"),
                              replicas: ReplicaPair(a: local, b: remote), archive: archive,
                              interface: SilentInterface(), logger: Logger(label: "test"))

        let error = await #expect(throws: (any Error).self) { _ = try await session.run() }
        #expect("\(error.map { "\($0)" } ?? "")".contains("hostile path"), "\(String(describing: error))")
        // Nothing changed: A holds exactly what it held, nothing appeared beside it, and the
        // archive recorded nothing.
        #expect(try FileManager.default.contentsOfDirectory(atPath: rootA) == ["keep"])
        #expect(TestFiles.read(rootA + "/keep") == "kept")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a", "state"])
        #expect(try archive.isEmpty)
        await local.close()
    }
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
