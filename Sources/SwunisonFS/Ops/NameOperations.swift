import CSwunisonShims
import Glibc
import SwunisonModel
import Synchronization

/// Thin `*at` wrappers over one name in an open directory, used by the file operations.
///
/// Each takes names as raw bytes (file names need not be UTF-8), retries EINTR and throws the
/// errno as ``SystemCallError``. None of them follows a symlink in the last component, and the
/// directory itself was reached with `O_NOFOLLOW` (Invariant 5).
extension DirectoryFD {
    /// `unlinkat(fd, name, 0)`: removes a file or symlink.
    func unlink(_ name: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
            try retryingOnInterrupt("unlinkat") { unlinkat(fd, c, 0) }
        }
    }

    /// `unlinkat(fd, name, AT_REMOVEDIR)`: removes an empty directory.
    func removeDirectory(_ name: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
            try retryingOnInterrupt("unlinkat") { unlinkat(fd, c, AT_REMOVEDIR) }
        }
    }

    /// `mkdirat(fd, name, mode)`.
    func makeDirectory(_ name: [UInt8], mode: mode_t) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
            try retryingOnInterrupt("mkdirat") { mkdirat(fd, c, mode) }
        }
    }

    /// `symlinkat(target, fd, name)`.
    func makeSymlink(_ name: [UInt8], target: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(target) { (t) throws(SystemCallError) -> Int32 in
            try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
                try retryingOnInterrupt("symlinkat") { symlinkat(t, fd, c) }
            }
        }
    }

    /// Creates `name` exclusively for writing: `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600. Returns the descriptor.
    func createExclusive(_ name: [UInt8]) throws(SystemCallError) -> Int32 {
        try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
            try retryingOnInterrupt("openat") {
                openat(fd, c, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(0o600))
            }
        }
    }

    /// Opens the regular file `name` for reading without following a symlink. `O_NONBLOCK` keeps
    /// a FIFO that took the file's place from blocking the open; it has no effect on regular files.
    func openForReading(_ name: [UInt8]) throws(SystemCallError) -> Int32 {
        try withNameCString(name) { (c) throws(SystemCallError) -> Int32 in
            try retryingOnInterrupt("openat") { openat(fd, c, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        }
    }

    /// Moves `name` here to `newName` in `destination`, replacing what is there (`renameat`).
    func rename(_ name: [UInt8], to destination: DirectoryFD, _ newName: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (a) throws(SystemCallError) -> Int32 in
            try withNameCString(newName) { (b) throws(SystemCallError) -> Int32 in
                try retryingOnInterrupt("renameat") { renameat(fd, a, destination.fd, b) }
            }
        }
    }

    /// Moves `name` here to `newName` in `destination` only if nothing is there: `renameat2`
    /// with `RENAME_NOREPLACE`, so a file that appears meanwhile is never clobbered (EEXIST).
    func renameNoReplace(_ name: [UInt8], to destination: DirectoryFD, _ newName: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (a) throws(SystemCallError) -> Int32 in
            try withNameCString(newName) { (b) throws(SystemCallError) -> Int32 in
                try retryingOnInterrupt("renameat2") { swunison_rename_noreplace(fd, a, destination.fd, b) }
            }
        }
    }

    /// Swaps `name` here and `newName` in `destination` in one step (`renameat2` with
    /// `RENAME_EXCHANGE`); both must exist. EINVAL where the file system cannot.
    func exchange(_ name: [UInt8], with destination: DirectoryFD, _ newName: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (a) throws(SystemCallError) -> Int32 in
            try withNameCString(newName) { (b) throws(SystemCallError) -> Int32 in
                try retryingOnInterrupt("renameat2") { swunison_rename_exchange(fd, a, destination.fd, b) }
            }
        }
    }

    /// Hard-links `name` here as `newName` in `destination` (`linkat`, no symlink following).
    func link(_ name: [UInt8], to destination: DirectoryFD, _ newName: [UInt8]) throws(SystemCallError) {
        CrashPoint.reached()
        _ = try withNameCString(name) { (a) throws(SystemCallError) -> Int32 in
            try withNameCString(newName) { (b) throws(SystemCallError) -> Int32 in
                try retryingOnInterrupt("linkat") { linkat(fd, a, destination.fd, b, 0) }
            }
        }
    }

    /// Flushes the directory itself, so that renames and unlinks in it survive a crash.
    func sync() throws(SystemCallError) {
        _ = try retryingOnInterrupt("fsync") { fsync(fd) }
    }

    /// `fstatat(fd, name, AT_SYMLINK_NOFOLLOW)`; nil when the name does not exist.
    func status(_ name: [UInt8]) throws(SystemCallError) -> FileStatus? {
        try withNameCString(name) { (c) throws(SystemCallError) -> FileStatus? in
            try fileStatus(cName: c, in: fd)
        }
    }

    /// Opens the subdirectory `name` (`O_NOFOLLOW`), creating it with `mode` first when missing.
    func openOrCreateDirectory(_ name: PathComponent, mode: mode_t) throws(SystemCallError) -> DirectoryFD {
        do {
            return try openDirectory(name)
        } catch where error.errno == ENOENT {
            do {
                try makeDirectory(name.bytes, mode: mode)
            } catch where error.errno == EEXIST {
                // Created concurrently: open what is there (still without following a link).
            }
            return try openDirectory(name)
        }
    }
}

