import Glibc
import SwunisonFS

/// One inotify instance: the only user of `inotify_*` in swunison.
///
/// Owns its descriptor (non-blocking, close-on-exec). Watches are added through
/// `/proc/self/fd/<fd>` of a directory already opened beneath the root without following
/// symlinks, so the kernel watches exactly the directory that was checked (Invariant 5: a
/// symlink swapped in between the check and the watch cannot redirect it).
///
/// Thread safety: after creation only the watcher's thread uses it (``TreeWatcher/start()``
/// runs before that thread exists); ``close()`` runs once that thread has ended.
final class Inotify: @unchecked Sendable {
    /// The raw descriptor, polled by the watcher's thread.
    let fd: Int32
    private var isClosed = false

    /// The corresponding C function is `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    /// - Throws: `SystemCallError` (`EMFILE` when the user's `max_user_instances` is reached).
    init() throws(SystemCallError) {
        fd = try retryingOnInterrupt("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
    }

    deinit { close() }

    /// Closes the descriptor, which removes every watch (once; later calls do nothing).
    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// Watches the open directory `directory` (or returns its existing watch descriptor: the
    /// kernel keeps one watch per inode and instance). The corresponding C function is
    /// `inotify_add_watch`.
    /// - Returns: the watch descriptor, or the error (`ENOSPC` when the watch limit is reached).
    func addWatch(_ directory: DirectoryFD, mask: EventMask) -> Result<Int32, SystemCallError> {
        let wd = inotify_add_watch(fd, "/proc/self/fd/\(directory.fd)", mask.rawValue)
        return wd >= 0 ? .success(wd) : .failure(SystemCallError("inotify_add_watch", errno: errno))
    }

    /// Removes a watch; the kernel then queues `IN_IGNORED` for it. A watch that is already gone
    /// (its directory deleted) is not an error here. The corresponding C function is
    /// `inotify_rm_watch`.
    func removeWatch(_ wd: Int32) {
        _ = inotify_rm_watch(fd, wd)
    }

    /// Reads whole event records into `buffer`.
    /// - Returns: the number of bytes read; 0 when nothing is queued.
    /// - Throws: `SystemCallError` for anything but `EAGAIN` (the descriptor is unusable).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return 0 }
            if e != EINTR { throw SystemCallError("read(inotify)", errno: e) }
        }
    }
}

/// The bits of an inotify mask, with Swift names.
struct EventMask: OptionSet, Sendable, Hashable {
    let rawValue: UInt32

    init(rawValue: UInt32) { self.rawValue = rawValue }
    private init(_ flag: Int32) { rawValue = UInt32(bitPattern: flag) }

    static let modify = EventMask(IN_MODIFY)
    static let attrib = EventMask(IN_ATTRIB)
    static let closeWrite = EventMask(IN_CLOSE_WRITE)
    static let movedFrom = EventMask(IN_MOVED_FROM)
    static let movedTo = EventMask(IN_MOVED_TO)
    static let create = EventMask(IN_CREATE)
    static let delete = EventMask(IN_DELETE)
    static let deleteSelf = EventMask(IN_DELETE_SELF)
    static let moveSelf = EventMask(IN_MOVE_SELF)
    static let unmount = EventMask(IN_UNMOUNT)
    static let queueOverflow = EventMask(IN_Q_OVERFLOW)
    static let ignored = EventMask(IN_IGNORED)
    static let isDirectory = EventMask(IN_ISDIR)
    static let onlyDirectory = EventMask(IN_ONLYDIR)
    static let excludeUnlinked = EventMask(IN_EXCL_UNLINK)

    /// What every directory of a watched tree is watched for. `IN_UNMOUNT`, `IN_Q_OVERFLOW` and
    /// `IN_IGNORED` arrive without asking; `IN_EXCL_UNLINK` spares events from files that were
    /// deleted while still open.
    static let tree: EventMask = [
        .create, .delete, .modify, .closeWrite, .attrib, .movedFrom, .movedTo, .deleteSelf, .moveSelf,
        .excludeUnlinked, .onlyDirectory,
    ]
}
