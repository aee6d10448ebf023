import Glibc
import SwunisonModel

extension ReplicaFiles {
    /// Creates the directory `path`, or keeps the directory already there, and gives it
    /// `entry`'s selected attributes (directory times are never synchronised).
    ///
    /// - Parameters:
    ///   - replacing: what must be there now (Invariant 2); nil = nothing, though a directory that
    ///     is already there is accepted and kept. A file or symlink named here is removed first
    ///     (a kind change), after being backed up when `backup` is true (Invariant 3).
    /// - Returns: the directory's entry on disk, with fingerprint.
    /// - Throws: `.changedDuringSync` when the path does not match `replacing`; `.system` otherwise.
    @discardableResult
    public func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool = false,
                              attributes: AttributeSelection = AttributeSelection()) throws(FileOperationError) -> Entry {
        let location = try locate(path)
        let name = location.name.bytes
        let current = try withPath(path, "stat") { () throws(SystemCallError) -> FileStatus? in
            try location.directory.status(name)
        }
        var base: UInt32 = 0o755
        if let current, current.kind == .directory, replacing == nil || replacing?.kind == .directory {
            // An existing directory is kept (Invariant 2 still holds for a replaced one).
            if let replacing { _ = try checkExpected(replacing, at: location, path: path) }
            base = current.permissions
        } else {
            let status = try checkExpected(replacing, at: location, path: path)
            if let replacing, status != nil {
                if backup {
                    let kept = try keepBackup(of: location, path: path, expected: replacing, method: .move)
                    if !kept.moved { try removeName(location, path: path) }
                } else {
                    try removeName(location, path: path)
                }
            }
            do {
                try location.directory.makeDirectory(name, mode: 0o700)
            } catch where error.errno == EEXIST {
                throw .changedDuringSync(path)
            } catch {
                throw .system(path: path, operation: "create directory", error)
            }
        }
        let directory = try withPath(path, "open directory") { () throws(SystemCallError) -> DirectoryFD in
            path.isRoot ? root : try location.directory.openDirectory(location.name)
        }
        if attributes.owner || attributes.group {
            let uid = attributes.owner ? entry.uid : UInt32.max
            let gid = attributes.group ? entry.gid : UInt32.max
            try withPath(path, "set owner") { () throws(SystemCallError) in
                _ = try retryingOnInterrupt("fchown") { fchown(directory.fd, uid, gid) }
            }
        }
        let mode = mergedMode(wanted: entry.mode, base: base, mask: attributes.permissionMask)
        try withPath(path, "set mode") { () throws(SystemCallError) in
            _ = try retryingOnInterrupt("fchmod") { fchmod(directory.fd, mode) }
        }
        if !path.isRoot {
        }
        let status = try withPath(path, "stat") { () throws(SystemCallError) -> FileStatus in
            try FileStatus(fd: directory.fd)
        }
        return status.entry(kind: .directory)
    }

    /// Creates the symlink `path` → `target` atomically: `symlinkat` to a temporary name, then a
    /// rename over the target, which must still match `replacing` (Invariant 2; nil = absent,
    /// enforced with `RENAME_NOREPLACE`). A replaced file or symlink is backed up when `backup`.
    /// - Returns: the symlink's entry on disk, with fingerprint.
    @discardableResult
    public func makeSymlink(_ path: RelativePath, target: [UInt8], replacing: Entry?,
                            backup: Bool = false) throws(FileOperationError) -> Entry {
        guard !path.isRoot else {
            throw .system(path: path, operation: "create symlink", SystemCallError("symlinkat", errno: EEXIST))
        }
        let location = try locate(path)
        let temporary = temporaryName()
        try withPath(path, "create symlink") { () throws(SystemCallError) in
            try location.directory.makeSymlink(temporary, target: target)
        }
        do throws(FileOperationError) {
            _ = try checkExpected(replacing, at: location, path: path)
            if let replacing, replacing.kind == .directory {
                try removeName(location, path: path, directory: true)
            } else if let replacing, backup {
                _ = try keepBackup(of: location, path: path, expected: replacing, method: .link)
            }
            do {
                if replacing == nil || replacing?.kind == .directory {
                    try location.directory.renameNoReplace(temporary, to: location.directory, location.name.bytes)
                } else {
                    try location.directory.rename(temporary, to: location.directory, location.name.bytes)
                }
            } catch where error.errno == EEXIST || error.errno == EISDIR || error.errno == ENOTEMPTY {
                throw .changedDuringSync(path)
            } catch {
                throw .system(path: path, operation: "rename symlink into place", error)
            }
        } catch {
            try? location.directory.unlink(temporary)
            throw error
        }
        guard let made = try entry(at: location, path: path), made.kind == .symlink else {
            throw .changedDuringSync(path)
        }
        return made
    }

    /// Removes a file, symlink or (empty) directory that must still match `expected`
    /// (Invariant 2). A file or symlink is first kept in the backup location when `backup` is
    /// true (Invariant 3): moved there in one rename when it is on the same file system.
    /// - Returns: where the backup went, when one was made.
    /// - Throws: `.changedDuringSync`; `.system` (`ENOTEMPTY` for a directory with children).
    @discardableResult
    public func remove(_ path: RelativePath, expected: Entry, backup: Bool) throws(FileOperationError) -> String? {
        guard !path.isRoot else {
            throw .system(path: path, operation: "remove the root", SystemCallError("unlinkat", errno: EBUSY))
        }
        let location = try locate(path)
        _ = try checkExpected(expected, at: location, path: path)
        if expected.kind == .directory {
            try removeName(location, path: path, directory: true)
            return nil
        }
        var kept: String?
        if backup {
            let result = try keepBackup(of: location, path: path, expected: expected, method: .move)
            kept = result.location
            if !result.moved { try removeName(location, path: path) }
        } else {
            try removeName(location, path: path)
        }
        return kept
    }

    /// Keeps a copy of the current version of a file or symlink in the backup location without
    /// changing the original at all (Invariant 3: a conflict's loser is kept before anything
    /// replaces it). A copy, not a hard link, so even the original's ctime, and with it the
    /// caller's fingerprint, stays valid for the write that follows.
    /// - Returns: where the copy went.
    /// - Throws: `.changedDuringSync` when the path does not match `expected`; `.system` otherwise.
    public func backup(_ path: RelativePath, expected: Entry) throws(FileOperationError) -> String {
        let location = try locate(path)
        _ = try checkExpected(expected, at: location, path: path)
        return try keepBackup(of: location, path: path, expected: expected, method: .copy).location
    }

    /// Sets the selected attributes of `entry` on the path, which must still match `expected`
    /// (Invariant 2): owner/group (`fchownat`), the permission bits under the mask (`fchmodat`)
    /// and, for files, the mtime (`utimensat`), all with `AT_SYMLINK_NOFOLLOW`. Symlinks have no
    /// attributes of their own and are left alone.
    /// - Returns: the entry now on disk, with fingerprint (and `expected`'s digest for a file, whose
    ///   content this does not change).
    @discardableResult
    public func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry,
                              selection: AttributeSelection) throws(FileOperationError) -> Entry {
        let location = try locate(path)
        guard let current = try checkExpected(expected, at: location, path: path),
              let kind = current.kind else { throw .changedDuringSync(path) }
        CrashPoint.reached()
        if kind != .symlink {
            let name = location.name.bytes
            if selection.owner || selection.group {
                let uid = selection.owner ? entry.uid : UInt32.max
                let gid = selection.group ? entry.gid : UInt32.max
                try withPath(path, "set owner") { () throws(SystemCallError) in
                    _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
                        try retryingOnInterrupt("fchownat") { fchownat(location.directory.fd, c, uid, gid, AT_SYMLINK_NOFOLLOW) }
                    }
                }
            }
            let mode = mergedMode(wanted: entry.mode, base: current.permissions, mask: selection.permissionMask)
            if mode != mode_t(current.permissions) {
                try withPath(path, "set mode") { () throws(SystemCallError) in
                    _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
                        try retryingOnInterrupt("fchmodat") { fchmodat(location.directory.fd, c, mode, AT_SYMLINK_NOFOLLOW) }
                    }
                }
            }
            if selection.times && kind == .file && entry.mtime != current.mtime {
                var times = modificationTimes(entry.mtime)
                try withPath(path, "set modification time") { () throws(SystemCallError) in
                    _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
                        try retryingOnInterrupt("utimensat") { utimensat(location.directory.fd, c, &times, AT_SYMLINK_NOFOLLOW) }
                    }
                }
            }
        }
        guard var result = try self.entry(at: location, path: path), result.kind == kind else {
            throw .changedDuringSync(path)
        }
        if kind == .file { result.digest = expected.digest }
        return result
    }

    /// Unlinks the located name (a file or symlink, or an empty directory when `directory`).
    func removeName(_ location: Location, path: RelativePath, directory: Bool = false) throws(FileOperationError) {
        do {
            if directory {
                try location.directory.removeDirectory(location.name.bytes)
            } else {
                try location.directory.unlink(location.name.bytes)
            }
        } catch where error.errno == ENOENT {
            throw .changedDuringSync(path)
        } catch {
            throw .system(path: path, operation: directory ? "remove directory" : "remove", error)
        }
    }
}
