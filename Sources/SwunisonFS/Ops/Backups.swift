import Glibc
import SwunisonModel

/// How a version reaches the backup location.
enum BackupMethod {
    /// Hard link: the original stays in place (it is about to be renamed over).
    case link
    /// Rename: the original leaves the tree (a removal).
    case move
    /// Copy: the original stays and is not touched at all, not even its ctime.
    case copy
}

extension ReplicaFiles {
    /// Keeps the current version of a file or symlink in the backup location (Invariant 3: the
    /// losing side of a conflict is never destroyed).
    ///
    /// The version goes to `<backupdir>/<dir>/.bak.1.<name>`; older generations move up one
    /// number and the one beyond ``BackupPolicy/generations`` is deleted. The new copy is complete
    /// (under a temporary name) before any older generation is touched, so a failure never loses
    /// a backup. Link and move fall back to a copy when the backup directory is on another file
    /// system (`EXDEV`).
    /// - Parameter expected: what the caller checked; a copy is verified against its digest.
    /// - Returns: where the backup went (for display) and whether the original was moved away.
    /// - Throws: `.changedDuringSync` when a copy does not match `expected`; `.system` otherwise.
    func keepBackup(of location: Location, path: RelativePath, expected: Entry,
                    method: BackupMethod) throws(FileOperationError) -> (location: String, moved: Bool) {
        let operation = "back up to \(backupPolicy.directory)"
        let directory = try withPath(path, operation) { () throws(SystemCallError) -> DirectoryFD in
            try openBackupDirectory(for: path)
        }
        let temporary = temporaryName()
        var moved = false
        var copy = method == .copy
        if !copy {
            do throws(SystemCallError) {
                if method == .link {
                    try location.directory.link(location.name.bytes, to: directory, temporary)
                } else {
                    try location.directory.rename(location.name.bytes, to: directory, temporary)
                    moved = true
                }
            } catch where error.errno == EXDEV {
                copy = true
            } catch where error.errno == ENOENT {
                throw .changedDuringSync(path)
            } catch {
                throw .system(path: path, operation: operation, error)
            }
        }
        if copy {
            try copyVersion(at: location, path: path, expected: expected, into: directory, as: temporary)
        }
        do throws(SystemCallError) {
            try rotateBackups(of: location.name, in: directory)
            try directory.rename(temporary, to: directory, Self.backupName(location.name, generation: 1))
            try directory.sync()
        } catch {
            if moved {
                // Put the original back where it was rather than leave it under a temporary name.
                try? directory.renameNoReplace(temporary, to: location.directory, location.name.bytes)
            } else {
                try? directory.unlink(temporary)
            }
            throw .system(path: path, operation: operation, error)
        }
        return (backupLocation(for: path) ?? backupPolicy.directory, moved)
    }

    /// Opens `<backupdir>/<parent of path>`, creating missing directories (mode 0700). Below the
    /// configured backup directory nothing is followed through a symlink (Invariant 5); when the
    /// backup directory lies inside the root, it is reached from the root that way too, so a
    /// symlink planted in its place cannot send backups outside.
    func openBackupDirectory(for path: RelativePath) throws(SystemCallError) -> DirectoryFD {
        var current: DirectoryFD
        if let inside = backupBeneathRoot {
            current = root
            for component in inside.components {
                current = try current.openOrCreateDirectory(component, mode: 0o700)
            }
        } else {
            do {
                current = try DirectoryFD.openRoot(backupPolicy.directory)
            } catch where error.errno == ENOENT {
                try makeDirectories(backupPolicy.directory)
                current = try DirectoryFD.openRoot(backupPolicy.directory)
            }
        }
        for component in path.parent?.components ?? [] {
            current = try current.openOrCreateDirectory(component, mode: 0o700)
        }
        return current
    }

