import SwunisonModel

/// A streaming cursor over stored entries in walk order, one SQLite statement stepping through
/// one key range after another (the subtrees asked for, sorted and without overlap).
///
/// It never loads the table: memory stays flat whatever the number of rows. While it is open it
/// holds a read snapshot of the database; it ends that read when it reaches the end. Do not
/// write to the same database while iterating (SQLite leaves the result undefined).
public struct EntryCursor: BaselineCursor {
    private let statements: RangeStatements
    private let layout: RowLayout
    private let ranges: [KeyRange]
    private var index = 0
    private var started = false

    init(database: Database, layout: RowLayout, under paths: [RelativePath]) throws(StorageError) {
        statements = try RangeStatements(database, "SELECT path, \(layout.columns) FROM entries WHERE %RANGE% ORDER BY path")
        self.layout = layout
        ranges = KeyRange.covering(paths)
    }

    /// The next entry in walk order, or nil at the end.
    /// - Throws: `StorageError` when SQLite fails or a row does not decode.
    public mutating func next() throws(StorageError) -> BaselineEntry? {
        while index < ranges.count {
            let stmt = started ? current : try statements.bound(to: ranges[index])
            started = true
            if try stmt.step() { return try EntryRow.read(stmt, layout: layout) }
            stmt.reset()
            index += 1
            started = false
        }
        return nil
    }

    /// The next entry in walk order decoded into `row` (no allocation once its path buffer has
    /// grown); false at the end.
    public mutating func next(into row: inout BaselineRow) throws(StorageError) -> Bool {
        while index < ranges.count {
            let stmt = started ? current : try statements.bound(to: ranges[index])
            started = true
            if try stmt.step() {
                try EntryRow.read(stmt, layout: layout, into: &row)
                return true
            }
            stmt.reset()
            index += 1
            started = false
        }
        return false
    }

    private var current: Statement { ranges[index].upper == nil ? statements.unbounded : statements.bounded }
}

/// The `entries` table of an archive or scan cache, with its prepared statements (reused for
/// every row: one compile per connection, not per path).
final class EntryTable: @unchecked Sendable {
    let database: Database
    let layout: RowLayout
    private let upsertStatement: Statement
    private let lookupStatement: Statement
    private let deleteRange: RangeStatements

    init(database: Database, layout: RowLayout) throws(StorageError) {
        self.database = database
        self.layout = layout
        upsertStatement = try database.prepare("INSERT OR REPLACE INTO entries(path, \(layout.columns)) VALUES (\(layout.placeholders))")
        lookupStatement = try database.prepare("SELECT path, \(layout.columns) FROM entries WHERE path = ?1")
        deleteRange = try RangeStatements(database, "DELETE FROM entries WHERE %RANGE%")
    }

    func cursor(under paths: [RelativePath]) throws(StorageError) -> EntryCursor {
        try EntryCursor(database: database, layout: layout, under: paths)
    }

    func lookup(_ path: RelativePath) throws(StorageError) -> Entry? {
        defer { lookupStatement.reset() }
        try lookupStatement.bind(KeyCoding.sortKey(of: path), at: 1)
        guard try lookupStatement.step() else { return nil }
        return try EntryRow.read(lookupStatement, layout: layout).entry
    }

    /// Inserts or replaces one row.
    func upsert(_ path: RelativePath, _ entry: Entry) throws(StorageError) {
        try EntryRow.bind(path: path, entry: entry, layout: layout, to: upsertStatement)
        try upsertStatement.run()
    }

    /// Deletes the rows in `range`.
    func delete(_ range: KeyRange) throws(StorageError) {
        try deleteRange.bound(to: range).run()
    }

    /// Applies one path's new state: nil removes the path and its whole subtree; a
    /// non-directory also drops any rows left beneath it (a file has no children, so such rows
    /// could only be stale); a directory keeps its children, which get their own updates.
    ///
    /// `nothingBeneath`: the caller knows the table holds nothing beneath `path`, so the deletes
    /// are skipped.
    func apply(_ path: RelativePath, _ entry: Entry?, nothingBeneath: Bool = false) throws(StorageError) {
        guard let entry else {
            if !nothingBeneath { try delete(.subtree(path)) }
            return
        }
        if entry.kind != .directory && !nothingBeneath { try delete(.descendants(path)) }
        try upsert(path, entry)
    }

