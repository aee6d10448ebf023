import Foundation
import Testing
import SwunisonModel
@testable import SwunisonStorage

@Suite struct DatabaseTests {
    /// Archives and caches list every path and digest of the user's files: 0600, whatever the
    /// umask, their -wal and -shm files included.
    @Test func databasesAreCreatedReadableByTheUserOnly() throws {
        let dir = try TempDir()
        let old = umask(0o022)
        defer { umask(old) }
        let archive = try Archive.open(path: dir.file("ar.db"), roots: ["/a", "/b"])
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        for name in ["ar.db", "ar.db-wal", "ar.db-shm", "cache.db", "cache.db-wal"] {
            var st = stat()
            #expect(stat(dir.file(name), &st) == 0, "\(name)")
            #expect(st.st_mode & 0o777 == 0o600, "\(name): \(String(st.st_mode & 0o777, radix: 8))")
        }
        withExtendedLifetime((archive, cache)) {}
    }

    @Test func opensInWALAndRoundTripsValues() throws {
        let dir = try TempDir()
        let db = try Database(path: dir.file("t.db"), role: .archive)
        let mode = try db.prepare("PRAGMA journal_mode")
        #expect(try mode.step())
        #expect(mode.text(at: 0) == "wal")

        try db.execute("CREATE TABLE t(a INTEGER, b BLOB, c TEXT)")
        let insert = try db.prepare("INSERT INTO t VALUES (?, ?, ?)")
        try insert.bind(Int64.min, at: 1); try insert.bind([UInt8](), at: 2); try insert.bind("é", at: 3)
        try insert.run()
        try insert.bind(Int64?.none, at: 1); try insert.bind([UInt8]?.none, at: 2); try insert.bind(String?.none, at: 3)
        try insert.run()
        let select = try db.prepare("SELECT a, b, c FROM t ORDER BY rowid")
        #expect(try select.step())
        #expect(select.int64(at: 0) == Int64.min)
        #expect(select.blob(at: 1) == [])  // an empty BLOB stays distinct from NULL
        #expect(select.text(at: 2) == "é")
        #expect(try select.step())
        #expect(select.optionalInt64(at: 0) == nil)
        #expect(select.blob(at: 1) == nil)
        #expect(select.text(at: 2) == nil)
        #expect(try !select.step())
    }

    @Test func transactionRollsBackWhenTheBodyThrows() throws {
        let dir = try TempDir()
        let db = try Database(path: dir.file("t.db"), role: .archive)
        try db.execute("CREATE TABLE t(a INTEGER)")
        let failure = StorageError(.sqlite, role: .archive, file: "x", message: "boom")
        let thrown = storageError {
            try db.transaction { () throws(StorageError) in
                try db.execute("INSERT INTO t VALUES (1)")
                throw failure
            }
        }
        #expect(thrown == failure)
        #expect(!db.isInTransaction)
        let count = try db.prepare("SELECT count(*) FROM t")
        try count.step()
        #expect(count.int64(at: 0) == 0)
    }

    @Test func sqlErrorsCarryFileCodeMessageAndSQL() throws {
        let dir = try TempDir()
        let db = try Database(path: dir.file("t.db"), role: .archive)
        let error = storageError { _ = try db.prepare("SELECT * FROM missing_table") }
        #expect(error?.reason == .sqlite)
        #expect(error?.file == dir.file("t.db"))
        #expect(error?.code == 1)  // SQLITE_ERROR
        #expect(error?.message.contains("missing_table") == true)
        #expect(error?.sql == "SELECT * FROM missing_table")
        #expect(error?.description.hasPrefix("archive \(dir.file("t.db")) failed (no such table: missing_table") == true)
    }