    /// Shifts `.bak.<n>.<name>` to `.bak.<n+1>.<name>`, deleting the oldest generation kept and
    /// any beyond it (left from a larger `maxbackups`), so that generation 1 is free.
    func rotateBackups(of name: PathComponent, in directory: DirectoryFD) throws(SystemCallError) {
        let generations = backupPolicy.generations
        var beyond = generations
        while true {
            do {
                try directory.unlink(Self.backupName(name, generation: beyond))
            } catch where error.errno == ENOENT {
                if beyond > generations { break }
            }
            beyond += 1
        }
        for n in stride(from: generations - 1, through: 1, by: -1) {
            do {
                try directory.rename(Self.backupName(name, generation: n), to: directory,
                                     Self.backupName(name, generation: n + 1))
            } catch where error.errno == ENOENT {
                continue
            }
        }
    }

    /// `.bak.<generation>.<name>`. A name too long for that (NAME_MAX is 255 bytes) is cut and
    /// ends in `~` and 16 hex digits of its SHA-256, so distinct long names stay distinct.
    static func backupName(_ name: PathComponent, generation: Int) -> [UInt8] {
        let prefix = Array(".bak.\(generation).".utf8)
        if prefix.count + name.bytes.count <= 255 { return prefix + name.bytes }
        let hash = Array(SHA256Hasher.hexDigest(name.bytes).prefix(16).utf8)
        let keep = 255 - prefix.count - 1 - hash.count
        return prefix + name.bytes.prefix(keep) + [0x7E] + hash
    }

    /// Copies the current version at `location` to `temporary` in `directory`: content, mode
    /// and mtime for a file, the target for a symlink. The copy is hashed and compared with
    /// `expected.digest` when known, so a file that changed meanwhile is not mistaken for it.
    /// The original is only read.
    func copyVersion(at location: Location, path: RelativePath, expected: Entry, into directory: DirectoryFD,
                     as temporary: [UInt8]) throws(FileOperationError) {
        let operation = "copy to backup directory \(backupPolicy.directory)"
        if expected.kind == .symlink {
            let target = try withPath(path, "read symlink") { () throws(SystemCallError) -> [UInt8]? in
                do throws(SystemCallError) {
                    return try readLink(location.name, in: location.directory)
                } catch where error.errno == ENOENT || error.errno == EINVAL {
                    return nil
                }
            }
            guard let target, target == expected.linkTarget else { throw .changedDuringSync(path) }
            try withPath(path, operation) { () throws(SystemCallError) in
                try directory.makeSymlink(temporary, target: target)
            }
            return
        }
        guard expected.kind == .file else {
            throw .system(path: path, operation: operation, SystemCallError("backup", errno: EISDIR))
        }
        let (source, status) = try openRegularFile(at: location, path: path, purpose: "open for backup")
        defer { close(source) }
        let destination = try withPath(path, operation) { () throws(SystemCallError) -> Int32 in
            try directory.createExclusive(temporary)
        }
        let hasher = XXH3Hasher()
        var size: Int64 = 0
        do throws(SystemCallError) {
            defer { close(destination) }
            try readAll(source) { (chunk) throws(SystemCallError) in
                hasher.update(chunk)
                size += Int64(chunk.count)
                try writeAll(destination, chunk)
            }
            _ = try retryingOnInterrupt("fchmod") { fchmod(destination, mode_t(status.permissions)) }
            var times = modificationTimes(status.mtime)
            _ = try retryingOnInterrupt("futimens") { futimens(destination, &times) }
            _ = try retryingOnInterrupt("fsync") { fsync(destination) }
        } catch {
            try? directory.unlink(temporary)
            throw .system(path: path, operation: operation, error)
        }
        if size != expected.size || (expected.digest != nil && hasher.finalize() != expected.digest) {
            try? directory.unlink(temporary)
            throw .changedDuringSync(path)
        }
    }
}

/// Creates an absolute directory path and its missing parents (mode 0700), like `mkdir -p`.
/// This is the configured backup directory, so symlinks along it are the user's and followed.
func makeDirectories(_ path: String) throws(SystemCallError) {
    var prefix = ""
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        prefix += "/" + part
        do {
            _ = try retryingOnInterrupt("mkdir") { mkdir(prefix, 0o700) }
        } catch where error.errno == EEXIST {
            continue
        }
    }
}
