import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import Testing

@Suite struct ScanFastcheckTests {
    /// The baseline with `path`'s digest replaced, fingerprint kept.
    func withForgedDigest(_ baseline: [BaselineEntry], _ path: String) -> [BaselineEntry] {
        baseline.map { row in
            var row = row
            if row.path.description == path { row.entry.digest = scanDigest("forged") }
            return row
        }
    }

    @Test func matchingFingerprintReusesTheBaselineDigest() throws {
        let tree = try ScanFixture()
        try tree.write("f", "content")
        let forged = withForgedDigest(try tree.baseline(), "f")

        let trusting = try tree.scan(baseline: forged)
        // Not reread: the forged digest was taken as is, so nothing looks changed.
        #expect(trusting.changes.isEmpty)
        #expect(trusting.outcome.hashedFiles == 0)

        let checking = try tree.scan(baseline: forged, fastcheck: false)
        #expect(checking.outcome.hashedFiles == 1)
        #expect(checking.change("f")?.new?.digest == scanDigest("content"))
        #expect(checking.change("f")?.old?.digest == scanDigest("forged"))
    }

    @Test func contentChangedWithSizeAndMtimeRestoredIsRehashed() throws {
        let tree = try ScanFixture()
        try tree.write("f", "AAAA")
        let baseline = try tree.baseline()
        // Same size, same mtime, same inode: only ctime betrays the rewrite.
        try tree.write("f", "BBBB", mtime: ScanFixture.pastTime)

        let run = try tree.scan(baseline: baseline)

        #expect(run.outcome.hashedFiles == 1)
        let change = try #require(run.change("f"))
        #expect(change.old?.size == change.new?.size && change.old?.mtime == change.new?.mtime)
        #expect(change.new?.digest == scanDigest("BBBB"))
    }

    @Test func identicalCopyWithNewInodeIsARefreshNotAChange() throws {
        let tree = try ScanFixture()
        try tree.write("f", "same")
        let baseline = try tree.baseline()
        try tree.remove("f")
        try tree.write("f", "same")  // new inode and ctime, same content, mtime and mode

        let run = try tree.scan(baseline: baseline)

        #expect(run.changes.isEmpty)
        #expect(run.outcome.hashedFiles == 1)
        let refreshed = try #require(run.outcome.refreshed.first)
        #expect(run.outcome.refreshed.count == 1)
        #expect(refreshed.path.description == "f")
        #expect(refreshed.entry.fingerprint != baseline[0].entry.fingerprint)
        var st = stat()
        #expect(lstat(tree.absolute(Array("f".utf8)), &st) == 0)
        #expect(refreshed.entry.fingerprint?.inode == UInt64(st.st_ino))
    }

    @Test func recentlyModifiedFilesGetAnUntrustedFingerprint() throws {
        let tree = try ScanFixture()
        let now = scanClockNow()
        try tree.write("fresh", "still being written", mtime: now - 200_000_000)
        try tree.write("settled", "old")

        let first = try tree.scan(delta: false, now: now)
        #expect(first.change("fresh")?.new?.fingerprint == .untrusted)
        #expect(first.change("fresh")?.new?.digest == scanDigest("still being written"))
        let settled = try #require(first.change("settled")?.new?.fingerprint)
        #expect(settled != .untrusted && settled.mtime == ScanFixture.pastTime)

        // Next run: the untrusted file is read again, the settled one is not.
        let baseline = first.changes.map { BaselineEntry(path: $0.path, entry: $0.new!) }
        let second = try tree.scan(baseline: baseline, now: now + 10_000_000_000)
        #expect(second.changes.isEmpty)
        #expect(second.outcome.hashedFiles == 1)
        #expect(second.outcome.refreshed.map(\.path.description) == ["fresh"])
        #expect(second.outcome.refreshed.first?.entry.fingerprint != .untrusted)
    }
}

/// Scans that defer digests (a first sync's): files are reported without reading them, and the
/// unhashed rows they leave in the cache are trusted on fingerprint as hashed ones are.
@Suite struct ScanDeferredDigestTests {
    @Test func aDeferredScanReadsNoFile() throws {
        let tree = try ScanFixture()
        try tree.mkdir("d")
        try tree.write("d/f", "content")
        try tree.write("g", String(repeating: "x", count: 300_000))
        for threads in [1, 4] {
            let run = try tree.scan(delta: false, hashThreads: threads, deferDigests: true)
            #expect(run.outcome.hashedFiles == 0 && run.outcome.hashedBytes == 0)
            #expect(run.paths == ["d", "d/f", "g"])
            #expect(run.change("d/f")?.new?.size == 7 && run.change("d/f")?.new?.digest == nil)
            #expect(run.change("g")?.new?.digest == nil && run.change("g")?.new?.fingerprint != nil)
        }
    }

    @Test func unhashedRowsAreTrustedOnFingerprintAndReportedOnceItChanges() throws {
        let tree = try ScanFixture()
        try tree.write("f", "AAAA")
        try tree.write("g", "same")
        let unhashed = try tree.scan(delta: false, deferDigests: true).changes.map { BaselineEntry(path: $0.path, entry: $0.new!) }
        #expect(unhashed.allSatisfy { $0.entry.digest == nil })

        // Nothing changed: nothing is read, nothing reported (the run after a first sync).
        let quiet = try tree.scan(baseline: unhashed)
        #expect(quiet.changes.isEmpty && quiet.outcome.hashedFiles == 0 && quiet.outcome.refreshed.isEmpty)

        // Rewritten with the same size and mtime: the ctime gives it away. With no digest on
        // record the scan cannot call it a mere refresh, so it reports it (the session compares
        // it with the archive's digest).
        try tree.write("f", "BBBB", mtime: ScanFixture.pastTime)
        let changed = try tree.scan(baseline: unhashed)
        #expect(changed.outcome.hashedFiles == 1)
        #expect(changed.paths == ["f"] && changed.outcome.refreshed.isEmpty)
        #expect(changed.change("f")?.new?.digest == scanDigest("BBBB"))
        #expect(changed.change("f")?.old?.digest == nil)
    }
}
