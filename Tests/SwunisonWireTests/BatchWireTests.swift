import Foundation
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// `readFiles` / `writeFiles` over the wire (feature `batch-files`), and the fallback to one
/// request per file when the server does not offer it.
@Suite struct BatchWireTests {
    private func fileEntry(_ bytes: [UInt8]) -> Entry {
        Entry(kind: .file, size: Int64(bytes.count), digest: XXH3Hasher.digest(bytes))
    }

    /// Writes three files (one with content that does not match its digest) and reads them back
    /// with one that is not there; checks every per-file result.
    private func exercise(_ h: Harness) async throws {
        let good = Array("good file".utf8), other = randomBytes(70_000, seed: 3)
        let writes = [
            FileWrite(path: Sample.path("one"), entry: fileEntry(good), content: good, replacing: nil, backup: false),
            FileWrite(path: Sample.path("bad"), entry: fileEntry(good), content: Array("evil file".utf8), replacing: nil,
                      backup: false),
            FileWrite(path: Sample.path("two"), entry: fileEntry(other), content: other, replacing: nil, backup: false),
        ]
        let written = try await h.client.writeFiles(writes)
        #expect(written.count == 3)
        #expect((try? written[0].get())?.size == Int64(good.count))
        guard case .failure(.digestMismatch(let p)) = written[1] else { Issue.record("\(written[1])"); return }
        #expect(p == Sample.path("bad"))
        #expect(h.contents("one") == good && h.contents("two") == other && h.contents("bad") == nil)

        let read = try await h.client.readFiles([
            FileReadRequest(path: Sample.path("two"), expected: try written[2].get()),
            FileReadRequest(path: Sample.path("missing"), expected: fileEntry(good)),
            FileReadRequest(path: Sample.path("one"), expected: try written[0].get()),
        ])
        #expect(read.count == 3)
        #expect((try? read[0].get()) == other && (try? read[2].get()) == good)
        guard case .failure(.changedDuringSync) = read[1] else { Issue.record("\(read[1])"); return }
    }

    @Test func batchesTravelAsOneRequestEach() async throws {
        let h = try await Harness()
        #expect(h.client.features.contains(ProtocolVersions.batchFiles))
        try await exercise(h)
        #expect(h.replica.batches == ["write 3", "read 3"])
        await h.client.close()
    }

    @Test func aServerWithoutBatchesGetsOneRequestPerFile() async throws {
        let h = try await Harness(serverFeatures: ["notice"])
        #expect(!h.client.features.contains(ProtocolVersions.batchFiles))
        try await exercise(h)
        #expect(h.replica.batches.isEmpty)
        await h.client.close()
    }

    @Test func aReadBatchTooLargeForOneReplyIsRefusedWhole() async throws {
        let h = try await Harness()
        let huge = Entry(kind: .file, size: ReplicaServer.maxBatchContent / 2 + 1, digest: Sample.digest)
        await #expect(throws: ReplicaError.self) {
            _ = try await h.client.readFiles([FileReadRequest(path: Sample.path("a"), expected: huge),
                                              FileReadRequest(path: Sample.path("b"), expected: huge)])
        }
        // The connection is still good.
        h.write("small", [1, 2, 3])
        let read = try await h.client.readFiles([FileReadRequest(path: Sample.path("small"), expected: fileEntry([1, 2, 3]))])
        #expect((try? read[0].get()) == [1, 2, 3])
        await h.client.close()
    }
}
