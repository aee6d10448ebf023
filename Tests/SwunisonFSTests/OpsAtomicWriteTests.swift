import Foundation
import Glibc
import SwunisonModel
import Testing
@testable import SwunisonFS

@Suite struct OpsAtomicWriteTests {
    @Test func createsFileWithContentModeAndNanosecondMtime() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = Array("hello, replica\n".utf8)
        let entry = opsFileEntry(content, mtime: 1_234_567_890_987_654_321, mode: 0o640)

        let made = try files.write(opsPath("hello.txt"), content, entry: entry, replacing: nil)

        #expect(box.content(opsPath("hello.txt")) == content)
        let st = try #require(box.lstatRaw(opsPath("hello.txt")))
        #expect(st.st_mode & 0o7777 == 0o640)
        #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == 1_234_567_890_987_654_321)
        #expect(made.kind == .file && made.size == Int64(content.count) && made.digest == entry.digest)
        #expect(made.mtime == entry.mtime && made.mode == 0o640)
        #expect(made.fingerprint?.inode == UInt64(st.st_ino))
        #expect(box.temporaryFilesLeft().isEmpty)
        // What stat reports afterwards is what commit returned (minus the digest).
        var fromStat = try #require(try files.stat(opsPath("hello.txt")))
        fromStat.digest = made.digest
        #expect(fromStat == made)
    }

    @Test func writesLargeFileInChunks() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let writer = try files.beginWrite(opsPath("big"), entry: opsFileEntry(content))
        var offset = 0
        while offset < content.count {
            let end = min(offset + 65_537, content.count)
            try writer.append(Array(content[offset..<end]))
            offset = end
        }
        // Before the commit only the temporary name exists.
        #expect(box.content(opsPath("big")) == nil)
        #expect(box.names() == [writer.temporaryFileName])
        _ = try writer.commit(replacing: nil)
        #expect(box.content(opsPath("big")) == content)
        #expect(box.names() == [Array("big".utf8)])
    }

    @Test(arguments: [1, 1000, 4096, 5000, 65_536])
    func blocksOfZerosBecomeHolesAndTheContentIsExact(chunk: Int) throws {
        let box = try OpsSandbox()
        let files = try box.files()
        // Data, zeros spanning whole aligned blocks, a zero run too short to be a block, data
        // again, and a tail of zeros (the file ends in a hole).
        var content = Array("head".utf8) + [UInt8](repeating: 0, count: 3 * 4096 + 100)
        content += Array("middle".utf8) + [UInt8](repeating: 0, count: 3000) + Array("data".utf8)
        content += [UInt8](repeating: 0, count: 64 * 4096 + 7)
        let writer = try files.beginWrite(opsPath("sparse"), entry: opsFileEntry(content))
        var offset = 0
        while offset < content.count {
            let end = min(offset + chunk, content.count)
            try writer.append(Array(content[offset..<end]))
            offset = end
        }
        _ = try writer.commit(replacing: nil)
        #expect(box.content(opsPath("sparse")) == content)
        let st = try #require(box.lstatRaw(opsPath("sparse")))
        #expect(Int(st.st_size) == content.count)
        // Whatever the chunks, the blocks of zeros stay unwritten: three data blocks in all.
        #expect(st.st_blocks * 512 <= 4 * 4096, "\(st.st_blocks) blocks")
    }

    @Test func replacesExistingFileThatStillMatches() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("old".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))

        try files.write(opsPath("f"), Array("new content".utf8), replacing: scanned)

        #expect(box.content(opsPath("f")) == Array("new content".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
        #expect(box.names(in: .root) == [Array("f".utf8)])
    }

    @Test func digestMismatchAbortsAndLeavesTargetAlone() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("old".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))
        // Same size as promised, different bytes.
        let promised = opsFileEntry(Array("abcd".utf8))
        let writer = try files.beginWrite(opsPath("f"), entry: promised)
        try writer.append(Array("abce".utf8))

        #expect(throws: FileOperationError.digestMismatch(opsPath("f"))) {
            try writer.commit(replacing: scanned)
        }
        #expect(!writer.isOpen)
        #expect(box.content(opsPath("f")) == Array("old".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
    }

    @Test func shortContentIsADigestMismatch() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("f"), entry: opsFileEntry(Array("abcdef".utf8)))
        try writer.append(Array("abc".utf8))
        #expect(throws: FileOperationError.digestMismatch(opsPath("f"))) { try writer.commit(replacing: nil) }
        #expect(box.names().isEmpty)
    }

    @Test func abortAndReleaseRemoveTheTemporaryFile() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("f"), entry: opsFileEntry([1, 2, 3]))
        try writer.append([1, 2])
        #expect(box.temporaryFilesLeft().count == 1)
        writer.abort()
        #expect(box.names().isEmpty)

        do {
            let abandoned = try files.beginWrite(opsPath("g"), entry: opsFileEntry([1]))
            try abandoned.append([1])
        }
        #expect(box.names().isEmpty)
    }

    /// `retweak`: another process edits the target between the scan and the commit.
    @Test func targetChangedSinceScanIsNotClobbered() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("doc"), Array("version 1".utf8))
        let scanned = try #require(try files.stat(opsPath("doc")))
        let writer = try files.beginWrite(opsPath("doc"), entry: opsFileEntry(Array("from the other side".utf8)))
        try writer.append(Array("from the other side".utf8))

        try box.plant(opsPath("doc"), Array("local edit, longer".utf8))  // retweak

        #expect(throws: FileOperationError.changedDuringSync(opsPath("doc"))) {
            try writer.commit(replacing: scanned, backup: true)
        }
        #expect(box.content(opsPath("doc")) == Array("local edit, longer".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
        #expect(OpsSandbox.names(atPath: box.backups).isEmpty)
    }

    /// A same-size edit with the mtime put back is caught by the fingerprint's ctime.
    @Test func sameSizeEditWithRestoredMtimeIsCaughtByCtime() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("doc"), Array("aaaa".utf8))
        let scanned = try #require(try files.stat(opsPath("doc")))
        usleep(5_000)  // let the kernel's coarse clock tick, so the ctime moves
        try box.sneakyRewrite(opsPath("doc"), Array("bbbb".utf8))
        #expect(try files.stat(opsPath("doc"))?.mtime == scanned.mtime)

        #expect(throws: FileOperationError.changedDuringSync(opsPath("doc"))) {
            try files.write(opsPath("doc"), Array("cccc".utf8), replacing: scanned)
        }
        #expect(box.content(opsPath("doc")) == Array("bbbb".utf8))
    }

    /// Without a trusted fingerprint the target is rehashed: same size and mtime, other bytes.
    @Test func untrustedFingerprintMeansRehash() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("doc"), Array("aaaa".utf8))
        var expected = try #require(try files.stat(opsPath("doc")))
        expected.digest = XXH3Hasher.digest(Array("aaaa".utf8))
        expected.fingerprint = .untrusted
        try box.sneakyRewrite(opsPath("doc"), Array("bbbb".utf8))

        #expect(throws: FileOperationError.changedDuringSync(opsPath("doc"))) {
            try files.write(opsPath("doc"), Array("cccc".utf8), replacing: expected)
        }
        #expect(box.content(opsPath("doc")) == Array("bbbb".utf8))

        // With the digest of what is really there, the same write goes through.
        expected.digest = XXH3Hasher.digest(Array("bbbb".utf8))
        expected.fingerprint = nil
        try files.write(opsPath("doc"), Array("cccc".utf8), replacing: expected)
        #expect(box.content(opsPath("doc")) == Array("cccc".utf8))
    }

    @Test func fileThatAppearedBeforeCommitIsKept() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("new"), entry: opsFileEntry(Array("theirs".utf8)))
        try writer.append(Array("theirs".utf8))
        try box.plant(opsPath("new"), Array("mine".utf8))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("new"))) { try writer.commit(replacing: nil) }
        #expect(box.content(opsPath("new")) == Array("mine".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
    }

    /// The file appears after the last check, just before the rename: RENAME_NOREPLACE refuses.
    @Test func renameNoReplaceWinsTheRace() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("new"), entry: opsFileEntry(Array("theirs".utf8)))
        try writer.append(Array("theirs".utf8))
        writer.beforeRename = { try? box.plant(opsPath("new"), Array("mine".utf8)) }

        #expect(throws: FileOperationError.changedDuringSync(opsPath("new"))) { try writer.commit(replacing: nil) }
        #expect(box.content(opsPath("new")) == Array("mine".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
    }

    /// A writer opens the file being replaced after the last check, just before the rename, and
    /// writes: the swap of names is undone and its write kept (a rename would have left it in an
    /// unlinked file).
    @Test func aWriteBetweenTheCheckAndTheRenameIsKept() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("old".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))
        let writer = try files.beginWrite(opsPath("f"), entry: opsFileEntry(Array("theirs".utf8)))
        try writer.append(Array("theirs".utf8))
        let target = box.root + "/f"
        writer.beforeRename = {
            let fd = open(target, O_WRONLY | O_APPEND)
            _ = " and mine".withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) { try writer.commit(replacing: scanned) }
        #expect(box.content(opsPath("f")) == Array("old and mine".utf8))
        #expect(box.temporaryFilesLeft().isEmpty)
    }

    /// A writer writes to the new file right after it took its name: the entry returned (what
    /// the archive records) does not vouch for content that is not ours.
    @Test func aWriteJustAfterTheRenameLeavesTheFingerprintUntrusted() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("f"), entry: opsFileEntry(Array("theirs".utf8)))
        try writer.append(Array("theirs".utf8))
        let target = box.root + "/f"
        writer.afterRename = {
            let fd = open(target, O_WRONLY | O_APPEND)
            _ = " and mine".withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        let made = try writer.commit(replacing: nil)
        #expect(made.fingerprint == .untrusted)
        #expect(box.content(opsPath("f")) == Array("theirs and mine".utf8))
        // Without a late write the fingerprint is the file's own.
        let plain = try files.write(opsPath("g"), Array("plain".utf8), entry: opsFileEntry(Array("plain".utf8)), replacing: nil)
        #expect(plain.fingerprint != .untrusted && plain.fingerprint != nil)
    }

    @Test func symlinkPlantedAsParentDirectoryIsRefused() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let outside = box.base + "/outside"
        #expect(mkdir(outside, 0o755) == 0)
        try box.symlink(opsPath("escape"), to: outside)

        #expect(throws: (any Error).self) { try files.write(opsPath("escape/evil"), Array("x".utf8), replacing: nil) }
        do {
            try files.write(opsPath("escape/evil"), Array("x".utf8), replacing: nil)
        } catch {
            // Linux reports O_DIRECTORY|O_NOFOLLOW on a symlink as ENOTDIR.
            #expect(opsIsSystemError(error, ENOTDIR) || opsIsSystemError(error, ELOOP))
            #expect("\(error)".contains("escape/evil"))
            #expect("\(error)".contains("symlink"))
        }
        // Seen without following links, nothing exists below a symlink.
        #expect(try files.stat(opsPath("escape/evil")) == nil)
        #expect(throws: (any Error).self) {
            try files.makeDirectory(opsPath("escape/sub"), entry: Entry(kind: .directory, mode: 0o755), replacing: nil)
        }
        #expect(throws: (any Error).self) { try files.makeSymlink(opsPath("escape/l"), target: Array("/".utf8), replacing: nil) }
        // Deeper: a real directory below the planted link is still out of reach.
        #expect(mkdir(outside + "/deeper", 0o755) == 0)
        #expect(throws: (any Error).self) { try files.write(opsPath("escape/deeper/evil"), [1], replacing: nil) }
        #expect(OpsSandbox.names(atPath: outside) == ["deeper"])
        #expect(OpsSandbox.names(atPath: outside + "/deeper").isEmpty)
    }

    @Test func symlinkAtTheTargetIsNeverWrittenThrough() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let outsideFile = box.base + "/secret"
        #expect(creat(outsideFile, 0o600) >= 0)
        try box.symlink(opsPath("link"), to: outsideFile)
        let fileLike = opsFileEntry(Array("x".utf8))

        #expect(throws: FileOperationError.changedDuringSync(opsPath("link"))) {
            try files.write(opsPath("link"), Array("x".utf8), replacing: nil)
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("link"))) {
            try files.write(opsPath("link"), Array("x".utf8), replacing: fileLike)
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("link"))) {
            try files.openForReading(opsPath("link"), expected: fileLike)
        }
        #expect(OpsSandbox.content(atPath: outsideFile) == [])
        #expect(try files.stat(opsPath("link"))?.kind == .symlink)
    }

    @Test func nonUTF8AndLongNamesRoundTrip() throws {
        let box = try OpsSandbox()
        let files = try box.files(maxBackups: 2)
        let odd = try PathComponent(validating: [0xFF, 0xFE, 0x0A, 0x61])  // invalid UTF-8 and a newline
        let long = try PathComponent(validating: [UInt8](repeating: 0x78, count: 255))
        let dir = RelativePath.root.appending(odd)
        try files.makeDirectory(dir, entry: Entry(kind: .directory, mode: 0o755), replacing: nil)
        let path = dir.appending(long)

        let first = try files.write(path, Array("one".utf8), replacing: nil)
        #expect(box.names(in: dir) == [long.bytes])
        #expect(box.content(path) == Array("one".utf8))
        #expect(try files.stat(path)?.size == 3)

        // Replacing it with a backup needs a shortened backup name (".bak.1." + 255 bytes is too long).
        let second = try files.write(path, Array("two".utf8), replacing: first, backup: true)
        try files.write(path, Array("three".utf8), replacing: second, backup: true)
        let backupDir = opsCString(Array(box.backups.utf8) + [0x2F] + odd.bytes)
        let kept = OpsSandbox.names(atBytes: backupDir)
        #expect(kept.count == 2)
        #expect(kept.allSatisfy { $0.count == 255 })
        let newest = try #require(kept.first { $0.starts(with: Array(".bak.1.".utf8)) })
        #expect(OpsSandbox.content(atBytes: opsCString(Array(box.backups.utf8) + [0x2F] + odd.bytes + [0x2F] + newest))
                == Array("two".utf8))

        let handle = try files.openForReading(path, expected: try #require(try files.stat(path)))
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = try buffer.withUnsafeMutableBytes { try handle.read(into: $0) }
        #expect(Array(buffer[0..<n]) == Array("three".utf8))
        #expect(try files.remove(path, expected: try #require(try files.stat(path)), backup: false) == nil)
        #expect(box.names(in: dir).isEmpty)
    }

    /// A tiny tmpfs as the root: ENOSPC is a clear error, nothing appears under the real name,
    /// and the temporary file is gone. Needs root (mount); skipped otherwise.
    @Test(.enabled(if: getuid() == 0)) func fullDiskFailsCleanly() throws {
        let box = try OpsSandbox()
        guard mount("tmpfs", box.root, "tmpfs", 0, "size=64k") == 0 else {
            try Test.cancel("cannot mount a tmpfs here (errno \(errno))")
        }
        defer { umount2(box.root, Int32(MNT_DETACH)) }
        let files = try box.files()
        let content = [UInt8](repeating: 0x5A, count: 400_000)

        var failure: (any Error)?
        do {
            try files.write(opsPath("huge"), content, replacing: nil)
        } catch {
            failure = error
        }
        let error = try #require(failure)
        #expect(opsIsSystemError(error, ENOSPC))
        #expect("\(error)".contains("huge"))
        #expect("\(error)".contains("No space left on device"))
        #expect("\(error)".contains("free space"))
        #expect(box.names().isEmpty)

        // The file system is usable again afterwards: a small file fits.
        try files.write(opsPath("small"), Array("ok".utf8), replacing: nil)
        #expect(box.content(opsPath("small")) == Array("ok".utf8))
    }
}
