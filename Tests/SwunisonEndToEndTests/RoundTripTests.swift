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

    /// FIFOs, sockets and device nodes are named in the run's report and left alone; hard links
    /// arrive as separate files with the same content (as with Unison: a link between names is
    /// not a thing swunison keeps). Owner and group arrive by number with `owner`/`group`.
    @Test(.enabled(if: getuid() == 0, "device nodes and ownership need root"))
    func specialFilesAreReportedAndSkippedHardLinksCopiedOwnersKept() throws {
        let s = try Sandbox("round-trip-special")
        try s.profile("t", ["batch = true", "prefer = newer", "owner = true", "group = true", "numericids = true"])
        try s.write("a", "plain", "plain")
        try s.write("a", "linked-1", "shared")
        #expect(link(s.a + "/linked-1", s.a + "/linked-2") == 0)
        #expect(mkfifo(s.a + "/fifo", 0o644) == 0)
        #expect(mknod(s.a + "/device", S_IFCHR | 0o600, (1 << 8) | 3) == 0)
        let socketFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let socketPath = s.a + "/socket"
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        defer { close(socketFD) }
        #expect(chown(s.a + "/plain", 1234, 5678) == 0)

        let run = try s.run(["t"])
        for special in ["fifo", "device", "socket"] {
            #expect(run.output.contains(special), "\(special) not reported: \(run)")
            #expect(!TestFiles.exists(s.b + "/" + special), "\(special) was created on B")
        }
        #expect(s.read("b", "plain") == "plain")
        #expect(s.read("b", "linked-1") == "shared" && s.read("b", "linked-2") == "shared")
        var st = stat()
        #expect(stat(s.b + "/plain", &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678)
        #expect(stat(s.b + "/linked-2", &st) == 0 && st.st_nlink == 1)
        // The special files stay where they are, and are reported again, not deleted or copied.
        let again = try s.run(["t"])
        #expect(again.output.contains("fifo"), "\(again)")
        #expect(TestFiles.exists(s.a + "/fifo") && TestFiles.exists(s.a + "/device"))
    }

    /// The odd names, nanoseconds, empty and sparse files, setgid directory and dangling link of
    /// the first test, over ssh to a real `swunison server`, both ways.
    @Test func theSameArriveExactlyOverSSH() throws {
        let s = try SSHSandbox("round-trip-ssh")
        try s.profile("t", ["batch = true", "prefer = newer", "perms = -1"])
        for (i, name) in Self.names.enumerated() {
            let side = i % 2 == 0 ? s.local : s.remote
            let path = Array(side.utf8) + [0x2F] + name + [0]
            let fd = path.withUnsafeBufferPointer {
                open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_WRONLY | O_CREAT | O_TRUNC, 0o640)
            }
            try #require(fd >= 0, "cannot create name \(i)")
            _ = "content \(i)".withCString { write(fd, $0, strlen($0)) }
            var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 987_654_321 - i), timespec(tv_sec: 1_600_000_000, tv_nsec: 987_654_321 - i)]
            futimens(fd, &times)
            close(fd)
        }
        _ = FileManager.default.createFile(atPath: s.remote + "/empty", contents: Data())
        let sparse = open(s.local + "/sparse", O_WRONLY | O_CREAT, 0o600)
        #expect(pwrite(sparse, "z", 1, 32 << 20) == 1)
        close(sparse)
        try FileManager.default.createDirectory(atPath: s.remote + "/setgid", withIntermediateDirectories: true)
        #expect(chmod(s.remote + "/setgid", 0o2770) == 0)
        #expect(symlink("../nowhere", s.local + "/dangling") == 0)

        let run = try s.run()
        #expect(run.status == 0, "\(run)")
        #expect(s.inStep, "\(s.listings)")
        for name in Self.names {
            let (local, remote) = (try Self.lstat(s.local, name), try Self.lstat(s.remote, name))
            #expect(local.st_mtim.tv_nsec == remote.st_mtim.tv_nsec && local.st_mode == remote.st_mode)
        }
        var st = stat()
        #expect(stat(s.remote + "/sparse", &st) == 0 && st.st_size == (32 << 20) + 1 && st.st_blocks * 512 < 1 << 20)
        #expect(stat(s.local + "/setgid", &st) == 0 && st.st_mode & 0o7777 == 0o2770)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: s.remote + "/dangling") == "../nowhere")
        let second = try s.run()
        #expect(second.status == 0 && second.stdout.contains("Nothing to do"), "\(second)")
    }

    /// A path of more than 4,096 bytes (PATH_MAX) below the root: twenty directories of 250-byte
    /// names. It is scanned, copied, changed and deleted like any other, locally and over ssh.
    @Test func pathsLongerThanPathMaxSyncBothWays() throws {
        let s = try SSHSandbox("round-trip-long")
        try s.profile("t", ["batch = true", "prefer = newer"])
        let deep = (0..<20).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0))), count: 250) }.joined(separator: "/")
        #expect(deep.utf8.count > 4096)
        // Created with relative steps: the whole path is too long for one system call.
        func make(_ root: String) throws -> Int32 {
            var fd = open(root, O_RDONLY | O_DIRECTORY)
            for component in deep.split(separator: "/") {
                _ = mkdirat(fd, String(component), 0o755)
                let next = openat(fd, String(component), O_RDONLY | O_DIRECTORY)
                close(fd)
                try #require(next >= 0)
                fd = next
            }
            return fd
        }
        let fd = try make(s.local)
        let file = openat(fd, "leaf", O_WRONLY | O_CREAT, 0o644)
        _ = "far down".withCString { write(file, $0, strlen($0)) }
        close(file)
        func read(_ root: String) throws -> String? {
            let dir = try make(root)
            defer { close(dir) }
            let leaf = openat(dir, "leaf", O_RDONLY)
            guard leaf >= 0 else { return nil }
            defer { close(leaf) }
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = Glibc.read(leaf, &buffer, 64)
            return String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
        }
        let run = try s.run()
        #expect(run.status == 0, "\(run)")
        #expect(try read(s.remote) == "far down")
        // Deleted on the remote side: gone locally on the next run.
        let remoteDir = try make(s.remote)
        #expect(unlinkat(remoteDir, "leaf", 0) == 0)
        close(remoteDir)
        let second = try s.run()
        #expect(second.status == 0, "\(second)")
        #expect(try read(s.local) == nil)
        close(fd)
    }

    static func lstat(_ root: String, _ name: [UInt8]) throws -> stat {
        var st = stat()
        let path = Array(root.utf8) + [0x2F] + name + [0]
        let rc = path.withUnsafeBufferPointer { Glibc.lstat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), &st) }
        try #require(rc == 0, "missing: \(String(decoding: name, as: UTF8.self))")
        return st
    }
}
