import SwunisonModel

/// Which columns an entry row has: the archive stores shared state only, a scan cache adds the
/// fingerprint this replica saw.
enum RowLayout: Sendable {
    case archive
    /// A scan cache of schema 1: the archive's columns plus four fingerprint columns. Only the
    /// migration to schema 2 reads it.
    case scanCacheColumns
    /// A scan cache of schema 2: entry and fingerprint in one BLOB (see ``PackedEntry``).
    case scanCache

    /// Column names after `path`, in bind/read order.
    var columns: String {
        switch self {
        case .archive: return "kind, size, mtime, mode, uid, gid, digest, link_target"
        case .scanCacheColumns: return "kind, size, mtime, mode, uid, gid, digest, link_target, inode, ctime, fp_mtime, fp_size"
        case .scanCache: return "row"
        }
    }

    /// Number of columns after `path`.
    var columnCount: Int32 {
        switch self {
        case .archive: return 8
        case .scanCacheColumns: return 12
        case .scanCache: return 1
        }
    }

    /// `?, ?, ...` for `path` plus the entry columns.
    var placeholders: String { Array(repeating: "?", count: Int(columnCount) + 1).joined(separator: ", ") }

    /// The `entries` table (named `name`). Rows are keyed by `RelativePath.sortKey`, so the
    /// primary key's `memcmp` order is the walk order and cursors merge with the scanner's stream.
    func createTable(named name: String = "entries") -> String {
        if self == .scanCache {
            return "CREATE TABLE \(name)(path BLOB NOT NULL PRIMARY KEY, row BLOB NOT NULL) WITHOUT ROWID;"
        }
        let fingerprint = self == .scanCacheColumns ? """
            ,
                inode INTEGER, ctime INTEGER, fp_mtime INTEGER, fp_size INTEGER
            """ : ""
        return """
            CREATE TABLE \(name)(
                path BLOB NOT NULL PRIMARY KEY,
                kind INTEGER NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT NULL,
                mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
                digest BLOB, link_target BLOB\(fingerprint)
            ) WITHOUT ROWID;
            """
    }
}

/// Entry <-> row encoding shared by the archive and the scan caches.
///
/// Unsigned values (`mode`, `uid`, `gid`, `inode`) are stored as their bit patterns in INTEGER
/// columns. Reading validates every field, so a damaged or foreign row becomes a `StorageError`
/// naming the file instead of a crash or a wrong decision.
enum EntryRow {
    /// Binds `path` then `entry`'s columns, starting at parameter 1.
    static func bind(path: RelativePath, entry: Entry, layout: RowLayout, to stmt: Statement) throws(StorageError) {
        try stmt.bind(KeyCoding.sortKey(of: path), at: 1)
        try bind(entry, layout: layout, to: stmt, from: 2)
    }

    /// Binds `entry`'s columns starting at parameter `first`.
    static func bind(_ entry: Entry, layout: RowLayout, to stmt: Statement, from first: Int32) throws(StorageError) {
        if layout == .scanCache {
            return try PackedEntry.withPacked(entry) { (raw) throws(StorageError) in try stmt.bind(bytes: raw, at: first) }
        }
        try stmt.bind(Int64(entry.kind.rawValue), at: first)
        try stmt.bind(entry.size, at: first + 1)
        try stmt.bind(entry.mtime, at: first + 2)
        try stmt.bind(Int64(entry.mode), at: first + 3)
        try stmt.bind(Int64(entry.uid), at: first + 4)
        try stmt.bind(Int64(entry.gid), at: first + 5)
        if let digest = entry.digest {
            try KeyCoding.withBytes(of: digest) { (raw) throws(StorageError) in try stmt.bind(bytes: raw, at: first + 6) }
        } else {
            try stmt.bindNull(at: first + 6)
        }
        try stmt.bind(entry.linkTarget, at: first + 7)
        if layout == .scanCacheColumns { try bind(entry.fingerprint, to: stmt, from: first + 8) }
    }

