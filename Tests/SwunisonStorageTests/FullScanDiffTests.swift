import Testing
import SwunisonModel
@testable import SwunisonStorage

@Suite struct FullScanDiffTests {
    /// The scan as a replica sends it in full mode: every entry present, old == nil.
    private func scan(_ entries: [(RelativePath, Entry)]) -> [ScanChange] {
        entries.map { ScanChange(path: $0.0, old: nil, new: $0.1) }
    }

    private func diff(archive: [(RelativePath, Entry)], scan batches: [[ScanChange]],
                      selection: AttributeSelection = AttributeSelection(),
                      excluded: [RelativePath] = []) throws -> [ScanChange] {
        let cursor = ArrayBaselineCursor(archive.map { BaselineEntry(path: $0.0, entry: $0.1) })
        var merge = FullScanDiff(archive: cursor, selection: selection, excluded: excluded)
        var out: [ScanChange] = []
        for batch in batches { out += try merge.feed(batch) }
        return out + (try merge.finish())
    }

    @Test func reportsCreationsModificationsAndDeletionsOnly() throws {
        let archive = [(p("a"), directory()), (p("a/keep"), file(1)), (p("a/mod"), file(2)), (p("a/gone"), file(3)),
                       (p("a-z"), file(4)), (p("z"), file(5))]
        let now = scan([(p("a"), directory()), (p("a/keep"), file(1, fingerprint: fingerprint(1))), (p("a/mod"), file(20)),
                        (p("a/new"), file(6)), (p("a-z"), file(4)), (p("b"), symlink("a"))])
        // Batches split anywhere give the same result.
        let expected = [
            ScanChange(path: p("a/gone"), old: file(3), new: nil),
            ScanChange(path: p("a/mod"), old: file(2), new: file(20)),
            ScanChange(path: p("a/new"), old: nil, new: file(6)),
            ScanChange(path: p("b"), old: nil, new: symlink("a")),
            ScanChange(path: p("z"), old: file(5), new: nil),
        ]
        for split in 0...now.count {
            let batches = [Array(now[..<split]), Array(now[split...])]
            #expect(try diff(archive: archive, scan: batches) == expected, "split at \(split)")
        }
        #expect(try diff(archive: archive, scan: now.map { [$0] }) == expected)
    }

    @Test func attributeChangesCountOnlyWhenSelected() throws {
        let archive = [(p("f"), file(1, mtime: 100, mode: 0o644))]
        let now = scan([(p("f"), file(1, mtime: 200, mode: 0o600))])
        #expect(try diff(archive: archive, scan: [now]).count == 1)
        let ignoring = AttributeSelection(permissionMask: 0, times: false)
        #expect(try diff(archive: archive, scan: [now], selection: ignoring).isEmpty)
    }

    @Test func archivedFilesWithoutDigestMatchBySizeAndMtime() throws {
        // As the archive migration to XXH3 leaves them: files without a digest.
        func undigested(_ seed: UInt64, size: Int64 = 10, mtime: Int64 = 100) -> Entry {
            var entry = file(seed, size: size, mtime: mtime)
            entry.digest = nil
            return entry
        }
        let archive = [(p("gone"), undigested(5)), (p("kind"), undigested(6)), (p("mode"), undigested(4)),
                       (p("same"), undigested(1)), (p("size"), undigested(2)), (p("time"), undigested(3))]
        var otherMode = file(4, size: 10, mtime: 100)
        otherMode.mode = 0o600
        let now = scan([(p("kind"), directory()), (p("mode"), otherMode), (p("same"), file(1, size: 10, mtime: 100)),
                        (p("size"), file(2, size: 11, mtime: 100)), (p("time"), file(3, size: 10, mtime: 101))])
        let changes = try diff(archive: archive, scan: [now])
        #expect(changes.map(\.path) == [p("gone"), p("kind"), p("mode"), p("size"), p("time")])
        // With a digest on record, content still decides: the same size and mtime are not enough.
        #expect(try diff(archive: [(p("same"), file(9, size: 10, mtime: 100))],
                         scan: [scan([(p("same"), file(1, size: 10, mtime: 100))])]).count == 1)
    }

    @Test func emptySidesAreAllCreationsOrAllDeletions() throws {
        let entries = [(p("x"), file(1)), (p("y"), directory())]
        #expect(try diff(archive: [], scan: [scan(entries)]).map(\.old) == [nil, nil])
        let deletions = try diff(archive: entries, scan: [])
        #expect(deletions.map(\.path) == [p("x"), p("y")] && deletions.allSatisfy { $0.new == nil })
        #expect(try diff(archive: [], scan: []).isEmpty)
    }

    @Test func excludedSubtreesProduceNothing() throws {
        let archive = [(p("a"), directory()), (p("a/x"), file(1)), (p("b"), directory()), (p("b/locked"), directory()),
                       (p("b/locked/f"), file(2)), (p("b/locked-not"), file(3)), (p("c"), file(4))]
        // b/locked could not be read: it is missing from the scan but must not count as deleted,
        // and whatever the scan says beneath it is ignored as well.
        let now = scan([(p("a"), directory()), (p("b"), directory()), (p("b/locked/g"), file(9)), (p("c"), file(40)),
                        (p("d"), file(5))])
        let changes = try diff(archive: archive, scan: [now], excluded: [p("d"), p("b/locked")])
        #expect(changes == [
            ScanChange(path: p("a/x"), old: file(1), new: nil),
            ScanChange(path: p("b/locked-not"), old: file(3), new: nil),
            ScanChange(path: p("c"), old: file(4), new: file(40)),
        ])
    }

    @Test func outOfOrderScanIsAnError() throws {
        let now = scan([(p("b"), file(1)), (p("a"), file(2))])
        #expect(throws: FullScanDiffError.outOfOrder(previous: p("b"), next: p("a"))) {
            _ = try diff(archive: [], scan: [now])
        }
        let duplicate = scan([(p("a"), file(1)), (p("a"), file(1))])
        #expect(throws: FullScanDiffError.self) { _ = try diff(archive: [], scan: [duplicate]) }
    }

    @Test func mergesAgainstTheStoredArchiveCursor() throws {
        let dir = try TempDir()
        let archive = try Archive.open(path: dir.file("ar.db"), roots: ["/a", "/b"])
        try archive.commit(updates: ScanCacheTests.trickyPaths.map { ($0, directory()) }, snapshotA: 1, snapshotB: 1)
        // The replica now has everything except the a/x subtree, walk-ordered by the model's `<`.
        let present = ScanCacheTests.trickyPaths.filter { !$0.isDescendant(orEqualTo: p("a/x")) }.sorted()
        var merge = FullScanDiff(archive: try archive.cursor(), selection: AttributeSelection())
        var changes = try merge.feed(scan(present.map { ($0, directory()) }))
        changes += try merge.finish()
        #expect(changes.map(\.path) == [p("a/x"), p("a/x/deep"), p("a/x/deep/er")])
        #expect(changes.allSatisfy { $0.new == nil && $0.old == directory() })
    }
}
