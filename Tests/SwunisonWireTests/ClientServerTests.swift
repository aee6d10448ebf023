import Foundation
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// A client and a server in one process over two pipes, serving a real temp dir.
final class Harness: @unchecked Sendable {
    let dir: TemporaryDirectory
    let replica: DirectoryReplica
    let server: ReplicaServer
    let client: RemoteReplica
    let serverStream: FileDescriptorStream
    let serverRun: Task<Void, any Error>
    let notices = NoticeLog()

    init(clientVersions: ClosedRange<UInt16> = ProtocolVersions.supported,
         serverVersions: ClosedRange<UInt16> = ProtocolVersions.supported,
         serverFeatures: [String] = ProtocolVersions.features) async throws {
        dir = try TemporaryDirectory("wire")
        let replica = DirectoryReplica(root: dir.path)
        self.replica = replica
        let (c, s) = try PipeStream.pair()
        serverStream = s
        let server = ReplicaServer(stream: s, versions: serverVersions, features: serverFeatures) { spec in
            guard spec.root == replica.root else { throw ReplicaError.badRoot(root: spec.root, message: "unknown root") }
            return replica
        }
        self.server = server
        serverRun = Task { try await server.run() }
        let notices = self.notices
        client = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: dir.path), displayName: "test-remote",
                                                 versions: clientVersions, onNotice: { notices.add($0) })
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        writeFile(dir.appending(name), bytes)
    }

    func contents(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: dir.appending(name)).map { [UInt8]($0) }
    }
}

final class NoticeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.withLock { lines.append(s) } }
    var all: [String] { lock.withLock { lines } }
}

final class ChangeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ScanChange] = []
    private var batches = 0
    func add(_ c: [ScanChange]) { lock.withLock { items += c; batches += 1 } }
    var all: [ScanChange] { lock.withLock { items } }
}

@Suite struct ClientServerTests {
    @Test func scanStreamsEveryEntryInOrder() async throws {
        let h = try await Harness()
        try FileManager.default.createDirectory(atPath: h.dir.appending("d"), withIntermediateDirectories: false)
        for i in 0..<250 { h.write("d/f\(String(format: "%03d", i))", Array("file \(i)".utf8)) }
        h.write("top", [1, 2, 3])
        let log = ChangeLog()
        let result = try await h.client.scan(ScanRequest(cacheKey: "k")) { log.add($0) }
        #expect(result.entryCount == 252)
        #expect(!result.isDelta)
        let paths = log.all.map(\.path)
        #expect(paths.count == 252)
        #expect(paths == paths.sorted())
        #expect(log.all.first { $0.path == Sample.path("top") }?.new?.digest == XXH3Hasher.digest([1, 2, 3]))
        await h.client.close()
        try await h.serverRun.value
        #expect(h.replica.isClosed)
    }

    @Test func smallAndLargeWritesLandIntact() async throws {
        let h = try await Harness()
        let small = Array("hello".utf8)
        let large = randomBytes(5 << 20 + 123, seed: 7)   // beyond the 1 MiB credit window
        let e1 = try await h.client.writeFile(Sample.path("small"), entry: Entry(kind: .file, size: 5, digest: XXH3Hasher.digest(small)),
                                              from: ArrayReader(small), replacing: nil, backup: false)
        let e2 = try await h.client.writeFile(Sample.path("large"), entry: Entry(kind: .file, size: Int64(large.count),
                                                                                 digest: XXH3Hasher.digest(large)),
                                              from: ArrayReader(large, chunk: 1 << 20), replacing: nil, backup: false)
        #expect(h.contents("small") == small)
        #expect(h.contents("large") == large)
        #expect(e1.digest == XXH3Hasher.digest(small) && e2.size == Int64(large.count))
        await h.client.close()
    }

