import Foundation
import Glibc
import SwunisonModel
import Testing
@testable import SwunisonFS

@Suite struct OpsTreeTests {
    @Test func makeDirectoryCreatesOrKeepsWithMode() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let made = try files.makeDirectory(opsPath("d"), entry: Entry(kind: .directory, mode: 0o750), replacing: nil)
        #expect(made.kind == .directory && made.mode == 0o750)
        #expect(try #require(box.lstatRaw(opsPath("d"))).st_mode & 0o7777 == 0o750)

        try box.plant(opsPath("d/child"), [1])
        let kept = try files.makeDirectory(opsPath("d"), entry: Entry(kind: .directory, mode: 0o711), replacing: nil)
        #expect(kept.mode == 0o711 && kept.fingerprint?.inode == made.fingerprint?.inode)
        #expect(box.content(opsPath("d/child")) == [1])
    }

    @Test func makeDirectoryReplacesAFileOnlyWhenItMatches() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("x"), Array("file".utf8))
        let scanned = try #require(try files.stat(opsPath("x")))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("x"))) {
            try files.makeDirectory(opsPath("x"), entry: Entry(kind: .directory, mode: 0o755), replacing: nil)
        }
        try box.plant(opsPath("x"), Array("edited".utf8))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("x"))) {
            try files.makeDirectory(opsPath("x"), entry: Entry(kind: .directory, mode: 0o755), replacing: scanned)
        }
        #expect(box.content(opsPath("x")) == Array("edited".utf8))

        let now = try #require(try files.stat(opsPath("x")))
        try files.makeDirectory(opsPath("x"), entry: Entry(kind: .directory, mode: 0o755), replacing: now, backup: true)
        #expect(try files.stat(opsPath("x"))?.kind == .directory)
        #expect(OpsSandbox.content(atPath: box.backups + "/.bak.1.x") == Array("edited".utf8))
    }

    @Test func makeSymlinkCreatesAndReplacesAtomically() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let first = try files.makeSymlink(opsPath("l"), target: Array("target-one".utf8), replacing: nil)
        #expect(first.kind == .symlink && first.linkTarget == Array("target-one".utf8))

        #expect(throws: FileOperationError.changedDuringSync(opsPath("l"))) {
            try files.makeSymlink(opsPath("l"), target: Array("other".utf8), replacing: nil)
        }
        let second = try files.makeSymlink(opsPath("l"), target: [0xFF, 0x2F, 0x61], replacing: first)
        #expect(second.linkTarget == [0xFF, 0x2F, 0x61])
        #expect(try files.stat(opsPath("l"))?.linkTarget == [0xFF, 0x2F, 0x61])
        #expect(box.temporaryFilesLeft().isEmpty)
        #expect(box.names() == [Array("l".utf8)])
    }

    @Test func symlinkReplacesAnEmptyDirectoryAndFileReplacesASymlink() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.makeDir(opsPath("k"))
        let dir = try #require(try files.stat(opsPath("k")))
        let link = try files.makeSymlink(opsPath("k"), target: Array("t".utf8), replacing: dir)
        #expect(try files.stat(opsPath("k"))?.kind == .symlink)
        try files.write(opsPath("k"), Array("now a file".utf8), replacing: link)
        #expect(box.content(opsPath("k")) == Array("now a file".utf8))
    }

    @Test func removeRefusesAChangedFile() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("aaaa".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))
        usleep(5_000)
        try box.sneakyRewrite(opsPath("f"), Array("bbbb".utf8))

        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) {
            try files.remove(opsPath("f"), expected: scanned, backup: false)
        }
        #expect(box.content(opsPath("f")) == Array("bbbb".utf8))

        // A file that is not what was expected at all (a directory now) is refused too.
        let now = try #require(try files.stat(opsPath("f")))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) {
            try files.remove(opsPath("f"), expected: Entry(kind: .directory), backup: false)
        }
        #expect(try files.remove(opsPath("f"), expected: now, backup: false) == nil)
        #expect(box.names().isEmpty)
    }

    @Test func removeDirectoryMustBeEmpty() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.makeDir(opsPath("d"))
        try box.plant(opsPath("d/f"), [1])
        let dir = try #require(try files.stat(opsPath("d")))
        do {
            try files.remove(opsPath("d"), expected: dir, backup: true)
            Issue.record("removing a non-empty directory should fail")
        } catch {
            #expect(opsIsSystemError(error, ENOTEMPTY))
        }
        #expect(box.content(opsPath("d/f")) == [1])
        try files.remove(opsPath("d/f"), expected: try #require(try files.stat(opsPath("d/f"))), backup: false)
        try files.remove(opsPath("d"), expected: dir, backup: true)
        #expect(box.names().isEmpty)
    }

    @Test func removingAFileThatIsAlreadyGoneIsAChange() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), [1])
        let scanned = try #require(try files.stat(opsPath("f")))
        #expect(unlink(box.absolute(opsPath("f"))) == 0)
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) {
            try files.remove(opsPath("f"), expected: scanned, backup: true)
        }
    }

    @Test func setAttributesModeAndNanosecondMtime() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("content".utf8), mode: 0o644)
        var scanned = try #require(try files.stat(opsPath("f")))
        scanned.digest = XXH3Hasher.digest(Array("content".utf8))
        var wanted = scanned
        wanted.mode = 0o4751  // setuid is outside the default mask 0o1777
        wanted.mtime = 987_654_321_123_456_789

        let result = try files.setAttributes(opsPath("f"), expected: scanned, to: wanted, selection: AttributeSelection())

        let st = try #require(box.lstatRaw(opsPath("f")))
        #expect(st.st_mode & 0o7777 == 0o751)
        #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == 987_654_321_123_456_789)
        #expect(result.mode == 0o751 && result.mtime == wanted.mtime && result.digest == scanned.digest)
        #expect(box.content(opsPath("f")) == Array("content".utf8))

        // Times off and a mask of 0o700: only the owner bits change, the mtime stays.
        let selective = AttributeSelection(permissionMask: 0o700, times: false)
        var other = result
        other.mode = 0o500
        other.mtime = 1
        let after = try files.setAttributes(opsPath("f"), expected: result, to: other, selection: selective)
        #expect(after.mode == 0o551 && after.mtime == wanted.mtime)
    }

    @Test func setAttributesNegativeMtimeAndDirectoryMode() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("old"), [1])
        let scanned = try #require(try files.stat(opsPath("old")))
        var wanted = scanned
        wanted.mtime = -1_500_000_001  // before 1970, with a fraction
        let result = try files.setAttributes(opsPath("old"), expected: scanned, to: wanted, selection: AttributeSelection())
        #expect(result.mtime == -1_500_000_001)

        try box.makeDir(opsPath("d"), mode: 0o755)
        let dir = try #require(try files.stat(opsPath("d")))
        var dirWanted = dir
        dirWanted.mode = 0o700
        #expect(try files.setAttributes(opsPath("d"), expected: dir, to: dirWanted, selection: AttributeSelection()).mode == 0o700)
    }

    @Test func setAttributesRefusesAChangedFile() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), [1, 2])
        let scanned = try #require(try files.stat(opsPath("f")))
        try box.plant(opsPath("f"), [1, 2, 3])
        var wanted = scanned
        wanted.mode = 0o600
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) {
            try files.setAttributes(opsPath("f"), expected: scanned, to: wanted, selection: AttributeSelection())
        }
        #expect(try #require(box.lstatRaw(opsPath("f"))).st_mode & 0o7777 == 0o644)
    }

    @Test(.enabled(if: getuid() == 0)) func ownerAndGroupAreSetWhenSelected() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        var entry = opsFileEntry(Array("owned".utf8))
        entry.uid = 4242
        entry.gid = 4343
        let made = try files.write(opsPath("f"), Array("owned".utf8), entry: entry, replacing: nil,
                                   attributes: AttributeSelection(owner: true, group: true))
        #expect(made.uid == 4242 && made.gid == 4343)
        var wanted = made
        wanted.uid = 17
        let changed = try files.setAttributes(opsPath("f"), expected: made, to: wanted,
                                              selection: AttributeSelection(owner: true))
        #expect(changed.uid == 17 && changed.gid == 4343)
    }

    @Test func openForReadingChecksTheExpectedFile() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        try box.plant(opsPath("f"), content)
        let scanned = try #require(try files.stat(opsPath("f")))

        let handle = try files.openForReading(opsPath("f"), expected: scanned)
        var read: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 7_000)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try handle.read(into: $0) }
            if n == 0 { break }
            read += buffer[0..<n]
        }
        #expect(read == content)
        handle.close()
        #expect(throws: (any Error).self) { try buffer.withUnsafeMutableBytes { try handle.read(into: $0) } }

        try box.plant(opsPath("f"), content + [1])
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) {
            try files.openForReading(opsPath("f"), expected: scanned)
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("missing"))) {
            try files.openForReading(opsPath("missing"), expected: scanned)
        }
    }

    @Test func fifoIsNeitherOpenedNorStatted() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        #expect(mkfifo(box.absolute(opsPath("pipe")), 0o644) == 0)
        #expect(throws: FileOperationError.unsupportedKind(opsPath("pipe"), typeName: "fifo")) { try files.stat(opsPath("pipe")) }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("pipe"))) {
            try files.openForReading(opsPath("pipe"), expected: opsFileEntry([]))
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("pipe"))) {
            try files.write(opsPath("pipe"), [1], replacing: nil)
        }
    }

    @Test func statOfMissingPathsAndRoot() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        #expect(try files.stat(opsPath("nope")) == nil)
        #expect(try files.stat(opsPath("nope/deeper")) == nil)
        try box.plant(opsPath("file"), [1])
        #expect(try files.stat(opsPath("file/under")) == nil)
        #expect(try files.stat(.root)?.kind == .directory)
    }

    @Test func errorDescriptionsNameThePathAndWhatToDo() {
        let path = opsPath("dir/file")
        #expect("\(FileOperationError.changedDuringSync(path))".contains("dir/file"))
        #expect("\(FileOperationError.changedDuringSync(path))".contains("next run"))
        #expect("\(FileOperationError.digestMismatch(path))".contains("run again"))
        let denied = FileOperationError.system(path: path, operation: "write", SystemCallError("write", errno: EACCES))
        #expect("\(denied)" == "dir/file: write failed: Permission denied; check the permissions of the path and its directories for the user running swunison")
        #expect("\(FileOperationError.system(path: .root, operation: "stat", SystemCallError("fstatat", errno: EIO)))".hasPrefix(".: stat failed"))
    }
}