/// A name for a temporary file in a destination directory: `.swunison.<pid>.<hex>.tmp`, where
/// the hex part is a per-process random start plus a counter (no system call per name). It never
/// equals a synchronised name's final form, and scanners skip it (Invariant 1).
func temporaryName() -> [UInt8] {
    let value = temporaryNameBase &+ temporaryNameCounter.add(1, ordering: .relaxed).newValue
    var name = temporaryNamePrefixWithPID
    for shift in stride(from: 60, through: 0, by: -4) {
        name.append(hexDigits[Int((value >> UInt64(shift)) & 0xF)])
    }
    name.append(contentsOf: [0x2E, 0x74, 0x6D, 0x70])  // ".tmp"
    return name
}

private let hexDigits = Array("0123456789abcdef".utf8)
private let temporaryNamePrefixWithPID = Array(".swunison.\(getpid()).".utf8)
private let temporaryNameBase = UInt64.random(in: 0...UInt64.max)
private let temporaryNameCounter = Atomic<UInt64>(0)

/// The prefix every temporary name starts with (for scanners that skip them).
public let temporaryNamePrefix: [UInt8] = Array(".swunison.".utf8)

/// Writes all of `bytes` to `fd`, looping over short writes.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
    guard var base = bytes.baseAddress else { return }
    var remaining = bytes.count
    while remaining > 0 {
        let n = try retryingOnInterrupt("write") { write(fd, base, remaining) }
        if n == 0 { throw SystemCallError("write", errno: EIO) }
        base += n
        remaining -= n
    }
}

/// `UTIME_OMIT`, for leaving one of the two times alone in `utimensat`/`futimens`.
let utimeOmit = Int(swunison_utime_omit())

/// The pair of `timespec`s that leaves the access time alone and sets the modification time.
func modificationTimes(_ mtime: Nanoseconds) -> [timespec] {
    var seconds = mtime / 1_000_000_000
    var nanoseconds = mtime % 1_000_000_000
    if nanoseconds < 0 { seconds -= 1; nanoseconds += 1_000_000_000 }
    return [timespec(tv_sec: 0, tv_nsec: utimeOmit), timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds))]
}

/// The mode to give a file or directory: the selected bits from `wanted`, the rest from `base`.
func mergedMode(wanted: UInt32, base: UInt32, mask: UInt32) -> mode_t {
    mode_t(((wanted & mask) | (base & ~mask)) & 0o7777)
}
