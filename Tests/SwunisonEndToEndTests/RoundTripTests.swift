import Foundation
import Glibc
import SwunisonTestSupport
import Testing

/// Names and attributes arrive exactly (issue 13): odd names, long names, empty and sparse
/// files, nanosecond mtimes, setgid directories and dangling symlinks, A to B and back.
@Suite("names and attributes round-trip")
struct RoundTripTests {
    /// Raw names (bytes), created with the system calls since Foundation wants UTF-8 paths.
    static let names: [[UInt8]] = [
        Array("new\nline".utf8), Array("back\\slash".utf8), Array("-leading-dash".utf8), Array("  spaced  ".utf8),
        [0x6C, 0x61, 0x74, 0x69, 0x6E, 0xE9],  // "latin\xE9": not UTF-8
        Array(String(repeating: "n", count: 255).utf8),
        Array("ünïcödé ✓".utf8),
    ]

    @Test func oddNamesSparseFilesNanosecondsAndSymlinksArriveExactly() throws {
        let s = try Sandbox("round-trip")
        // perms = -1: every mode bit, set-id bits included (Unison's default 0o1777 leaves them out).
        try s.profile("t", ["batch = true", "prefer = newer", "perms = -1"])
        let a = s.a
        for (i, name) in Self.names.enumerated() {
            let path = Array(a.utf8) + [0x2F] + name
            let fd = path.withUnsafeBufferPointer { buffer in
                (Array(buffer) + [0]).withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self),
                                                                     O_WRONLY | O_CREAT | O_TRUNC, 0o640) }
            }
            try #require(fd >= 0, "cannot create name \(i)")
            _ = "content \(i)".withCString { write(fd, $0, strlen($0)) }
            var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 123_456_789 + i), timespec(tv_sec: 1_600_000_000, tv_nsec: 123_456_789 + i)]
            futimens(fd, &times)
            close(fd)
        }
        // Empty, sparse (a hole of 64 MiB then one byte), a setgid directory, a dangling symlink.
        _ = FileManager.default.createFile(atPath: a + "/empty", contents: Data())
        let sparse = open(a + "/sparse", O_WRONLY | O_CREAT, 0o600)
        #expect(pwrite(sparse, "z", 1, 64 << 20) == 1)
        close(sparse)
        try FileManager.default.createDirectory(atPath: a + "/setgid", withIntermediateDirectories: true)
        #expect(chmod(a + "/setgid", 0o2775) == 0)
        try TestFiles.write(a + "/setgid/inside", "x")
        #expect(symlink("nowhere/at/all", a + "/dangling") == 0)

        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        #expect(s.inStep, "A and B differ after the first sync")
        // Byte for byte, the nanoseconds too, the sparse file's size, the setgid bit.
        for name in Self.names {
            let (sa, sb) = (try Self.lstat(a, name), try Self.lstat(s.b, name))
            #expect(sa.st_mtim.tv_nsec == sb.st_mtim.tv_nsec && sa.st_mtim.tv_sec == sb.st_mtim.tv_sec)
            #expect(sa.st_mode == sb.st_mode && sa.st_size == sb.st_size)
        }
        var st = stat()
        #expect(stat(s.b + "/sparse", &st) == 0 && st.st_size == (64 << 20) + 1)
        // It arrives sparse too: the hole is not written as 64 MiB of zeros.
        #expect(st.st_blocks * 512 < 1 << 20, "\(st.st_blocks) blocks")
        #expect(stat(s.b + "/setgid", &st) == 0 && st.st_mode & 0o7777 == 0o2775)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: s.b + "/dangling") == "nowhere/at/all")
        #expect(FileManager.default.contents(atPath: s.b + "/empty") == Data())
        // The run after has nothing to do: every name and attribute was read back as written.
        let second = try s.run(["t"])
        #expect(second.status == 0 && second.stdout.contains("Nothing to do"), "\(second)")
    }

    /// A file past 4 GiB (sizes and offsets beyond 32 bits), mostly hole: data at both ends
    /// arrives, and the hole stays a hole on the receiving side. Reading 4 GiB of hole takes a
    /// debug build most of a minute: run by `Tests/soak` (`SWUNISON_SOAK=1`), not by CI.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SWUNISON_SOAK"] == "1", "a soak test (Tests/soak)"))
    func aSparseFileBeyondFourGiBArrivesWholeAndSparse() throws {
        let s = try Sandbox("round-trip-4g")
        try s.profile("t", ["batch = true", "prefer = newer"])
        let size: Int64 = (4 << 30) + 4096 + 4
        let fd = open(s.a + "/huge", O_WRONLY | O_CREAT, 0o644)
        try #require(fd >= 0)
        #expect(pwrite(fd, "head", 4, 0) == 4)
        #expect(pwrite(fd, "tail", 4, off_t(size - 4)) == 4)
        close(fd)
        let run = try s.run(["t"])
        #expect(run.status == 0, "\(run)")
        var st = stat()
        #expect(stat(s.b + "/huge", &st) == 0 && Int64(st.st_size) == size)
        #expect(st.st_blocks * 512 < 1 << 20, "\(st.st_blocks) blocks: the hole was written out")
        let copy = open(s.b + "/huge", O_RDONLY)
        defer { close(copy) }
        var head = [UInt8](repeating: 0, count: 4), tail = head, middle = [UInt8](repeating: 1, count: 8)
        #expect(pread(copy, &head, 4, 0) == 4 && head == Array("head".utf8))
        #expect(pread(copy, &tail, 4, off_t(size - 4)) == 4 && tail == Array("tail".utf8))
        #expect(pread(copy, &middle, 8, 3 << 30) == 8 && middle == [UInt8](repeating: 0, count: 8))
        let second = try s.run(["t"])
        #expect(second.status == 0 && second.stdout.contains("Nothing to do"), "\(second)")
    }

    static func lstat(_ root: String, _ name: [UInt8]) throws -> stat {
        var st = stat()
        let path = Array(root.utf8) + [0x2F] + name + [0]
        let rc = path.withUnsafeBufferPointer { Glibc.lstat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), &st) }
        try #require(rc == 0, "missing: \(String(decoding: name, as: UTF8.self))")
        return st
    }
}
