import Foundation
import SwunisonCore
import SwunisonFS
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

    /// On a server the client may be hostile: after a scan with the profile's ignore rules, the
    /// replica refuses to create, change or remove what those rules leave out, or a temporary
    /// name, and changes the rest.
    @Test func changesOutsideTheScansRulesAreRefused() async throws {
        let dir = try TemporaryDirectory("replica-scope")
        let root = dir.appending("root")
        try TestFiles.write(root + "/.ssh/authorized_keys", "mine")
        let replica = try LocalReplica(root: root, cacheDirectory: dir.appending("caches"), backupDirectory: dir.appending("backup"),
                                       maxBackups: 1, attributes: AttributeSelection())
        _ = try await replica.scan(ScanRequest(ignore: ["Path .ssh"], cacheKey: "scope")) { _ in }
        let content = Array("evil".utf8)
        let entry = Entry(kind: .file, size: Int64(content.count), mtime: 1_600_000_000_000_000_000, mode: 0o644,
                          digest: XXH3Hasher.digest(content))
        let paths = [".ssh/rc", ".ssh", ".swunison.1.x.tmp", "d/.swunison.2.y.tmp", "fine"]
        let results = try await replica.writeFiles(try paths.map {
            FileWrite(path: try RelativePath(validating: $0), entry: entry, content: content, replacing: nil, backup: false)
        })
        for (path, result) in zip(paths, results) {
            switch result {
            case .success: #expect(path == "fine", "\(path) was written")
            case .failure(let error):
                #expect(path != "fine", "\(error)")
                #expect("\(error)".contains("not changed"), "\(error)")
            }
        }
        await #expect(throws: ReplicaError.self) {
            _ = try await replica.makeDirectory(try RelativePath(validating: ".ssh/keys.d"), entry: Entry(kind: .directory, mode: 0o700),
                                                replacing: nil, backup: false)
        }
        await #expect(throws: ReplicaError.self) {
            _ = try await replica.remove(try RelativePath(validating: ".ssh/authorized_keys"),
                                         expected: Entry(kind: .file, size: 4, mode: 0o644), backup: false)
        }
        #expect(TestFiles.read(root + "/.ssh/authorized_keys") == "mine")
        #expect(!TestFiles.exists(root + "/.ssh/rc") && TestFiles.read(root + "/fine") == "evil")
        await replica.close()
    }

    @Test func changesOutsideTheScannedPathsAreRefusedAndLaterScansOnlyWiden() async throws {
        let dir = try TemporaryDirectory("replica-paths")
        let root = dir.appending("root")
        try TestFiles.write(root + "/docs/a", "a")
        try TestFiles.write(root + "/.bashrc", "mine")
        let replica = try LocalReplica(root: root, cacheDirectory: dir.appending("caches"), backupDirectory: dir.appending("backup"),
                                       maxBackups: 1, attributes: AttributeSelection())
        let docs = try RelativePath(validating: "docs")
        _ = try await replica.scan(ScanRequest(paths: [docs], cacheKey: "paths")) { _ in }
        let content = Array("evil".utf8)
        let entry = Entry(kind: .file, size: Int64(content.count), mtime: 1_600_000_000_000_000_000, mode: 0o644,
                          digest: XXH3Hasher.digest(content))
        func write(_ path: String) async throws -> Result<Entry, ReplicaError> {
            try await replica.writeFiles([FileWrite(path: try RelativePath(validating: path), entry: entry, content: content,
                                                    replacing: nil, backup: false)])[0]
        }
        // Outside `path = docs`: refused, and said why.
        for outside in [".profile", "docsx", "other/x"] {
            guard case .failure(let error) = try await write(outside) else {
                Issue.record("\(outside) was written"); continue
            }
            #expect("\(error)".contains("outside the scanned paths"), "\(error)")
        }
        await #expect(throws: ReplicaError.self) {
            _ = try await replica.remove(try RelativePath(validating: ".bashrc"), expected: Entry(kind: .file, size: 4, mode: 0o644),
                                         backup: false)
        }
        guard case .success = try await write("docs/b") else { Issue.record("docs/b was refused"); return }
        // A narrower scan later (a retry, a watch cycle) does not narrow what may change.
        _ = try await replica.scan(ScanRequest(paths: [try RelativePath(validating: "docs/sub")], cacheKey: "paths")) { _ in }
        guard case .success = try await write("docs/c") else { Issue.record("docs/c was refused"); return }
        #expect(TestFiles.read(root + "/.bashrc") == "mine" && !TestFiles.exists(root + "/.profile"))
        #expect(TestFiles.read(root + "/docs/b") == "evil")
        await replica.close()
    }
}
