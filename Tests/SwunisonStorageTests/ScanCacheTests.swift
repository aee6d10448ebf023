import Foundation
import Testing
import SwunisonModel
@testable import SwunisonStorage

/// A tiny tree node, to compute the depth-first walk order independently of `sortKey`.
private final class Node {
    var children: [[UInt8]: Node] = [:]
    func insert(_ components: ArraySlice<[UInt8]>) {
        guard let first = components.first else { return }
        let child = children[first] ?? Node()
        children[first] = child
        child.insert(components.dropFirst())
    }
    /// Depth-first: a directory, then its entries sorted by name bytes.
    func walk(prefix: [[UInt8]], into out: inout [RelativePath]) {
        for name in children.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let path = prefix + [name]
            out.append(RelativePath(components: path.map { PathComponent(uncheckedBytes: $0) }))
            children[name]!.walk(prefix: path, into: &out)
        }
    }
}

@Suite struct ScanCacheTests {
    @Test func applyToAnEmptyCacheInWalkOrderSkipsNothingItNeeds() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        // In walk order onto an empty cache: every row lands (the deletes are skipped).
        try cache.apply([(p("d"), directory()), (p("d"), directory()), (p("d/a"), file(1)), (p("e"), file(2))], snapshot: 1)
        #expect(try all(cache.cursor()).map(\.path) == [p("d"), p("d/a"), p("e")])

        // Out of order onto an empty cache: a row beneath a path that then becomes a file, or is
        // removed, is still deleted (the deletes come back on at the first path out of order).
        let other = try ScanCache.open(path: dir.file("other.db"))
        try other.apply([(p("x/stale"), file(3)), (p("x"), file(4)), (p("y/stale"), file(5)), (p("w"), file(6)),
                         (p("y"), nil)], snapshot: 2)
        #expect(try all(other.cursor()).map(\.path) == [p("w"), p("x")])

