/// One path whose state on a replica differs from the replica's baseline (its state after the
/// last successful synchronisation), as a scan reports it.
///
/// A scan streams only these: in a run where nothing changed it reports nothing, so the cost of
/// a no-change run is one stat walk per side and no reconciliation work.
public struct ScanChange: Sendable, Hashable {
    public var path: RelativePath
    /// The baseline entry (the archive's state of this path), nil if the path was not there.
    public var old: Entry?
    /// The entry now on disk, nil if the path is gone.
    public var new: Entry?

    public init(path: RelativePath, old: Entry?, new: Entry?) {
        self.path = path; self.old = old; self.new = new
    }
}

/// A path the scanner could not read (permission denied, I/O error, changed while being read,
/// unsupported file type). The scan went on without it; its baseline rows, and those of
/// everything beneath it, were neither matched nor reported as deleted.
public struct ScanProblem: Sendable, Hashable, CustomStringConvertible {
    public var path: RelativePath
    public var message: String
    public init(path: RelativePath, message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// One row of a replica's baseline (scan cache): the archived state of a path plus the
/// fingerprint it had on this replica, which lets the scanner skip rereading unchanged files.
public struct BaselineEntry: Sendable, Hashable {
    public var path: RelativePath
    public var entry: Entry

    public init(path: RelativePath, entry: Entry) {
        self.path = path; self.entry = entry
    }
}

/// A baseline row that a cursor decodes into in place: the scanner reads every row of a
/// 200,000-entry baseline on each run and matches nearly all of them, so it reuses one row (and
/// its path buffer) instead of allocating a ``RelativePath`` per row.
public struct BaselineRow {
    /// The path's bytes, components joined by `/`, valid as ``RelativePath`` requires.
    public var pathBytes: [UInt8] = []
    public var entry = Entry(kind: .file)

    public init() {}

    /// The row as a value of its own (allocates the path).
    public var baselineEntry: BaselineEntry {
        BaselineEntry(path: RelativePath(uncheckedBytes: pathBytes), entry: entry)
    }
}

/// A cursor over baseline entries in walk order (see ``RelativePath``'s ordering).
/// Implemented over SQLite by the storage module; an array works in tests.
public protocol BaselineCursor {
    /// The next entry in walk order, or nil at the end.
    mutating func next() throws -> BaselineEntry?

    /// Reads the next entry into `row`, reusing its storage; false at the end (`row` is then
    /// unspecified). The default calls ``next()``.
    mutating func next(into row: inout BaselineRow) throws -> Bool
}

extension BaselineCursor {
    public mutating func next(into row: inout BaselineRow) throws -> Bool {
        guard let e = try next() else { return false }
        row.pathBytes = e.path.bytes
        row.entry = e.entry
        return true
    }
}

/// A cursor over an array (tests and small inputs).
public struct ArrayBaselineCursor: BaselineCursor {
    private var entries: [BaselineEntry]
    private var index = 0
    public init(_ entries: [BaselineEntry]) { self.entries = entries.sorted { $0.path < $1.path } }
    public mutating func next() throws -> BaselineEntry? {
        guard index < entries.count else { return nil }
        defer { index += 1 }
        return entries[index]
    }
}
