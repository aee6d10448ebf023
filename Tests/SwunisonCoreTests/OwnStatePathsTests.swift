import Foundation
import SwunisonCore
import SwunisonModel
import SwunisonReplica
import SwunisonFS
import SwunisonTestSupport
import Testing

/// Which of swunison's own files lie inside a root, and how the replica keeps away from them.
@Suite struct OwnStatePathsTests {
    @Test func ownFilesInsideTheRootAreFoundThroughSymlinksAndBeforeTheyExist() throws {
        let dir = try TemporaryDirectory("own-paths")
        let home = dir.appending("home")
        try FileManager.default.createDirectory(atPath: home + "/.swunison", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.appending("link"), withDestinationPath: home)
        let own = OwnState(root: dir.appending("link"), files: [
            home + "/.swunison",                 // the state directory
            dir.appending("link") + "/logs/not-yet.log",  // not there yet, reached through the symlink
            dir.appending("elsewhere/backups"),  // outside: not ours to ignore
            home,                                // the root itself: what the user asked to sync
        ])
        #expect(own.paths.map(\.description) == [".swunison", "logs/not-yet.log"])
        #expect(own.covers(try RelativePath(validating: ".swunison/caches/x.db-wal")))
        #expect(!own.covers(try RelativePath(validating: "logs")))
        #expect(own.touches(try RelativePath(validating: "logs")))
        #expect(!own.touches(try RelativePath(validating: "notes")))
    }

    @Test func belowPathSpecMatchesExactlyThatPathWhateverItsCharacters() throws {
        for name in [".swunison", "state {1,2} [x]*?", "back\\slash, comma", " lead"] {
            let path = try RelativePath(validating: name)
            let pattern = try PathPattern(PathPattern.belowPathSpec(path))
            #expect(pattern.matches(path), "\(name)")
            #expect(pattern.matches(try RelativePath(validating: name + "/inside")), "\(name)")
            #expect(!pattern.matches(try RelativePath(validating: name + "x")), "\(name)")
            #expect(!pattern.matches(try RelativePath(validating: "state 1 x")), "\(name)")
        }
    }

    @Test func theReplicaRefusesToChangeItsOwnFilesAndNeverReportsThem() async throws {
        let dir = try TemporaryDirectory("own-replica")
        let root = dir.appending("root"), state = root + "/.swunison"
        try TestFiles.write(state + "/default.prf", "root = x\n")
        try TestFiles.write(root + "/data", "d")
        let replica = try LocalReplica(root: root, cacheDirectory: state + "/caches", backupDirectory: state + "/backup",
                                       maxBackups: 1, attributes: AttributeSelection(), ownFiles: [state])
        let found = FoundEntries()
        _ = try await replica.scan(ScanRequest(cacheKey: "own")) { found.add($0) }
        #expect(found.paths == ["", "data"] || found.paths == ["data"], "\(found.paths)")

        let entry = Entry(kind: .file, size: 4, mtime: 1_600_000_000_000_000_000, mode: 0o644,
                          digest: XXH3Hasher.digest(Array("evil".utf8)))
        let results = try await replica.writeFiles([
            FileWrite(path: try RelativePath(validating: ".swunison/default.prf"), entry: entry, content: Array("evil".utf8),
                      replacing: nil, backup: false),
            FileWrite(path: try RelativePath(validating: "fine"), entry: entry, content: Array("evil".utf8),
                      replacing: nil, backup: false),
        ])
        guard case .failure(let refused) = results[0] else { Issue.record("own file written"); return }
        #expect("\(refused)".contains("swunison's own state"))
        guard case .success = results[1] else { Issue.record("\(results[1])"); return }
        await #expect(throws: (any Error).self) {
            _ = try await replica.makeDirectory(try RelativePath(validating: ".swunison/new"), entry: Entry(kind: .directory, mode: 0o755),
                                                replacing: nil, backup: false)
        }
        await #expect(throws: (any Error).self) {
            _ = try await replica.remove(try RelativePath(validating: ".swunison"), expected: Entry(kind: .directory, mode: 0o755),
                                         backup: false)
        }
        #expect(TestFiles.read(state + "/default.prf") == "root = x\n")
        await replica.close()
    }
}
