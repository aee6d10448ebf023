import Glibc
import SwunisonModel

/// Why a file operation beneath a replica's root failed. Every case names the path; nothing was
/// changed at that path unless the description says otherwise.
public enum FileOperationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The path no longer matches the entry the caller expected (Invariant 2); it was left as it is.
    case changedDuringSync(RelativePath)
    /// Written content did not match the expected digest or size; the temporary file was removed.
    case digestMismatch(RelativePath)
    /// The path holds a FIFO, socket or device, which swunison does not synchronise.
    case unsupportedKind(RelativePath, typeName: String)
    /// A system call failed; `operation` says what swunison was doing.
    case system(path: RelativePath, operation: String, SystemCallError)

    /// The path the error is about.
    public var path: RelativePath {
        switch self {
        case .changedDuringSync(let p), .digestMismatch(let p), .unsupportedKind(let p, _): return p
        case .system(let p, _, _): return p
        }
    }

    public var description: String {
        switch self {
        case .changedDuringSync(let p):
            return "\(Self.display(p)): changed on disk since it was scanned; left untouched, it will be synchronised by the next run"
        case .digestMismatch(let p):
            return "\(Self.display(p)): the copied content does not match the source's digest (the source changed while "
                + "being copied); the copy was discarded and the target left as it was, run again to retry"
        case let .unsupportedKind(p, typeName):
            return "\(Self.display(p)): is a \(typeName), which swunison does not synchronise; remove it or ignore the path"
        case let .system(p, operation, error):
            return "\(Self.display(p)): \(operation) failed: \(Self.cause(of: error))"
        }
    }

    /// A failed call's cause and what to do about it, without the path and operation
    /// ("No space left on device; free space on ...").
    public static func cause(of error: SystemCallError) -> String {
        let advice = advice(for: error.errno)
        return error.message + (advice.isEmpty ? "" : "; " + advice)
    }

    /// Whether the failure is transient, so the path is worth retrying (after a rescan).
    public var isRetryable: Bool {
        switch self {
        case .changedDuringSync, .digestMismatch: return true
        case .unsupportedKind, .system: return false
        }
    }

    static func display(_ path: RelativePath) -> String { path.isRoot ? "." : path.description }

    /// What a user can do about an errno, as a short imperative clause ("" when nothing useful).
    static func advice(for errno: Int32) -> String {
        switch errno {
        case ENOSPC, EDQUOT:
            return "free space on that file system (or raise the quota) and run again; nothing partial was left behind"
        case EACCES, EPERM:
            return "check the permissions of the path and its directories for the user running swunison"
        case EFBIG:
            return "the file is larger than this process may write (see `ulimit -f`) or than the file system allows; "
                + "nothing partial was left behind"
        case EROFS:
            return "the file system is mounted read-only"
        case ELOOP:
            return "a symlink sits where a directory was expected; swunison never follows symlinks inside a root"
        case ENOTDIR:
            return "a parent of the path is not a directory (a symlink counts as none: swunison never follows "
                + "symlinks inside a root)"
        case ENOTEMPTY, EEXIST:
            return "the directory is not empty; its contents must be synchronised first"
        case ENAMETOOLONG:
            return "the name is too long for this file system"
        case EXDEV:
            return "the path and its destination are on different file systems"
        case EIO:
            return "the device reported an I/O error; check the disk"
        default:
            return ""
        }
    }
}

/// Runs `body` and turns a ``SystemCallError`` into ``FileOperationError/system(path:operation:_:)``.
@inline(__always)
func withPath<T>(_ path: RelativePath, _ operation: String,
                 _ body: () throws(SystemCallError) -> T) throws(FileOperationError) -> T {
    do {
        return try body()
    } catch {
        throw .system(path: path, operation: operation, error)
    }
}
