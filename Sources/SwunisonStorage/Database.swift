import CSQLite
import Glibc
import SwunisonModel

/// One SQLite connection, owning its `sqlite3*` (closed in `deinit`).
///
/// Concurrency rule: a `Database` and its statements are used by one task at a time (the owner
/// serialises its calls). Why: a transaction is a property of the connection, so two tasks
/// interleaving `transaction { }` bodies would commit or roll back each other's writes. The
/// connection is opened with `SQLITE_OPEN_NOMUTEX` (SQLite's multi-thread mode): it may move
/// between threads, never be used by two at once, which is what `@unchecked Sendable` claims and
/// the owners guarantee. Serialized mode would lock a mutex on every column read, which cost ~9 %
/// of a no-change scan of 200,000 files.
///
/// The connection uses WAL with `synchronous = NORMAL`: a committed transaction survives a crash
/// of the process and, at worst, the last transactions are lost on power failure, but the file is
/// never left half-written (Invariant 4).
public final class Database: @unchecked Sendable {
    /// The file, as given by the caller.
    public let path: String
    /// What this database is, for messages.
    public let role: StoreRole
    let handle: OpaquePointer

    /// How long a writer waits for another connection's lock before failing with "busy".
    public static let busyTimeoutMilliseconds: Int32 = 5_000
    /// Upper bound for the `-wal` file kept after a checkpoint (it otherwise keeps its peak size).
    public static let journalSizeLimitBytes = 8 << 20

