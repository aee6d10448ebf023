import Glibc

/// The lock that allows one run per archive at a time (Invariant 7).
///
/// It is an `flock(LOCK_EX | LOCK_NB)` on a file beside the archive (`ARCHIVE.lock`), holding the
/// holder's pid for messages. The kernel drops an `flock` when the last descriptor of its open
/// file goes away, so a holder killed with SIGKILL never leaves the lock stuck; the descriptor is
/// close-on-exec, so a child process (ssh) cannot keep it alive after we die. The lock file itself
/// is never deleted: unlinking it would let a second run lock a fresh file while a third still
/// holds the old one.
public final class ArchiveLock: @unchecked Sendable {
    /// The lock file.
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) { self.path = path; self.fd = fd }

    deinit { release() }

    /// The lock file used for the archive at `archivePath`.
    public static func lockPath(forArchive archivePath: String) -> String { archivePath + ".lock" }

    /// Takes the lock for the archive at `path` without waiting.
    /// The corresponding C function is `flock`.
    /// - Throws: `StorageError.Reason.locked(pid:)` ("another swunison run (pid N) holds the lock
    ///   on FILE; wait for it to finish") when another process holds it, `.system` when the lock
    ///   file cannot be opened.
    public static func acquire(path archivePath: String) throws(StorageError) -> ArchiveLock {
        let path = lockPath(forArchive: archivePath)
        let fd = try retrying("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600) }
        do {
            _ = try retrying("flock", path) { flock(fd, LOCK_EX | LOCK_NB) }
        } catch {
            let pid = readPid(fd)
            close(fd)
            if case .system(let e) = error.reason, e == EWOULDBLOCK {
                throw StorageError(.locked(pid: pid), role: .archive, file: path,
                                   message: "locked by pid \(pid.map(String.init) ?? "unknown")")
            }
            throw error
        }
        let lock = ArchiveLock(path: path, fd: fd)
        // The pid is only for messages: failing to write it does not make the lock less held.
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return lock
    }

    /// Whether this object still holds the lock.
    public var isHeld: Bool { fd >= 0 }

    /// Releases the lock (also done by `deinit`). Calling it twice is harmless.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        close(fd)  // closing the only descriptor of this open file drops the flock
        fd = -1
    }

    /// The pid written by the holder, if readable.
    private static func readPid(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let digits = buffer[..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }
        return Int32(String(decoding: digits, as: UTF8.self))
    }

    private static func retrying(_ call: String, _ path: String, _ body: () -> Int32) throws(StorageError) -> Int32 {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = errno
            if e == EINTR { continue }
            throw StorageError(.system(errno: e), role: .archive, file: path,
                               message: "\(call) failed: \(String(cString: strerror(e)))")
        }
    }
}