    @Test func manyWritesInFlight() async throws {
        let h = try await Harness()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let data = randomBytes(i * 997 % 300_000, seed: UInt64(i))
                    _ = try await h.client.writeFile(Sample.path("f\(i)"), entry: Entry(kind: .file, size: Int64(data.count),
                                                                                        digest: XXH3Hasher.digest(data)),
                                                     from: ArrayReader(data, chunk: 65536), replacing: nil, backup: false)
                }
            }
            try await group.waitForAll()
        }
        for i in [0, 1, 57, 199] { #expect(h.contents("f\(i)") == randomBytes(i * 997 % 300_000, seed: UInt64(i))) }
        await h.client.close()
    }

    @Test func readStreamsAWholeFileUnderFlowControl() async throws {
        let h = try await Harness()
        let data = randomBytes(9 << 20 + 17, seed: 3)   // more than two read windows
        h.write("big", data)
        let entry = try #require(h.replica.entry(at: Sample.path("big")))
        let reader = try await h.client.openFile(Sample.path("big"), expected: entry)
        var got: [UInt8] = []
        var chunks = 0
        while let c = try await reader.read() {
            #expect(c.count <= ReplicaServer.chunkSize)
            got += c; chunks += 1
        }
        await reader.close()
        #expect(got == data)
        #expect(chunks >= 36)
        // Several reads at once, one closed early (cancelled on the server).
        h.write("a", randomBytes(100_000, seed: 1))
        let ea = try #require(h.replica.entry(at: Sample.path("a")))
        let early = try await h.client.openFile(Sample.path("big"), expected: entry)
        _ = try await early.read()
        await early.close()
        async let x = readAll(try await h.client.openFile(Sample.path("a"), expected: ea))
        async let y = readAll(try await h.client.openFile(Sample.path("big"), expected: entry))
        #expect(try await x == randomBytes(100_000, seed: 1))
        #expect(try await y == data)
        await h.client.close()
    }

    @Test func failuresKeepTheirCase() async throws {
        let h = try await Harness()
        h.write("f", [1])
        // The scan saw a 5-byte file; the disk has a 1-byte one: changed during sync, retryable.
        do {
            _ = try await h.client.openFile(Sample.path("f"), expected: Entry(kind: .file, size: 5))
            Issue.record("expected a failure")
        } catch let e as ReplicaError {
            guard case .changedDuringSync(let p) = e else { Issue.record("wrong case \(e)"); return }
            #expect(p == Sample.path("f") && e.isRetryable)
        }
        await #expect(throws: ReplicaError.self) {
            try await h.client.remove(Sample.path("missing"), expected: Sample.file, backup: false)
        }
        // A digest mismatch on a streamed write is reported, the connection stays usable.
        let data = randomBytes(600_000, seed: 9)
        do {
            _ = try await h.client.writeFile(Sample.path("bad"), entry: Entry(kind: .file, size: 600_000, digest: Sample.digest),
                                             from: ArrayReader(data), replacing: nil, backup: false)
            Issue.record("expected digestMismatch")
        } catch ReplicaError.digestMismatch(let p) {
            #expect(p == Sample.path("bad"))
        }
        #expect(h.contents("bad") == nil)
        let e = try #require(h.replica.entry(at: Sample.path("f")))
        #expect(try await h.client.remove(Sample.path("f"), expected: e, backup: false) == nil)
        #expect(h.contents("f") == nil)
        await h.client.close()
    }

    @Test func aSourceFailingMidWriteAbortsIt() async throws {
        let h = try await Harness()
        let source = ArrayReader(randomBytes(3 << 20, seed: 4), chunk: 100_000)
        source.failAt = 1 << 20
        await #expect {
            _ = try await h.client.writeFile(Sample.path("x"), entry: Entry(kind: .file, size: 3 << 20), from: source,
                                             replacing: nil, backup: false)
        } throws: { error in
            String(describing: error) == "source broke"
        }
        #expect(h.contents("x") == nil)
        // Still usable afterwards.
        _ = try await h.client.makeDirectory(Sample.path("d"), entry: Sample.dir, replacing: nil, backup: false)
        await h.client.close()
    }

    @Test func directoriesLinksAttributesBackupsAndBaseline() async throws {
        let h = try await Harness()
        let d = try await h.client.makeDirectory(Sample.path("d"), entry: Sample.dir, replacing: nil, backup: false)
        #expect(d.kind == .directory)
        let l = try await h.client.makeSymlink(Sample.path("d/l"), entry: Entry(kind: .symlink, linkTarget: Array("target".utf8)),
                                               replacing: nil, backup: false)
        #expect(l.linkTarget == Array("target".utf8))
        h.write("d/f", [5, 6])
        let f = try #require(h.replica.entry(at: Sample.path("d/f")))
        var wanted = f; wanted.mode = 0o600
        let set = try await h.client.setAttributes(Sample.path("d/f"), expected: f, to: wanted)
        #expect(set.mode == 0o600)
        let where_ = try await h.client.backup(Sample.path("d/f"), expected: set)
        #expect(FileManager.default.contents(atPath: where_) == Data([5, 6]))
        let removed = try await h.client.remove(Sample.path("d/f"), expected: set, backup: true)
        #expect(removed != nil)
        let updates = (0..<30_000).map { BaselineUpdate(path: Sample.path("dir/entry-\($0)"), entry: $0 % 2 == 0 ? Sample.file : nil) }
        try await h.client.commitBaseline(updates, snapshot: 77)
        #expect(h.replica.committed == updates)
        #expect(h.replica.snapshot == 77)
        await h.client.close()
    }

    @Test func theScanSinkCanStopTheScan() async throws {
        let h = try await Harness()
        for i in 0..<500 { h.write("f\(i)", []) }
        struct Enough: Error {}
        await #expect(throws: Enough.self) {
            _ = try await h.client.scan(ScanRequest(cacheKey: "k")) { _ in throw Enough() }
        }
        // The connection is still good.
        let r = try await h.client.scan(ScanRequest(cacheKey: "k")) { _ in }
        #expect(r.entryCount == 500)
        await h.client.close()
    }

    @Test func noticesReachTheClient() async throws {
        let h = try await Harness()
        h.server.sendNotice("hello from the server")
        _ = try await h.client.scan(ScanRequest(cacheKey: "k")) { _ in }   // a round trip after the notice
        #expect(h.notices.all == ["hello from the server"])
        await h.client.close()
    }

    @Test func versionMismatchIsOneLineNamingBothSides() async throws {
        await #expect {
            _ = try await Harness(clientVersions: 1...1, serverVersions: 2...3)
        } throws: { error in
            let text = String(describing: error)
            return !text.contains("\n") && text.contains("speaks protocol version 1")
                && text.contains("server speaks protocol versions 2-3")
        }
    }

    @Test func overlappingVersionsAgreeOnTheHighestCommon() async throws {
        let h = try await Harness(clientVersions: 1...1, serverVersions: 1...4)
        #expect(h.client.protocolVersion == 1)
        await h.client.close()
    }

    @Test func anUnknownRootFailsTheConnect() async throws {
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s) { spec in throw ReplicaError.badRoot(root: spec.root, message: "no such directory") }
        let run = Task { try await server.run() }
        await #expect(throws: ReplicaError.self) {
            _ = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: "/nope"), displayName: "x")
        }
        _ = try? await run.value
    }

    @Test func aBrokenStreamFailsPendingRequestsPromptly() async throws {
        let h = try await Harness()
        h.replica.hangOnSetAttributes = true
        h.write("f", [1])
        let f = try #require(h.replica.entry(at: Sample.path("f")))
        let pending = (0..<5).map { _ in
            Task { try await h.client.setAttributes(Sample.path("f"), expected: f, to: f) }
        }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        h.serverStream.close()   // the link dies
        for p in pending {
            do {
                _ = try await p.value
                Issue.record("expected a connection failure")
            } catch let e as ReplicaError {
                guard case .connection(let m) = e else { Issue.record("wrong case \(e)"); continue }
                #expect(m.contains("test-remote"))
                #expect(e.isRetryable)
            }
        }
        #expect(ContinuousClock.now - start < .seconds(5))   // generous: tests share 2 cores
        // Later requests fail at once too.
        await #expect(throws: ReplicaError.self) {
            _ = try await h.client.makeDirectory(Sample.path("d"), entry: Sample.dir, replacing: nil, backup: false)
        }
        await h.client.close()
    }
}