    /// Binds a fingerprint's four columns (all NULL for nil) starting at parameter `first`.
    static func bind(_ fingerprint: Fingerprint?, to stmt: Statement, from first: Int32) throws(StorageError) {
        try stmt.bind(fingerprint.map { Int64(bitPattern: $0.inode) }, at: first)
        try stmt.bind(fingerprint?.ctime, at: first + 1)
        try stmt.bind(fingerprint?.mtime, at: first + 2)
        try stmt.bind(fingerprint?.size, at: first + 3)
    }

    /// Reads the path in column `column` and the entry in the columns after it.
    static func read(_ stmt: Statement, layout: RowLayout, column: Int32 = 0) throws(StorageError) -> BaselineEntry {
        let path = try readPath(stmt, column: column)
        return BaselineEntry(path: path, entry: try readEntry(stmt, layout: layout, from: column + 1, path: path))
    }

    /// Reads the path in column `column` and the entry after it into `row`, reusing its buffer.
    static func read(_ stmt: Statement, layout: RowLayout, column: Int32 = 0, into row: inout BaselineRow) throws(StorageError) {
        guard !stmt.isNull(at: column) else { throw stmt.database.invalidRow("a row has a NULL path") }
        let valid = try stmt.withBlob(at: column) { (raw) throws(StorageError) in
            KeyCoding.decodePath(fromSortKey: raw, into: &row.pathBytes)
        }
        guard valid else {
            // The slow path builds the message.
            _ = try readPath(stmt, column: column)
            throw stmt.database.invalidRow("invalid path")
        }
        row.entry = try readEntry(stmt, layout: layout, from: column + 1,
                                  path: RelativePath(uncheckedBytes: row.pathBytes))
    }

    /// Reads a path stored as its sort key, checking it as `RelativePath` does.
    static func readPath(_ stmt: Statement, column: Int32) throws(StorageError) -> RelativePath {
        guard !stmt.isNull(at: column) else { throw stmt.database.invalidRow("a row has a NULL path") }
        let path = try stmt.withBlob(at: column) { (raw) throws(StorageError) in KeyCoding.path(fromSortKey: raw) }
        guard let path else {
            let shown = (stmt.blob(at: column) ?? []).map { $0 == 0 ? 0x2F : $0 }
            throw stmt.database.invalidRow("invalid path '\(PathComponent.display(shown[...]))'")
        }
        return path
    }

    /// Reads an entry whose first column is `first`; `path` is only used in messages.
    static func readEntry(_ stmt: Statement, layout: RowLayout, from first: Int32, path: RelativePath) throws(StorageError) -> Entry {
        let db = stmt.database
        if layout == .scanCache {
            // (A NULL row reads as zero bytes and fails as too short.)
            let decoded = try stmt.withBlob(at: first) { (raw) throws(StorageError) in PackedEntry.unpack(raw) }
            switch decoded {
            case .success(let entry): return entry
            case .failure(let failure): throw db.invalidRow("path '\(path)': \(failure.message)")
            }
        }
        let rawKind = stmt.int64(at: first)
        guard let byte = UInt8(exactly: rawKind), let kind = EntryKind(rawValue: byte) else {
            throw db.invalidRow("path '\(path)': unknown kind \(rawKind)")
        }
        func unsigned32(_ column: Int32, _ name: String) throws(StorageError) -> UInt32 {
            let value = stmt.int64(at: column)
            guard let v = UInt32(exactly: value) else { throw db.invalidRow("path '\(path)': \(name) \(value) out of range") }
            return v
        }
        let mode = try unsigned32(first + 3, "mode")
        let uid = try unsigned32(first + 4, "uid")
        let gid = try unsigned32(first + 5, "gid")
        var digest: Digest?
        if !stmt.isNull(at: first + 6) {
            digest = try stmt.withBlob(at: first + 6) { (raw) throws(StorageError) in
                guard let d = KeyCoding.digest(from: raw) else {
                    throw db.invalidRow("path '\(path)': digest of \(raw.count) bytes instead of \(Digest.byteCount)")
                }
                return d
            }
        }
        var entry = Entry(kind: kind, size: stmt.int64(at: first + 1), mtime: stmt.int64(at: first + 2),
                          mode: mode, uid: uid, gid: gid, digest: digest, linkTarget: stmt.blob(at: first + 7))
        if layout == .scanCacheColumns {
            let inode = stmt.optionalInt64(at: first + 8), ctime = stmt.optionalInt64(at: first + 9)
            let mtime = stmt.optionalInt64(at: first + 10), size = stmt.optionalInt64(at: first + 11)
            if let inode, let ctime, let mtime, let size {
                entry.fingerprint = Fingerprint(inode: UInt64(bitPattern: inode), ctime: ctime, mtime: mtime, size: size)
            } else if inode != nil || ctime != nil || mtime != nil || size != nil {
                throw db.invalidRow("path '\(path)': incomplete fingerprint")
            }
        }
        return entry
    }
}

