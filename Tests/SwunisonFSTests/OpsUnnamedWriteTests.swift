import Foundation
import Glibc
import SwunisonModel
import Testing
@testable import SwunisonFS

/// Writers for new files (`forNewFile`): an unnamed temporary file (`O_TMPFILE`) linked in under
/// its real name, and batches that reuse one parent directory descriptor.
@Suite struct OpsUnnamedWriteTests {
    @Test func newFileHasNoNameUntilItIsLinkedIn() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = Array("brand new\n".utf8)
        let entry = opsFileEntry(content, mtime: 1_500_000_000_000_000_001, mode: 0o604)
        let writer = try files.beginWrite(opsPath("new"), entry: entry, forNewFile: true)
        try writer.append(content)
        // Nothing in the directory while it is written: not even a temporary name.
        #expect(box.names().isEmpty)
        #expect(writer.temporaryFileName.isEmpty)

        let made = try writer.commit(replacing: nil)
        #expect(box.names() == [Array("new".utf8)])
        #expect(box.content(opsPath("new")) == content)
        let st = try #require(box.lstatRaw(opsPath("new")))
        #expect(st.st_mode & 0o7777 == 0o604 && st.st_nlink == 1)
        #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == 1_500_000_000_000_000_001)
        // The entry returned is what is on disk (fingerprint taken after the link).
        var fromStat = try #require(try files.stat(opsPath("new")))
        fromStat.digest = made.digest
        #expect(fromStat == made)
    }

    @Test(arguments: [UInt32(0o640), 0o666, 0o4755, 0o1755, 0o600])
    func modeIsRightWhetherOrNotTheUmaskLetsItBeSetAtCreation(_ mode: UInt32) throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = Array("m".utf8)
        let entry = opsFileEntry(content, mode: mode)
        var parents = ParentDirectoryCache()
        let writer = try files.beginWrite(opsPath("f"), entry: entry, reusing: &parents, forNewFile: true,
                                          attributes: AttributeSelection())
        try writer.append(content)
        _ = try writer.commit(replacing: nil, attributes: AttributeSelection())
        let st = try #require(box.lstatRaw(opsPath("f")))
        // The default selection (Unison's perms 0o1777) never propagates set-id bits.
        #expect(UInt32(st.st_mode & 0o7777) == mode & 0o1777)
    }

    @Test func fileThatAppearsMeanwhileIsNeverClobbered() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let writer = try files.beginWrite(opsPath("new"), entry: opsFileEntry(Array("theirs".utf8)), forNewFile: true)
        try writer.append(Array("theirs".utf8))
        writer.beforeRename = { try? box.plant(opsPath("new"), Array("mine".utf8)) }

        #expect(throws: FileOperationError.changedDuringSync(opsPath("new"))) { try writer.commit(replacing: nil) }
        #expect(box.content(opsPath("new")) == Array("mine".utf8))
        #expect(box.names() == [Array("new".utf8)])
        #expect(!writer.isOpen)
    }

    @Test func abortAndDigestMismatchLeaveNothingBehind() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let aborted = try files.beginWrite(opsPath("a"), entry: opsFileEntry(Array("abc".utf8)), forNewFile: true)
        try aborted.append(Array("abc".utf8))
        aborted.abort()
        let wrong = try files.beginWrite(opsPath("b"), entry: opsFileEntry(Array("abcd".utf8)), forNewFile: true)
        try wrong.append(Array("abce".utf8))
        #expect(throws: FileOperationError.digestMismatch(opsPath("b"))) { try wrong.commit(replacing: nil) }
        #expect(box.names().isEmpty)
    }

    @Test func unnamedWriterCanStillReplaceAFile() throws {
        // A caller that said "new" but finds something to replace at commit time still gets an
        // atomic replacement (a temporary name, then a rename), with the backup it asked for.
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("old".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))
        let content = Array("replacement".utf8)
        let writer = try files.beginWrite(opsPath("f"), entry: opsFileEntry(content), forNewFile: true)
        try writer.append(content)
        _ = try writer.commit(replacing: scanned, backup: true)

        #expect(box.content(opsPath("f")) == content)
        #expect(box.temporaryFilesLeft().isEmpty)
        #expect(box.names() == [Array("f".utf8)])
        let kept = try #require(files.backupLocation(for: opsPath("f")))
        #expect(OpsSandbox.content(atPath: kept) == Array("old".utf8))
    }

    @Test func batchReusesTheParentDirectoryAndStillRefusesASymlinkedOne() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.makeDir(opsPath("d"))
        try box.makeDir(opsPath("e"))
        let outside = box.base + "/outside"
        #expect(mkdir(outside, 0o755) == 0)
        try box.symlink(opsPath("link"), to: outside)

        var parents = ParentDirectoryCache()
        var written: [String] = []
        for name in ["d/1", "d/2", "e/1", "d/3", "link/evil", "d/4"] {
            let content = Array(name.utf8)
            do {
                let writer = try files.beginWrite(opsPath(name), entry: opsFileEntry(content), reusing: &parents,
                                                  forNewFile: true)
                try writer.append(content)
                _ = try writer.commit(replacing: nil)
                written.append(name)
            } catch {
                #expect(name == "link/evil")
                #expect(opsIsSystemError(error, ENOTDIR) || opsIsSystemError(error, ELOOP))
            }
        }
        #expect(written == ["d/1", "d/2", "e/1", "d/3", "d/4"])
        #expect(box.content(opsPath("d/4")) == Array("d/4".utf8))
        #expect(OpsSandbox.names(atPath: outside).isEmpty)
    }

    @Test func batchReadsNeverGoThroughASymlinkedParent() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.makeDir(opsPath("d"))
        try box.plant(opsPath("d/1"), Array("one".utf8))
        let outside = box.base + "/outside"
        #expect(mkdir(outside, 0o755) == 0)
        #expect(FileManager.default.createFile(atPath: outside + "/x", contents: Data("secret".utf8)))
        try box.symlink(opsPath("link"), to: outside)
        let scanned = try #require(try files.stat(opsPath("d/1")))
        var lookalike = scanned
        lookalike.size = 6
        lookalike.fingerprint = nil

        var parents = ParentDirectoryCache()
        #expect(try files.readWhole(opsPath("d/1"), expected: scanned, reusing: &parents) == Array("one".utf8))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("link/x"))) {
            try files.readWhole(opsPath("link/x"), expected: lookalike, reusing: &parents)
        }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("gone/x"))) {
            try files.readWhole(opsPath("gone/x"), expected: lookalike, reusing: &parents)
        }
        #expect(try files.readWhole(opsPath("d/1"), expected: scanned, reusing: &parents) == Array("one".utf8))
    }

    @Test func readWholeChecksTheFileFirst() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let content = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try box.plant(opsPath("f"), content)
        let scanned = try #require(try files.stat(opsPath("f")))
        #expect(try files.readWhole(opsPath("f"), expected: scanned) == content)
        #expect(try files.readWhole(opsPath("f"), expected: { var e = scanned; e.fingerprint = nil; return e }()) == content)

        // Another size, another mtime, a symlink in its place, or gone: changed during sync.
        var bigger = scanned
        bigger.size += 1
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) { try files.readWhole(opsPath("f"), expected: bigger) }
        try box.sneakyRewrite(opsPath("f"), Array(content.reversed()))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) { try files.readWhole(opsPath("f"), expected: scanned) }
        #expect(unlink(box.absolute(opsPath("f"))) == 0)
        try box.symlink(opsPath("f"), to: "/etc/passwd")
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) { try files.readWhole(opsPath("f"), expected: scanned) }
        #expect(throws: FileOperationError.changedDuringSync(opsPath("gone"))) { try files.readWhole(opsPath("gone"), expected: scanned) }
    }
}