        // Onto a cache that has rows: a file replacing a directory drops what was beneath it.
        try cache.apply([(p("d"), file(7))], snapshot: 3)
        #expect(try all(cache.cursor()).map(\.path) == [p("d"), p("e")])
    }

    /// Names with bytes below '/' ('-', ' ', '.', 0x01), high bytes and invalid UTF-8.
    static let trickyPaths: [RelativePath] = [
        p("a"), p("a/x"), p("a/x/deep"), p("a-b"), p("a b"), p("a.c"), p("a/-"), p("a/ "), p("a/x-"),
        p(bytes: [0x61, 0x01]), p(bytes: [0x61, 0x2F, 0x01]), p(bytes: [0x61, 0xFF]), p(bytes: [0xC3, 0x28]),
        p(bytes: [0xFF, 0xFE]), p("b"), p("b/c"), p("ab"), p("Z"), p("a/x/deep/er"),
    ]

    @Test func cursorYieldsTheScannersWalkOrder() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        // Insert in a scrambled order.
        let scrambled = Self.trickyPaths.enumerated().sorted { ($0.offset * 7) % 19 < ($1.offset * 7) % 19 }.map(\.element)
        try cache.replaceAll(with: scrambled.enumerated().map {
            BaselineEntry(path: $0.element, entry: file(UInt64($0.offset)))
        })

        let tree = Node()
        for path in Self.trickyPaths { tree.insert(path.components.map(\.bytes)[...]) }
        var walk: [RelativePath] = []
        tree.walk(prefix: [], into: &walk)

        let stored = try all(cache.cursor()).map(\.path)
        #expect(stored == walk)
        #expect(stored == Self.trickyPaths.sorted())
        #expect(stored.contains(p(bytes: [0xC3, 0x28])))  // invalid UTF-8 round-trips exactly
    }

    @Test func cursorUnderSubtreesReadsOnlyThoseInWalkOrder() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.replaceAll(with: Self.trickyPaths.map { BaselineEntry(path: $0, entry: directory()) })

        let underA = try all(cache.cursor(under: [p("a")])).map(\.path)
        #expect(underA == Self.trickyPaths.filter { $0.isDescendant(orEqualTo: p("a")) }.sorted())
        #expect(!underA.contains(p("a-b")) && !underA.contains(p(bytes: [0x61, 0x01])))

        // Several subtrees, overlapping and unsorted: each row once, in walk order.
        let roots = [p("b"), p("a/x"), p("a/x/deep"), p(bytes: [0x61, 0x01])]
        let expected = Self.trickyPaths.filter { path in roots.contains { path.isDescendant(orEqualTo: $0) } }.sorted()
        #expect(try all(cache.cursor(under: roots)).map(\.path) == expected)

        #expect(try all(cache.cursor(under: [.root])).count == Self.trickyPaths.count)
        #expect(try all(cache.cursor(under: [p("missing")])).isEmpty)
    }

    @Test func entriesRoundTripWithFingerprints() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        let big = Fingerprint(inode: UInt64.max, ctime: -5, mtime: Int64.max, size: 1 << 40)
        let rows = [
            BaselineEntry(path: p("f"), entry: file(3, size: 1 << 33, mode: 0o4755, fingerprint: big)),
            BaselineEntry(path: p("d"), entry: Entry(kind: .directory, mode: 0o1777, uid: UInt32.max, gid: 7)),
            BaselineEntry(path: p("l"), entry: symlink("../x y")),
            BaselineEntry(path: p("u"), entry: file(4, fingerprint: .untrusted)),
            BaselineEntry(path: p("n"), entry: Entry(kind: .file, size: 0)),  // digest not known
        ]
        try cache.replaceAll(with: rows)
        #expect(try all(cache.cursor()) == rows.sorted { $0.path < $1.path })
        for row in rows { #expect(try cache.lookup(row.path) == row.entry) }
        #expect(try cache.lookup(p("absent")) == nil)
    }

    @Test func snapshotIsSetByApplyAndClearedByReplaceAll() throws {
        let dir = try TempDir()
        let path = dir.file("cache.db")
        do {
            let cache = try ScanCache.open(path: path)
            #expect(try cache.snapshot == nil)
            try cache.apply([(p("a"), file(1))], snapshot: UInt64.max)  // all 64 bits survive
            #expect(try cache.snapshot == UInt64.max)
        }
        let cache = try ScanCache.open(path: path)
        #expect(try cache.snapshot == UInt64.max)
        try cache.refreshFingerprints([BaselineEntry(path: p("a"), entry: file(1, fingerprint: fingerprint(9)))])
        #expect(try cache.snapshot == UInt64.max)  // fingerprints do not change the baseline
        try cache.replaceAll(with: [BaselineEntry(path: p("b"), entry: file(2))])
        #expect(try cache.snapshot == nil)
        #expect(try all(cache.cursor()).map(\.path) == [p("b")])
        try cache.apply([], snapshot: 42)
        #expect(try cache.snapshot == 42)
    }

    @Test func applyDeletesTheWholeSubtreeButNotItsNeighbours() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.replaceAll(with: Self.trickyPaths.map { BaselineEntry(path: $0, entry: directory()) })
        try cache.apply([(p("a"), nil)], snapshot: 2)
        let left = try all(cache.cursor()).map(\.path)
        #expect(left == Self.trickyPaths.filter { !$0.isDescendant(orEqualTo: p("a")) }.sorted())
        #expect(left.contains(p("a-b")) && left.contains(p(bytes: [0x61, 0x01])) && left.contains(p("ab")))
    }

    @Test func applyWritesInOrderAndAFileDropsStaleChildren() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.apply([(p("d"), directory()), (p("d/x"), file(1)), (p("d/y"), file(2)), (p("d-z"), file(3))], snapshot: 1)
        // d becomes a file: its children cannot exist any more.
        try cache.apply([(p("d"), file(4)), (p("n"), directory()), (p("n/m"), file(5))], snapshot: 2)
        #expect(try all(cache.cursor()).map(\.path) == [p("d"), p("d-z"), p("n"), p("n/m")])
        #expect(try cache.lookup(p("d")) == file(4))
        // Deleting the root empties the cache.
        try cache.apply([(.root, nil)], snapshot: 3)
        #expect(try cache.entryCount == 0)
    }

    @Test func replaceAllUnderPathsKeepsTheRest() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.apply([(p("a"), directory()), (p("a/1"), file(1)), (p("b"), directory()), (p("b/1"), file(2))], snapshot: 5)
        try cache.replaceAll(with: [BaselineEntry(path: p("a"), entry: directory()),
                                    BaselineEntry(path: p("a/2"), entry: file(3))], under: [p("a")])
        #expect(try all(cache.cursor()).map(\.path) == [p("a"), p("a/2"), p("b"), p("b/1")])
        #expect(try cache.snapshot == nil)
    }

    @Test func abandonedRewriteRollsBack() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.apply([(p("keep"), file(1))], snapshot: 8)
        do {
            let rewrite = try cache.beginRewrite()
            try rewrite.add([BaselineEntry(path: p("new"), entry: file(2))])
        }  // dropped without commit
        #expect(try all(cache.cursor()).map(\.path) == [p("keep")])
        #expect(try cache.snapshot == 8)
    }

    @Test func openCursorKeepsItsSnapshotWhileTheCacheIsRewritten() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.apply((0..<50).map { (p("f\($0)"), file(UInt64($0))) }, snapshot: 1)
        var cursor = try cache.cursor()
        let first = try cursor.next()
        // The scanner reads the old cache while writing the new one batch by batch.
        let rewrite = try cache.beginRewrite()
        try rewrite.add((0..<50).map { BaselineEntry(path: p("g\($0)"), entry: file(UInt64($0))) })
        try rewrite.commit()
        var rest: [BaselineEntry] = []
        while let e = try cursor.next() { rest.append(e) }
        #expect(([first!] + rest).map(\.path) == (0..<50).map { p("f\($0)") }.sorted())
        #expect(try all(cache.cursor()).map(\.path) == (0..<50).map { p("g\($0)") }.sorted())
    }

    @Test func anUpdateFedInBatchesCommitsOnceAndKeepsTheWalkOrderRule() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        do {
            let update = try cache.beginUpdate()
            try update.add([(p("d"), directory()), (p("d/x"), file(1))])
            // Nothing is visible before the commit.
            #expect(try all(cache.cursor()).isEmpty)
            // The same path again, in a later batch: the deletes come back on, so the file
            // that replaces the directory takes its contents with it.
            try update.add([(p("d"), file(2)), (p("e"), file(3))])
            try update.commit(snapshot: 5)
        }
        #expect(try all(cache.cursor()).map(\.path) == [p("d"), p("e")])
        #expect(try cache.lookup(p("d")) == file(2))
        #expect(try cache.snapshot == 5)
        do {
            // Dropped before its commit: rolled back, the snapshot stays.
            let update = try cache.beginUpdate()
            try update.add([(p("d"), nil), (p("f"), file(4))])
        }
        #expect(try all(cache.cursor()).map(\.path) == [p("d"), p("e")])
        #expect(try cache.snapshot == 5)
    }

    @Test func refreshFingerprintsChangesOnlyFingerprints() throws {
        let dir = try TempDir()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.apply([(p("a"), file(1, fingerprint: fingerprint(1))), (p("b"), file(2, fingerprint: fingerprint(2)))],
                        snapshot: 3)
        // The row passed in carries a different digest and mode: only its fingerprint is taken.
        try cache.refreshFingerprints([
            BaselineEntry(path: p("a"), entry: file(99, mode: 0o600, fingerprint: fingerprint(10))),
            BaselineEntry(path: p("b"), entry: file(2)),
            BaselineEntry(path: p("zz"), entry: file(5, fingerprint: fingerprint(5))),
        ])
        #expect(try cache.lookup(p("a")) == file(1, fingerprint: fingerprint(10)))
        #expect(try cache.lookup(p("b")) == file(2))
        #expect(try cache.lookup(p("zz")) == nil)
        #expect(try cache.snapshot == 3)
    }

    /// Rows as an older swunison wrote them: 32-byte (SHA-256) digests, in schema 1's columns or
    /// in schema 2's packed format 1.
    static func writeOldCache(at path: String, schema: Int, snapshot: UInt64) throws {
        let old = try Database(path: path, role: .scanCache)
        try old.migrate(Array(ScanCache.migrations.prefix(1)))
        let digest32 = [UInt8](repeating: 0xAB, count: 32)
        let fingerprintValues: [Int64] = [4, 28, 44, 4]
        for (index, name) in ["a/f", "a/g", "b"].enumerated() {
            let insert = try old.prepare("""
                INSERT INTO entries(path, \(RowLayout.scanCacheColumns.columns))
                VALUES (?1, 1, 10, 1700000000000000000, 420, 1000, 1000, ?2, NULL, ?3, ?4, ?5, ?6)
                """)
            try insert.bind(KeyCoding.sortKey(of: p(name)), at: 1)
            try insert.bind(digest32, at: 2)
            for (offset, value) in fingerprintValues.enumerated() { try insert.bind(value + Int64(index), at: Int32(3 + offset)) }
            try insert.run()
        }
        try MetaTable(database: old).setSnapshot(ScanCache.snapshotKey, snapshot)
        guard schema == 2 else { return }
        // Schema 2 as it was written then: one blob per row, format 1 with the 32-byte digest.
        try old.execute("""
            CREATE TABLE entries_packed(path BLOB NOT NULL PRIMARY KEY, row BLOB NOT NULL) WITHOUT ROWID;
            INSERT INTO entries_packed SELECT path, x'01010300a4010000e8030000e8030000' || zeroblob(16) || digest || zeroblob(32) FROM entries;
            DROP TABLE entries; ALTER TABLE entries_packed RENAME TO entries;
            PRAGMA user_version = 2;
            """)
    }

    @Test(arguments: [1, 2])
    func cacheWithSHA256DigestsStartsOver(schema: Int) throws {
        let dir = try TempDir()
        let path = dir.file("cache.db")
        try Self.writeOldCache(at: path, schema: schema, snapshot: 77)
        #expect(try Database(path: path, role: .scanCache).userVersion() == schema)
        let cache = try ScanCache.open(path: path)
        #expect(try cache.database.userVersion() == 3)
        #expect(try cache.database.appliedMigrations().suffix(1) == ["content digests are XXH3-128: start over"])
        // Nothing stale is left to trust: no rows, and no snapshot, so the next scan is full.
        #expect(try cache.snapshot == nil)
        #expect(try all(cache.cursor()).isEmpty)
        // The table is the packed one: a column of schema 1 is gone, and new rows round-trip.
        #expect(throws: StorageError.self) { try cache.database.execute("SELECT inode FROM entries") }
        try cache.apply([(p("a"), file(1, fingerprint: fingerprint(4)))], snapshot: 5)
        #expect(try cache.lookup(p("a")) == file(1, fingerprint: fingerprint(4)))
    }

    @Test func removeFileDeletesTheDatabaseAndItsCompanions() throws {
        let dir = try TempDir()
        let path = dir.file("cache.db")
        do {
            let cache = try ScanCache.open(path: path)
            try cache.apply([(p("a"), file(1))], snapshot: 1)
        }
        // Companions as a crash would leave them.
        for f in [path + "-wal", path + "-shm"] { #expect(FileManager.default.createFile(atPath: f, contents: Data([1]))) }
        try ScanCache.removeFile(at: path)
        for f in [path, path + "-wal", path + "-shm"] { #expect(!FileManager.default.fileExists(atPath: f)) }
        try ScanCache.removeFile(at: path)  // nothing left: still fine
        #expect(try ScanCache.open(path: path).snapshot == nil)
    }
}
