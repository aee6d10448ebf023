import Foundation
import Glibc
@testable import SwunisonFS
import SwunisonModel
import Testing

/// Full scans hash files on several threads in the background of the walk (`hashThreads`).
@Suite struct ParallelHashingTests {
    /// More files than one hashing group and one batch, spread over directories, with sizes
    /// around the hasher's buffer: the stream must be exactly what inline hashing gives, in
    /// walk order, batch by batch.
    @Test func fullScanWithHashThreadsStreamsWhatInlineHashingDoes() throws {
        let tree = try ScanFixture()
        var contents: [String: [UInt8]] = [:]
        for d in 0..<4 {
            try tree.mkdir("d\(d)")
            for f in 0..<(d == 0 ? 400 : 90) {
                let size = (d * 7919 + f * 104_729) % (f % 50 == 0 ? 600_000 : 3_000)
                let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ f &+ d) }
                let path = "d\(d)/f\(f)"
                try tree.write(Array(path.utf8), bytes)
                contents[path] = bytes
            }
        }
        try tree.symlink("link", to: "d0/f1")

        let inline = try tree.scan(delta: false, batchSize: 100, hashThreads: 1)
        let parallel = try tree.scan(delta: false, batchSize: 100, hashThreads: 3)

        #expect(parallel.changes == inline.changes)
        #expect(parallel.paths.count == 4 + 400 + 3 * 90 + 1)
        #expect(parallel.batches.allSatisfy { !$0.isEmpty && $0.count <= 100 })
        for (earlier, later) in zip(parallel.changes, parallel.changes.dropFirst()) { #expect(earlier.path < later.path) }
        for change in parallel.changes where change.new?.kind == .file {
            #expect(change.new?.digest == XXH3Hasher.digest(contents[change.path.description]!), "\(change.path)")
        }
        #expect(parallel.outcome.entryCount == inline.outcome.entryCount)
        #expect(parallel.outcome.hashedFiles == 670)
        #expect(parallel.outcome.hashedBytes == inline.outcome.hashedBytes)
        #expect(parallel.outcome.problems.isEmpty)
    }

    /// Delta scans keep hashing inline (a file that cannot be read must be settled before the
    /// walk disposes of the baseline rows after it); the option changes nothing there.
    @Test func deltaScanIgnoresHashThreads() throws {
        let tree = try ScanFixture()
        for f in 0..<30 { try tree.write("f\(f)", "v\(f)") }
        let baseline = try tree.baseline()
        for f in 0..<30 where f % 3 == 0 { try tree.write("f\(f)", "changed \(f)", mtime: ScanFixture.pastTime + 1) }
        let run = try tree.scan(baseline: baseline, delta: true, hashThreads: 4)
        #expect(run.paths == (0..<30).filter { $0 % 3 == 0 }.map { "f\($0)" }.sorted())
        #expect(run.changes.allSatisfy { $0.new?.digest == XXH3Hasher.digest(Array("changed \($0.path.description.dropFirst())".utf8)) })
    }

    /// The hasher's outcomes keep job order, and a name that vanished or is no longer a regular
    /// file becomes `.gone` / `.failed`, never a digest.
    @Test func groupsReportGoneAndFailedFilesInJobOrder() throws {
        let tree = try ScanFixture()
        try tree.write("a", "alpha")
        try tree.write("b", "beta")
        try tree.mkfifo("pipe")
        let root = try DirectoryFD.openRoot(tree.rootPath)
        func job(_ name: String, statusOf other: String? = nil) throws -> ParallelHasher.Job {
            var st = stat()
            #expect(fstatat(root.fd, other ?? name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            return ParallelHasher.Job(directory: root, name: Array(name.utf8) + [0], status: FileStatus(raw: st))
        }
        let hasher = ParallelHasher(threads: 3)
        // "gone" was seen as a file by the walk and removed before its turn.
        try tree.write("gone", "soon removed")
        let gone = try job("gone")
        #expect(unlink(tree.absolute(Array("gone".utf8))) == 0)
        let jobs = [try job("a"), gone, try job("pipe", statusOf: "b"), try job("b")]
        let first = hasher.submit(jobs)
        let second = hasher.submit([try job("b"), try job("a")])

        let outcomes = first.wait()
        #expect(outcomes.count == 4)
        guard case .hashed(let digestA, _) = outcomes[0] else { Issue.record("a: \(outcomes[0])"); return }
        #expect(digestA == XXH3Hasher.digest(Array("alpha".utf8)))
        guard case .gone = outcomes[1] else { Issue.record("gone: \(outcomes[1])"); return }
        guard case .failed = outcomes[2] else { Issue.record("pipe: \(outcomes[2])"); return }
        guard case .hashed(let digestB, _) = outcomes[3] else { Issue.record("b: \(outcomes[3])"); return }
        #expect(digestB == XXH3Hasher.digest(Array("beta".utf8)))
        let later = second.wait()
        guard case .hashed(let b2, _) = later[0], case .hashed(let a2, _) = later[1] else { Issue.record("\(later)"); return }
        #expect(b2 == digestB && a2 == digestA)
        #expect(hasher.bytesRead == Int64(2 * ("alpha".count + "beta".count)))
    }

    @Test(.enabled(if: getuid() != 0, "root reads anything"))
    func unreadableFileInAParallelScanIsAProblemAndLeavesTheStream() throws {
        let tree = try ScanFixture()
        for f in 0..<10 { try tree.write("f\(f)", "v\(f)") }
        try tree.chmod("f4", 0o000)
        let run = try tree.scan(delta: false, batchSize: 3, hashThreads: 2)
        #expect(run.paths == (0..<10).filter { $0 != 4 }.map { "f\($0)" })
        #expect(run.outcome.problems.map(\.path.description) == ["f4"])
        #expect(run.outcome.entryCount == 9)
    }
}
