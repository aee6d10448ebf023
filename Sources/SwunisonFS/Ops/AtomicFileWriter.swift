import CSwunisonShims
import Glibc
import Synchronization
import SwunisonModel

extension ReplicaFiles {
    /// False once a file system refused `O_TMPFILE` (then every writer uses a named temporary file).
    /// `SWUNISON_NAMED_TEMPORARY_FILES` set: named ones from the start.
    /// The process's umask, from `/proc/self/status` (reading it with `umask(2)` would change it
    /// for a moment under other threads); nil when unknown.
    static let processUmask: mode_t? = {
        let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[..<n], as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
              let value = mode_t(line.dropFirst("Umask:".count).trimmingCharacters(), radix: 8) else { return nil }
        return value
    }()

    static let unnamedFilesWork = Atomic<Bool>(getenv("SWUNISON_NAMED_TEMPORARY_FILES") == nil)

    /// Starts writing the file `path` with content that must hash to `entry.digest`.
    ///
    /// Creates `.swunison.<pid>.<random>.tmp` in the destination directory (`O_CREAT|O_EXCL|
    /// O_NOFOLLOW`, mode 0600); the real name is untouched until ``AtomicFileWriter/commit(replacing:backup:attributes:)``.
    /// - Throws: `.system` when the parent cannot be opened (`ELOOP` for a symlink on the way) or
    ///   the temporary file cannot be created.
    public func beginWrite(_ path: RelativePath, entry: Entry, forNewFile: Bool = false) throws(FileOperationError) -> AtomicFileWriter {
        var parents = ParentDirectoryCache()
        return try beginWrite(path, entry: entry, reusing: &parents, forNewFile: forNewFile)
    }

    /// ``beginWrite(_:entry:)`` for one of many files: the parent directory is opened only when
    /// it differs from the one `parents` holds.
    ///
    /// With `forNewFile` (the caller expects nothing at `path`) the temporary file has no name at
    /// all where the file system allows it (`O_TMPFILE`): ``AtomicFileWriter/finish(replacing:backup:)``
    /// then links it in under its real name, failing if something appeared there, and a crash
    /// leaves nothing behind. That is two directory updates fewer per file than a named
    /// temporary file and a rename, which is most of what a first sync of many small files costs
    /// the receiving kernel.
    ///
    /// `attributes`, given with `forNewFile`, are the ones ``AtomicFileWriter/seal(replacing:attributes:)``
    /// will apply: the unnamed file is then created with its final mode when the umask keeps all
    /// of it (it has no name, so nobody can open it meanwhile), which saves a `fchmod`.
    public func beginWrite(_ path: RelativePath, entry: Entry, reusing parents: inout ParentDirectoryCache,
                           forNewFile: Bool = false,
                           attributes: AttributeSelection? = nil) throws(FileOperationError) -> AtomicFileWriter {
        guard !path.isRoot else {
            throw .system(path: path, operation: "write", SystemCallError("open", errno: EISDIR))
        }
        let location = try locate(path, reusing: &parents)
        if forNewFile && Self.unnamedFilesWork.load(ordering: .relaxed) {
            var mode: mode_t = 0o600
            var createdMode: mode_t?
            if let attributes, let umask = Self.processUmask {
                let wanted = mergedMode(wanted: entry.mode, base: 0o644, mask: attributes.permissionMask)
                // Set-id and sticky bits always get an explicit fchmod.
                if wanted & ~umask == wanted && wanted & 0o7000 == 0 { mode = wanted; createdMode = wanted }
            }
            let fd = swunison_open_unnamed(location.directory.fd, UInt32(mode))
            if fd >= 0 {
                let writer = AtomicFileWriter(files: self, path: path, entry: entry, location: location,
                                              temporaryName: nil, fd: fd)
                writer.createdMode = createdMode
                return writer
            }
            let code = errno
            guard code == EOPNOTSUPP || code == EISDIR || code == EINVAL else {
                throw .system(path: path, operation: "create temporary file", SystemCallError("openat", errno: code))
            }
            // This file system has no unnamed files: named ones from now on.
            Self.unnamedFilesWork.store(false, ordering: .relaxed)
        }
        var attempts = 0
        while true {
            let name = temporaryName()
            do {
                let fd = try location.directory.createExclusive(name)
                return AtomicFileWriter(files: self, path: path, entry: entry, location: location,
                                        temporaryName: name, fd: fd)
            } catch where error.errno == EEXIST && attempts < 8 {
                attempts += 1
            } catch {
                throw .system(path: path, operation: "create temporary file", error)
            }
        }
    }
}

