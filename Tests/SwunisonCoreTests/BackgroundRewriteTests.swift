import Testing
import SwunisonModel
import SwunisonStorage
import SwunisonTestSupport
@testable import SwunisonCore
import SwunisonReplica

/// A full scan's cache rows are written on a queue of their own (BackgroundRewrite).
@Suite struct BackgroundRewriteTests {
    private func file(_ name: String) -> ScanChange {
        ScanChange(path: try! RelativePath(validating: name), old: nil,
                   new: Entry(kind: .file, size: 1, mtime: 5, mode: 0o644, digest: Digest(w0: 1, w1: 2)))
    }

    @Test func batchesLandInOrderAndCommitWaitsForThem() throws {
        let dir = try TemporaryDirectory("core-rewrite")
        let cache = try ScanCache.open(path: dir.appending("cache.db"))
        let rewrite = BackgroundRewrite(try cache.beginRewrite())
        for batch in 0..<50 { try rewrite.add((0..<100).map { file(String(format: "d%02d/f%03d", batch, $0)) }) }
        try rewrite.commit()
        var count = 0
        var rows = try cache.cursor()
        while try rows.next() != nil { count += 1 }
        #expect(count == 5_000)
    }

    @Test func aFailedBatchStopsTheScanAndTheCommit() throws {
        let dir = try TemporaryDirectory("core-rewrite")
        let cache = try ScanCache.open(path: dir.appending("cache.db"))
        try cache.apply([(try RelativePath(validating: "kept"), Entry(kind: .directory))], snapshot: 4)
        let inner = try cache.beginRewrite()
        let rewrite = BackgroundRewrite(inner)
        inner.rollback()  // every later write into the rewrite now fails
        try rewrite.add([file("a")])
        // The failure surfaces at the next batch at the latest, and at the commit.
        var failed = false
        for _ in 0..<100 where !failed {
            do { try rewrite.add([file("b")]) } catch { failed = true }
        }
        #expect(failed)
        #expect(throws: StorageError.self) { try rewrite.commit() }
        // The cache kept what it had.
        #expect(try cache.snapshot == 4)
        #expect(try cache.lookup(try RelativePath(validating: "kept")) != nil)
        #expect(try cache.lookup(try RelativePath(validating: "a")) == nil)
    }
}
