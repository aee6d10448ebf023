import Foundation
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// Runs blocking I/O on its own thread, never on the (two-thread) cooperative pool that the
/// server under test needs.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        startThread(name: "test-peer") { c.resume(with: Result { try body() }) }
    }
}

/// Speaks raw frames to a server, as a buggy or hostile client would. Blocking: use on a thread.
final class RawPeer: @unchecked Sendable {
    let stream: FileDescriptorStream
    var buffer = InputBuffer()

    init(stream: FileDescriptorStream) { self.stream = stream }

    func send(_ frame: Frame) throws {
        let bytes = try FrameEncoder().encode(frame)
        try bytes.withUnsafeBytes { try stream.write($0) }
    }

    /// Says hello (id 0) and opens `root` (id 1), as a client does first.
    func handshake(root: String) throws {
        try send(Frame(0, .hello(Hello(versions: ProtocolVersions.supported, features: []))))
        try send(Frame(1, .open(ReplicaSpec(root: root))))
    }

    func sendRaw(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try stream.write($0) } }

    /// Sends a frame whose body is written by hand (what the encoder would refuse to produce).
    func sendHandBuilt(type: UInt8, id: UInt64, body: (inout WireWriter) -> Void) throws {
        var w = WireWriter()
        w.u32(0); w.u8(type); w.varint(id)
        body(&w)
        var bytes = w.bytes
        let length = bytes.count - 4
        for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: length >> (24 - 8 * i)) }
        try sendRaw(bytes)
    }

    /// The reason of the first `fatal` the server sends, nil if the stream ends without one.
    func fatalReason() -> String? {
        while let f = try? next() {
            if case .fatal(let reason) = f.message { return reason }
        }
        return nil
    }

    /// The next frame, or nil at end of stream.
    func next() throws -> Frame? {
        var scratch = [UInt8](repeating: 0, count: 65536)
        while true {
            if let f = try FrameDecoder().decode(buffer: &buffer) { return f }
            let n = try scratch.withUnsafeMutableBytes { try stream.read(into: $0) }
            if n == 0 { return nil }
            buffer.append(scratch[0..<n])
        }
    }
}

