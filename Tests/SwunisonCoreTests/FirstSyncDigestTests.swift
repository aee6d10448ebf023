import Foundation
import Testing
import SwunisonCore
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
        for side in ["A", "B"] {
            let cache = try ScanCache.open(path: f.state + "/caches/test-\(side).db")
            var rows = try cache.cursor()
            #expect(try fileDigests(&rows) == expected, "cache \(side)")
        }

        let second = try await f.run()
        #expect(second.exitCode == 0 && second.items.isEmpty)
    }

    @Test("two filled replicas: equal files stay, a same-size file with the same mtime but other content is a conflict, never taken as equal")
    func twoFilledReplicas() async throws {
        let f = try Fixture("first-sync-both")
        let past = Date().timeIntervalSince1970 - 1000
        try TestFiles.write(f.a + "/same", "identical", mtime: past)
        try TestFiles.write(f.b + "/same", "identical", mtime: past)
        // Same size and mtime, different bytes: only a digest tells them apart.
        try TestFiles.write(f.a + "/twin", "AAAA", mtime: past)
        try TestFiles.write(f.b + "/twin", "BBBB", mtime: past)
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
        try TestFiles.write(f.a + "/pair", "1234", mtime: past)
        try TestFiles.write(f.b + "/pair", "1234", mtime: past)
        try TestFiles.write(f.a + "/other", "copied", mtime: past)
        let b = f.b
        // After the scans, before the digests are asked for, B's copy changes size: its digest
        // is refused and the path is left alone this time.
        let hook = HookedInterface()
        hook.onScanFinished = { try? TestFiles.write(b + "/pair", "12345", mtime: past + 50) }
        let summary = try await f.run(interface: hook)
        #expect(summary.exitCode == 2)
        #expect(summary.problems.map(\.1.path.description) == ["pair"], "\(summary.problems)")
        #expect(TestFiles.read(f.b + "/other") == "copied")
        #expect(TestFiles.read(f.a + "/pair") == "1234" && TestFiles.read(f.b + "/pair") == "12345")
        // The next run settles it (B's version is the newer one).
        let next = try await f.run()
        #expect(next.exitCode == 0, "\(next.failures) \(next.problems)")
        #expect(TestFiles.read(f.a + "/pair") == "12345")
    }
}
