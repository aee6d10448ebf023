import Foundation
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonStorage
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// `swunison server` applies a cache commit's batches as they arrive (LocalReplica's
/// `stageBaseline`), committing only when the commit request itself comes.
@Suite struct StagedCommitTests {
    /// 30,000 updates in walk order: a directory and the files in it, each with a digest.
    private func updates(count: Int) -> [BaselineUpdate] {
        var out = [BaselineUpdate(path: Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755))]
        for i in 0..<count {
            let name = "d/f" + String(100_000 + i)
            out.append(BaselineUpdate(path: Sample.path(name), entry: fileEntry(Array(name.utf8))))
        }
        return out
    }

    private func localReplica(_ root: String, state: TemporaryDirectory) throws -> LocalReplica {
        try LocalReplica(root: root, cacheDirectory: state.appending("caches"), backupDirectory: state.appending("backup"),
                         maxBackups: 1, attributes: AttributeSelection(), cacheKey: "pair")
    }

    @Test func aCommitSpanningManyFramesLandsWholeWithItsSnapshot() async throws {
        let root = try TemporaryDirectory("wire-root")
        let state = try TemporaryDirectory("wire-state")
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s) { [self] spec in try localReplica(spec.root, state: state) }
        let run = Task { try await server.run() }
        let client = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: root.path), displayName: "pipe")
        let all = updates(count: 30_000)
        let frames = try FrameEncoder().batches(type: Message.baselineBatch([]).type, requestID: 1, items: all) { $0.baselineUpdate($1) }
        #expect(frames.count > 2, "the commit must span several frames to show the staging")
        try await client.commitBaseline(all, snapshot: 9)
        await client.close()
        _ = try? await run.value

        let cache = try ScanCache.open(path: state.appending("caches/pair.db"))
        #expect(try cache.snapshot == 9)
        var count = 0
        var rows = try cache.cursor()
        while let row = try rows.next() {
            if row.path.description != "d" { #expect(row.entry == fileEntry(Array(row.path.bytes)), "\(row.path)") }
            count += 1
        }
        #expect(count == all.count)
    }

    @Test func aConnectionLostBeforeTheCommitRequestCommitsNothing() async throws {
        let root = try TemporaryDirectory("wire-root")
        let state = try TemporaryDirectory("wire-state")
        try FileManager.default.createDirectory(atPath: state.appending("caches"), withIntermediateDirectories: true)
        do {
            // What an earlier run committed.
            let cache = try ScanCache.open(path: state.appending("caches/pair.db"))
            try cache.apply([(Sample.path("kept"), fileEntry(Array("kept".utf8)))], snapshot: 3)
        }
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s) { [self] spec in try localReplica(spec.root, state: state) }
        let run = Task { try await server.run() }
        let peer = RawPeer(stream: c)
        let path = root.path
        try await onThread { () throws in
            try peer.send(Frame(0, .hello(Hello(versions: ProtocolVersions.supported, features: []))))
            try peer.send(Frame(1, .open(ReplicaSpec(root: path))))
            _ = try peer.next()  // hello
            _ = try peer.next()  // open's reply
            // Two batches of a commit (staged by the server), then the link goes before the commit.
            let all = self.updates(count: 2_000)
            try peer.send(Frame(2, .baselineBatch(Array(all[..<1_000]))))
            try peer.send(Frame(2, .baselineBatch(Array(all[1_000...]))))
            // A request behind the batches, answered only once they were handled.
            try peer.send(Frame(3, .shutdown))
            while let f = try peer.next(), f.requestID != 3 {}
            peer.stream.close()
        }
        _ = try? await run.value

        let cache = try ScanCache.open(path: state.appending("caches/pair.db"))
        #expect(try cache.snapshot == 3)
        var rows = try cache.cursor()
        var paths: [String] = []
        while let row = try rows.next() { paths.append(row.path.description) }
        #expect(paths == ["kept"])
    }
}
