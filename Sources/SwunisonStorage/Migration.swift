import CSQLite
import Glibc

/// One forward-only schema step, identified by its position (the `user_version` it leads to)
/// and a name recorded in the database.
public struct Migration: Sendable {
    public var name: String
    /// SQL run inside the migration's transaction.
    public var sql: String
    /// Work that SQL cannot express (re-encoding rows), run inside the same transaction after `sql`.
    public var body: (@Sendable (Database) throws(StorageError) -> Void)?

    public init(_ name: String, sql: String) { self.name = name; self.sql = sql; self.body = nil }

    public init(_ name: String, sql: String = "", body: @escaping @Sendable (Database) throws(StorageError) -> Void) {
        self.name = name; self.sql = sql; self.body = body
    }
}

extension Database {
    /// Brings the schema up to date: runs each migration not yet applied, each in its own
    /// transaction that also records its name and bumps `user_version`. Migrations never run
    /// backwards, and a database from a newer schema is refused rather than guessed at (so an
    /// older swunison never misreads, or rewrites, an archive it does not understand: Invariant 4).
    /// - Throws: `StorageError.Reason.newerSchema` when `user_version` exceeds `migrations.count`.
    public func migrate(_ migrations: [Migration]) throws(StorageError) {
        let current = try userVersion()
        if current > migrations.count {
            throw StorageError(.newerSchema(found: current, known: migrations.count), role: role, file: path,
                               message: "schema \(current) is newer than \(migrations.count)")
        }
        guard current < migrations.count else { return }
        for version in (current + 1)...migrations.count {
            let migration = migrations[version - 1]
            try transaction { () throws(StorageError) in
                // Another process may have migrated while we waited for the write lock.
                guard try userVersion() == version - 1 else { return }
                try execute("""
                    CREATE TABLE IF NOT EXISTS swunison_migrations(
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)
                    """)
                if !migration.sql.isEmpty { try execute(migration.sql) }
                if let body = migration.body { try body(self) }
                let record = try prepare("INSERT INTO swunison_migrations(version, name, applied_at) VALUES (?, ?, ?)")
                try record.bind(Int64(version), at: 1)
                try record.bind(migration.name, at: 2)
                try record.bind(Int64(Glibc.time(nil)), at: 3)
                try record.run()
                try execute("PRAGMA user_version = \(version)")
            }
        }
    }

    /// The names of the migrations applied to this database, in order.
    public func appliedMigrations() throws(StorageError) -> [String] {
        let exists = try prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'swunison_migrations'")
        guard try exists.step() else { return [] }
        let stmt = try prepare("SELECT name FROM swunison_migrations ORDER BY version")
        var names: [String] = []
        while try stmt.step() { names.append(stmt.text(at: 0) ?? "") }
        return names
    }
}
