import Testing
import SwunisonModel
@testable import SwunisonStorage

@Suite struct ArchiveTests {
    @Test func newArchiveIsEmptyWithUnknownSnapshots() throws {
        let dir = try TempDir()
        let archive = try Archive.open(path: dir.file("ar.db"), roots: ["/srv/a", "ssh://host//srv/b"])
        #expect(try archive.isEmpty)
        #expect(try archive.entryCount == 0)
        let ids = try archive.snapshots
        #expect(ids.a == nil && ids.b == nil)
        let info = try archive.info
        #expect(info.roots == ["/srv/a", "ssh://host//srv/b"])
        #expect(info.schemaVersion == Archive.migrations.count)
        #expect(info.createdAt > 1_600_000_000 && info.updatedAt >= info.createdAt)
    }

    @Test func commitStoresEntriesWithoutFingerprintsAndBothSnapshots() throws {
        let dir = try TempDir()
        let path = dir.file("ar.db")
        do {
            let archive = try Archive.open(path: path, roots: ["/a", "/b"])
            try archive.commit(updates: [(p("d"), directory()), (p("d/f"), file(1, fingerprint: fingerprint(4))),
                                         (p("l"), symlink("d/f"))],
                               snapshotA: 10, snapshotB: UInt64.max)
        }
        let archive = try Archive.open(path: path, roots: ["/a", "/b"])
        #expect(try !archive.isEmpty)
        #expect(try archive.entryCount == 3)
        let ids = try archive.snapshots
        #expect(ids.a == 10 && ids.b == UInt64.max)
        #expect(try archive.lookup(p("d/f")) == file(1))  // fingerprint dropped
        #expect(try all(archive.cursor()).map(\.path) == [p("d"), p("d/f"), p("l")])
        #expect(try all(archive.cursor(under: [p("d")])).map(\.entry) == [directory(), file(1)])

        // A later run: delete the directory (and its subtree), one side's id unknown.
        try archive.commit(updates: [(p("d"), nil)], snapshotA: 11, snapshotB: nil)
        #expect(try all(archive.cursor()).map(\.path) == [p("l")])
        let after = try archive.snapshots
        #expect(after.a == 11 && after.b == nil)
    }

    @Test func archiveWithSHA256DigestsForgetsThemAndItsSnapshots() throws {
        let dir = try TempDir()
        let path = dir.file("ar.db")
        do {
            let archive = try Archive.open(path: path, roots: ["/a", "/b"])
            try archive.commit(updates: [(p("d"), directory()), (p("d/f"), file(1)), (p("l"), symlink("d/f"))],
                               snapshotA: 10, snapshotB: 20)
            // Make it the schema-1 archive an older swunison wrote: 32-byte SHA-256 digests.
            try archive.database.execute("""
                UPDATE entries SET digest = zeroblob(32) WHERE digest IS NOT NULL;
                DELETE FROM swunison_migrations WHERE version > 1;
                PRAGMA user_version = 1;
                """)
        }
        let archive = try Archive.open(path: path, roots: ["/a", "/b"])
        #expect(try archive.database.userVersion() == Archive.migrations.count)
        #expect(try archive.database.appliedMigrations().last == "content digests are XXH3-128: forget the SHA-256 ones")
        // Every row is kept, the file without its digest; both snapshots are unknown (full scans).
        var expected = file(1)
        expected.digest = nil
        #expect(try all(archive.cursor()).map(\.entry) == [directory(), expected, symlink("d/f")])
        let ids = try archive.snapshots
        #expect(ids.a == nil && ids.b == nil)
    }

    @Test func failedCommitChangesNothing() throws {
        let dir = try TempDir()
        let archive = try Archive.open(path: dir.file("ar.db"), roots: ["/a", "/b"])
        try archive.commit(updates: [(p("x"), file(1))], snapshotA: 1, snapshotB: 2)
        // Make the meta write fail after the entry writes, inside the same transaction.
        try archive.database.execute("""
            CREATE TRIGGER refuse BEFORE INSERT ON meta WHEN NEW.key = 'snapshot.b'
            BEGIN SELECT RAISE(ABORT, 'refused'); END
            """)
        let error = storageError { try archive.commit(updates: [(p("x"), nil), (p("y"), file(2))], snapshotA: 3, snapshotB: 4) }
        #expect(error?.message == "refused")
        #expect(try all(archive.cursor()).map(\.path) == [p("x")])
        let ids = try archive.snapshots
        #expect(ids.a == 1 && ids.b == 2)
    }

    @Test func otherRootsAreRefused() throws {
        let dir = try TempDir()
        let path = dir.file("ar.db")
        _ = try Archive.open(path: path, roots: ["/a", "/b"])
        let error = storageError { _ = try Archive.open(path: path, roots: ["/a", "/c"]) }
        #expect(error?.reason == .rootsMismatch(stored: ["/a", "/b"], given: ["/a", "/c"]))
        #expect(error?.description == "archive \(path) belongs to roots /a and /b, not /a and /c: "
                + "use the profile it was made for, or move it away or run with --ignorearchives to rebuild it")
        // Swapped roots would swap A and B: refused too.
        #expect(storageError { _ = try Archive.open(path: path, roots: ["/b", "/a"]) }?.reason
                == .rootsMismatch(stored: ["/a", "/b"], given: ["/b", "/a"]))
        _ = try Archive.open(path: path, roots: ["/a", "/b"])
    }

    @Test func removeFileForIgnoreArchives() throws {
        let dir = try TempDir()
        let path = dir.file("ar.db")
        do {
            let archive = try Archive.open(path: path, roots: ["/a", "/b"])
            try archive.commit(updates: [(p("x"), file(1))], snapshotA: 1, snapshotB: 2)
        }
        try Archive.removeFile(at: path)
        let archive = try Archive.open(path: path, roots: ["/a", "/c"])
        #expect(try archive.isEmpty)
    }
}
