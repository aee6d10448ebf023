import Glibc
import SwunisonModel

extension ReplicaFiles {
    /// Checks that `path` still is what the caller expects, immediately before changing it
    /// (Invariant 2: nothing is overwritten, moved or deleted unless it still matches the scan).
    ///
    /// - `expected == nil`: nothing may be there.
    /// - Otherwise the kind must match, and:
    ///   - file: size and mtime; with a trusted fingerprint also inode and ctime (any write,
    ///     chmod or rename onto the name changes one of them); with an untrusted or missing
    ///     fingerprint the file is rehashed and its digest compared (when a digest is expected);
    ///   - symlink: the target bytes (and inode with a trusted fingerprint);
    ///   - directory: the inode with a trusted fingerprint (its own mtime and ctime change with
    ///     its children, so they are not compared).
    /// - Returns: the current status (nil when absent), for the caller's next step.
    /// - Throws: ``FileOperationError/changedDuringSync(_:)`` on any difference.
    func checkExpected(_ expected: Entry?, at location: Location, path: RelativePath) throws(FileOperationError)
        -> FileStatus? {
        let current = try withPath(path, "stat") { () throws(SystemCallError) -> FileStatus? in
            try location.directory.status(location.name.bytes)
        }
        guard let expected else {
            if current != nil { throw .changedDuringSync(path) }
            return nil
        }
        guard let current, let kind = current.kind, kind == expected.kind else { throw .changedDuringSync(path) }
        let fingerprint = expected.fingerprint.flatMap { $0 == .untrusted ? nil : $0 }
        if let fingerprint, current.inode != fingerprint.inode { throw .changedDuringSync(path) }
        switch kind {
        case .file:
            guard current.size == expected.size, current.mtime == expected.mtime else { throw .changedDuringSync(path) }
            if let fingerprint {
                guard current.ctime == fingerprint.ctime, current.size == fingerprint.size,
                      current.mtime == fingerprint.mtime else { throw .changedDuringSync(path) }
            } else if let digest = expected.digest {
                // No fingerprint to trust: the content itself is the evidence.
                let (actual, inode) = try hashFile(at: location, path: path)
                guard actual == digest, inode == current.inode else { throw .changedDuringSync(path) }
            }
        case .symlink:
            let target = try withPath(path, "read symlink") { () throws(SystemCallError) -> [UInt8]? in
                do throws(SystemCallError) {
                    return try readLink(location.name, in: location.directory, sizeHint: Int(current.size))
                } catch where error.errno == ENOENT || error.errno == EINVAL {
                    return nil
                }
            }
            guard let target, target == expected.linkTarget else { throw .changedDuringSync(path) }
        case .directory:
            break
        }
        return current
    }

    /// Opens the regular file at `path` for reading (never through a link) and stats it: in one
    /// openat2 call from the root where the kernel has it, else through its parent.
    /// - Throws: `.changedDuringSync` when it (or a parent) vanished, became a link or is no
    ///   longer a regular file (Invariant 2); `.system` for other failures. The descriptor is the
    ///   caller's to close.
    func openRegularFile(_ path: RelativePath, purpose: String) throws(FileOperationError) -> (Int32, FileStatus) {
        guard path.parent.map({ !$0.isRoot }) ?? false else {
            return try openRegularFile(at: try locate(path), path: path, purpose: purpose)
        }
        let opened: Int32?
        do {
            opened = try root.openBeneath(path, flags: O_RDONLY | O_NONBLOCK)
        } catch where error.errno == ENOENT || error.errno == ELOOP || error.errno == ENOTDIR {
            throw .changedDuringSync(path)
        } catch {
            throw .system(path: path, operation: purpose, error)
        }
        guard let fd = opened else { return try openRegularFile(at: try locate(path), path: path, purpose: purpose) }
        return try regularFileStatus(fd, path: path)
    }

    /// Opens the regular file at `location` for reading (never through a link) and stats it.
    /// - Throws: `.changedDuringSync` when it vanished, became a link or is no longer a regular
    ///   file (Invariant 2); `.system` for other failures. The descriptor is the caller's to close.
    func openRegularFile(at location: Location, path: RelativePath,
                         purpose: String) throws(FileOperationError) -> (Int32, FileStatus) {
        let fd: Int32
        do {
            fd = try location.directory.openForReading(location.name.bytes)
        } catch where error.errno == ENOENT || error.errno == ELOOP {
            throw .changedDuringSync(path)
        } catch {
            throw .system(path: path, operation: purpose, error)
        }
        return try regularFileStatus(fd, path: path)
    }

    /// `fstat` of a just-opened descriptor, which must be a regular file; closes it on failure.
    private func regularFileStatus(_ fd: Int32, path: RelativePath) throws(FileOperationError) -> (Int32, FileStatus) {
        do throws(FileOperationError) {
            let status = try withPath(path, "stat") { () throws(SystemCallError) -> FileStatus in try FileStatus(fd: fd) }
            guard status.kind == .file else { throw .changedDuringSync(path) }
            return (fd, status)
        } catch {
            close(fd)
            throw error
        }
    }

    /// SHA-256 of the file at `location` (opened without following a link) and its inode.
    /// - Throws: `.changedDuringSync` when it vanished or is no longer a regular file.
    func hashFile(at location: Location, path: RelativePath) throws(FileOperationError) -> (Digest, UInt64) {
        let (fd, status) = try openRegularFile(at: location, path: path, purpose: "open for hashing")
        defer { close(fd) }
        let hasher = XXH3Hasher()
        try withPath(path, "read") { () throws(SystemCallError) in
            try readAll(fd) { hasher.update($0) }
        }
        return (hasher.finalize(), status.inode)
    }
}

/// Reads `fd` to its end in 1 MiB chunks, handing each chunk to `body`.
func readAll(_ fd: Int32, _ body: (UnsafeRawBufferPointer) throws(SystemCallError) -> Void) throws(SystemCallError) {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    defer { buffer.deallocate() }
    while true {
        let n = try retryingOnInterrupt("read") { read(fd, buffer.baseAddress, buffer.count) }
        if n == 0 { return }
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
}