    /// Applies many updates in order (``apply(_:_:nothingBeneath:)``). When the table starts
    /// empty and the updates come in walk order (a path before anything beneath it), nothing
    /// can be beneath a path when it is applied, and the deletes, about 40 % of the cost of a
    /// first sync's 200,000 updates, are skipped; an update out of that order, or a second one
    /// for the same path (whose first may have inserted it), turns them back on.
    func apply(_ updates: some Sequence<(RelativePath, Entry?)>) throws(StorageError) {
        var order = try WalkOrder(startingEmpty: isEmpty())
        try apply(updates, order: &order)
    }

    /// ``apply(_:)`` continued over several calls (one transaction fed batch by batch): `order`
    /// carries what the earlier batches showed.
    func apply(_ updates: some Sequence<(RelativePath, Entry?)>, order: inout WalkOrder) throws(StorageError) {
        for (path, entry) in updates {
            try apply(path, entry, nothingBeneath: order.nothingBeneath(path))
        }
    }

    /// Whether updates applied so far allow skipping the deletes (see ``apply(_:)``).
    struct WalkOrder {
        private var stillInOrder: Bool
        private var previous: RelativePath?

        init(startingEmpty: Bool) { stillInOrder = startingEmpty }

        /// Records `path` as the next update; true while nothing can be beneath it yet.
        mutating func nothingBeneath(_ path: RelativePath) -> Bool {
            if stillInOrder, let previous, RelativePath.compare(path.bytes, previous.bytes) <= 0 { stillInOrder = false }
            previous = path
            return stillInOrder
        }
    }

    func count() throws(StorageError) -> Int {
        let stmt = try database.prepare("SELECT count(*) FROM entries")
        try stmt.step()
        return Int(stmt.int64(at: 0))
    }

    func isEmpty() throws(StorageError) -> Bool {
        let stmt = try database.prepare("SELECT 1 FROM entries LIMIT 1")
        return try !stmt.step()
    }
}

/// The `meta` key/value table: snapshot ids, roots, times.
struct MetaTable {
    static let createTable = "CREATE TABLE meta(key TEXT NOT NULL PRIMARY KEY, value) WITHOUT ROWID;"

    let database: Database
    private let getStatement: Statement
    private let setStatement: Statement

    init(database: Database) throws(StorageError) {
        self.database = database
        getStatement = try database.prepare("SELECT value FROM meta WHERE key = ?1")
        setStatement = try database.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")
    }

    func int64(_ key: String) throws(StorageError) -> Int64? {
        defer { getStatement.reset() }
        try getStatement.bind(key, at: 1)
        guard try getStatement.step() else { return nil }
        return getStatement.optionalInt64(at: 0)
    }

    func text(_ key: String) throws(StorageError) -> String? {
        defer { getStatement.reset() }
        try getStatement.bind(key, at: 1)
        guard try getStatement.step() else { return nil }
        return getStatement.text(at: 0)
    }

    func set(_ key: String, _ value: Int64?) throws(StorageError) {
        try setStatement.bind(key, at: 1)
        try setStatement.bind(value, at: 2)
        try setStatement.run()
    }

    func set(_ key: String, text value: String?) throws(StorageError) {
        try setStatement.bind(key, at: 1)
        try setStatement.bind(value, at: 2)
        try setStatement.run()
    }

    /// A snapshot id, stored as the bit pattern of a UInt64 (ids may use all 64 bits).
    func snapshot(_ key: String) throws(StorageError) -> UInt64? {
        try int64(key).map { UInt64(bitPattern: $0) }
    }

    func setSnapshot(_ key: String, _ id: UInt64?) throws(StorageError) {
        try set(key, id.map { Int64(bitPattern: $0) })
    }
}