/// Paths longer than PATH_MAX (4,096 bytes): one openat2 call refuses them with ENAMETOOLONG,
/// but the tree may hold them; every operation walks them one component at a time instead.
@Suite struct LongPathTests {
    @Test func aPathBeyondPathMaxIsCreatedReadChangedAndRemoved() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        var directory = opsPath("d00" + String(repeating: "x", count: 200))
        try files.makeDirectory(directory, entry: Entry(kind: .directory, mode: 0o755), replacing: nil)
        for i in 1..<22 {
            directory = directory.appending(try PathComponent(validating: String(format: "d%02d", i) + String(repeating: "x", count: 200)))
            try files.makeDirectory(directory, entry: Entry(kind: .directory, mode: 0o755), replacing: nil)
        }
        let path = directory.appending(try PathComponent(validating: "deep.txt"))
        #expect(path.bytes.count > Int(PATH_MAX))
        let first = try files.write(path, Array("deep".utf8), replacing: nil)
        let seen = try #require(try files.stat(path))
        #expect(try files.readWhole(path, expected: seen) == Array("deep".utf8))
        let second = try files.write(path, Array("deeper".utf8), entry: opsFileEntry(Array("deeper".utf8), mtime: 1_700_000_000_000_000_000),
                                     replacing: first)
        #expect(try files.readWhole(path, expected: try #require(try files.stat(path))) == Array("deeper".utf8))
        _ = try files.remove(path, expected: second, backup: false)
        #expect(try files.stat(path) == nil)
    }
}
