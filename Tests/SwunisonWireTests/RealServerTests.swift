import Foundation
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Synchronization
import Testing
@testable import SwunisonWire

/// A stream that counts the bytes read through it (to show what a no-change rescan costs).
final class CountingStream: ByteStream, Sendable {
    let inner: any ByteStream
    let received = Atomic<Int>(0)
    init(_ inner: any ByteStream) { self.inner = inner }
    func write(_ bytes: UnsafeRawBufferPointer) throws { try inner.write(bytes) }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        received.add(n, ordering: .relaxed)
        return n
    }
    func closeWrite() { inner.closeWrite() }
    func close() { inner.close() }
}

/// The built `swunison` binary, beside the test bundle.
func swunisonBinary() -> String? {
    var dir = CommandLine.arguments[0]
    while !dir.hasSuffix(".xctest") && dir.contains("/") { dir = String(dir[..<dir.lastIndex(of: "/")!]) }
    guard let slash = dir.lastIndex(of: "/") else { return nil }
    let path = String(dir[..<slash]) + "/swunison"
    return access(path, X_OK) == 0 ? path : nil
}

/// The built `swunison server` as a child process over pipes, serving a fresh temporary root,
/// with a client connected to it.
struct ServerChild {
    let root: TemporaryDirectory
    let home: TemporaryDirectory
    let stream: ChildProcessStream
    let client: RemoteReplica

    init(_ label: String, displayName: String = "child") async throws {
        root = try TemporaryDirectory(label + "-root")
        home = try TemporaryDirectory(label + "-home")
        stream = try ChildProcessStream(arguments: [swunisonBinary()!, "server"],
                                        environment: ["HOME": home.path, "SWUNISON": home.appending(".swunison")])
        client = try await RemoteReplica.connect(over: stream, spec: ReplicaSpec(root: root.path), displayName: displayName)
    }
}

func fileEntry(_ data: [UInt8]) -> Entry {
    Entry(kind: .file, size: Int64(data.count), mtime: 1_600_000_000_000_000_000, mode: 0o640,
          digest: XXH3Hasher.digest(data))
}

@Suite struct RealServerTests {
    /// The server's real LocalReplica over pipes: write, scan, read back, commit, no-change rescan.
    @Test func localReplicaServedOverPipes() async throws {
        let root = try TemporaryDirectory("wire-root")
        let state = try TemporaryDirectory("wire-state")
        let (c, s) = try PipeStream.pair()
        let counting = CountingStream(c)
        let server = ReplicaServer(stream: s) { spec in
            try LocalReplica(root: spec.root, cacheDirectory: state.appending("caches"),
                             backupDirectory: state.appending("backup"), maxBackups: spec.maxBackups,
                             attributes: AttributeSelection())
        }
        let run = Task { try await server.run() }
        let client = try await RemoteReplica.connect(over: counting, spec: ReplicaSpec(root: root.path), displayName: "pipe")

        _ = try await client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                           replacing: nil, backup: false)
        let big = randomBytes(2 << 20, seed: 11)
        let small = Array("small file\n".utf8)
        async let w1 = client.writeFile(Sample.path("d/big"), entry: fileEntry(big), from: ArrayReader(big),
                                        replacing: nil, backup: false)
        async let w2 = client.writeFile(Sample.path("d/small"), entry: fileEntry(small), from: ArrayReader(small),
                                        replacing: nil, backup: false)
        let (e1, e2) = try await (w1, w2)
        #expect(e1.digest == XXH3Hasher.digest(big) && e2.size == Int64(small.count))
        #expect(FileManager.default.contents(atPath: root.appending("d/big")) == Data(big))

        let log = ChangeLog()
        let full = try await client.scan(ScanRequest(cacheKey: "pair")) { log.add($0) }
        #expect(!full.isDelta)
        #expect(Set(log.all.map(\.path)) == [Sample.path("d"), Sample.path("d/big"), Sample.path("d/small")])
        let scanned = try #require(log.all.first { $0.path == Sample.path("d/big") }?.new)
        #expect(try await readAll(try await client.openFile(Sample.path("d/big"), expected: scanned)) == big)

