import Testing
import SwunisonModel
@testable import SwunisonStorage

/// 200,000 rows through the real SQLite files: streaming insert, cursor, archive commit, merge.
/// A smoke test of the streaming paths at the target size; budgets are measured elsewhere.
@Suite struct LargeTreeTests {
    static let directories = 400
    static let filesPerDirectory = 499  // + the directory itself = 500 rows each, 200,000 in all

    /// The tree in walk order ("dir10" < "dir2"), built once per test from raw bytes.
    static func tree() -> [BaselineEntry] {
        var rows: [BaselineEntry] = []
        rows.reserveCapacity(directories * (filesPerDirectory + 1))
        let directoryEntry = directory()
        let fileEntry = file(7, fingerprint: fingerprint(7))
        for d in 0..<directories {
            let dir = Array("dir\(d)".utf8)
            rows.append(BaselineEntry(path: RelativePath(uncheckedBytes: dir), entry: directoryEntry))
            for f in 0..<filesPerDirectory {
                var entry = fileEntry
                entry.size = Int64(f)
                rows.append(BaselineEntry(path: RelativePath(uncheckedBytes: dir + Array("/f\(f)".utf8)), entry: entry))
            }
        }
        rows.sort { $0.path < $1.path }
        return rows
    }

    @Test func twoHundredThousandRows() throws {
        let dir = try TempDir()
        let tree = Self.tree()
        let cache = try ScanCache.open(path: dir.file("cache.db"))
        try cache.replaceAll(with: tree)
        #expect(try cache.entryCount == 200_000)

        // The cursor streams them back in strictly increasing walk order.
        var cursor = try cache.cursor()
        var count = 0
        var previous: RelativePath?
        var ordered = true
        while let row = try cursor.next() {
            if let previous, !(previous < row.path) { ordered = false }
            previous = row.path
            count += 1
        }
        #expect(count == 200_000)
        #expect(ordered)

        // The archive takes the same rows in one commit.
        let archive = try Archive.open(path: dir.file("ar.db"), roots: ["/a", "/b"])
        try archive.commit(updates: tree.map { ($0.path, Optional($0.entry)) }, snapshotA: 1, snapshotB: 1)
        #expect(try archive.entryCount == 200_000)

        // A full-scan merge of the cache (as the "scan") against the archive, after a few changes.
        try cache.apply([(p("dir7"), nil), (p("dir9/f3"), file(1)), (p("dir99/new"), file(2))], snapshot: 2)
        var merge = FullScanDiff(archive: try archive.cursor(), selection: AttributeSelection())
        var scanCursor = try cache.cursor()
        var changes: [ScanChange] = []
        var batch: [ScanChange] = []
        while let row = try scanCursor.next() {
            batch.append(ScanChange(path: row.path, old: nil, new: row.entry))
            if batch.count == 1000 { changes += try merge.feed(batch); batch.removeAll(keepingCapacity: true) }
        }
        changes += try merge.feed(batch)
        changes += try merge.finish()
        #expect(changes.count == 500 + 2)  // dir7 and its 499 files, dir9/f3, dir99/new
        #expect(changes.filter { $0.path.isDescendant(orEqualTo: p("dir7")) }.allSatisfy { $0.new == nil })
        #expect(changes.contains(ScanChange(path: p("dir99/new"), old: nil, new: file(2))))
    }
}
