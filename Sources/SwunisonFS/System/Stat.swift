import Glibc
import SwunisonModel

/// What `fstatat`/`fstat` reported for one name, without following a symlink.
///
/// A thin value over `struct stat` with Swift names for the fields swunison uses. The
/// corresponding C functions are `fstatat` (with `AT_SYMLINK_NOFOLLOW`) and `fstat`.
public struct FileStatus: Sendable {
    public var raw: stat

    public init(raw: stat) { self.raw = raw }

    /// Status of an open descriptor (`fstat`).
    /// - Throws: `SystemCallError`.
    public init(fd: Int32) throws(SystemCallError) {
        var st = stat()
        while fstat(fd, &st) != 0 {
            let e = errno
            if e != EINTR { throw SystemCallError("fstat", errno: e) }
        }
        raw = st
    }

    /// The file type bits (`st_mode & S_IFMT`).
    public var typeBits: UInt32 { raw.st_mode & S_IFMT }

    /// The kind swunison synchronises, or nil for a FIFO, socket or device (see ``typeName``).
    public var kind: EntryKind? {
        switch typeBits {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        case S_IFLNK: return .symlink
        default: return nil
        }
    }

    /// A word for the file type, for messages about unsupported kinds.
    public var typeName: String {
        switch typeBits {
        case S_IFREG: return "file"
        case S_IFDIR: return "directory"
        case S_IFLNK: return "symlink"
        case S_IFIFO: return "fifo"
        case S_IFSOCK: return "socket"
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        default: return "unknown file type"
        }
    }

    public var size: Int64 { Int64(raw.st_size) }
    public var inode: UInt64 { UInt64(raw.st_ino) }
    public var device: UInt64 { UInt64(raw.st_dev) }
    /// Modification time in nanoseconds since the epoch.
    public var mtime: Nanoseconds { Int64(raw.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(raw.st_mtim.tv_nsec) }
    /// Status change time in nanoseconds since the epoch.
    public var ctime: Nanoseconds { Int64(raw.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(raw.st_ctim.tv_nsec) }
    /// Permission bits (`st_mode & 0o7777`).
    public var permissions: UInt32 { raw.st_mode & 0o7777 }
    public var uid: UInt32 { raw.st_uid }
    public var gid: UInt32 { raw.st_gid }

    /// The fastcheck fingerprint: inode, ctime, mtime and size (size 0 for non-files, as in ``Entry``).
    public var fingerprint: Fingerprint {
        Fingerprint(inode: inode, ctime: ctime, mtime: mtime, size: kind == .file ? size : 0)
    }

    /// An entry with the attributes from this status, no digest and no link target.
    /// - Precondition: `kind` is not nil (the caller checked for an unsupported kind).
    public func entry(kind: EntryKind) -> Entry {
        Entry(kind: kind, size: kind == .file ? size : 0, mtime: mtime, mode: permissions,
              uid: uid, gid: gid, digest: nil, linkTarget: nil, fingerprint: fingerprint)
    }
}

/// A name whose file type swunison does not synchronise (FIFO, socket, device).
public struct UnsupportedKindError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The name, escaped for display.
    public var name: String
    /// What it is instead, e.g. "fifo".
    public var typeName: String

    public init(name: String, typeName: String) { self.name = name; self.typeName = typeName }

    public var description: String { "\(name): is a \(typeName), not synchronised" }
}

/// Status of `name` in `dir` without following a symlink, or nil when it does not exist.
/// The corresponding C function is `fstatat` with `AT_SYMLINK_NOFOLLOW`.
/// - Throws: `SystemCallError` for any failure other than `ENOENT`.
public func fileStatus(_ name: PathComponent, in dir: DirectoryFD) throws(SystemCallError) -> FileStatus? {
    try withNameCString(name.bytes) { (cName) throws(SystemCallError) -> FileStatus? in
        try fileStatus(cName: cName, in: dir.fd)
    }
}

/// `fstatat(dirFD, cName, AT_SYMLINK_NOFOLLOW)`; nil on `ENOENT`.
func fileStatus(cName: UnsafePointer<CChar>, in dirFD: Int32) throws(SystemCallError) -> FileStatus? {
    var st = stat()
    while fstatat(dirFD, cName, &st, AT_SYMLINK_NOFOLLOW) != 0 {
        let e = errno
        if e == ENOENT { return nil }
        if e != EINTR { throw SystemCallError("fstatat", errno: e) }
    }
    return FileStatus(raw: st)
}

/// The entry for `name` in `dir`, as the scanner and the file operations see it: kind, size,
/// mtime (ns), mode & 0o7777, uid, gid, fingerprint, and for a symlink its raw target.
/// Never follows a symlink (Invariant 5). Files carry no digest (hashing is the caller's choice).
/// - Returns: nil when the name does not exist.
/// - Throws: ``UnsupportedKindError`` for a FIFO, socket or device; `SystemCallError` otherwise.
public func lstat(_ name: PathComponent, in dir: DirectoryFD) throws -> Entry? {
    guard let status = try fileStatus(name, in: dir) else { return nil }
    guard let kind = status.kind else {
        throw UnsupportedKindError(name: name.description, typeName: status.typeName)
    }
    var entry = status.entry(kind: kind)
    if kind == .symlink {
        // (A Result, not do/catch: the catch crashes the Swift 6.3.1 SIL optimiser here.)
        let target = Result { () throws(SystemCallError) in try readLink(name, in: dir, sizeHint: Int(status.size)) }
        switch target {
        case .success(let bytes): entry.linkTarget = bytes
        case .failure(let error) where error.errno == ENOENT: return nil  // removed since fstatat: gone
        case .failure(let error): throw error
        }
    }
    return entry
}

/// The raw target bytes of the symlink `name` in `dir`, of any length.
/// The corresponding C function is `readlinkat`.
/// - Parameter sizeHint: the link's `st_size`, when known, to size the buffer at once.
/// - Throws: `SystemCallError` (`EINVAL` when `name` is not a symlink).
public func readLink(_ name: PathComponent, in dir: DirectoryFD, sizeHint: Int = 0) throws(SystemCallError) -> [UInt8] {
    try withNameCString(name.bytes) { (cName) throws(SystemCallError) -> [UInt8] in
        try readLink(cName: cName, in: dir.fd, sizeHint: sizeHint)
    }
}

/// `readlinkat` into a buffer that grows until the whole target fits.
func readLink(cName: UnsafePointer<CChar>, in dirFD: Int32, sizeHint: Int) throws(SystemCallError) -> [UInt8] {
    var capacity = max(sizeHint + 1, 256)
    while true {
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        let n = readlinkat(dirFD, cName, buffer, capacity)
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemCallError("readlinkat", errno: errno)
        }
        if n < capacity {
            return buffer.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
        }
        // The target filled the buffer: it may have been truncated, so try again with more room.
        capacity *= 2
    }
}
