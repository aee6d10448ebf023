import Foundation
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// Watching a replica across the wire (feature `watch`), against the real `swunison server`.
@Suite struct RemoteWatchTests {
    /// Waits for notices naming `path` (other notices are skipped), at most `seconds`.
    static func notice(of path: String, from source: any ChangeSource, seconds: Double = 10) async throws -> Bool {
        let wanted = try RelativePath(validating: path)
        let found = Task { () -> Bool in
            while true {
                let notices = try await source.next()
                if notices.contains(.changed(wanted)) { return true }
            }
        }
        let timeout = Task { try await Task.sleep(for: .seconds(seconds)); found.cancel() }
        defer { timeout.cancel() }
        return (try? await found.value) ?? false
    }

    @Test(.enabled(if: swunisonBinary() != nil), .timeLimit(.minutes(1)))
    func aChangeOnTheServerComesAsANoticeButTheClientsOwnWritesDoNot() async throws {
        let server = try await ServerChild("rwatch")
        let source = try await server.client.watch(WatchRequest(cacheKey: "rwatch"))
        // Somebody else's change on the server's side.
        try TestFiles.write(server.root.appending("theirs"), "x")
        #expect(try await Self.notice(of: "theirs", from: source))
        // The client's own write through the server: no notice comes back for it.
        let data = Array("mine".utf8)
        _ = try await server.client.writeFile(Sample.path("mine"), entry: fileEntry(data), from: ArrayReader(data),
                                              replacing: nil, backup: false)
        try TestFiles.write(server.root.appending("later"), "y")
        let ownReported = Task { () -> Bool in
            while true {
                let notices = try await source.next()
                if notices.contains(.changed(Sample.path("mine"))) { return true }
                if notices.contains(.changed(Sample.path("later"))) { return false }
            }
        }
        #expect(try await ownReported.value == false)
        await source.stop()
        // The connection goes on after the watch ended.
        _ = try await server.client.makeDirectory(Sample.path("d"), entry: Entry(kind: .directory, mode: 0o755),
                                                  replacing: nil, backup: false)
        await server.client.close()
    }

    @Test func aServerWithoutTheFeatureIsRefusedNamingThisRelease() async throws {
        let dir = try TemporaryDirectory("rwatch-old")
        let replica = DirectoryReplica(root: dir.path)
        let (c, s) = try PipeStream.pair()
        let server = ReplicaServer(stream: s, features: ProtocolVersions.features.filter { $0 != ProtocolVersions.watch }) { _ in replica }
        let run = Task { try await server.run() }
        let client = try await RemoteReplica.connect(over: c, spec: ReplicaSpec(root: dir.path), displayName: "ssh://old/x")
        await #expect {
            _ = try await client.watch(WatchRequest(cacheKey: "k"))
        } throws: { error in
            let text = "\(error)"
            return text.contains("ssh://old/x") && text.contains("cannot watch") && text.contains(SwunisonVersion.current)
        }
        await client.close()
        _ = await run.result
    }
}
