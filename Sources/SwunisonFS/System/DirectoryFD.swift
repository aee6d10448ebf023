import Glibc
import SwunisonModel

/// An open directory file descriptor beneath a replica's root, closed when the value is released.
///
/// Every descent goes through ``openDirectory(_:)``, which opens one name relative to this
/// directory with `O_NOFOLLOW`, so a symlink planted in the tree is never followed
/// (Invariant 5: nothing is reached outside the root through a link). Only the root itself may
/// be reached through a symlink, because the user named it.
///
/// Thread safety: the descriptor is immutable after opening; `*at` calls on it from several
/// threads are safe. The corresponding C functions are `open`, `openat` and `close`.
public final class DirectoryFD: @unchecked Sendable {
    /// The raw descriptor; valid for as long as this object lives.
    public let fd: Int32

    /// Takes ownership of an open directory descriptor.
    public init(adopting fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Flags for every directory opened beneath the root (Invariant 5: `O_NOFOLLOW`).
    static let beneathFlags: Int32 = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

    /// Opens a replica root. The root may be reached through a symlink but must be a directory.
    /// - Throws: `SystemCallError` (`ENOENT`, `ENOTDIR`, `EACCES`, ...).
    public static func openRoot(_ path: String) throws(SystemCallError) -> DirectoryFD {
        let fd = try retryingOnInterrupt("open") { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        return DirectoryFD(adopting: fd)
    }

    /// Opens the subdirectory `name` without following a symlink (Invariant 5).
    /// - Throws: `SystemCallError`; `ENOTDIR` when `name` is a symlink (Linux checks `O_DIRECTORY`
    ///   before `O_NOFOLLOW`) or not a directory.
    public func openDirectory(_ name: PathComponent) throws(SystemCallError) -> DirectoryFD {
        let fd = try withNameCString(name.bytes) { (cName) throws(SystemCallError) -> Int32 in
            try openDirectory(cName: cName)
        }
        return DirectoryFD(adopting: fd)
    }

    /// Opens `path` beneath this directory one component at a time, never following a symlink
    /// (Invariant 5). The empty path opens this directory again (a new descriptor).
    /// - Throws: `SystemCallError` from the first component that cannot be opened.
    public func openDirectory(at path: RelativePath) throws(SystemCallError) -> DirectoryFD {
        if path.isRoot {
            let fd = try retryingOnInterrupt("openat") { openat(self.fd, ".", Self.beneathFlags) }
            return DirectoryFD(adopting: fd)
        }
        var current = self
        for component in path.components {
            current = try current.openDirectory(component)
        }
        return current
    }

    /// `openat(fd, cName, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)` returning the raw descriptor,
    /// which the caller must close or adopt.
    func openDirectory(cName: UnsafePointer<CChar>) throws(SystemCallError) -> Int32 {
        try retryingOnInterrupt("openat") { openat(self.fd, cName, Self.beneathFlags) }
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C string (a name or a symlink target).
func withNameCString<R, E: Error>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
    var terminated = bytes
    terminated.append(0)
    return try terminated.withUnsafeBufferPointer { (buffer) throws(E) -> R in
        let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
        return try body(base)
    }
}