    @Test func missingDirectoryIsACannotOpenError() throws {
        let dir = try TempDir()
        let path = dir.file("no/such/dir/archive.db")
        let error = storageError { _ = try Archive.open(path: path, roots: ["/a", "/b"]) }
        #expect(error?.reason == .sqlite)
        #expect(error?.code == 14)  // SQLITE_CANTOPEN
        #expect(error?.description == "archive \(path) could not be opened for writing (unable to open database file): "
                + "check that the file and its directory exist and are writable")
    }

    @Test func migrationsRunOnceInOrderAndAreRecorded() throws {
        let dir = try TempDir()
        let v1 = [Migration("one", sql: "CREATE TABLE a(x);")]
        let v2 = v1 + [Migration("two", sql: "CREATE TABLE b(y);")]
        do {
            let db = try Database(path: dir.file("m.db"), role: .archive)
            try db.migrate(v1)
            #expect(try db.userVersion() == 1)
            try db.migrate(v1)  // nothing to do: would fail with "table a already exists" if rerun
        }
        let db = try Database(path: dir.file("m.db"), role: .archive)
        try db.migrate(v2)
        #expect(try db.userVersion() == 2)
        #expect(try db.appliedMigrations() == ["one", "two"])
    }

    @Test func failedMigrationLeavesTheSchemaUntouched() throws {
        let dir = try TempDir()
        let db = try Database(path: dir.file("m.db"), role: .archive)
        let bad = [Migration("one", sql: "CREATE TABLE a(x);"), Migration("two", sql: "CREATE TABLE b(y); SELECT nonsense(")]
        #expect(storageError { try db.migrate(bad) } != nil)
        #expect(try db.userVersion() == 1)
        #expect(try db.appliedMigrations() == ["one"])
    }

    @Test func newerSchemaIsRefusedWithAClearMessage() throws {
        let dir = try TempDir()
        let path = dir.file("archive.db")
        do {
            _ = try Archive.open(path: path, roots: ["/a", "/b"])
            let raw = try Database(path: path, role: .archive)
            try raw.execute("PRAGMA user_version = 7")
        }
        let error = storageError { _ = try Archive.open(path: path, roots: ["/a", "/b"]) }
        #expect(error?.reason == .newerSchema(found: 7, known: Archive.migrations.count))
        #expect(error?.description == "archive \(path) was written by a newer swunison (schema 7, this one knows up to \(Archive.migrations.count)): "
                + "upgrade swunison, or move it away or run with --ignorearchives to rebuild it")
        // The refusal changed nothing.
        #expect(try Database(path: path, role: .archive).userVersion() == 7)
    }

    @Test func garbageFileIsUnreadable() throws {
        let dir = try TempDir()
        let path = dir.file("archive.db")
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: path))
        let error = storageError { _ = try Archive.open(path: path, roots: ["/a", "/b"]) }
        #expect(error?.reason == .unreadable)
        #expect(error?.isUnreadable == true)
        #expect(error?.description == "archive \(path) is unreadable (file is not a database): "
                + "move it away or run with --ignorearchives to rebuild it")

        let cacheError = storageError { _ = try ScanCache.open(path: path) }
        #expect(cacheError?.reason == .unreadable)
        #expect(cacheError?.description.hasPrefix("scan cache \(path) is unreadable") == true)
    }

    @Test func damagedPagesAreReportedNotCrashed() throws {
        let dir = try TempDir()
        let path = dir.file("archive.db")
        do {
            let archive = try Archive.open(path: path, roots: ["/a", "/b"])
            let updates = (0..<3000).map { (p("dir\($0 / 100)/file\($0)"), Optional(file(UInt64($0)))) }
            try archive.commit(updates: updates, snapshotA: 1, snapshotB: 2)
        }  // last connection closed: the WAL is checkpointed into the main file
        // Overwrite every page after the first two with garbage.
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        let size = try handle.seekToEnd()
        #expect(size > 3 * 4096)
        try handle.seek(toOffset: 2 * 4096)
        handle.write(Data((0..<Int(size) - 2 * 4096).map { UInt8(truncatingIfNeeded: $0 &* 251 &+ 3) }))
        handle.closeFile()

        let error = storageError {
            let archive = try Archive.open(path: path, roots: ["/a", "/b"])
            _ = try all(archive.cursor())
        }
        #expect(error?.isUnreadable == true)
        #expect(error?.description.contains("move it away or run with --ignorearchives") == true)
    }

    @Test func undecodableArchiveRowsAreStorageErrors() throws {
        let dir = try TempDir()
        let path = dir.file("archive.db")
        let archive = try Archive.open(path: path, roots: ["/a", "/b"])
        let cases: [(String, String)] = [
            ("INSERT INTO entries(path, kind, size, mtime, mode, uid, gid) VALUES (x'62', 9, 0, 0, 0, 0, 0)", "unknown kind 9"),
            ("INSERT INTO entries(path, kind, size, mtime, mode, uid, gid, digest) VALUES (x'62', 1, 0, 0, 0, 0, 0, x'0102')",
             "digest of 2 bytes"),
            ("INSERT INTO entries(path, kind, size, mtime, mode, uid, gid) VALUES (x'2e2e', 2, 0, 0, 0, 0, 0)", "invalid path"),
            ("INSERT INTO entries(path, kind, size, mtime, mode, uid, gid) VALUES (x'62', 2, 0, 0, -1, 0, 0)", "mode -1"),
        ]
        for (sql, expected) in cases {
            try archive.database.execute("DELETE FROM entries")
            try archive.database.execute(sql)
            let error = storageError { _ = try all(archive.cursor()) }
            #expect(error?.reason == .invalidRow, "\(sql)")
            #expect(error?.message.contains(expected) == true, "\(String(describing: error?.message))")
            #expect(error?.description.hasPrefix("archive \(path) holds a row that does not decode") == true)
        }
    }

    @Test func undecodableScanCacheRowsAreStorageErrors() throws {
        let dir = try TempDir()
        let path = dir.file("cache.db")
        let cache = try ScanCache.open(path: path)
        try cache.apply([(p("ok"), file(1))], snapshot: 1)
        // A valid packed directory row: format 2, kind 2, no flags, then 28 bytes of zeros.
        let directoryRow = "02020000" + String(repeating: "00", count: 28)
        let cases: [(String, String)] = [
            ("x'62', x'02090000' || zeroblob(28)", "unknown kind 9"),
            // Format 1 held 32-byte SHA-256 digests: never read as format 2.
            ("x'62', x'01020000' || zeroblob(28)", "packed row format 1 (this swunison reads format 2)"),
            ("x'62', x'03020000' || zeroblob(28)", "packed row format 3"),
            ("x'62', x'020200f0' || zeroblob(28)", "unknown flags"),
            ("x'62', x'0202'", "packed row of 2 bytes"),
            // Flag 1 promises a 16-byte digest that is not there.
            ("x'62', x'02010100' || zeroblob(28)", "where its flags say 48"),
            // Bytes after the fixed part without the link-target flag.
            ("x'62', x'\(directoryRow)ff'", "packed row of 33 bytes where its flags say 32"),
            ("x'2e2e', x'\(directoryRow)'", "invalid path"),
        ]
        for (values, expected) in cases {
            try cache.database.execute("DELETE FROM entries WHERE path <> x'6f6b'")
            try cache.database.execute("INSERT INTO entries(path, row) VALUES (\(values))")
            for drain in [all, allInPlace] as [(EntryCursor) throws -> [BaselineEntry]] {
                let error = storageError { _ = try drain(cache.cursor()) }
                #expect(error?.reason == .invalidRow, "\(values)")
                #expect(error?.message.contains(expected) == true, "\(String(describing: error?.message))")
                #expect(error?.description.hasPrefix("scan cache \(path) holds a row that does not decode") == true)
            }
        }
        // The valid row decodes.
        try cache.database.execute("DELETE FROM entries WHERE path <> x'6f6b'")
        try cache.database.execute("INSERT INTO entries(path, row) VALUES (x'62', x'\(directoryRow)')")
        #expect(try all(cache.cursor()).map(\.entry.kind) == [.directory, .file])
        #expect(try allInPlace(cache.cursor()) == all(cache.cursor()))
    }

    @Test func packedEntriesRoundTripEveryOptionalPart() throws {
        let entries: [Entry] = [
            file(7, size: Int64.max, mtime: Int64.min, mode: 0o7777,
                 fingerprint: Fingerprint(inode: UInt64.max, ctime: Int64.min, mtime: Int64.max, size: -1)),
            file(8, fingerprint: .untrusted),
            file(9),
            directory(mode: 0o700),
            symlink("../x/\u{0}y"),
            Entry(kind: .symlink, linkTarget: []),
            Entry(kind: .symlink, uid: UInt32.max, gid: UInt32.max, linkTarget: Array(repeating: 0x61, count: 4095),
                  fingerprint: fingerprint(3)),
            Entry(kind: .file, size: 0, digest: nil),
        ]
        for entry in entries {
            let decoded = try PackedEntry.withPacked(entry) { (raw) throws(StorageError) in
                #expect(raw.count == PackedEntry.length(of: entry))
                return PackedEntry.unpack(raw)
            }
            #expect(decoded == .success(entry))
        }
    }
}