/// Writes one file atomically (Invariant 1: at every instant the path holds either its old
/// contents or its complete new contents).
///
/// Content goes to a temporary file in the destination directory and is hashed as it is written.
/// ``commit(replacing:backup:attributes:)`` checks the digest, sets the attributes, fdatasyncs,
/// checks the target once more against what the caller expects (Invariant 2), keeps the old
/// version if asked (Invariant 3) and renames the temporary file over the target. The temporary
/// file never appears under the real name, and it is removed on every error, on ``abort()`` and
/// when the writer is released unfinished.
///
/// Thread safety: a writer is used by one task at a time; its calls must not overlap.
public final class AtomicFileWriter: @unchecked Sendable {
    /// The path being written.
    public let path: RelativePath
    /// What the finished file must be: size and digest are checked, mode and mtime applied.
    public let entry: Entry
    /// Bytes appended so far.
    public private(set) var bytesWritten: Int64 = 0
    /// Where the bytes actually written end: whole blocks of zeros are skipped, not written,
    /// so that they stay holes (a sparse source stays sparse, as with `rsync --sparse`); the
    /// size is set at the end when the file ends in one.
    private var writtenEnd: Int64 = 0

    private let files: ReplicaFiles
    private let location: ReplicaFiles.Location
    /// The mode the file was created with, when it is already the one to apply.
    var createdMode: mode_t?
    /// The temporary file's name; nil while it has none (`O_TMPFILE`).
    private var temporaryName: [UInt8]?
    private let hasher = XXH3Hasher()
    /// The content's digest, once sealed.
    private var digest: Digest?
    /// Size and mtime once sealed (attributes applied): if they differ after the rename, another
    /// process wrote to the file in between.
    private var sealed: (size: Int64, mtime: Nanoseconds)?
    /// The temporary file's descriptor; -1 once committed or aborted.
    private var fd: Int32

    #if DEBUG
    /// Test seam: runs after the last check of the target and just before the rename, so a test
    /// can make a file appear in that window (the `RENAME_NOREPLACE` race). Debug builds only.
    var beforeRename: (() -> Void)?
    /// Test seam: runs just after the new file took its name, before it is looked at.
    var afterRename: (() -> Void)?
    #endif

    init(files: ReplicaFiles, path: RelativePath, entry: Entry, location: ReplicaFiles.Location,
         temporaryName: [UInt8]?, fd: Int32) {
        self.files = files; self.path = path; self.entry = entry; self.location = location
        self.temporaryName = temporaryName; self.fd = fd
    }

    deinit { abort() }

    /// Whether the writer is still open (neither committed nor aborted).
    public var isOpen: Bool { fd >= 0 }

    /// The temporary file's name in the destination directory (for tests and diagnostics); empty
    /// for an unnamed one.
    public var temporaryFileName: [UInt8] { temporaryName ?? [] }

    /// Appends bytes to the temporary file, hashing them.
    /// - Throws: `.system` (e.g. `ENOSPC`); the temporary file has then been removed.
    public func append(_ bytes: UnsafeRawBufferPointer) throws(FileOperationError) {
        guard fd >= 0 else { throw .system(path: path, operation: "write", SystemCallError("write", errno: EBADF)) }
        do {
            try writeSkippingZeroBlocks(bytes, at: bytesWritten)
        } catch {
            abort()
            throw .system(path: path, operation: "write", error)
        }
        hasher.update(bytes)
        bytesWritten += Int64(bytes.count)
    }

