import Foundation
import Glibc
import SwunisonModel
import Testing
@testable import SwunisonFS

@Suite struct OpsBackupTests {
    /// Writes versions v1...vN of `dir/f`, each replacing the previous one with a backup.
    private func writeVersions(_ count: Int, files: ReplicaFiles, path: RelativePath) throws {
        var current: Entry?
        for version in 1...count {
            current = try files.write(path, Array("v\(version)".utf8), replacing: current, backup: true)
        }
    }

    @Test func generationsRotateAndTheOldestIsDropped() throws {
        let box = try OpsSandbox()
        let files = try box.files(maxBackups: 3)
        try box.makeDir(opsPath("dir"))
        try writeVersions(6, files: files, path: opsPath("dir/f"))

        #expect(box.content(opsPath("dir/f")) == Array("v6".utf8))
        let dir = box.backups + "/dir"
        #expect(OpsSandbox.names(atPath: dir) == [".bak.1.f", ".bak.2.f", ".bak.3.f"])
        #expect(OpsSandbox.content(atPath: dir + "/.bak.1.f") == Array("v5".utf8))
        #expect(OpsSandbox.content(atPath: dir + "/.bak.2.f") == Array("v4".utf8))
        #expect(OpsSandbox.content(atPath: dir + "/.bak.3.f") == Array("v3".utf8))
        #expect(files.backupLocation(for: opsPath("dir/f")) == dir + "/.bak.1.f")
        // Backup directories are private.
        var st = stat()
        #expect(lstat(dir, &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    @Test(arguments: [0, -5, 1])
    func maxBackupsBelowTwoStillKeepsTheNewestLoser(maxBackups: Int) throws {
        let box = try OpsSandbox()
        let files = try box.files(maxBackups: maxBackups)
        try writeVersions(3, files: files, path: opsPath("f"))
        #expect(OpsSandbox.names(atPath: box.backups) == [".bak.1.f"])
        #expect(OpsSandbox.content(atPath: box.backups + "/.bak.1.f") == Array("v2".utf8))
    }

    @Test func loweringMaxBackupsDropsGenerationsBeyondIt() throws {
        let box = try OpsSandbox()
        try writeVersions(5, files: try box.files(maxBackups: 4), path: opsPath("f"))
        #expect(OpsSandbox.names(atPath: box.backups).count == 4)
        let files = try box.files(maxBackups: 2)
        let current = try #require(try files.stat(opsPath("f")))
        try files.write(opsPath("f"), Array("v6".utf8), replacing: current, backup: true)
        #expect(OpsSandbox.names(atPath: box.backups) == [".bak.1.f", ".bak.2.f"])
        #expect(OpsSandbox.content(atPath: box.backups + "/.bak.2.f") == Array("v4".utf8))
    }

    @Test func removeWithBackupMovesTheFileAway() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.makeDir(opsPath("a"))
        try box.makeDir(opsPath("a/b"))
        try box.plant(opsPath("a/b/gone"), Array("keep me".utf8), mode: 0o600)
        let scanned = try #require(try files.stat(opsPath("a/b/gone")))

        let location = try files.remove(opsPath("a/b/gone"), expected: scanned, backup: true)

        #expect(location == box.backups + "/a/b/.bak.1.gone")
        #expect(box.content(opsPath("a/b/gone")) == nil)
        #expect(OpsSandbox.content(atPath: box.backups + "/a/b/.bak.1.gone") == Array("keep me".utf8))
        #expect(box.names(in: opsPath("a/b")).isEmpty)
    }

