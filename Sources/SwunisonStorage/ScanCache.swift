import Glibc
import SwunisonModel

/// A replica's scan cache (its *baseline*): per path the archived entry plus the fingerprint the
/// file had on this replica, so the scanner can trust a digest without rereading the file, and
/// the snapshot id of the run that last committed it.
///
/// The snapshot id links the cache to the client's archive: when it equals the id the archive
/// expects, the cache *is* the baseline and the scan can report only changes. A crash between
/// the cache's commit and the archive's leaves the ids different, so the next run falls back to
/// a full scan and converges (Invariant 4).
///
/// Concurrency rule: one owner at a time (see ``Database``). Cursors read through a separate
/// connection, so a cursor may stay open while ``replaceAll(with:under:)`` or a ``CacheRewrite``
/// writes: it keeps seeing the content as it was when it started (WAL read snapshot).
public final class ScanCache: @unchecked Sendable {
    /// The connection that writes (and serves lookups).
    public let database: Database
    private let reader: Database
    private let table: EntryTable
    private let meta: MetaTable

    /// The schema, oldest step first. Append only; never edit a released step.
    public static let migrations: [Migration] = [
        Migration("create entries and meta", sql: RowLayout.scanCacheColumns.createTable() + MetaTable.createTable),
        // (Its SQL drops SHA-256 digests first: packed rows hold 16-byte ones, and step 3 empties
        // the table anyway.)
        Migration("pack each entry into one blob", sql: "UPDATE entries SET digest = NULL", body: packRows),
        // Content digests became XXH3-128: every cached digest is stale, so the cache starts
        // over (the next scan of this replica rehashes its files and is a full scan).
        Migration("content digests are XXH3-128: start over", sql: """
            DELETE FROM entries;
            DELETE FROM meta WHERE key = '\(snapshotKey)';
            """),
    ]

    /// Schema 1 -> 2: re-encodes every row as a ``PackedEntry`` (fingerprints and snapshot id
    /// kept, so the next scan still trusts them and stays a delta scan).
    @Sendable static func packRows(_ database: Database) throws(StorageError) {
        try database.execute(RowLayout.scanCache.createTable(named: "entries_packed"))
        let select = try database.prepare("SELECT path, \(RowLayout.scanCacheColumns.columns) FROM entries")
        let insert = try database.prepare("INSERT INTO entries_packed(path, row) VALUES (?1, ?2)")
        while try select.step() {
            let row = try EntryRow.read(select, layout: .scanCacheColumns)
            try EntryRow.bind(path: row.path, entry: row.entry, layout: .scanCache, to: insert)
            try insert.run()
        }
        select.reset()
        try database.execute("DROP TABLE entries; ALTER TABLE entries_packed RENAME TO entries;")
    }

    static let snapshotKey = "snapshot"

    private init(database: Database, reader: Database) throws(StorageError) {
        self.database = database
        self.reader = reader
        table = try EntryTable(database: database, layout: .scanCache)
        meta = try MetaTable(database: database)
    }

    /// Opens the scan cache at `path`, creating it (and its schema) if needed.
    /// - Throws: `StorageError`: `.unreadable` for a damaged or foreign file, `.newerSchema`
    ///   for a cache written by a newer swunison.
    public static func open(path: String) throws(StorageError) -> ScanCache {
        let database = try Database(path: path, role: .scanCache)
        try database.migrate(migrations)
        let reader = try Database(path: path, role: .scanCache)
        try reader.execute("PRAGMA query_only = 1")
        return try ScanCache(database: database, reader: reader)
    }

    /// The file, as given to ``open(path:)``.
    public var path: String { database.path }

    /// The snapshot id of the last committed run; nil when the cache content is not a committed
    /// baseline (new cache, or replaced by a full scan and not committed since).
    public var snapshot: UInt64? {
        get throws(StorageError) { try meta.snapshot(Self.snapshotKey) }
    }

    /// The entries beneath `paths` (all when empty), in walk order, streamed.
    public func cursor(under paths: [RelativePath] = []) throws(StorageError) -> EntryCursor {
        try EntryCursor(database: reader, layout: .scanCache, under: paths)
    }

