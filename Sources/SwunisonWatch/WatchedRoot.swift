import Glibc
import Synchronization
import SwunisonFS
import SwunisonModel

/// The watched root, opened by path whenever it is needed and checked to be the very directory
/// that is watched (same device and inode).
///
/// Never held open: the kernel reports a removed directory (`IN_DELETE_SELF`) only once nothing
/// holds it any more, so a descriptor kept open would hide the root's deletion.
///
/// Thread-safe: the watcher's thread opens it for walks and judges events; a subscriber's
/// thread judges the events parked for its own change.
final class WatchedRoot: Sendable {
    let path: String
    /// The root's device and inode while it is watched; nil while it is missing.
    private let identity = Mutex<(device: UInt64, inode: UInt64)?>(nil)

    init(path: String) { self.path = path }

    var isPresent: Bool { identity.withLock { $0 != nil } }

    /// Records the directory just watched as the root.
    func watching(_ directory: DirectoryFD) {
        let status = try? FileStatus(fd: directory.fd)
        identity.withLock { $0 = status.map { ($0.device, $0.inode) } }
    }

    /// The root is gone: nothing is opened until it is watched again.
    func missing() {
        identity.withLock { $0 = nil }
    }

    /// Opens the root (the user named it: it may be reached through a symlink), or nil when it
    /// is missing or is not the directory being watched (replaced: its events are on the way).
    func open() -> DirectoryFD? {
        guard let expected = identity.withLock({ $0 }),
              let directory = try? DirectoryFD.openRoot(path),
              let status = try? FileStatus(fd: directory.fd),
              status.device == expected.device, status.inode == expected.inode else { return nil }
        return directory
    }

    /// Whether `path` is now in `state` (nil = absent), for ``OwnChanges``. False when that cannot
    /// be told (the root is missing, a directory on the way is unreadable): the event is then
    /// reported. Never follows a symlink (Invariant 5): the parent is opened beneath the root
    /// without symlinks, the name is `fstatat`ed with `AT_SYMLINK_NOFOLLOW`.
    func matches(_ path: RelativePath, _ state: Entry?) -> Bool {
        guard let root = open() else { return false }
        switch status(of: path, beneath: root) {
        case .success(let status): return OwnChanges.status(status, matches: state)
        case .failure: return false
        }
    }

    /// The status of `path` beneath `root`; nil when it does not exist (nor does its parent, or
    /// the parent is not a directory: a symlink on the way is not followed).
    func status(of path: RelativePath, beneath root: DirectoryFD) -> Result<FileStatus?, SystemCallError> {
        guard let parent = path.parent, let name = path.lastComponent else {
            return Result { () throws(SystemCallError) in try FileStatus(fd: root.fd) }
        }
        let directory: DirectoryFD
        switch Result(catching: { () throws(SystemCallError) in try root.openDirectory(at: parent) }) {
        case .success(let opened): directory = opened
        case .failure(let error) where error.errno == ENOENT || error.errno == ENOTDIR: return .success(nil)
        case .failure(let error): return .failure(error)
        }
        return Result { () throws(SystemCallError) in try fileStatus(name, in: directory) }
    }
}
