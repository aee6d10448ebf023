import Foundation
import Glibc
import SwunisonTestSupport
import Testing

/// A replica on a full file system (issue 13): B is a 1 MiB tmpfs. A copy that runs out of space
/// mid-file keeps the old content, leaves no temporary file, names the path and the cause, and
/// the run exits 2 with everything else synchronised. Needs root to mount (CI runs as root).
@Suite("a full disk")
struct DiskFullTests {
    static let canMount = geteuid() == 0

    @Test(.enabled(if: canMount, "mounting a small tmpfs needs root"))
    func aCopyThatRunsOutOfSpaceKeepsTheOldContentAndSaysWhy() throws {
        let s = try Sandbox("disk-full")
        guard mount("tmpfs", s.b, "tmpfs", 0, "size=1m,mode=0755") == 0 else {
            Issue.record("cannot mount a tmpfs at \(s.b): \(String(cString: strerror(errno)))")
            return
        }
        defer { umount2(s.b, Int32(MNT_DETACH)) }
        try s.profile("t", ["batch = true", "prefer = newer"])
        let old = Date().timeIntervalSince1970 - 1000
        try s.write("a", "big", "old big", mtime: old)
        try s.write("a", "small", "old small", mtime: old)
        for n in 0..<20 { try s.write("a", "s\(n)", "old \(n)", mtime: old) }
        #expect(try s.run(["t"]).status == 0)

        // A's new versions: one far bigger than B's file system, one small.
        try s.write("a", "big", String(repeating: "B", count: 3 << 20), mtime: old + 10)
        try s.write("a", "small", "new small", mtime: old + 10)
        // Small copies that run beside the big one may find the disk full for a moment: each gets
        // one more try on its own once the big one has failed and its temporary file is gone.
        for n in 0..<20 { try s.write("a", "s\(n)", "new \(n)", mtime: old + 10) }
        let full = try s.run(["t"])
        #expect(full.status == 2, "\(full)")
        #expect(full.output.contains("big") && full.output.contains("No space left on device"), "\(full)")
        #expect(s.read("b", "big") == "old big")
        #expect(s.read("b", "small") == "new small")
        for n in 0..<20 { #expect(s.read("b", "s\(n)") == "new \(n)") }
        let left = (try? FileManager.default.contentsOfDirectory(atPath: s.b)) ?? []
        #expect(!left.contains { $0.hasPrefix(".swunison.") }, "temporary files left: \(left)")

        // Room again (the big version shrinks): the next run converges.
        try s.write("a", "big", "new big", mtime: old + 20)
        #expect(try s.run(["t"]).status == 0)
        #expect(s.read("b", "big") == "new big")
    }

    /// `ulimit -f`: a write past the limit fails that file with EFBIG (SIGXFSZ would otherwise
    /// kill the run mid-copy); the old content stays, and the rest is synchronised.
    @Test func aCopyPastTheFileSizeLimitFailsThatFileOnly() throws {
        let s = try Sandbox("file-size-limit")
        try s.profile("t", ["batch = true", "prefer = newer"])
        let old = Date().timeIntervalSince1970 - 1000
        try s.write("a", "big", "old big", mtime: old)
        try s.write("a", "small", "old small", mtime: old)
        #expect(try s.run(["t"]).status == 0)
        try s.write("a", "big", String(repeating: "B", count: 3 << 20), mtime: old + 10)
        try s.write("a", "small", "new small", mtime: old + 10)
        // 2048 blocks: 1 MiB in dash's 512-byte blocks (2 MiB in bash's), below the big file.
        let limited = try SwunisonBinary.run([], environment: ["SWUNISON": s.profiles, "HOME": s.dir.path],
                                             wrapper: ["/bin/sh", "-c", "ulimit -f 2048; exec \"$0\" \"$@\""], arguments2: ["t"])
        #expect(limited.status == 2, "\(limited)")
        #expect(limited.output.contains("big: write failed: File too large; "), "\(limited)")
        #expect(s.read("b", "big") == "old big")
        #expect(s.read("b", "small") == "new small")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: s.b)) ?? []
        #expect(!left.contains { $0.hasPrefix(".swunison.") }, "temporary files left: \(left)")
        // Without the limit the next run converges.
        #expect(try s.run(["t"]).status == 0)
        #expect(s.read("b", "big") == String(repeating: "B", count: 3 << 20))
    }
}