/// A half-open range of sort keys, `lower ..< upper` (no upper bound when nil).
struct KeyRange: Sendable, Equatable {
    var lower: [UInt8]
    var upper: [UInt8]?

    /// `path` and everything beneath it: keys `k` with `k == p` or `p + 0x00 <= k < p + 0x01`, which
    /// is exactly `p <= k < p + 0x01` since no key continues `p` with a byte below 0x01 other than NUL.
    static func subtree(_ path: RelativePath) -> KeyRange {
        if path.isRoot { return KeyRange(lower: [], upper: nil) }
        let key = KeyCoding.sortKey(of: path)
        return KeyRange(lower: key, upper: key + [0x01])
    }

    /// Everything strictly beneath `path`.
    static func descendants(_ path: RelativePath) -> KeyRange {
        if path.isRoot { return KeyRange(lower: [0x00], upper: nil) }
        let key = KeyCoding.sortKey(of: path)
        return KeyRange(lower: key + [0x00], upper: key + [0x01])
    }

    /// The subtrees of `paths`, sorted, with overlaps removed, so reading them one after the
    /// other yields walk order. Empty `paths` means the whole tree.
    static func covering(_ paths: [RelativePath]) -> [KeyRange] {
        roots(of: paths).map(subtree)
    }

    /// `paths` sorted in walk order, without any path that lies beneath another; `[.root]` if empty.
    static func roots(of paths: [RelativePath]) -> [RelativePath] {
        if paths.isEmpty { return [.root] }
        var result: [RelativePath] = []
        for p in paths.sorted() where !(result.last.map { p.isDescendant(orEqualTo: $0) } ?? false) {
            result.append(p)
        }
        return result
    }
}

/// Prepared statements over a range of keys: one for bounded ranges, one for "to the end".
struct RangeStatements {
    let bounded: Statement
    let unbounded: Statement

    /// - Parameter sql: SQL with `%RANGE%` where the path condition goes, using `?1` and `?2`.
    init(_ database: Database, _ sql: String) throws(StorageError) {
        bounded = try database.prepare(sql.replacingOccurrences("%RANGE%", with: "path >= ?1 AND path < ?2"))
        unbounded = try database.prepare(sql.replacingOccurrences("%RANGE%", with: "path >= ?1"))
    }

    /// The statement for `range`, reset and with the range bound.
    func bound(to range: KeyRange) throws(StorageError) -> Statement {
        let stmt = range.upper == nil ? unbounded : bounded
        stmt.reset()
        try stmt.bind(range.lower, at: 1)
        if let upper = range.upper { try stmt.bind(upper, at: 2) }
        return stmt
    }
}

extension String {
    /// `self` with every occurrence of `target` replaced (no Foundation here).
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
