import Foundation
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Synchronization
import Testing
@testable import SwunisonWire

/// Feature `digest-files` against a real LocalReplica behind ReplicaServer: a scan that defers
/// digests, `digestFiles`, and what a server without the feature does instead.
@Suite struct DeferredDigestWireTests {
    private struct Served {
        let root: TemporaryDirectory
        let state: TemporaryDirectory
        let client: RemoteReplica
        let run: Task<Void, Error>

        init(features: [String] = ProtocolVersions.features) async throws {
            root = try TemporaryDirectory("deferred-root")
            state = try TemporaryDirectory("deferred-state")
            for (name, text) in [("a.txt", "alpha"), ("b.txt", "bravo bravo"), ("empty", "")] {
                try Data(text.utf8).write(to: URL(fileURLWithPath: root.appending(name)))
            }
            let (c, s) = try PipeStream.pair()
            let stateDirectory = state
            let server = ReplicaServer(stream: s, features: features) { spec in
                try LocalReplica(root: spec.root, cacheDirectory: stateDirectory.appending("caches"),
                                 backupDirectory: stateDirectory.appending("backup"), maxBackups: 1,
                                 attributes: AttributeSelection(), cacheKey: "pair")
            }
            run = Task { try await server.run() }
            client = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: root.path), displayName: "pipe")
        }

        func scan(deferring: Bool) async throws -> [String: Entry] {
            var request = ScanRequest(cacheKey: "pair")
            request.deferDigests = deferring
            let seen = Mutex<[String: Entry]>([:])
            _ = try await client.scan(request) { batch in
                seen.withLock { for change in batch { if let new = change.new { $0[change.path.description] = new } } }
            }
            return seen.withLock { $0 }
        }

        func close() async {
            await client.close()
            _ = try? await run.value
        }
    }

    @Test func aDeferredScanLeavesNewFilesUnhashedAndDigestFilesHashesThemOnTheServer() async throws {
        let served = try await Served()
        #expect(served.client.features.contains(ProtocolVersions.digestFiles))
        let entries = try await served.scan(deferring: true)
        #expect(entries["a.txt"]?.kind == .file && entries["a.txt"]?.size == 5)
        #expect(entries["a.txt"]?.digest == nil && entries["b.txt"]?.digest == nil && entries["empty"]?.digest == nil)

        // One file is rewritten (same size) after the scan: its digest is refused, not taken of
        // the new content.
        try Data("bravo BRAVO".utf8).write(to: URL(fileURLWithPath: served.root.appending("b.txt")))
        let digests = try await served.client.digestFiles([
            FileReadRequest(path: try RelativePath(validating: "a.txt"), expected: try #require(entries["a.txt"])),
            FileReadRequest(path: try RelativePath(validating: "b.txt"), expected: try #require(entries["b.txt"])),
            FileReadRequest(path: try RelativePath(validating: "empty"), expected: try #require(entries["empty"])),
        ])
        #expect(digests.count == 3)
        #expect((try? digests[0].get()) == XXH3Hasher.digest(Array("alpha".utf8)))
        guard case .failure(.changedDuringSync) = digests[1] else { Issue.record("\(digests[1])"); return }
        #expect((try? digests[2].get()) == XXH3Hasher.digest([]))
        await served.close()
    }

    @Test func anOrdinaryScanStillHashes() async throws {
        let served = try await Served()
        let entries = try await served.scan(deferring: false)
        #expect(entries["a.txt"]?.digest == XXH3Hasher.digest(Array("alpha".utf8)))
        await served.close()
    }

    @Test func aServerWithoutTheFeatureHashesInItsScanAndDigestFilesFallsBackToReading() async throws {
        let served = try await Served(features: ["notice", ProtocolVersions.batchFiles])
        #expect(!served.client.features.contains(ProtocolVersions.digestFiles))
        // The client drops the flag that server would refuse: the scan hashes as it always did.
        let entries = try await served.scan(deferring: true)
        #expect(entries["b.txt"]?.digest == XXH3Hasher.digest(Array("bravo bravo".utf8)))
        var unhashed = try #require(entries["a.txt"])
        unhashed.digest = nil
        let digests = try await served.client.digestFiles([
            FileReadRequest(path: try RelativePath(validating: "a.txt"), expected: unhashed)
        ])
        #expect((try? digests[0].get()) == XXH3Hasher.digest(Array("alpha".utf8)))
        await served.close()
    }
}
