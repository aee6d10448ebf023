import Foundation
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonStorage
import SwunisonTestSupport

/// A first sync (empty archive) scans without reading the files: digests are taken while files
/// are copied, asked for where both replicas have a file, and recorded in the archive and in
/// both caches at the commit (DESIGN-NOTES, "A first sync reads each file once").
@Suite("First sync with deferred digests")
struct FirstSyncDigestTests {
    /// Every file row of a table (archive or cache), as path → digest (nil = none recorded).
    private func fileDigests(_ rows: inout EntryCursor) throws -> [String: Digest?] {
        var out: [String: Digest?] = [:]
        while let row = try rows.next() {
            if row.entry.kind == .file { out[row.path.description] = .some(row.entry.digest) }
        }
        return out
    }

    private func digest(_ text: String) -> Digest { XXH3Hasher.digest(Array(text.utf8)) }

    /// Writes `path` on both replicas: `a` on A, `b` on B.
    private func writeBoth(_ f: Fixture, _ path: String, a: String, b: String, mtime: TimeInterval) throws {
        try TestFiles.write(f.a + "/" + path, a, mtime: mtime)
        try TestFiles.write(f.b + "/" + path, b, mtime: mtime)
    }

    @Test("into an empty replica: the archive and both caches hold every file's digest, and the next run has nothing to do")
    func intoAnEmptyReplica() async throws {
        let f = try Fixture("first-sync-empty")
        let big = String(repeating: "0123456789", count: 30_000)  // 300 kB: copied on its own, not in a batch
        let files = ["d/one": "one", "d/two": "two two", "empty": "", "big": big]
        for (path, text) in files { try TestFiles.write(f.a + "/" + path, text, mtime: Date().timeIntervalSince1970 - 100) }

        let first = try await f.run()
        #expect(first.exitCode == 0, "\(first.failures)")
        for (path, text) in files { #expect(TestFiles.read(f.b + "/" + path) == text, "\(path)") }

        let expected = Dictionary(uniqueKeysWithValues: files.map { ($0.key, Optional(digest($0.value))) })
        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        var archived = try archive.cursor()
        #expect(try fileDigests(&archived) == expected)
        // B's rows are the files as written, with their digests; A's rows keep none (each
        // one's fingerprint stands for the archived content).
        var rowsB = try ScanCache.open(path: f.state + "/caches/test-B.db").cursor()
        #expect(try fileDigests(&rowsB) == expected)
        var rowsA = try ScanCache.open(path: f.state + "/caches/test-A.db").cursor()
        #expect(try fileDigests(&rowsA) == expected.mapValues { _ in nil })

        let second = try await f.run()
        #expect(second.exitCode == 0 && second.items.isEmpty)
    }

    @Test("after a first sync, a file rewritten on the source with the same size and mtime still propagates; a mere ctime change does not, and its row gets the digest")
    func sameSizeAndMtimeRewriteAfterAFirstSync() async throws {
        let f = try Fixture("first-sync-rewrite")
        let past = Date().timeIntervalSince1970 - 1000
        try TestFiles.write(f.a + "/doc", "AAAA", mtime: past)
        try TestFiles.write(f.a + "/kept", "kept", mtime: past)
        #expect(try await f.run().exitCode == 0)

        // Same size, same mtime: only the ctime (and the content) changed.
        try TestFiles.write(f.a + "/doc", "BBBB", mtime: past)
        // Same content, a new ctime (chmod to the same mode).
        #expect(chmod(f.a + "/kept", 0o644) == 0)
        let summary = try await f.run()
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(summary.items.map(\.path.description) == ["doc"])
        #expect(TestFiles.read(f.b + "/doc") == "BBBB")

        var rowsA = try ScanCache.open(path: f.state + "/caches/test-A.db").cursor()
        #expect(try fileDigests(&rowsA) == ["doc": digest("BBBB"), "kept": digest("kept")])
        #expect(try await f.run().items.isEmpty)
    }

    @Test("after a first sync, a deletion on the source against a same-size, same-mtime edit on the target keeps the edit (modification beats deletion)")
    func deletionAgainstAnEditThatKeepsSizeAndMtime() async throws {
        let f = try Fixture("first-sync-delete-edit")
        let past = Date().timeIntervalSince1970 - 1000
        try TestFiles.write(f.a + "/doc", "AAAA", mtime: past)
        #expect(try await f.run().exitCode == 0)
        try FileManager.default.removeItem(atPath: f.a + "/doc")
        try TestFiles.write(f.b + "/doc", "BBBB", mtime: past)
        let summary = try await f.run()
        #expect(summary.exitCode == 0, "\(summary.failures)")
        #expect(TestFiles.read(f.b + "/doc") == "BBBB")
        #expect(TestFiles.read(f.a + "/doc") == "BBBB")
    }

    @Test("files written just before a first sync (untrusted fingerprints): the next run's edits and deletions from the other side land, and the run after has nothing to do")
    func recentFilesThenChangesFromTheOtherSide() async throws {
        let f = try Fixture("first-sync-recent")
        for i in 1...3 { try TestFiles.write(f.a + "/d/f\(i)", "base \(i)") }
        #expect(try await f.run().exitCode == 0)
        // A's rows have no digest and, the files being seconds old, no trusted fingerprint: the
        // next scan hashes them all and finds them equal to the archive, while B's edit and
        // deletion are written to A in the same run.
        try TestFiles.write(f.b + "/d/f2", "changed on b")
        try FileManager.default.removeItem(atPath: f.b + "/d/f3")
        let second = try await f.run()
        #expect(second.exitCode == 0, "\(second.failures)")
        #expect(TestFiles.read(f.a + "/d/f2") == "changed on b" && !TestFiles.exists(f.a + "/d/f3"))
        let third = try await f.run()
        #expect(third.exitCode == 0 && third.items.isEmpty, "\(third.items) \(third.failures)")
    }

    @Test("two filled replicas: equal files stay, a same-size file with the same mtime but other content is a conflict, never taken as equal")
    func twoFilledReplicas() async throws {
        let f = try Fixture("first-sync-both")
        let past = Date().timeIntervalSince1970 - 1000
        try writeBoth(f, "same", a: "identical", b: "identical", mtime: past)
        // Same size and mtime, different bytes: only a digest tells them apart.
        try writeBoth(f, "twin", a: "AAAA", b: "BBBB", mtime: past)
        // Different sizes: the newer one wins; the older is replaced with a backup.
        try TestFiles.write(f.a + "/grown", "newer and longer", mtime: past + 10)
        try TestFiles.write(f.b + "/grown", "older", mtime: past)

        let summary = try await f.run()
        #expect(summary.exitCode == 1, "the twin is an unresolved conflict: \(summary.items)")
        // The equal files are an archive-only item: recorded as in step, nothing copied.
        #expect(summary.items.map(\.path.description).sorted() == ["grown", "same", "twin"])
        #expect(summary.items.first { $0.path.description == "same" }?.decision == .archiveOnly)
        #expect(TestFiles.read(f.a + "/twin") == "AAAA" && TestFiles.read(f.b + "/twin") == "BBBB")
        #expect(TestFiles.read(f.b + "/grown") == "newer and longer")
        #expect(summary.backups.count == 1)

        let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
        var archived = try archive.cursor()
        #expect(try fileDigests(&archived) == ["same": digest("identical"), "grown": digest("newer and longer")])
        // The next run still sees the conflict and nothing else.
        let again = try await f.run()
        #expect(again.items.map(\.path.description) == ["twin"])
    }

    @Test("a file that cannot be hashed for the comparison is left out of the run as a problem, and the rest goes on")
    func unhashableFileIsAProblem() async throws {
        let f = try Fixture("first-sync-problem")
        let past = Date().timeIntervalSince1970 - 1000
        try writeBoth(f, "pair", a: "1234", b: "1234", mtime: past)
        try TestFiles.write(f.a + "/other", "copied", mtime: past)
        let b = f.b
        // After the scans, before the digests are asked for, B's copy changes size: its digest
        // is refused and the path is left alone this time.
        let hook = HookedInterface()
        hook.onScanFinished = { try? TestFiles.write(b + "/pair", "12345", mtime: past + 50) }
        let summary = try await f.run(interface: hook)
        #expect(summary.exitCode == 2)
        #expect(summary.problems.map(\.1.path.description) == ["pair"], "\(summary.problems)")
        #expect(summary.problems.first?.1.message.contains("changed while being compared") == true)
        #expect(TestFiles.read(f.b + "/other") == "copied")
        #expect(TestFiles.read(f.a + "/pair") == "1234" && TestFiles.read(f.b + "/pair") == "12345")
        // The next run settles it (B's version is the newer one).
        let next = try await f.run()
        #expect(next.exitCode == 0, "\(next.failures) \(next.problems)")
        #expect(TestFiles.read(f.a + "/pair") == "12345")
    }
}
