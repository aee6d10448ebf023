import CSwunisonShims
import Glibc
import SwunisonModel

/// Where and how many versions of replaced or removed files are kept (Unison's `backupdir` and
/// `maxbackups`).
public struct BackupPolicy: Sendable, Hashable {
    /// Absolute path of the directory that mirrors the tree's layout for backups.
    public var directory: String
    /// The setting as written; see ``generations`` for what is kept.
    public var maxBackups: Int

    public init(directory: String, maxBackups: Int) {
        self.directory = directory; self.maxBackups = maxBackups
    }

    /// Generations kept per path: `max(1, maxBackups)`. No setting, not even `maxbackups = 0`,
    /// discards the newest copy of a losing version (Invariant 3).
    public var generations: Int { max(1, maxBackups) }
}

/// The files of a local replica: the mutating (and checking) side of file system access beneath
/// one root directory.
///
/// Every operation opens the parent directory from the root one component at a time with
/// `O_NOFOLLOW` and then acts on a single name with an `*at` call that does not follow a symlink,
/// so a symlink planted anywhere in the tree makes the operation fail instead of reaching outside
/// the root (Invariant 5). Every operation that overwrites, removes or changes a path first
/// compares it with the entry the caller expects and throws
/// ``FileOperationError/changedDuringSync(_:)`` without changing anything when it differs
/// (Invariant 2). Content is only ever written through an ``AtomicFileWriter`` (Invariant 1), and
/// what is replaced or removed can be kept in the backup location (Invariant 3).
///
/// Thread safety: the object holds only immutable state and an open root descriptor, so calls
/// may run concurrently from several threads, as long as calls for one path are not issued while
/// another call for the same path (or its parent) is in flight (the ``Replica`` contract).
public final class ReplicaFiles: @unchecked Sendable {
    /// The root directory as given.
    public let rootPath: String
    /// Where replaced and removed versions go.
    public let backupPolicy: BackupPolicy
    /// The root, opened once (it may itself be reached through a symlink: the user named it).
    let root: DirectoryFD
    /// The backup directory's path beneath the root when it lies inside the tree (then it is
    /// opened from the root without following links, like any other path: Invariant 5).
    let backupBeneathRoot: RelativePath?

    /// Opens a replica root.
    /// - Parameters:
    ///   - root: path of the root directory (absolute, or relative to the working directory).
    ///   - backupDirectory: where backups go; absolute, or else taken relative to `root`.
    ///   - maxBackups: generations to keep per path; values below 1 keep one (Invariant 3).
    /// - Throws: ``FileOperationError/system(path:operation:_:)`` when the root cannot be opened
    ///   as a directory.
    public init(root: String, backupDirectory: String, maxBackups: Int) throws(FileOperationError) {
        rootPath = root
        let backupPath = backupDirectory.hasPrefix("/") ? backupDirectory : root + "/" + backupDirectory
        backupPolicy = BackupPolicy(directory: backupPath, maxBackups: maxBackups)
        backupBeneathRoot = Self.backupBeneath(root: root, backupPath: backupPath)
        self.root = try withPath(.root, "open root \(root)") { () throws(SystemCallError) -> DirectoryFD in
            try DirectoryFD.openRoot(root)
        }
    }

    /// The backup directory's path inside the root, if it is inside. Inside by its text (the
    /// root as given or resolved, `..` taken out by text), it is opened beneath the root without
    /// following links, so that a symlink planted in the tree cannot redirect backups; inside
    /// only once symlinks outside the tree are followed, the same. Outside, it is the user's
    /// own directory and is opened by its path.
    static func backupBeneath(root: String, backupPath: String) -> RelativePath? {
        let cwd: String = {
            guard let c = getcwd(nil, 0) else { return "/" }
            defer { free(c) }
            return String(cString: c)
        }()
        func absolute(_ path: String) -> String { path.hasPrefix("/") ? path : cwd + "/" + path }
        guard let backup = lexicallyNormalPath(absolute(backupPath)) else { return nil }
        let roots = [lexicallyNormalPath(absolute(root)), resolvedPath(absolute(root))].compactMap { $0 }
        for candidate in roots {
            if let inside = relativePath(of: backup, inside: candidate) { return inside }
        }
        if let resolvedBackup = resolvedPath(backup), let resolvedRoot = resolvedPath(absolute(root)) {
            return relativePath(of: resolvedBackup, inside: resolvedRoot)
        }
        return nil
    }

