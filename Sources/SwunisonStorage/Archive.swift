import Glibc
import SwunisonModel

/// The client's archive: per path the entry both replicas agreed on after the last successful
/// run (no fingerprints: those belong to each replica's scan cache), the snapshot ids the client
/// expects from replica A and B, and metadata (the roots as written, times).
///
/// Invariant 4: the archive changes only through ``commit(updates:snapshotA:snapshotB:)``, one
/// transaction recording what propagation actually did; a crash leaves the previous state.
/// Invariant 7 (one run per archive) is ``ArchiveLock``'s job: take it before opening.
///
/// Concurrency rule: one owner at a time (see ``Database``). Each cursor reads through its own
/// connection and sees the archive as it was when it started, so cursors may be used from
/// different tasks at once (the two sides' full-scan comparisons run concurrently).
public final class Archive: @unchecked Sendable {
    /// The connection that writes (and serves lookups).
    public let database: Database
    private let table: EntryTable
    private let meta: MetaTable

    /// The schema, oldest step first. Append only; never edit a released step.
    public static let migrations: [Migration] = [
        Migration("create entries and meta", sql: RowLayout.archive.createTable() + MetaTable.createTable),
        // Content digests became XXH3-128 (16 bytes) instead of SHA-256: the stored ones can no
        // longer be compared, so they are forgotten. An archived file without a digest matches
        // no replica's content, so the next run compares both replicas with each other: equal
        // files are simply recorded again, a file changed on one side is a conflict settled by
        // the profile (the loser kept as a backup), and a deletion still propagates. The
        // snapshot ids go too, so both replicas do a full scan (their caches were emptied).
        Migration("content digests are XXH3-128: forget the SHA-256 ones", sql: """
            UPDATE entries SET digest = NULL;
            DELETE FROM meta WHERE key IN ('snapshot.a', 'snapshot.b');
            """),
    ]

    /// What the archive says about itself.
    public struct Info: Sendable, Hashable {
        /// The roots as written in the profile when the archive was created.
        public var roots: [String]
        /// The schema version (`user_version`).
        public var schemaVersion: Int
        /// Seconds since the epoch.
        public var createdAt: Int64
        /// Seconds since the epoch of the last commit.
        public var updatedAt: Int64
    }

    private init(database: Database) throws(StorageError) {
        self.database = database
        table = try EntryTable(database: database, layout: .archive)
        meta = try MetaTable(database: database)
    }

    /// Opens the archive at `path` for `roots` (as written in the profile), creating it if
    /// needed.
    /// - Throws: `StorageError`: `.rootsMismatch` when the archive was made for other roots,
    ///   `.unreadable`, `.newerSchema`, or a SQLite failure.
    public static func open(path: String, roots: [String]) throws(StorageError) -> Archive {
        let database = try Database(path: path, role: .archive)
        try database.migrate(migrations)
        let archive = try Archive(database: database)
        try archive.claim(roots: roots)
        return archive
    }

    /// Records `roots` in a new archive, or checks them against the stored ones.
    private func claim(roots: [String]) throws(StorageError) {
        try database.transaction { () throws(StorageError) in
            guard let stored = try storedRoots() else {
                try meta.set("root.count", Int64(roots.count))
                for (i, root) in roots.enumerated() { try meta.set("root.\(i)", text: root) }
                let now = Int64(Glibc.time(nil))
                try meta.set("created", now)
                try meta.set("updated", now)
                return
            }
            if stored != roots {
                throw StorageError(.rootsMismatch(stored: stored, given: roots), role: .archive, file: path,
                                   message: "stored roots \(stored) differ from \(roots)")
            }
        }
    }

    private func storedRoots() throws(StorageError) -> [String]? {
        guard let count = try meta.int64("root.count") else { return nil }
        guard count >= 0, count < 1_000 else { throw database.invalidRow("meta: root count \(count)") }
        var roots: [String] = []
        for i in 0..<Int(count) {
            guard let root = try meta.text("root.\(i)") else { throw database.invalidRow("meta: root \(i) missing") }
            roots.append(root)
        }
        return roots
    }

    /// The file, as given to ``open(path:roots:)``.
    public var path: String { database.path }

    /// Roots, schema version and times.
    public var info: Info {
        get throws(StorageError) {
            Info(roots: try storedRoots() ?? [], schemaVersion: try database.userVersion(),
                 createdAt: try meta.int64("created") ?? 0, updatedAt: try meta.int64("updated") ?? 0)
        }
    }

    /// The snapshot ids the archive expects from replica A and B; nil when unknown (a new
    /// archive, or a side whose cache commit did not happen), which makes that side scan in full.
    public var snapshots: (a: UInt64?, b: UInt64?) {
        get throws(StorageError) { (try meta.snapshot("snapshot.a"), try meta.snapshot("snapshot.b")) }
    }

    /// Whether no path is archived (the first run: every difference is new or a conflict).
    public var isEmpty: Bool {
        get throws(StorageError) { try table.isEmpty() }
    }

    /// Number of archived paths.
    public var entryCount: Int {
        get throws(StorageError) { try table.count() }
    }

    /// The archived entries beneath `paths` (all when empty), in walk order, streamed.
    /// A connection of its own: a NOMUTEX connection must never be used by two threads at once,
    /// and a shared one was (a data race that showed as a spurious "unreadable archive").
    public func cursor(under paths: [RelativePath] = []) throws(StorageError) -> EntryCursor {
        let reader = try Database(path: database.path, role: .archive)
        try reader.execute("PRAGMA query_only = 1")
        return try EntryCursor(database: reader, layout: .archive, under: paths)
    }

    /// The archived entry for one path. For whole scans use ``cursor(under:)``.
    public func lookup(_ path: RelativePath) throws(StorageError) -> Entry? {
        try table.lookup(path)
    }

    /// Records a run's outcome in one transaction (Invariant 4): each path's new entry, applied
    /// in order (nil removes the path and everything beneath it; fingerprints are dropped), then
    /// the snapshot ids now expected from each replica (nil = unknown, forcing a full scan).
    /// - Parameter beforeCommit: runs once every row is written, just before `COMMIT`; an error
    ///   it throws rolls everything back. A run writes the rows while the replicas commit their
    ///   caches and waits here for them, so the archive still never records a change before the
    ///   replicas made it durable (Invariant 4).
    public func commit(updates: some Sequence<(RelativePath, Entry?)>, snapshotA: UInt64?, snapshotB: UInt64?,
                       beforeCommit: () throws(StorageError) -> Void = {}) throws(StorageError) {
        try database.transaction { () throws(StorageError) in
            try table.apply(updates.lazy.map { ($0.0, $0.1?.withoutFingerprint) })
            try meta.setSnapshot("snapshot.a", snapshotA)
            try meta.setSnapshot("snapshot.b", snapshotB)
            try meta.set("updated", Int64(Glibc.time(nil)))
            try beforeCommit()
        }
    }

    /// Deletes an archive file with its `-wal` and `-shm` companions (`--ignorearchives`).
    /// A missing file is fine. Take the ``ArchiveLock`` first.
    public static func removeFile(at path: String) throws(StorageError) {
        try StoreFiles.remove(path, role: .archive)
    }
}