    /// Opens (creating if needed) a database file and configures the connection.
    /// The corresponding C function is `sqlite3_open_v2`.
    /// - Throws: `StorageError` (`.unreadable` for a file that is not a database).
    public init(path: String, role: StoreRole) throws(StorageError) {
        self.path = path
        self.role = role
        var db: OpaquePointer?
        // Archives and caches list every path and digest of the user's files: only the user may
        // read them. SQLite gives its -wal and -shm files the main file's mode, so creating that
        // one 0600 (before SQLite would create it 0644 under the usual umask) is enough.
        let created = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if created >= 0 { Glibc.close(created) }
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw Self.error(code: rc, message: message, role: role, file: path, sql: nil)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, Self.busyTimeoutMilliseconds)
        // The first statement reads the header: a file that is not a database fails here.
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA journal_size_limit = \(Self.journalSizeLimitBytes)")
        // Reading the schema catches files whose header is fine but whose first page is not.
        _ = try userVersion()
    }

    deinit {
        // v2 defers the close until statements still alive (held by cursors) are finalized.
        sqlite3_close_v2(handle)
    }

    /// Runs one or more SQL statements that return no rows.
    /// The corresponding C function is `sqlite3_exec`.
    public func execute(_ sql: String) throws(StorageError) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errmsg)
            throw error(code: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// Compiles one SQL statement.
    /// The corresponding C function is `sqlite3_prepare_v3`.
    public func prepare(_ sql: String) throws(StorageError) -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw lastError(rc, sql: sql)
        }
        return Statement(database: self, handle: stmt, sql: sql)
    }

    /// Runs `body` in a write transaction: `BEGIN IMMEDIATE`, then `COMMIT`, or `ROLLBACK` when
    /// `body` throws (Invariant 4: a run's updates land all together or not at all).
    ///
    /// `IMMEDIATE` takes the write lock up front, so a concurrent writer makes us wait
    /// (`busy_timeout`) at the start rather than fail at `COMMIT` after the work was done.
    public func transaction<T>(_ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        try execute("BEGIN IMMEDIATE")
        let result: T
        do {
            result = try body()
            CrashPoint.reached()
            try execute("COMMIT")
        } catch {
            if sqlite3_get_autocommit(handle) == 0 { try? execute("ROLLBACK") }
            throw error
        }
        return result
    }

    /// Whether a transaction is open on this connection.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// The schema version stored in the file header (`PRAGMA user_version`).
    public func userVersion() throws(StorageError) -> Int {
        let stmt = try prepare("PRAGMA user_version")
        guard try stmt.step() else { return 0 }
        return Int(stmt.int64(at: 0))
    }

    /// Number of rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    // MARK: Errors

    /// The error SQLite reports for the last call on this connection.
    func lastError(_ rc: Int32, sql: String?) -> StorageError {
        let code = sqlite3_extended_errcode(handle)
        return error(code: code != SQLITE_OK ? code : rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    func error(code: Int32, message: String, sql: String?) -> StorageError {
        Self.error(code: code, message: message, role: role, file: path, sql: sql)
    }

    /// A row-level decoding failure in this database.
    func invalidRow(_ message: String) -> StorageError {
        StorageError(.invalidRow, role: role, file: path, message: message)
    }

    static func error(code: Int32, message: String, role: StoreRole, file: String, sql: String?) -> StorageError {
        let primary = code & 0xFF
        let reason: StorageError.Reason = (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) ? .unreadable : .sqlite
        return StorageError(reason, role: role, file: file, code: code, message: message, sql: sql)
    }
}

/// A compiled SQL statement, finalized in `deinit`. Keeps its `Database` alive.
///
/// Parameters are bound by 1-based index; columns are read by 0-based index, as in SQLite.
/// Not thread-safe: used by its database's owner only.
public final class Statement: @unchecked Sendable {
    public let database: Database
    public let sql: String
    let handle: OpaquePointer

    init(database: Database, handle: OpaquePointer, sql: String) {
        self.database = database; self.handle = handle; self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    // MARK: Binding

    /// Binds an integer. The corresponding C function is `sqlite3_bind_int64`.
    public func bind(_ value: Int64, at index: Int32) throws(StorageError) {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    /// Binds an integer or NULL.
    public func bind(_ value: Int64?, at index: Int32) throws(StorageError) {
        if let value { try bind(value, at: index) } else { try bindNull(at: index) }
    }

    /// Binds bytes as a BLOB (an empty array is an empty BLOB, not NULL), or NULL for nil.
    /// The corresponding C function is `sqlite3_bind_blob` with `SQLITE_TRANSIENT`.
    public func bind(_ bytes: [UInt8]?, at index: Int32) throws(StorageError) {
        guard let bytes else { return try bindNull(at: index) }
        if bytes.isEmpty { return try check(sqlite3_bind_zeroblob(handle, index, 0)) }
        let rc = bytes.withUnsafeBytes {
            sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), swunison_sqlite_transient())
        }
        try check(rc)
    }

    /// Binds raw bytes as a BLOB (copied by SQLite before this returns).
    public func bind(bytes: UnsafeRawBufferPointer, at index: Int32) throws(StorageError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return try check(sqlite3_bind_zeroblob(handle, index, 0)) }
        try check(sqlite3_bind_blob(handle, index, base, Int32(bytes.count), swunison_sqlite_transient()))
    }

    /// Binds text, or NULL for nil. The corresponding C function is `sqlite3_bind_text`.
    public func bind(_ text: String?, at index: Int32) throws(StorageError) {
        guard let text else { return try bindNull(at: index) }
        try check(sqlite3_bind_text(handle, index, text, -1, swunison_sqlite_transient()))
    }

    /// Binds NULL. The corresponding C function is `sqlite3_bind_null`.
    public func bindNull(at index: Int32) throws(StorageError) {
        try check(sqlite3_bind_null(handle, index))
    }

    // MARK: Running

    /// Advances to the next row: true when a row is available, false when done.
    /// The corresponding C function is `sqlite3_step`.
    /// - Throws: `StorageError`; the statement is reset so it does not hold a read lock.
    @discardableResult
    public func step() throws(StorageError) -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let error = database.lastError(rc, sql: sql)
        sqlite3_reset(handle)
        throw error
    }

    /// Runs a statement that returns no rows, then resets it for reuse.
    public func run() throws(StorageError) {
        defer { reset() }
        while try step() {}
    }

    /// Makes the statement runnable again (bindings are kept) and ends its read of the database.
    /// The corresponding C function is `sqlite3_reset`.
    public func reset() { sqlite3_reset(handle) }

    // MARK: Columns

    /// Whether the column of the current row is NULL.
    public func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The column as an integer (0 for NULL). The corresponding C function is `sqlite3_column_int64`.
    public func int64(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    /// The column as an integer, nil for NULL.
    public func optionalInt64(at column: Int32) -> Int64? {
        isNull(at: column) ? nil : int64(at: column)
    }

    /// The column as bytes, nil for NULL. The corresponding C function is `sqlite3_column_blob`.
    public func blob(at column: Int32) -> [UInt8]? {
        if isNull(at: column) { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Calls `body` with the column's bytes without copying them (valid only inside `body`).
    public func withBlob<T>(at column: Int32, _ body: (UnsafeRawBufferPointer) throws(StorageError) -> T) throws(StorageError) -> T {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let base = sqlite3_column_blob(handle, column) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The column as text, nil for NULL. The corresponding C function is `sqlite3_column_text`.
    public func text(at column: Int32) -> String? {
        if isNull(at: column) { return nil }
        guard let cString = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: cString, count: count), as: UTF8.self)
    }

    private func check(_ rc: Int32) throws(StorageError) {
        if rc != SQLITE_OK { throw database.lastError(rc, sql: sql) }
    }
}
