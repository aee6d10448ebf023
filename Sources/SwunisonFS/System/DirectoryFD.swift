import CSwunisonShims
import Glibc
import Synchronization
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

    /// Opens `path` beneath this directory, never following a symlink (Invariant 5): with one
    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` call where the kernel has it, else one
    /// component at a time with `O_NOFOLLOW`. The empty path opens this directory again (a new
    /// descriptor).
    /// - Throws: `SystemCallError` from the first component that cannot be opened.
    public func openDirectory(at path: RelativePath) throws(SystemCallError) -> DirectoryFD {
        if path.isRoot {
            let fd = try retryingOnInterrupt("openat") { openat(self.fd, ".", Self.beneathFlags) }
            return DirectoryFD(adopting: fd)
        }
        // One openat2 call resolves the whole path and refuses any symlink on the way.
        do {
            if let fd = try openBeneath(path, flags: Self.beneathFlags) { return DirectoryFD(adopting: fd) }
        } catch where error.errno == ELOOP {
            // A symlink on the way: "not a directory", as the component walk reports it.
            throw SystemCallError("openat2", errno: ENOTDIR)
        }
        // A kernel before 5.6, or a seccomp filter that hides openat2: walk instead.
        return try openDirectoryByComponents(at: path)
    }

    /// The fallback of ``openDirectory(at:)`` for kernels without openat2: one `openat(O_NOFOLLOW |
    /// O_DIRECTORY)` per component, so a symlink anywhere fails with `ENOTDIR`.
    func openDirectoryByComponents(at path: RelativePath) throws(SystemCallError) -> DirectoryFD {
        var current = self
        for component in path.components {
            current = try current.openDirectory(component)
        }
        return current
    }

    /// Opens the non-directory `path` beneath this directory in one `openat2(RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS)` call, refusing a symlink anywhere on the way, the last component
    /// included (Invariant 5). Returns nil when the kernel lacks openat2, or the path is too long
    /// for one call, so the caller walks.
    /// - Throws: `SystemCallError` (`ELOOP` for a symlink, `ENOENT`, `ENOTDIR`, ...).
    public func openBeneath(_ path: RelativePath, flags: Int32) throws(SystemCallError) -> Int32? {
        guard Self.beneathResolution.load(ordering: .relaxed) else { return nil }
        let result = withNameCString(path.bytes) { cPath -> Int32 in
            while true {
                let fd = swunison_openat_beneath(self.fd, cPath, flags | O_NOFOLLOW | O_CLOEXEC, 0)
                if fd >= 0 || errno != EINTR { return fd >= 0 ? fd : -errno }
            }
        }
        if result >= 0 { return result }
        // A path of PATH_MAX (4,096) bytes or more is too long for one call, not for the tree:
        // the caller walks it one component at a time instead.
        if -result == ENAMETOOLONG && path.bytes.count >= Int(PATH_MAX) { return nil }
        if -result == ENOSYS || -result == EPERM {
            Self.beneathResolution.store(false, ordering: .relaxed)
            return nil
        }
        throw SystemCallError("openat2", errno: -result)
    }

    /// Whether openat2(2) with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` is usable (cleared after
    /// the first ENOSYS/EPERM).
    private static let beneathResolution = Atomic<Bool>(true)

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