    /// The stored entry (with fingerprint) for one path. For a whole scan use ``cursor(under:)``:
    /// one query per path costs far more than a merge.
    public func lookup(_ path: RelativePath) throws(StorageError) -> Entry? {
        try table.lookup(path)
    }

    /// Number of stored entries.
    public var entryCount: Int {
        get throws(StorageError) { try table.count() }
    }

    /// Replaces everything beneath `paths` (all when empty) by `entries`, in one transaction,
    /// and clears the snapshot id: used after a full scan, whose result is not a committed
    /// baseline until the run commits. `entries` is consumed lazily, row by row.
    /// Entries should lie beneath `paths`; others are stored too.
    public func replaceAll(with entries: some Sequence<BaselineEntry>, under paths: [RelativePath] = []) throws(StorageError) {
        let rewrite = try beginRewrite(under: paths)
        try rewrite.add(entries)
        try rewrite.commit()
    }

    /// Starts replacing the content beneath `paths` batch by batch, for a scanner that produces
    /// its entries over time: the old rows are deleted and the snapshot cleared inside one open
    /// transaction; ``CacheRewrite/commit()`` makes it visible, dropping the rewrite rolls it back.
    /// Only the rewrite may write to this cache until then.
    public func beginRewrite(under paths: [RelativePath] = []) throws(StorageError) -> CacheRewrite {
        try CacheRewrite(table: table, meta: meta, paths: paths)
    }

    /// Records a run's outcome: each path's new entry (nil removes the path and everything
    /// beneath it), applied in order, and the new snapshot id, in one transaction (Invariant 4).
    public func apply(_ updates: [(RelativePath, Entry?)], snapshot: UInt64) throws(StorageError) {
        let update = try beginUpdate()
        try update.add(updates)
        try update.commit(snapshot: snapshot)
    }

    /// Starts recording a run's outcome batch by batch (a server applies each batch as it
    /// arrives, instead of all of them after the last): ``BaselineUpdateTransaction/commit(snapshot:)``
    /// makes them visible with the new snapshot id, dropping the transaction rolls it back. Only
    /// it may write to this cache until then.
    public func beginUpdate() throws(StorageError) -> BaselineUpdateTransaction {
        try BaselineUpdateTransaction(table: table, meta: meta)
    }

    /// Stores new fingerprints for rows whose content and attributes did not change (a file
    /// rehashed after a `touch`, a copy with a new inode), keeping everything else and the
    /// snapshot id. Rows not in the cache are ignored; a row without fingerprint clears it.
    public func refreshFingerprints(_ rows: [BaselineEntry]) throws(StorageError) {
        guard !rows.isEmpty else { return }
        // The fingerprint lives inside the packed row: read, change, write back.
        try database.transaction { () throws(StorageError) in
            for row in rows {
                guard var stored = try table.lookup(row.path) else { continue }
                stored.fingerprint = row.entry.fingerprint
                try table.upsert(row.path, stored)
            }
        }
    }

    /// Deletes a scan cache file with its `-wal` and `-shm` companions (a missing file is fine).
    public static func removeFile(at path: String) throws(StorageError) {
        try StoreFiles.remove(path, role: .scanCache)
    }
}

/// A run's outcome being recorded in a scan cache (see ``ScanCache/beginUpdate()``). Holds the
/// write transaction; rolls back in `deinit` unless committed.
public final class BaselineUpdateTransaction: @unchecked Sendable {
    private let table: EntryTable
    private let meta: MetaTable
    private let transaction: HeldTransaction
    private var order = EntryTable.WalkOrder(startingEmpty: false)

    init(table: EntryTable, meta: MetaTable) throws(StorageError) {
        self.table = table
        self.meta = meta
        // Room for every page the update dirties (about 30 MB after an initial sync of 200,000
        // files): with SQLite's default 2 MB, dirty pages spill into the WAL during the
        // transaction and are written there again at the commit. Memory is taken only as pages
        // are used, and given back when the transaction ends.
        try table.database.execute("PRAGMA cache_size = -\(Self.cacheKiB)")
        transaction = try HeldTransaction(table.database, what: "baseline update") { [database = table.database] in
            try? database.execute("PRAGMA cache_size = -2000; PRAGMA shrink_memory")
        }
        try transaction.run { () throws(StorageError) in order = try EntryTable.WalkOrder(startingEmpty: table.isEmpty()) }
    }

