import Foundation
import Glibc
import SwunisonFS
import SwunisonModel

/// A real temporary tree for scanner tests, addressed by raw-byte relative paths, removed on release.
final class ScanFixture {
    let rootPath: String
    /// A time well in the past: files get it as mtime unless a test says otherwise, so their
    /// fingerprints are trusted.
    static let pastTime: Nanoseconds = 1_600_000_000_123_456_789

    init() throws {
        var template = Array("/tmp/swunison-scan.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ScanFixtureError("mkdtemp", errno) }
        rootPath = String(cString: made)
    }

    deinit {
        // Make everything writable again (problem tests chmod 000) before removing.
        _ = try? Process.run(URL(fileURLWithPath: "/bin/chmod"), arguments: ["-R", "u+rwx", rootPath]).waitUntilExit()
        _ = try? Process.run(URL(fileURLWithPath: "/bin/rm"), arguments: ["-rf", rootPath]).waitUntilExit()
    }

    /// The absolute path of `relative` as a C string.
    func absolute(_ relative: [UInt8]) -> [CChar] {
        (Array(rootPath.utf8) + [0x2F] + relative).map { CChar(bitPattern: $0) } + [0]
    }

    func mkdir(_ relative: String, mode: mode_t = 0o755) throws { try mkdir(Array(relative.utf8), mode: mode) }
    func mkdir(_ relative: [UInt8], mode: mode_t = 0o755) throws {
        guard Glibc.mkdir(absolute(relative), mode) == 0 else { throw ScanFixtureError("mkdir", errno) }
        _ = Glibc.chmod(absolute(relative), mode)
    }

    func write(_ relative: String, _ content: String, mtime: Nanoseconds? = pastTime, mode: mode_t = 0o644) throws {
        try write(Array(relative.utf8), Array(content.utf8), mtime: mtime, mode: mode)
    }
    /// Writes a file (replacing its content in place, same inode, if it exists).
    func write(_ relative: [UInt8], _ content: [UInt8], mtime: Nanoseconds? = pastTime, mode: mode_t = 0o644) throws {
        let fd = open(absolute(relative), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ScanFixtureError("open", errno) }
        defer { close(fd) }
        let n = content.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == content.count else { throw ScanFixtureError("write", errno) }
        _ = fchmod(fd, mode)
        if let mtime { try setMTime(relative, mtime) }
    }

    func setMTime(_ relative: String, _ mtime: Nanoseconds) throws { try setMTime(Array(relative.utf8), mtime) }
    func setMTime(_ relative: [UInt8], _ mtime: Nanoseconds) throws {
        let t = timespec(tv_sec: Int(mtime / 1_000_000_000), tv_nsec: Int(mtime % 1_000_000_000))
        var times = [t, t]
        guard utimensat(AT_FDCWD, absolute(relative), &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw ScanFixtureError("utimensat", errno)
        }
    }

    func chmod(_ relative: String, _ mode: mode_t) throws {
        guard Glibc.chmod(absolute(Array(relative.utf8)), mode) == 0 else { throw ScanFixtureError("chmod", errno) }
    }

    func symlink(_ relative: String, to target: String) throws {
        guard Glibc.symlink(target, absolute(Array(relative.utf8))) == 0 else { throw ScanFixtureError("symlink", errno) }
    }

    func mkfifo(_ relative: String) throws {
        guard Glibc.mkfifo(absolute(Array(relative.utf8)), 0o644) == 0 else { throw ScanFixtureError("mkfifo", errno) }
    }

    /// `rm -rf` of one relative path.
    func remove(_ relative: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/rm")
        p.arguments = ["-rf", rootPath + "/" + relative]
        try p.run()
        p.waitUntilExit()
    }

    func exists(_ relative: String) -> Bool {
        var st = stat()
        return lstat(absolute(Array(relative.utf8)), &st) == 0
    }

    /// Runs a scan and collects its batches.
    func scan(baseline: [BaselineEntry] = [], delta: Bool = true, fastcheck: Bool = true,
              attributes: AttributeSelection = AttributeSelection(), paths: [RelativePath] = [],
              isIgnored: (@Sendable (RelativePath) -> Bool)? = nil, now: Nanoseconds = scanClockNow(),
              batchSize: Int = 512, hashThreads: Int = 1, deferDigests: Bool = false) throws -> ScanRun {
        let root = try DirectoryFD.openRoot(rootPath)
        var cursor = ArrayBaselineCursor(baseline)
        var batches: [[ScanChange]] = []
        var options = ScanOptions(paths: paths, delta: delta, fastcheck: fastcheck, attributes: attributes,
                                  isIgnored: isIgnored, now: now, batchSize: batchSize, hashThreads: hashThreads)
        options.deferDigests = deferDigests
        let outcome = try SwunisonFS.scan(root: root, baseline: &cursor, options: options) { batches.append($0) }
        return ScanRun(batches: batches, outcome: outcome)
    }

    /// The baseline a caller would store after a first run: every entry of a full scan.
    func baseline() throws -> [BaselineEntry] {
        try scan(delta: false).changes.map { BaselineEntry(path: $0.path, entry: $0.new!) }
    }
}

/// What one scan streamed and returned.
struct ScanRun {
    var batches: [[ScanChange]]
    var outcome: ScanOutcome
    var changes: [ScanChange] { batches.flatMap { $0 } }
    var paths: [String] { changes.map(\.path.description) }
    func change(_ path: String) -> ScanChange? { changes.first { $0.path.description == path } }
}

struct ScanFixtureError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    init(_ call: String, _ code: Int32) { self.call = call; self.code = code }
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// The wall clock in nanoseconds.
func scanClockNow() -> Nanoseconds {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A path from text, for tests.
func scanPath(_ text: String) throws -> RelativePath { try RelativePath(validating: text) }

/// The content digest (XXH3-128) of a string, for expected digests.
func scanDigest(_ text: String) -> Digest { XXH3Hasher.digest(Array(text.utf8)) }
