import Glibc
import SwunisonModel

extension ReplicaFiles {
    /// Opens a file for reading after checking that it still is the file the caller expects.
    ///
    /// The file is opened with `O_NOFOLLOW` beneath a parent reached without following links
    /// (Invariant 5), and `fstat` of the open descriptor must match `expected`: a regular file
    /// with the same size and mtime, and the same inode and ctime when `expected` has a trusted
    /// fingerprint. The content is not rehashed here: whoever writes it checks the digest
    /// (Invariant 1), so a file that changes while being read is caught there.
    /// - Throws: `.changedDuringSync` on a mismatch (or when the path is now a symlink or gone);
    ///   `.system` otherwise.
    public func openForReading(_ path: RelativePath, expected: Entry) throws(FileOperationError) -> FileReadHandle {
        try checkedHandle(try openRegularFile(path, purpose: "open for reading"), path: path, expected: expected)
    }

    /// ``openForReading(_:expected:)`` for one of many files: opened in the parent directory
    /// `parents` holds when it is the same one.
    func openForReading(_ path: RelativePath, expected: Entry,
                        reusing parents: inout ParentDirectoryCache) throws(FileOperationError) -> FileReadHandle {
        let location: Location
        do {
            location = try locate(path, reusing: &parents)
        } catch let error {
            // A parent that vanished or became a symlink: the file is not what the scan saw.
            if case let .system(_, _, sys) = error, sys.errno == ENOENT || sys.errno == ENOTDIR || sys.errno == ELOOP {
                throw .changedDuringSync(path)
            }
            throw error
        }
        return try checkedHandle(try openRegularFile(at: location, path: path, purpose: "open for reading"),
                                 path: path, expected: expected)
    }

    /// Wraps an open regular file and checks it against `expected` (closing it on a mismatch).
    private func checkedHandle(_ opened: (Int32, FileStatus), path: RelativePath,
                               expected: Entry) throws(FileOperationError) -> FileReadHandle {
        let (fd, status) = opened
        let handle = FileReadHandle(path: path, fd: fd)
        guard expected.kind == .file, status.kind == .file, status.size == expected.size,
              status.mtime == expected.mtime else { throw .changedDuringSync(path) }
        if let fingerprint = expected.fingerprint, fingerprint != .untrusted {
            guard status.inode == fingerprint.inode, status.ctime == fingerprint.ctime else {
                throw .changedDuringSync(path)
            }
        }
        // O_NONBLOCK (which kept a FIFO from hanging the open) has no effect on a regular file's
        // reads, so it stays. Read-ahead hints only pay for files larger than one read.
        if status.size > 1 << 20 { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        handle.entry = status.entry(kind: .file)
        return handle
    }
}

extension ReplicaFiles {
    /// Reads a small file whole, after the checks of ``openForReading(_:expected:)``
    /// (Invariant 2). A file that shrinks while it is read is `.changedDuringSync`; one that
    /// changes otherwise is caught by the writer's digest check, as for streamed copies.
    public func readWhole(_ path: RelativePath, expected: Entry) throws(FileOperationError) -> [UInt8] {
        var parents = ParentDirectoryCache()
        return try readWhole(path, expected: expected, reusing: &parents)
    }

    /// ``readWhole(_:expected:)`` for one of many files (the parent directory opened once per run
    /// of files in it).
    ///
    /// When `expected` has no digest (a first sync's scan leaves new files unhashed, see
    /// ``ScanOptions/deferDigests``), nobody downstream can tell torn content from the real thing,
    /// so the file's status after the read must equal its status at the open: a file written
    /// meanwhile is `.changedDuringSync` (retried), as in the scan's own hashing.
    public func readWhole(_ path: RelativePath, expected: Entry,
                          reusing parents: inout ParentDirectoryCache) throws(FileOperationError) -> [UInt8] {
        let handle = try openForReading(path, expected: expected, reusing: &parents)
        defer { handle.close() }
        let size = Int(handle.entry.size)
        var outcome: Result<Void, FileOperationError> = .success(())
        // Filled by the reads, not zeroed first: most of a first sync's memory traffic is here.
        let content = [UInt8](unsafeUninitializedCapacity: size) { raw, initialized in
            var filled = 0
            while filled < size {
                let n: Int
                do throws(FileOperationError) {
                    n = try handle.read(into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(raw)[filled...]))
                } catch {
                    outcome = .failure(error)
                    break
                }
                if n == 0 { outcome = .failure(.changedDuringSync(path)); break }
                filled += n
            }
            initialized = filled
        }
        try outcome.get()
        if expected.digest == nil { try handle.checkUnchangedSinceOpen() }
        return content
    }

    /// The digest of the regular file at `path` after the checks of
    /// ``openForReading(_:expected:)``: for paths a deferred scan left unhashed that the other
    /// replica also has, so that reconciliation compares contents, not sizes and mtimes.
    /// - Throws: `.changedDuringSync` when the file differs from `expected` or changes while it
    ///   is read; `.system` otherwise.
    public func digest(_ path: RelativePath, expected: Entry, hasher: XXH3Hasher, buffer: UnsafeMutableRawBufferPointer,
                       reusing parents: inout ParentDirectoryCache) throws(FileOperationError) -> Digest {
        let handle = try openForReading(path, expected: expected, reusing: &parents)
        defer { handle.close() }
        _ = hasher.finalize()  // resets it
        var total: Int64 = 0
        while true {
            let n = try handle.read(into: buffer)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            total += Int64(n)
        }
        guard total == handle.entry.size else { throw .changedDuringSync(path) }
        try handle.checkUnchangedSinceOpen()
        return hasher.finalize()
    }
}

/// An open file being read from the start, owned by this object (closed by ``close()`` or when
/// released).
///
/// Thread safety: reads must not overlap; one task reads at a time.
public final class FileReadHandle: @unchecked Sendable {
    /// The path this file was opened at.
    public let path: RelativePath
    /// The file as `fstat` saw it when opened (with fingerprint, without digest).
    public internal(set) var entry: Entry = Entry(kind: .file)
    private var fd: Int32

    init(path: RelativePath, fd: Int32) {
        self.path = path; self.fd = fd
    }

    deinit { close() }

    /// Reads up to `buffer.count` bytes; returns how many, 0 at the end of the file.
    /// - Throws: `.system` on a read error (or after ``close()``).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(FileOperationError) -> Int {
        guard fd >= 0 else { throw .system(path: path, operation: "read", SystemCallError("read", errno: EBADF)) }
        guard buffer.count > 0 else { return 0 }
        return try withPath(path, "read") { () throws(SystemCallError) -> Int in
            try retryingOnInterrupt("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
        }
    }

    /// Throws `.changedDuringSync` unless `fstat` still shows the inode, size, mtime and ctime
    /// seen at the open: a write while the file was being read changes its ctime.
    public func checkUnchangedSinceOpen() throws(FileOperationError) {
        guard fd >= 0 else { throw .system(path: path, operation: "fstat", SystemCallError("fstat", errno: EBADF)) }
        let now = try withPath(path, "fstat") { () throws(SystemCallError) -> FileStatus in try FileStatus(fd: fd) }
        guard now.fingerprint == entry.fingerprint else { throw .changedDuringSync(path) }
    }

    /// Closes the file; later reads fail. Safe to call more than once.
    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }
}