        // Commit the baseline; a rescan with the same snapshot reports nothing and costs little.
        try await client.commitBaseline(log.all.compactMap { c in c.new.map { BaselineUpdate(path: c.path, entry: $0) } },
                                        snapshot: 5)
        let before = counting.received.load(ordering: .relaxed)
        let quiet = ChangeLog()
        let delta = try await client.scan(ScanRequest(expectedSnapshot: 5, cacheKey: "pair")) { quiet.add($0) }
        #expect(delta.isDelta)
        #expect(quiet.all.isEmpty)
        #expect(counting.received.load(ordering: .relaxed) - before < 200)

        // The disk changed behind the scan's back: the remove is refused, retryably (Invariant 2).
        SwunisonWireTests.writeFile(root.appending("d/small"), Array("edited".utf8))
        do {
            _ = try await client.remove(Sample.path("d/small"), expected: e2, backup: true)
            Issue.record("expected changedDuringSync")
        } catch let e as ReplicaError {
            #expect(e.isRetryable, "\(e)")
        }
        await client.close()
        try await run.value
    }

    @Test func childProcessEchoes() throws {
        let child = try ChildProcessStream(arguments: ["cat"])
        let message = Array("through a child and back".utf8)
        try message.withUnsafeBytes { try child.write($0) }
        child.closeWrite()
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try child.read(into: $0) }
            if n == 0 { break }
            got += buffer[0..<n]
        }
        #expect(got == message)
        child.close()
        #expect(child.waitForExit(graceMilliseconds: 100) == 0)
    }

    @Test func aMissingCommandFailsToSpawn() {
        #expect(throws: SystemCallError.self) {
            _ = try ChildProcessStream(arguments: ["/nonexistent/swunison-nope", "server"])
        }
    }

    @Test func aRemoteThatIsNotSwunisonSaysWhatItPrinted() async throws {
        let child = try ChildProcessStream(arguments: ["sh", "-c", "echo 'sh: swunison: not found' >&2; exit 127"])
        await #expect {
            _ = try await RemoteReplica.connect(over: child, spec: ReplicaSpec(root: "/x"), displayName: "box")
        } throws: { error in
            let text = String(describing: error)
            return text.contains("box") && text.contains("swunison: not found") && !text.contains("\n")
        }
    }

    @Test func garbageOnStdoutIsReportedAsNotTheProtocol() async throws {
        let child = try ChildProcessStream(arguments: ["sh", "-c", "echo 'Welcome to the server!'; sleep 5"])
        await #expect {
            _ = try await RemoteReplica.connect(over: child, spec: ReplicaSpec(root: "/x"), displayName: "box")
        } throws: { error in
            String(describing: error).contains("did not answer with the swunison protocol")
        }
    }

    @Test(.enabled(if: swunisonBinary() != nil)) func aRealServerChild() async throws {
        let server = try await ServerChild("wire-child")
        let (child, client) = (server.stream, server.client)
        let data = randomBytes(700_000, seed: 5)
        _ = try await client.writeFile(Sample.path("f"), entry: fileEntry(data), from: ArrayReader(data),
                                       replacing: nil, backup: false)
        let log = ChangeLog()
        let result = try await client.scan(ScanRequest(cacheKey: "child")) { log.add($0) }
        #expect(result.entryCount == 1)
        #expect(log.all.first?.new?.digest == XXH3Hasher.digest(data))
        await client.close()
        #expect(child.waitForExit(graceMilliseconds: 5000) == 0)
    }

    @Test(.enabled(if: swunisonBinary() != nil)) func aServerChildOfAnotherVersionIsRefusedInOneLine() async throws {
        let home = try TemporaryDirectory("wire-home")
        let child = try ChildProcessStream(arguments: [swunisonBinary()!, "server"],
                                           environment: ["HOME": home.path, ProtocolVersions.environmentVariable: "9"])
        await #expect {
            _ = try await RemoteReplica.connect(over: child, spec: ReplicaSpec(root: home.path), displayName: "child")
        } throws: { error in
            let text = String(describing: error)
            return !text.contains("\n") && text.contains("speaks protocol version \(ProtocolVersions.supported.upperBound)")
                && text.contains("server speaks protocol version 9")
        }
    }
}
