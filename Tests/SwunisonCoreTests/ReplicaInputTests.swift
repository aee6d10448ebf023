import Foundation
import SwunisonCore
import SwunisonModel
import SwunisonReplica
import SwunisonTestSupport
import Testing

/// What a local replica accepts from its client (on a server: from a peer over the wire).
@Suite struct ReplicaInputTests {
    @Test(arguments: ["../escaped", "..", "a/b", "", ".hidden", "x\u{1B}[2J", String(repeating: "k", count: 129)])
    func aCacheKeyThatIsNotOnePlainNameIsRefused(_ key: String) async throws {
        let dir = try TemporaryDirectory("cache-key")
        let root = dir.appending("root"), caches = dir.appending("state/caches")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let replica = try LocalReplica(root: root, cacheDirectory: caches, backupDirectory: dir.appending("state/backup"),
                                       maxBackups: 1, attributes: AttributeSelection())
        let error = await #expect(throws: ReplicaError.self) {
            _ = try await replica.scan(ScanRequest(cacheKey: key)) { _ in }
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("refused"))
        #expect(!"\(error.map { "\($0)" } ?? "")".contains("\u{1B}"))
        // Nothing was created for it, inside the cache directory or beside it.
        let made = FileManager.default.enumerator(atPath: dir.path)?.allObjects.compactMap { $0 as? String } ?? []
        #expect(!made.contains { $0.hasSuffix(".db") || $0.hasSuffix(".lock") }, "\(made)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: caches)) ?? [] == [])
        await replica.close()
    }

    @Test func plainCacheKeysAreAccepted() async throws {
        let dir = try TemporaryDirectory("cache-key-ok")
        let root = dir.appending("root")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let replica = try LocalReplica(root: root, cacheDirectory: dir.appending("caches"), backupDirectory: dir.appending("backup"),
                                       maxBackups: 1, attributes: AttributeSelection())
        _ = try await replica.scan(ScanRequest(cacheKey: "ar0123456789abcdef01234567-A")) { _ in }
        #expect(FileManager.default.fileExists(atPath: dir.appending("caches/ar0123456789abcdef01234567-A.db")))
        await replica.close()
    }
}