@Suite struct HostileClientTests {
    private func start() throws -> (RawPeer, Task<Void, any Error>, TemporaryDirectory) {
        let dir = try TemporaryDirectory("wire-hostile")
        let replica = DirectoryReplica(root: dir.path)
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s) { _ in replica }
        let run = Task { try await server.run() }
        return (RawPeer(stream: c), run, dir)
    }

    @Test func aClientIgnoringWriteCreditIsCutOff() async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let sawFailure = try await onThread { () throws -> Bool in
        try peer.handshake(root: path)
        let placement = Placement(path: Sample.path("f"), entry: Entry(kind: .file, size: 4 << 20), replacing: nil, backup: false)
        try peer.send(Frame(2, .writeFile(placement, data: [], isComplete: false)))
        // DirectoryReplica reads as it goes, so stall it: nothing here waits for credit at all.
        let chunk = [UInt8](repeating: 1, count: 256 << 10)
        for _ in 0..<16 { try peer.send(Frame(2, .writeChunk(chunk))) }
        var sawFailure = false
        while let f = try peer.next() {
            if f.requestID == 2, case .failure = f.message { sawFailure = true; break }
            if f.requestID == 2, case .entry = f.message { break }
        }
        return sawFailure
        }
        // Either the server consumed fast enough to never hold more than the window, or it cut
        // the client off; it never buffered without bound, and it never wrote the file without an end.
        #expect(sawFailure || FileManager.default.fileExists(atPath: dir.appending("f")) == false)
        peer.stream.close()
        _ = try? await run.value
    }

    @Test(arguments: [Int64(-1), Int64.min])
    func aNegativeSizeIsMalformedAndEndsTheConnection(_ size: Int64) async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let fatal = try await onThread { () throws -> String? in
        try peer.handshake(root: path)
        var entry = Sample.file
        entry.size = size
        try peer.send(Frame(2, .writeFile(Placement(path: Sample.path("f"), entry: entry, replacing: nil, backup: false),
                                          data: [], isComplete: true)))
        return peer.fatalReason()
        }
        #expect(fatal?.contains("negative entry size") == true, "\(String(describing: fatal))")
        #expect(!FileManager.default.fileExists(atPath: dir.appending("f")))
        peer.stream.close()
        await #expect(throws: WireError.self) { try await run.value }
    }

    @Test func hugeSizesInAReadBatchAreRefusedWithoutTrapping() async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let reply = try await onThread { () throws -> Message? in
        try peer.handshake(root: path)
        var entry = Sample.file
        entry.size = .max
        let requests = [FileReadRequest(path: Sample.path("a"), expected: entry),
                        FileReadRequest(path: Sample.path("b"), expected: entry)]
        try peer.send(Frame(2, .readFiles(requests)))
        while let f = try peer.next() {
            if f.requestID == 2 { return f.message }
        }
        return nil
        }
        guard case .failure(let failure) = reply else { Issue.record("\(String(describing: reply))"); return }
        #expect("\(failure)".contains("more than one reply can carry"))
        peer.stream.close()
        _ = try? await run.value
    }

    /// A client that stays within its credit but streams past the size it announced: the write
    /// fails at once, the temporary file does not keep growing, nothing lands under the name.
    @Test(.timeLimit(.minutes(1))) func aWriteStreamLongerThanItsSizeIsCutOff() async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let reply = try await onThread { () throws -> Message? in
        try peer.handshake(root: path)
        var entry = Sample.file
        entry.size = 10
        try peer.send(Frame(2, .writeFile(Placement(path: Sample.path("f"), entry: entry, replacing: nil, backup: false),
                                          data: [], isComplete: false)))
        let chunk = [UInt8](repeating: 7, count: 64 << 10)
        for _ in 0..<4 { try peer.send(Frame(2, .writeChunk(chunk))) }
        while let f = try peer.next() {
            if f.requestID == 2, case .writeCredit = f.message { continue }
            if f.requestID == 2 { return f.message }
        }
        return nil
        }
        guard case .failure(let failure) = reply else { Issue.record("\(String(describing: reply))"); return }
        #expect("\(failure)".contains("more than the file's announced size"), "\(failure)")
        #expect(!FileManager.default.fileExists(atPath: dir.appending("f")))
        peer.stream.close()
        _ = try? await run.value
    }

    /// Thousands of requests that never finish (streamed writes whose content never comes): past
    /// the server's limit of requests in flight the client is cut off with `fatal`, instead of
    /// the server holding a task (and its buffers) for each.
    @Test(.timeLimit(.minutes(1))) func requestsBeyondTheLimitInFlightEndTheConnection() async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let fatal = try await onThread { () throws -> String? in
        try peer.handshake(root: path)
        var entry = Sample.file
        entry.size = 10
        for n in 0..<(ReplicaServer.maxRequestsInFlight + 10) {
            let placement = Placement(path: Sample.path("f\(n)"), entry: entry, replacing: nil, backup: false)
            try peer.send(Frame(UInt64(2 + n), .writeFile(placement, data: [], isComplete: false)))
        }
        return peer.fatalReason()
        }
        #expect(fatal?.contains("requests or 256 MiB of content in flight") == true, "\(String(describing: fatal))")
        peer.stream.close()
        _ = try? await run.value
    }

    @Test func aHostilePathEndsTheConnectionWithFatal() async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let fatal = try await onThread { () throws -> String? in
        try peer.handshake(root: path)
        try peer.sendHandBuilt(type: 0x17, id: 2) { w in w.blob(Array("../../etc/passwd".utf8)); w.entry(Sample.file) }
        return peer.fatalReason()
        }
        #expect(fatal?.contains("hostile path") == true)
        peer.stream.close()
        await #expect(throws: WireError.self) { try await run.value }
    }

    @Test(arguments: [["ok", "../../etc/passwd"], ["x/./y"], ["/abs"], ["a\u{0}b"]])
    func aHostilePathInsideAWriteBatchEndsTheConnectionAndWritesNothing(_ names: [String]) async throws {
        let (peer, run, dir) = try start()
        let path = dir.path
        let fatal = try await onThread { () throws -> String? in
        try peer.send(Frame(0, .hello(Hello(versions: ProtocolVersions.supported, features: [ProtocolVersions.batchFiles]))))
        try peer.send(Frame(1, .open(ReplicaSpec(root: path))))
        try peer.sendHandBuilt(type: 0x1D, id: 2) { w in
            w.count(names.count)
            for name in names {
                w.blob(Array(name.utf8)); w.entry(Sample.file); w.optionalEntry(nil); w.bool(false); w.blob([1, 2, 3])
            }
        }
        return peer.fatalReason()
        }
        #expect(fatal?.contains("path") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: path).isEmpty)
        peer.stream.close()
        await #expect(throws: WireError.self) { try await run.value }
    }

    @Test func requestsBeforeHelloAreRefused() async throws {
        let (peer, run, _) = try start()
        let fatal = try await onThread { () throws -> String? in
        try peer.send(Frame(1, .shutdown))
        var fatal: String?
        while let f = try? peer.next() {
            if case .fatal(let reason) = f.message { fatal = reason; break }
        }
        return fatal
        }
        #expect(fatal?.contains("before hello") == true)
        peer.stream.close()
        _ = try? await run.value
    }
}