    /// Page cache for the transaction, in KiB.
    static let cacheKiB = 96 << 10

    deinit { rollback() }

    /// Applies updates in order (nil removes the path and everything beneath it), after those
    /// of earlier calls; rolls everything back if a write fails.
    public func add(_ updates: some Sequence<(RelativePath, Entry?)>) throws(StorageError) {
        try transaction.run { () throws(StorageError) in try table.apply(updates, order: &order) }
    }

    /// Sets the snapshot id and commits everything added (Invariant 4: call it only once what
    /// the updates describe is durable on disk).
    public func commit(snapshot: UInt64) throws(StorageError) {
        try transaction.commit { () throws(StorageError) in try meta.setSnapshot(ScanCache.snapshotKey, snapshot) }
    }

    /// Abandons the update; the cache keeps its previous content and snapshot id.
    public func rollback() { transaction.rollback() }
}

/// A replacement of a scan cache's content in progress (see ``ScanCache/beginRewrite(under:)``).
/// Holds the write transaction; rolls back in `deinit` unless committed.
public final class CacheRewrite: @unchecked Sendable {
    private let table: EntryTable
    private let transaction: HeldTransaction

    init(table: EntryTable, meta: MetaTable, paths: [RelativePath]) throws(StorageError) {
        self.table = table
        transaction = try HeldTransaction(table.database, what: "rewrite")
        try transaction.run { () throws(StorageError) in
            for range in KeyRange.covering(paths) { try table.delete(range) }
            try meta.setSnapshot(ScanCache.snapshotKey, nil)
        }
    }

    deinit { rollback() }

    /// Adds entries (inserting or replacing rows); rolls everything back if a write fails.
    public func add(_ entries: some Sequence<BaselineEntry>) throws(StorageError) {
        try transaction.run { () throws(StorageError) in
            for e in entries { try table.upsert(e.path, e.entry) }
        }
    }

    /// Commits the new content (snapshot id stays nil until the run's ``ScanCache/apply(_:snapshot:)``).
    public func commit() throws(StorageError) { try transaction.commit() }

    /// Abandons the rewrite; the cache keeps its previous content and snapshot id.
    public func rollback() { transaction.rollback() }
}

/// The write transaction a ``CacheRewrite`` or a ``BaselineUpdateTransaction`` holds: whatever
/// fails inside it rolls all of it back, and nothing runs in it once it is committed or rolled back.
final class HeldTransaction {
    private let database: Database
    /// What holds it, for the error after its end.
    private let what: String
    private var isOpen: Bool
    /// Runs once the transaction has ended, committed or not.
    private let atEnd: () -> Void

    init(_ database: Database, what: String, atEnd: @escaping () -> Void = {}) throws(StorageError) {
        self.database = database
        self.what = what
        self.atEnd = atEnd
        do {
            try database.execute("BEGIN IMMEDIATE")
        } catch {
            atEnd()
            throw error
        }
        isOpen = true
    }

    /// Runs `body` inside the transaction; rolls back and rethrows if it fails.
    func run(_ body: () throws(StorageError) -> Void) throws(StorageError) {
        guard isOpen else {
            throw StorageError(.sqlite, role: .scanCache, file: database.path,
                               message: "the \(what) was already committed or rolled back")
        }
        do {
            try body()
        } catch {
            rollback()
            throw error
        }
    }

    /// Runs `last` and commits.
    func commit(_ last: () throws(StorageError) -> Void = {}) throws(StorageError) {
        try run { () throws(StorageError) in
            try last()
            CrashPoint.reached()
            try database.execute("COMMIT")
            isOpen = false
            atEnd()
        }
    }

    func rollback() {
        guard isOpen else { return }
        isOpen = false
        if database.isInTransaction { try? database.execute("ROLLBACK") }
        atEnd()
    }
}

/// Removal of a database file and its SQLite companions.
enum StoreFiles {
    static func remove(_ path: String, role: StoreRole) throws(StorageError) {
        for file in [path, path + "-wal", path + "-shm", path + "-journal"] {
            if unlink(file) != 0 && errno != ENOENT {
                let e = errno
                throw StorageError(.system(errno: e), role: role, file: file,
                                   message: "cannot remove it: \(String(cString: strerror(e)))")
            }
        }
    }
}