    /// Size of the blocks that become holes when they hold only zeros (the page and the usual
    /// file system block).
    static let holeBlockSize = 4096

    /// Writes `bytes` at `offset`, leaving out every part of a block (aligned in the file) that
    /// holds only zeros: unwritten bytes read as zeros, and a block nobody writes to stays a
    /// hole, even when its zeros came in two chunks. The rest goes out in as few `pwrite`s as
    /// possible.
    private func writeSkippingZeroBlocks(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(SystemCallError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        let block = Self.holeBlockSize
        var runStart = 0  // start of the bytes not yet written
        var position = 0
        while position < bytes.count {
            let fileOffset = offset + Int64(position)
            let blockEnd = min(bytes.count, position + block - Int(fileOffset % Int64(block)))
            if Self.isAllZero(base + position, count: blockEnd - position) {
                try pwriteAll(base + runStart, count: position - runStart, at: offset + Int64(runStart))
                runStart = blockEnd
            }
            position = blockEnd
        }
        try pwriteAll(base + runStart, count: bytes.count - runStart, at: offset + Int64(runStart))
    }

    private func pwriteAll(_ start: UnsafeRawPointer, count: Int, at offset: Int64) throws(SystemCallError) {
        var done = 0
        while done < count {
            let n = try retryingOnInterrupt("write") { pwrite(fd, start + done, count - done, off_t(offset) + off_t(done)) }
            if n == 0 { throw SystemCallError("write", errno: EIO) }
            done += n
        }
        if count > 0 { writtenEnd = max(writtenEnd, offset + Int64(count)) }
    }

    /// Whether `count` bytes at `start` are all zero; stops at the first word that is not,
    /// which for ordinary data is the first.
    private static func isAllZero(_ start: UnsafeRawPointer, count: Int) -> Bool {
        var index = 0
        while index + 8 <= count {
            if start.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < count {
            if start.load(fromByteOffset: index, as: UInt8.self) != 0 { return false }
            index += 1
        }
        return true
    }

    /// Appends bytes to the temporary file, hashing them.
    public func append(_ bytes: [UInt8]) throws(FileOperationError) {
        let result: Result<Void, FileOperationError> = bytes.withUnsafeBytes { raw in
            do throws(FileOperationError) { try append(raw); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Finishes the file and renames it over the target: ``seal(replacing:attributes:)``, an
    /// fdatasync of this one file, then ``finish(replacing:backup:)``.
    ///
    /// - Parameters:
    ///   - replacing: what the target must still be; nil = it must be absent.
    ///   - backup: keep the replaced file or symlink in the backup location.
    ///   - attributes: which attributes of ``entry`` to apply.
    /// - Returns: the new entry on disk, with its digest and fingerprint.
    /// - Throws: `.digestMismatch`, `.changedDuringSync` or `.system`; the temporary file is gone
    ///   and the target unchanged.
    public func commit(replacing: Entry?, backup: Bool = false,
                       attributes: AttributeSelection = AttributeSelection()) throws(FileOperationError) -> Entry {
        try seal(replacing: replacing, attributes: attributes)
        do throws(FileOperationError) {
            try withPath(path, "fdatasync") { () throws(SystemCallError) in
                _ = try retryingOnInterrupt("fdatasync") { fdatasync(fd) }
            }
        } catch {
            abort()
            throw error
        }
        return try finish(replacing: replacing, backup: backup)
    }

    /// First half of a commit: compares size and digest with ``entry`` (mismatch: abort,
    /// `.digestMismatch`), then sets owner/group when selected, the mode (the selected bits from
    /// `entry.mode`, the others from the replaced file or 0644) and the mtime when `times` is
    /// selected. The caller then makes the data durable — this file's fdatasync, or one
    /// `syncfs` shared by many writers (``ReplicaFiles/syncFileSystem()``) — before
    /// ``finish(replacing:backup:)`` makes it visible (Invariant 1: data before name).
    /// - Throws: `.digestMismatch` or `.system`; the temporary file is then gone.
    public func seal(replacing: Entry?, attributes: AttributeSelection = AttributeSelection()) throws(FileOperationError) {
        guard fd >= 0 else { throw .system(path: path, operation: "commit", SystemCallError("rename", errno: EBADF)) }
        digest = hasher.finalize()
        guard bytesWritten == entry.size, let expected = entry.digest, digest == expected else {
            abort()
            throw .digestMismatch(path)
        }
        do throws(FileOperationError) {
            if writtenEnd < bytesWritten {
                // The file ends in a hole: give it its size.
                try withPath(path, "truncate") { () throws(SystemCallError) in
                    _ = try retryingOnInterrupt("ftruncate") { ftruncate(fd, off_t(bytesWritten)) }
                }
            }
            try applyAttributes(replacing: replacing, attributes: attributes)
        } catch {
            abort()
            throw error
        }
        if let status = try? FileStatus(fd: fd) { sealed = (status.size, status.mtime) }
    }

    /// Second half of a commit, once the content is durable: checks the target against
    /// `replacing` (Invariant 2), backs it up if asked (Invariant 3) and renames the temporary
    /// file over it (`RENAME_NOREPLACE` when `replacing` is nil, so a file that appeared
    /// meanwhile is never clobbered; a replaced empty directory is removed first). The rename
    /// itself is made durable by the replica's syncfs before its baseline is committed.
    /// - Returns: the new entry on disk, with its digest and fingerprint.
    /// - Throws: `.changedDuringSync` or `.system`; the temporary file is gone and the target
    ///   unchanged.
    public func finish(replacing: Entry?, backup: Bool = false) throws(FileOperationError) -> Entry {
        guard fd >= 0, let digest else {
            abort()
            throw .system(path: path, operation: "commit", SystemCallError("rename", errno: EBADF))
        }
        do throws(FileOperationError) {
            try moveIntoPlace(replacing: replacing, backup: backup)
        } catch {
            abort()
            throw error
        }
        // From here on the new file is in place: the temporary name is gone, so nothing to undo.
        defer { close(fd); fd = -1 }
        #if DEBUG
        afterRename?()
        #endif
        let status = try withPath(path, "stat") { () throws(SystemCallError) -> FileStatus in try FileStatus(fd: fd) }
        var result = status.entry(kind: .file)
        result.digest = digest
        if let sealed, sealed.size != status.size || sealed.mtime != status.mtime {
            // Written by someone else since it was named: the digest is of our bytes, not
            // theirs. An untrusted fingerprint makes the next scan hash it again.
            result.fingerprint = .untrusted
        }
        return result
    }

    /// Discards the temporary file. Safe to call more than once; does nothing after a commit.
    public func abort() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        if let temporaryName { try? location.directory.unlink(temporaryName) }
    }

    private func applyAttributes(replacing: Entry?, attributes: AttributeSelection) throws(FileOperationError) {
        CrashPoint.reached()
        if attributes.owner || attributes.group {
            let uid = attributes.owner ? entry.uid : UInt32.max
            let gid = attributes.group ? entry.gid : UInt32.max
            try withPath(path, "set owner") { () throws(SystemCallError) in
                _ = try retryingOnInterrupt("fchown") { fchown(fd, uid, gid) }
            }
        }
        let base = replacing?.kind == .file ? replacing!.mode : 0o644
        let mode = mergedMode(wanted: entry.mode, base: base, mask: attributes.permissionMask)
        if mode != createdMode {
            try withPath(path, "set mode") { () throws(SystemCallError) in
                _ = try retryingOnInterrupt("fchmod") { fchmod(fd, mode) }
            }
        }
        if attributes.times {
            var times = modificationTimes(entry.mtime)
            try withPath(path, "set modification time") { () throws(SystemCallError) in
                _ = try retryingOnInterrupt("futimens") { futimens(fd, &times) }
            }
        }
    }

    /// Links the unnamed temporary file in as `name`.
    private func linkUnnamed(as name: [UInt8], path: RelativePath) throws(FileOperationError) {
        CrashPoint.reached()
        let outcome = withNameCString(name) { (c) -> Int32 in swunison_link_unnamed(fd, location.directory.fd, c) }
        if outcome == 0 { return }
        let code = errno
        if code == EEXIST { throw .changedDuringSync(path) }
        throw .system(path: path, operation: "link into place", SystemCallError("linkat", errno: code))
    }

    /// Gives the unnamed temporary file a temporary name, so that it can be renamed over a target.
    private func nameUnnamedFile() throws(FileOperationError) {
        var attempts = 0
        while true {
            let name = SwunisonFS.temporaryName()
            CrashPoint.reached()
            let outcome = withNameCString(name) { (c) -> Int32 in swunison_link_unnamed(fd, location.directory.fd, c) }
            if outcome == 0 { temporaryName = name; return }
            let code = errno
            if code == EEXIST && attempts < 8 { attempts += 1; continue }
            throw .system(path: path, operation: "name temporary file", SystemCallError("linkat", errno: code))
        }
    }

    /// Re-checks the target, keeps a backup if asked, and renames the temporary file over it.
    private func moveIntoPlace(replacing: Entry?, backup: Bool) throws(FileOperationError) {
        let name = location.name.bytes
        if temporaryName == nil {
            if replacing == nil {
                #if DEBUG
                beforeRename?()
                #endif
                // Linking fails if anything has appeared at the name: never clobbered (Invariant 2).
                try linkUnnamed(as: name, path: path)
                return
            }
            // Something is to be replaced, which only a rename does atomically: name it first.
            try nameUnnamedFile()
        }
        guard let temporaryName else { return }
        // With nothing to replace, RENAME_NOREPLACE below is the check (Invariant 2).
        let checked = replacing != nil ? try files.checkExpected(replacing, at: location, path: path) : nil
        if let replacing, replacing.kind == .directory {
            // A kind change: the directory must be empty by now (its children were removed first).
            do {
                try location.directory.removeDirectory(name)
            } catch where error.errno == ENOENT {
                throw .changedDuringSync(path)
            } catch {
                throw .system(path: path, operation: "remove directory", error)
            }
        } else if let replacing, backup {
            _ = try files.keepBackup(of: location, path: path, expected: replacing, method: .link)
        }
        #if DEBUG
        beforeRename?()
        #endif
        do {
            if replacing == nil || replacing?.kind == .directory {
                try location.directory.renameNoReplace(temporaryName, to: location.directory, name)
            } else if let checked, try exchangeIntoPlace(temporaryName, name, checked: checked) {
                return
            } else {
                try location.directory.rename(temporaryName, to: location.directory, name)
            }
        } catch where error.errno == EEXIST || error.errno == ENOTEMPTY || error.errno == EISDIR || error.errno == ENOENT {
            throw .changedDuringSync(path)
        } catch {
            throw .system(path: path, operation: "rename into place", error)
        }
    }

    /// Puts the new file in place by swapping names with the file it replaces, then looks at
    /// that one under the temporary name: if it was written to since it was checked (a writer
    /// that opened it in that moment), the swap is undone and the write kept (Invariant 2);
    /// else it is removed. A plain rename would leave such a write in an unlinked file.
    /// - Returns: false where the file system cannot swap names (the caller renames instead).
    private func exchangeIntoPlace(_ temporaryName: [UInt8], _ name: [UInt8], checked: FileStatus) throws(SystemCallError) -> Bool {
        let directory = location.directory
        do {
            try directory.exchange(temporaryName, with: directory, name)
        } catch where error.errno == EINVAL || error.errno == ENOSYS || error.errno == EOPNOTSUPP {
            return false
        }
        let displaced = try? directory.status(temporaryName)
        if let displaced, displaced.inode == checked.inode, displaced.size == checked.size, displaced.mtime == checked.mtime {
            try? directory.unlink(temporaryName)
            return true
        }
        // Changed in between: swap back. The new content is under the temporary name again, and
        // the caller's abort removes it.
        try directory.exchange(temporaryName, with: directory, name)
        throw SystemCallError("renameat2", errno: ENOENT)
    }
}

private extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
