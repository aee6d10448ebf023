import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import Testing

@Suite struct ScanWalkOrderTests {
    @Test func fullScanStreamsEveryEntryInWalkOrder() throws {
        let tree = try ScanFixture()
        let longName = [UInt8](repeating: 0x6E, count: 255)
        let nonUTF8: [UInt8] = [0x66, 0xFF, 0xFE]
        let newline = Array("line\nbreak".utf8)
        try tree.mkdir("a")
        try tree.write("a/x", "1")
        try tree.write("a/x y", "2")
        try tree.write("a b", "3")
        try tree.write("a-b", "4")
        try tree.write("a.b", "5")
        try tree.mkdir("a-c")
        try tree.write("a-c/z", "6")
        try tree.write("B", "7")
        try tree.write(nonUTF8, Array("8".utf8))
        try tree.write(newline, Array("9".utf8))
        try tree.write(longName, Array("10".utf8))

        let run = try tree.scan(delta: false)

        let expected: [[UInt8]] = ["a", "a/x", "a/x y", "a b", "a-b", "a.b", "a-c", "a-c/z", "B"].map { Array($0.utf8) }
            + [nonUTF8, newline, longName]
        let expectedPaths = try expected.map { try RelativePath(validating: $0) }.sorted(by: <)
        #expect(run.changes.map(\.path) == expectedPaths)
        // Children come right after their directory even though ' ', '-' and '.' sort below '/'.
        #expect(Array(run.paths.prefix(4)) == ["B", "a", "a/x", "a/x y"])
        for (earlier, later) in zip(run.changes, run.changes.dropFirst()) {
            #expect(earlier.path < later.path)
        }
        #expect(run.changes.allSatisfy { $0.old == nil && $0.new != nil })
        #expect(run.outcome.entryCount == expected.count)
        #expect(run.outcome.problems.isEmpty)
        let nonUTF8Entry = try #require(run.changes.first { $0.path.bytes == nonUTF8 }?.new)
        #expect(nonUTF8Entry.digest == XXH3Hasher.digest(Array("8".utf8)))
        #expect(run.changes.contains { $0.path.bytes == newline })
        #expect(run.changes.contains { $0.path.bytes == longName })
    }

    /// The listing sorts by an 8-byte prefix first: names equal in their first 8 bytes, names
    /// that are a prefix of another, high bytes and names shorter than 8 must still come out in
    /// raw byte order.
    @Test func namesSharingTheirFirstEightBytesSortByAllTheirBytes() throws {
        let tree = try ScanFixture()
        let names: [[UInt8]] = [
            "abcdefgh", "abcdefghi", "abcdefgh0", "abcdefgg", "abcdefg", "abcdefgh\u{1}", "abc", "ab",
            "abcdefgi", "x", "abcdefghij", "abcdefghia",
        ].map { Array($0.utf8) } + [[0xFF, 0x61], [0xFF], [0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x01]]
        for name in names { try tree.write(name, Array("x".utf8)) }
        let run = try tree.scan(delta: false)
        #expect(run.changes.map(\.path.bytes) == names.sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func entriesCarryStatAttributes() throws {
        let tree = try ScanFixture()
        try tree.write("f", "hello", mtime: 1_700_000_000_987_654_321, mode: 0o640)
        try tree.mkdir("d", mode: 0o710)
        try tree.symlink("l", to: "f")

        let run = try tree.scan(delta: false)

        let file = try #require(run.change("f")?.new)
        #expect(file.kind == .file)
        #expect(file.size == 5)
        #expect(file.mtime == 1_700_000_000_987_654_321)
        #expect(file.mode == 0o640)
        #expect(file.uid == getuid() && file.gid == getgid())
        #expect(file.digest == scanDigest("hello"))
        #expect(file.fingerprint?.mtime == 1_700_000_000_987_654_321)
        #expect(file.fingerprint?.size == 5)
        let dir = try #require(run.change("d")?.new)
        #expect(dir.kind == .directory && dir.mode == 0o710 && dir.size == 0 && dir.digest == nil)
        let link = try #require(run.change("l")?.new)
        #expect(link.kind == .symlink && link.linkTarget == Array("f".utf8) && link.digest == nil)
        #expect(run.outcome.hashedFiles == 1)
        #expect(run.outcome.hashedBytes == 5)
    }

    @Test func hundredLevelsDeep() throws {
        let tree = try ScanFixture()
        var relative = ""
        for level in 0..<100 {
            relative += (level == 0 ? "" : "/") + "d\(level % 10)"
            try tree.mkdir(relative)
        }
        try tree.write(relative + "/leaf", "deep")

        let run = try tree.scan(delta: false)

        #expect(run.changes.count == 101)
        let leaf = try #require(run.changes.last)
        #expect(leaf.path.depth == 101)
        #expect(leaf.path.description == relative + "/leaf")
        #expect(leaf.new?.digest == scanDigest("deep"))
        #expect(run.changes.map(\.path.depth) == Array(1...101))
    }

    @Test func symlinksAreReportedNotFollowed() throws {
        let tree = try ScanFixture()
        let outside = try ScanFixture()
        try outside.write("secret", "outside the root")
        try tree.symlink("escape", to: outside.rootPath)
        try tree.symlink("loop", to: ".")
        try tree.symlink("dangling", to: "nowhere")

        let run = try tree.scan(delta: false)

        #expect(run.paths == ["dangling", "escape", "loop"])
        #expect(run.change("escape")?.new?.linkTarget == Array(outside.rootPath.utf8))
        #expect(run.changes.allSatisfy { $0.new?.kind == .symlink })
        #expect(run.outcome.hashedFiles == 0)
    }

    @Test func longSymlinkTargetIsReadWhole() throws {
        let tree = try ScanFixture()
        let target = String(repeating: "t/", count: 1500) + "end"  // 3003 bytes, beyond any first guess
        try tree.symlink("long", to: target)
        let run = try tree.scan(delta: false)
        #expect(run.change("long")?.new?.linkTarget == Array(target.utf8))
    }

    @Test func batchesKeepOrderAndSize() throws {
        let tree = try ScanFixture()
        for i in 0..<7 { try tree.write("f\(i)", "\(i)") }
        let run = try tree.scan(delta: false, batchSize: 3)
        #expect(run.batches.map(\.count) == [3, 3, 1])
        #expect(run.paths == (0..<7).map { "f\($0)" })
    }
}