    @Test func removeSymlinkWithBackupKeepsTheLink() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.symlink(opsPath("l"), to: "../somewhere")
        let scanned = try #require(try files.stat(opsPath("l")))
        try files.remove(opsPath("l"), expected: scanned, backup: true)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink(box.backups + "/.bak.1.l", &buffer, 64)
        #expect(n == 12 && String(cString: Array(buffer[0..<n]) + [0]) == "../somewhere")
    }

    /// backup() copies: the original keeps inode and ctime, so the write that follows (with the
    /// fingerprint from the scan) still finds the file as expected.
    @Test func backupCopiesWithoutTouchingTheOriginal() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("loser"), Array("local version".utf8), mode: 0o604)
        var scanned = try #require(try files.stat(opsPath("loser")))
        scanned.digest = XXH3Hasher.digest(Array("local version".utf8))
        usleep(5_000)

        let location = try files.backup(opsPath("loser"), expected: scanned)

        #expect(location == box.backups + "/.bak.1.loser")
        #expect(try files.stat(opsPath("loser"))?.fingerprint == scanned.fingerprint)
        #expect(OpsSandbox.content(atPath: location) == Array("local version".utf8))
        var st = stat()
        #expect(lstat(location, &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o604)
        #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == scanned.mtime)
        #expect(UInt64(st.st_ino) != scanned.fingerprint?.inode)

        try files.write(opsPath("loser"), Array("winner".utf8), replacing: scanned)
        #expect(box.content(opsPath("loser")) == Array("winner".utf8))
    }

    @Test func backupRefusesAChangedFile() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        try box.plant(opsPath("f"), Array("one".utf8))
        let scanned = try #require(try files.stat(opsPath("f")))
        try box.plant(opsPath("f"), Array("three".utf8))
        #expect(throws: FileOperationError.changedDuringSync(opsPath("f"))) { try files.backup(opsPath("f"), expected: scanned) }
        #expect(OpsSandbox.names(atPath: box.backups).isEmpty)
    }

    /// A backup directory on another file system (tmpfs /dev/shm vs the root's file system):
    /// link and rename fail with EXDEV, and the version is copied instead.
    @Test func backupDirectoryOnAnotherFileSystemIsCopiedTo() throws {
        var shm = stat(), tmp = stat()
        guard lstat("/dev/shm", &shm) == 0, lstat("/tmp", &tmp) == 0, shm.st_dev != tmp.st_dev else {
            try Test.cancel("/dev/shm is not a separate file system here")
        }
        var template = Array("/dev/shm/swunison-ops-backups.XXXXXX".utf8CString)
        let backups = String(cString: try #require(mkdtemp(&template)))
        defer { opsRemoveTree(backups) }
        let box = try OpsSandbox(backups: backups + "/deep/er")
        let files = try box.files(maxBackups: 2)
        try box.makeDir(opsPath("d"))

        try writeVersions(3, files: files, path: opsPath("d/f"))
        let scanned = try #require(try files.stat(opsPath("d/f")))
        let removed = try files.remove(opsPath("d/f"), expected: scanned, backup: true)

        #expect(removed == backups + "/deep/er/d/.bak.1.f")
        #expect(box.content(opsPath("d/f")) == nil)
        #expect(OpsSandbox.names(atPath: backups + "/deep/er/d") == [".bak.1.f", ".bak.2.f"])
        #expect(OpsSandbox.content(atPath: backups + "/deep/er/d/.bak.1.f") == Array("v3".utf8))
        #expect(OpsSandbox.content(atPath: backups + "/deep/er/d/.bak.2.f") == Array("v2".utf8))
    }

    @Test func symlinkPlantedInTheBackupTreeIsNotFollowed() throws {
        let box = try OpsSandbox()
        let files = try box.files()
        let outside = box.base + "/outside"
        #expect(mkdir(outside, 0o755) == 0)
        #expect(mkdir(box.backups, 0o700) == 0)
        #expect(symlink(outside, box.backups + "/d") == 0)
        try box.makeDir(opsPath("d"))
        try box.plant(opsPath("d/f"), Array("x".utf8))
        let scanned = try #require(try files.stat(opsPath("d/f")))

        do {
            try files.remove(opsPath("d/f"), expected: scanned, backup: true)
            Issue.record("backup through a symlink should fail")
        } catch {
            #expect(opsIsSystemError(error, ENOTDIR) || opsIsSystemError(error, ELOOP))
        }
        #expect(box.content(opsPath("d/f")) == Array("x".utf8))
        #expect(OpsSandbox.names(atPath: outside).isEmpty)
    }

    @Test func backupDirectoryInsideTheRootIsReachedWithoutFollowingLinks() throws {
        let box = try OpsSandbox()
        let backups = box.root + "/.swunison-backup"
        let files = try ReplicaFiles(root: box.root + "/", backupDirectory: backups, maxBackups: 2)
        try box.plant(opsPath("f"), Array("one".utf8))
        let location = try files.remove(opsPath("f"), expected: try #require(try files.stat(opsPath("f"))), backup: true)
        #expect(location == backups + "/.bak.1.f")
        #expect(OpsSandbox.content(atPath: backups + "/.bak.1.f") == Array("one".utf8))

        // A peer replaces the backup directory with a symlink to somewhere else: refused.
        opsRemoveTree(backups)
        try Self.expectBackupThroughAPlantedLinkRefused(files, box)
    }

    /// The same when the root, or the backup directory, is named through a symlink or with
    /// `..`: it is still recognised as inside the tree and reached without following links.
    @Test(arguments: ["link", "dotdot", "backup-via-dotdot"])
    func backupDirectoryInsideARootNamedIndirectlyIsStillReachedWithoutLinks(_ naming: String) throws {
        let box = try OpsSandbox()
        let link = box.base + "/root-link"
        #expect(symlink(box.root, link) == 0)
        let rootName = box.root.split(separator: "/").last!
        let (root, backups): (String, String) = switch naming {
        case "link": (link, box.root + "/.swunison-backup")
        case "dotdot": (box.root + "/../\(rootName)", box.root + "/.swunison-backup")
        default: (box.root, box.root + "/sub/../.swunison-backup")
        }
        let files = try ReplicaFiles(root: root, backupDirectory: backups, maxBackups: 2)
        try Self.expectBackupThroughAPlantedLinkRefused(files, box)
    }

    /// A peer replaces `.swunison-backup` (inside the root) with a symlink to a directory outside:
    /// a backup through it fails, the file stays, nothing lands outside.
    static func expectBackupThroughAPlantedLinkRefused(_ files: ReplicaFiles, _ box: OpsSandbox) throws {
        let outside = box.base + "/outside"
        #expect(mkdir(outside, 0o755) == 0)
        try box.symlink(opsPath(".swunison-backup"), to: outside)
        try box.plant(opsPath("g"), Array("two".utf8))
        let scanned = try #require(try files.stat(opsPath("g")))
        do {
            try files.remove(opsPath("g"), expected: scanned, backup: true)
            Issue.record("a backup through a planted symlink should fail")
        } catch {
            #expect(opsIsSystemError(error, ENOTDIR) || opsIsSystemError(error, ELOOP))
        }
        #expect(box.content(opsPath("g")) == Array("two".utf8))
        #expect(OpsSandbox.names(atPath: outside).isEmpty)
    }
}
