import CSQLite
import Glibc

/// Which on-disk store an error or a database belongs to; it decides the wording and the remedy
/// in messages.
public enum StoreRole: Sendable, Hashable, CustomStringConvertible {
    /// The client's archive: the state both replicas agreed on after the last successful run.
    case archive
    /// A replica's scan cache (its baseline with fingerprints).
    case scanCache

    public var description: String { self == .archive ? "archive" : "scan cache" }

    /// What a user can do about a store that cannot be used as it is.
    var rebuildHint: String {
        switch self {
        case .archive: return "move it away or run with --ignorearchives to rebuild it"
        case .scanCache: return "delete it; the next run rescans this replica in full and rebuilds it"
        }
    }
}

/// A failure of the storage layer: SQLite errors, unreadable or foreign files, rows that do not
/// decode, a newer schema, a held lock.
///
/// It carries the file, SQLite's result code and message, and the SQL that failed; its
/// `description` is one sentence that says what failed and what to do.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Reason: Sendable, Hashable {
        /// SQLite reported an error (see `code` and `message`).
        case sqlite
        /// The file is not a database or is corrupt (`SQLITE_NOTADB`, `SQLITE_CORRUPT`).
        case unreadable
        /// The file was written by a newer swunison whose schema this one does not know.
        case newerSchema(found: Int, known: Int)
        /// The archive was made for other roots.
        case rootsMismatch(stored: [String], given: [String])
        /// A stored row does not decode (bad kind, digest length, path); `message` says which.
        case invalidRow
        /// Another process holds the archive lock.
        case locked(pid: Int32?)
        /// A system call on the file failed (lock file, removal).
        case system(errno: Int32)
    }

    public var reason: Reason
    public var role: StoreRole
    /// The file concerned, as given by the caller.
    public var file: String
    /// SQLite's extended result code, or 0 when the error did not come from SQLite.
    public var code: Int32
    /// SQLite's message, or what is wrong.
    public var message: String
    /// The SQL being run, when there was one.
    public var sql: String?

    public init(_ reason: Reason, role: StoreRole, file: String, code: Int32 = 0, message: String, sql: String? = nil) {
        self.reason = reason; self.role = role; self.file = file; self.code = code
        self.message = message; self.sql = sql
    }

    /// Whether the file itself is damaged or foreign, so rebuilding it is the way out.
    public var isUnreadable: Bool { reason == .unreadable || reason == .invalidRow }

    public var description: String {
        switch reason {
        case .unreadable:
            return "\(role) \(file) is unreadable (\(message)): \(role.rebuildHint)"
        case .invalidRow:
            return "\(role) \(file) holds a row that does not decode (\(message)): \(role.rebuildHint)"
        case let .newerSchema(found, known):
            return "\(role) \(file) was written by a newer swunison (schema \(found), this one knows up to \(known)): "
                + "upgrade swunison, or \(role.rebuildHint)"
        case let .rootsMismatch(stored, given):
            return "\(role) \(file) belongs to roots \(stored.joined(separator: " and ")), not "
                + "\(given.joined(separator: " and ")): use the profile it was made for, or \(role.rebuildHint)"
        case let .locked(pid):
            let who = pid.map { "another swunison run (pid \($0))" } ?? "another swunison run"
            return "\(who) holds the lock on \(file); wait for it to finish"
        case .system:
            return "\(role) \(file): \(message); check that the file and its directory exist and are writable"
        case .sqlite:
            switch code & 0xFF {
            case SQLITE_BUSY, SQLITE_LOCKED:
                return "\(role) \(file) is busy (\(message)): another program is writing it; wait for it to finish and retry"
            case SQLITE_FULL:
                return "\(role) \(file) could not be written (\(message)): free some disk space and retry"
            case SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH:
                return "\(role) \(file) could not be opened for writing (\(message)): "
                    + "check that the file and its directory exist and are writable"
            case SQLITE_IOERR:
                return "\(role) \(file) could not be read or written (\(message)): check the disk, then retry"
            default:
                let what = sql.map { " while running `\(Self.abbreviate($0))`" } ?? ""
                return "\(role) \(file) failed (\(message), code \(code))\(what): retry, and if it persists "
                    + role.rebuildHint
            }
        }
    }

    private static func abbreviate(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: { $0 == "\n" || $0 == " " }).joined(separator: " ")
        return oneLine.count <= 80 ? oneLine : String(oneLine.prefix(77)) + "..."
    }
}
