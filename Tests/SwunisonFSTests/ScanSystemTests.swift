import Foundation
import Glibc
@testable import SwunisonFS
import SwunisonModel
import Testing

/// DirectoryFD and lstat, which the scanner and the file operations build on.
@Suite struct ScanSystemTests {
    func name(_ text: String) throws -> PathComponent { try PathComponent(validating: text) }

    @Test func openDirectoryNeverFollowsASymlink() throws {
        let tree = try ScanFixture()
        try tree.mkdir("real")
        try tree.mkdir("real/inner")
        try tree.symlink("alias", to: "real")
        let root = try DirectoryFD.openRoot(tree.rootPath)

        _ = try root.openDirectory(try name("real"))
        _ = try root.openDirectory(at: try scanPath("real/inner"))
        // Invariant 5: a symlink is refused wherever it sits in the path.
        // (Linux checks O_DIRECTORY first, so a symlink fails with ENOTDIR rather than ELOOP.)
        #expect(throws: SystemCallError("openat", errno: ENOTDIR)) { _ = try root.openDirectory(try name("alias")) }
        // A multi-component path is opened with one openat2(RESOLVE_NO_SYMLINKS) call where the
        // kernel has it; its ELOOP is reported as ENOTDIR, like the component walk's.
        func errno(opening path: String) throws -> Int32? {
            let target = try scanPath(path)
            do { _ = try root.openDirectory(at: target); return nil } catch { return error.errno }
        }
        #expect(try errno(opening: "alias/inner") == ENOTDIR)
        try tree.write("real/file", "f")
        #expect(try errno(opening: "real/file") == ENOTDIR)
        #expect(try errno(opening: "real/missing/x") == ENOENT)
        // The component walk used where the kernel lacks openat2 refuses the same way.
        func walkErrno(_ path: String) throws -> Int32? {
            let target = try scanPath(path)
            do { _ = try root.openDirectoryByComponents(at: target); return nil } catch { return error.errno }
        }
        #expect(try walkErrno("real/inner") == nil)
        #expect(try walkErrno("alias/inner") == ENOTDIR)
        #expect(try walkErrno("real/file") == ENOTDIR)
        #expect(try walkErrno("real/missing/x") == ENOENT)
    }

    @Test func lstatReportsEachKindWithoutFollowing() throws {
        let tree = try ScanFixture()
        try tree.write("f", "12345", mtime: 1_650_000_000_000_000_001, mode: 0o4750)
        try tree.mkdir("d", mode: 0o700)
        try tree.symlink("l", to: "d")
        let root = try DirectoryFD.openRoot(tree.rootPath)

        let file = try #require(try lstat(try name("f"), in: root))
        #expect(file.kind == .file && file.size == 5 && file.mode == 0o4750)
        #expect(file.mtime == 1_650_000_000_000_000_001 && file.digest == nil)
        var st = stat()
        #expect(Glibc.lstat(tree.absolute(Array("f".utf8)), &st) == 0)
        #expect(file.fingerprint == Fingerprint(inode: UInt64(st.st_ino),
                                                ctime: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec),
                                                mtime: 1_650_000_000_000_000_001, size: 5))
        let dir = try #require(try lstat(try name("d"), in: root))
        #expect(dir.kind == .directory && dir.mode == 0o700 && dir.size == 0)
        let link = try #require(try lstat(try name("l"), in: root))
        #expect(link.kind == .symlink && link.linkTarget == Array("d".utf8))
        #expect(try lstat(try name("missing"), in: root) == nil)

        try tree.mkfifo("fifo")
        #expect(throws: UnsupportedKindError(name: "fifo", typeName: "fifo")) { _ = try lstat(try name("fifo"), in: root) }
    }
}