    /// Makes every change under the root durable (`syncfs(2)` on its file system). Called once
    /// before a run's baseline is committed, instead of an fsync of each changed directory: the
    /// archive must never record a rename that a crash could still undo (Invariant 4).
    public func syncFileSystem() throws(FileOperationError) {
        try withPath(.root, "syncfs") { () throws(SystemCallError) in
            _ = try retryingOnInterrupt("syncfs") { swunison_syncfs(root.fd) }
        }
    }

    /// The parent directory of a path (opened without following links) and its last name.
    /// For the root itself, the root directory and `.`.
    struct Location {
        let directory: DirectoryFD
        let name: PathComponent
    }

    /// `.`, standing for the root when an operation targets it.
    static let dot = PathComponent(uncheckedBytes: [0x2E])

    /// Opens the parent of `path` beneath the root, one component at a time (Invariant 5).
    /// - Throws: `.system` with `ELOOP` when a component is a symlink, `ENOTDIR`/`ENOENT` when missing.
    func locate(_ path: RelativePath) throws(FileOperationError) -> Location {
        guard let parent = path.parent, let name = path.lastComponent else {
            return Location(directory: root, name: Self.dot)
        }
        let directory = try withPath(path, "open parent directory") { () throws(SystemCallError) -> DirectoryFD in
            parent.isRoot ? root : try root.openDirectory(at: parent)
        }
        return Location(directory: directory, name: name)
    }

    /// ``locate(_:)``, reusing the parent directory `cache` holds when it is the same one (a batch
    /// of files from one directory opens it once). The descriptor was opened without following a
    /// link (Invariant 5) and stays the same directory whatever happens to its name meanwhile.
    func locate(_ path: RelativePath, reusing cache: inout ParentDirectoryCache) throws(FileOperationError) -> Location {
        guard let parent = path.parent, let name = path.lastComponent, !parent.isRoot else { return try locate(path) }
        if let directory = cache.directory, cache.parent == parent { return Location(directory: directory, name: name) }
        let location = try locate(path)
        cache.parent = parent
        cache.directory = location.directory
        return location
    }

    /// The entry at `path` as `lstat` sees it: kind, size, mtime, mode, owner, fingerprint and,
    /// for a symlink, its target; no digest. Nil when nothing is there (or a parent is missing).
    /// Never follows a symlink, not even as a parent directory.
    /// - Throws: ``FileOperationError/unsupportedKind(_:typeName:)`` for a FIFO, socket or device;
    ///   `.system` otherwise (`ELOOP` when a parent is a symlink).
    public func stat(_ path: RelativePath) throws(FileOperationError) -> Entry? {
        let location: Location
        do {
            location = try locate(path)
        } catch let error {
            if case let .system(_, _, sys) = error, sys.errno == ENOENT || sys.errno == ENOTDIR { return nil }
            throw error
        }
        return try entry(at: location, path: path)
    }

    /// `lstat` of a located name, with errors mapped to ``FileOperationError``.
    func entry(at location: Location, path: RelativePath) throws(FileOperationError) -> Entry? {
        do {
            return try lstat(location.name, in: location.directory)
        } catch let error as UnsupportedKindError {
            throw .unsupportedKind(path, typeName: error.typeName)
        } catch let error as SystemCallError {
            throw .system(path: path, operation: "stat", error)
        } catch {
            throw .system(path: path, operation: "stat", SystemCallError("fstatat", errno: EIO))
        }
    }

    /// Where the newest backup of `path` is (or would be) kept: `<backupdir>/<dir>/.bak.1.<name>`,
    /// escaped for display. Nil for the root.
    public func backupLocation(for path: RelativePath) -> String? {
        guard let parent = path.parent, let name = path.lastComponent else { return nil }
        var text = backupPolicy.directory
        if !parent.isRoot { text += "/" + parent.description }
        return text + "/" + PathComponent.display(Self.backupName(name, generation: 1)[...])
    }
}

/// The parent directory a run of operations opened last, kept open for the next operation in
/// the same directory (see ``ReplicaFiles/beginWrite(_:entry:reusing:)``). Used by one thread.
public struct ParentDirectoryCache {
    fileprivate var parent: RelativePath?
    fileprivate var directory: DirectoryFD?
    public init() {}
}
