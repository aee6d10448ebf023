import CSwunisonShims
import Glibc
import SwunisonModel

/// Reads files beneath a directory and computes their SHA-256, with one reusable 256 KiB buffer.
///
/// Files are opened with `O_NOFOLLOW` (Invariant 5), `O_NONBLOCK` (a FIFO swapped in after the
/// `fstatat` must not hang the scan) and `O_NOATIME` when permitted, and large ones are read
/// with `posix_fadvise(SEQUENTIAL)`. A file whose inode, size, mtime or ctime moves while it is
/// read is read again once; if it is still moving it is reported as a failure, never with a
/// digest of mixed content. Not thread-safe: one per scan.
final class ContentHasher {
    /// What hashing one name produced.
    enum Outcome {
        /// The digest, and the status of the file that was read (from `fstat` on the open descriptor).
        case hashed(Digest, FileStatus)
        /// The name no longer exists.
        case gone
        /// It could not be read; the message says why.
        case failed(String)
    }

    static let bufferSize = 256 * 1024

    private let buffer: UnsafeMutableRawBufferPointer
    private let hasher = XXH3Hasher()
    private let noAtime = swunison_o_noatime()
    /// Bytes read so far, over all files.
    private(set) var bytesRead: Int64 = 0

    init() {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Hashes the regular file `name` in the directory `dirFD`, which the walk saw as `expected`.
    ///
    /// The status after reading must equal `expected` (inode, size, mtime, ctime): then the
    /// bytes read are those of the file the walk saw, unchanged throughout. Otherwise (replaced
    /// or written meanwhile) it is read once more against a fresh `fstat`.
    func hash(name: UnsafePointer<CChar>, in dirFD: Int32, expected: FileStatus) -> Outcome {
        let flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        var fd = openRetrying(dirFD, name, flags | noAtime)
        if fd < 0 && errno == EPERM {
            // O_NOATIME is allowed only to the file's owner (or CAP_FOWNER).
            fd = openRetrying(dirFD, name, flags)
        }
        if fd < 0 {
            let e = errno
            if e == ENOENT { return .gone }
            if e == ELOOP { return .failed("changed during the scan (now a symlink); will be rescanned") }
            return .failed("cannot open: \(SystemCallError("open", errno: e).message)")
        }
        defer { close(fd) }

        var reference = expected
        for attempt in 0..<2 {
            if attempt > 0 {
                _ = hasher.finalize()  // resets the hasher
                if lseek(fd, 0, SEEK_SET) < 0 { return .failed("cannot rewind: \(SystemCallError("lseek", errno: errno).message)") }
                switch Result(catching: { () throws(SystemCallError) in try FileStatus(fd: fd) }) {
                case .success(let s): reference = s
                case .failure(let error): return .failed("cannot stat: \(error.message)")
                }
                guard reference.kind == .file else {
                    return .failed("changed during the scan (now a \(reference.typeName)); will be rescanned")
                }
            }
            if reference.size > Int64(buffer.count) { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
            if let message = readAll(fd, expectedSize: reference.size) { return .failed(message) }
            let after: FileStatus
            switch Result(catching: { () throws(SystemCallError) in try FileStatus(fd: fd) }) {
            case .success(let s): after = s
            case .failure(let error): return .failed("cannot stat: \(error.message)")
            }
            if after.inode == reference.inode && after.size == reference.size && after.mtime == reference.mtime
                && after.ctime == reference.ctime {
                return .hashed(hasher.finalize(), after)
            }
        }
        _ = hasher.finalize()
        return .failed("changed while being read; will be rescanned")
    }

    /// Feeds the whole file into the hasher; returns an error message, or nil on success.
    /// A short read once `expectedSize` bytes are in is the end of a regular file (saves the
    /// extra `read` that returns 0; growth afterwards shows in the caller's `fstat`).
    private func readAll(_ fd: Int32, expectedSize: Int64) -> String? {
        var total: Int64 = 0
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n == 0 { return nil }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                return "cannot read: \(SystemCallError("read", errno: e).message)"
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            bytesRead += Int64(n)
            total += Int64(n)
            if n < buffer.count && total >= expectedSize { return nil }
        }
    }

    private func openRetrying(_ dirFD: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32) -> Int32 {
        while true {
            let fd = openat(dirFD, name, flags)
            if fd >= 0 || errno != EINTR { return fd }
        }
    }
}
