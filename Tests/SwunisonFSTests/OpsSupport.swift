import Foundation
import Glibc
import SwunisonModel
@testable import SwunisonFS

/// A temporary directory with a replica root and a backup directory inside, removed afterwards.
/// Paths are handled as bytes, so names that are not UTF-8 work.
final class OpsSandbox {
    /// The temporary directory holding everything.
    let base: String
    /// The replica root: `<base>/root`.
    let root: String
    /// The backup directory: `<base>/backups` unless given.
    let backups: String

    init(backups: String? = nil) throws {
        var template = Array("/tmp/swunison-ops.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw OpsTestError("mkdtemp failed: \(errno)") }
        base = String(cString: made)
        root = base + "/root"
        self.backups = backups ?? base + "/backups"
        guard mkdir(root, 0o755) == 0 else { throw OpsTestError("mkdir root failed: \(errno)") }
    }

    deinit { opsRemoveTree(base) }

    /// `UTIME_OMIT` (Glibc hides it from Swift).
    static let utimeOmit = (1 << 30) - 2

    func files(maxBackups: Int = 3) throws -> ReplicaFiles {
        try ReplicaFiles(root: root, backupDirectory: backups, maxBackups: maxBackups)
    }

    /// `<root>/<path>` as a C string.
    func absolute(_ path: RelativePath) -> [CChar] { opsCString(Array(root.utf8) + [0x2F] + path.bytes) }

    /// Writes a file directly (not through swunison), as another process would.
    func plant(_ path: RelativePath, _ content: [UInt8], mode: mode_t = 0o644) throws {
        let fd = open(absolute(path), O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw OpsTestError("open \(path) failed: \(errno)") }
        defer { close(fd) }
        let n = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == content.count else { throw OpsTestError("write \(path) failed") }
    }

    /// Overwrites a file in place (same inode) and puts its mtime back, so only ctime and content change.
    func sneakyRewrite(_ path: RelativePath, _ content: [UInt8]) throws {
        guard let before = lstatRaw(path) else { throw OpsTestError("lstat \(path) failed") }
        let fd = open(absolute(path), O_WRONLY | O_TRUNC)
        guard fd >= 0 else { throw OpsTestError("open \(path) failed: \(errno)") }
        _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        var times = [timespec(tv_sec: 0, tv_nsec: Int(OpsSandbox.utimeOmit)), before.st_mtim]
        guard utimensat(AT_FDCWD, absolute(path), &times, 0) == 0 else { throw OpsTestError("utimensat failed") }
    }

    func makeDir(_ path: RelativePath, mode: mode_t = 0o755) throws {
        guard mkdir(absolute(path), mode) == 0 else { throw OpsTestError("mkdir \(path) failed: \(errno)") }
    }

    func symlink(_ path: RelativePath, to target: String) throws {
        guard Glibc.symlink(target, absolute(path)) == 0 else { throw OpsTestError("symlink failed: \(errno)") }
    }

    /// The content of a file under the root, nil when it cannot be opened (absent, or a symlink).
    func content(_ path: RelativePath) -> [UInt8]? { Self.content(atBytes: absolute(path)) }

    static func content(atBytes path: [CChar]) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += buffer[0..<n]
        }
    }

    static func content(atPath path: String) -> [UInt8]? { content(atBytes: Array(path.utf8CString)) }

    func lstatRaw(_ path: RelativePath) -> stat? {
        var st = stat()
        return lstat(absolute(path), &st) == 0 ? st : nil
    }

    /// Names in a directory under the root (raw bytes), sorted, without `.` and `..`.
    func names(in path: RelativePath = .root) -> [[UInt8]] {
        Self.names(atBytes: path.isRoot ? opsCString(Array(root.utf8)) : absolute(path))
    }

    static func names(atBytes path: [CChar]) -> [[UInt8]] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var out: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: UInt8.self, capacity: 256) { Array(UnsafeBufferPointer(start: $0, count: strlen(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)))) }
            }
            if name != [0x2E] && name != [0x2E, 0x2E] { out.append(name) }
        }
        return out.sorted { $0.lexicographicallyPrecedes($1) }
    }

    static func names(atPath path: String) -> [String] {
        names(atBytes: Array(path.utf8CString)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether any temporary file of swunison is left anywhere under the root.
    func temporaryFilesLeft(in path: RelativePath = .root) -> [[UInt8]] {
        var found: [[UInt8]] = []
        for name in names(in: path) {
            let child = path.appending(PathComponent(uncheckedBytes: name))
            if name.starts(with: Array(".swunison.".utf8)) { found.append(child.bytes) }
            if let st = lstatRaw(child), st.st_mode & S_IFMT == S_IFDIR { found += temporaryFilesLeft(in: child) }
        }
        return found
    }
}

struct OpsTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func opsCString(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }

/// `rm -rf`, for names of any bytes.
func opsRemoveTree(_ path: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/rm")
    process.arguments = ["-rf", path]
    try? process.run()
    process.waitUntilExit()
}

/// A relative path from text (test literals are valid).
func opsPath(_ text: String) -> RelativePath { try! RelativePath(validating: text) }

/// The entry a source replica would send for a file with this content.
func opsFileEntry(_ content: [UInt8], mtime: Nanoseconds = 1_600_000_000_123_456_789, mode: UInt32 = 0o640) -> Entry {
    Entry(kind: .file, size: Int64(content.count), mtime: mtime, mode: mode,
          digest: XXH3Hasher.digest(content))
}

extension ReplicaFiles {
    /// Writes a whole file in one go through an ``AtomicFileWriter``.
    @discardableResult
    func write(_ path: RelativePath, _ content: [UInt8], entry: Entry? = nil, replacing: Entry?,
               backup: Bool = false, attributes: AttributeSelection = AttributeSelection()) throws -> Entry {
        let writer = try beginWrite(path, entry: entry ?? opsFileEntry(content))
        try writer.append(content)
        return try writer.commit(replacing: replacing, backup: backup, attributes: attributes)
    }
}

/// Whether `error` is `FileOperationError.system` with this errno.
func opsIsSystemError(_ error: any Error, _ code: Int32) -> Bool {
    if case let .system(_, _, sys)? = error as? FileOperationError { return sys.errno == code }
    return false
}
