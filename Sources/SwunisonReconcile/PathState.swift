import SwunisonModel

/// One path as reconciliation sees it: the archive's entry and each replica's entry now.
///
/// `nil` means absent. A `PathState` exists only for paths that at least one replica reported as
/// changed; every other path is equal on both sides and to the archive, and costs nothing.
public struct PathState: Sendable, Hashable, CustomStringConvertible {
    public var path: RelativePath
    /// The state both replicas held after the last successful run (nil: the path was not there).
    public var archive: Entry?
    /// The entry on replica A now.
    public var a: Entry?
    /// The entry on replica B now.
    public var b: Entry?

    public init(path: RelativePath, archive: Entry?, a: Entry?, b: Entry?) {
        self.path = path; self.archive = archive; self.a = a; self.b = b
    }

    /// The entry on `side` now.
    public func entry(on side: Side) -> Entry? { side == .a ? a : b }

    /// The same state with the replicas swapped (tests check that reconciliation is symmetric).
    public func mirrored() -> PathState { PathState(path: path, archive: archive, a: b, b: a) }

    public var description: String {
        func show(_ e: Entry?) -> String { e.map { "\($0.kind)@\($0.mtime)" } ?? "-" }
        return "\(path): archive \(show(archive)), A \(show(a)), B \(show(b))"
    }
}

/// Why a stream of scan changes could not be merged.
public enum MergeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A replica reported `path` after `previous`, which does not follow walk order (or repeats it).
    case outOfOrder(side: Side, path: RelativePath, previous: RelativePath)
    /// A replica reported changes after its stream was declared finished.
    case fedAfterFinish(side: Side)

    public var description: String {
        switch self {
        case let .outOfOrder(side, path, previous):
            return "replica \(side) reported '\(path)' after '\(previous)', out of walk order; rescan needed"
        case .fedAfterFinish(let side):
            return "replica \(side) reported changes after the end of its scan"
        }
    }
}

/// Merges the two replicas' scan reports, each in walk order, into ``PathState``s in walk order.
///
/// Each report lists only paths that differ from that replica's baseline. A path missing from one
/// side's report is unchanged there, so that side's entry is the archive entry (the report's `old`
/// from the other side). The merger holds only what it cannot emit yet: the part of the faster
/// stream that is ahead of the slower one, never the whole tree.
///
/// Feed batches as they arrive with ``feed(side:_:)``; each call returns the states that are now
/// settled. Call ``finish(side:)`` when one side's scan ends and ``finish()`` when both have.
/// Not thread-safe: one owner feeds both sides (a value type; wrap it in a lock or actor if the
/// two scans call back on different threads).
public struct ChangeMerger: Sendable {
    /// Reported but not yet emitted changes per side; `heads` indexes the first unconsumed one.
    private var queues: [[ScanChange]] = [[], []]
    private var heads: [Int] = [0, 0]
    private var lastPaths: [RelativePath?] = [nil, nil]
    private var finished: [Bool] = [false, false]

    public init() {}

    /// Number of changes held back, waiting for the other side's stream to catch up.
    public var bufferedCount: Int { queues[0].count - heads[0] + queues[1].count - heads[1] }

    /// Adds a batch of `side`'s report and returns the states that can be emitted now, in walk order.
    /// - Throws: ``MergeError/outOfOrder(side:path:previous:)`` when the batch breaks walk order
    ///   (the whole batch is rejected), ``MergeError/fedAfterFinish(side:)`` after ``finish(side:)``.
    public mutating func feed(side: Side, _ changes: [ScanChange]) throws(MergeError) -> [PathState] {
        let s = Int(side.rawValue)
        if finished[s] { throw .fedAfterFinish(side: side) }
        if let previous = lastPaths[s], let first = changes.first, !(previous < first.path) {
            throw .outOfOrder(side: side, path: first.path, previous: previous)
        }
        try Self.checkWalkOrder(changes, side: side)
        if let last = changes.last { lastPaths[s] = last.path }
        queues[s].append(contentsOf: changes)
        return drain()
    }

    /// Declares `side`'s report complete and returns the states that can be emitted now.
    public mutating func finish(side: Side) -> [PathState] {
        finished[Int(side.rawValue)] = true
        return drain()
    }

    /// Declares both reports complete and returns every remaining state.
    public mutating func finish() -> [PathState] {
        finished = [true, true]
        return drain()
    }

    /// Merges two complete reports (each in walk order) into states in walk order.
    /// - Throws: ``MergeError/outOfOrder(side:path:previous:)`` when a report breaks walk order.
    ///
    /// The same merge as ``feed(side:_:)`` and ``finish()``, walking both arrays in place: a first
    /// sync merges 200,000 changes, and queueing them first copied every one once more.
    public static func merge(a: [ScanChange], b: [ScanChange]) throws(MergeError) -> [PathState] {
        try checkWalkOrder(a, side: .a)
        try checkWalkOrder(b, side: .b)
        var out: [PathState] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            let order = RelativePath.compare(a[i].path.bytes, b[j].path.bytes)
            if order < 0 {
                out.append(onlyOne(a[i], side: .a)); i += 1
            } else if order > 0 {
                out.append(onlyOne(b[j], side: .b)); j += 1
            } else {
                out.append(Self.both(a[i], b[j])); i += 1; j += 1
            }
        }
        while i < a.count { out.append(onlyOne(a[i], side: .a)); i += 1 }
        while j < b.count { out.append(onlyOne(b[j], side: .b)); j += 1 }
        return out
    }

    /// Throws unless every path of `changes` follows the one before it in walk order.
    private static func checkWalkOrder(_ changes: [ScanChange], side: Side) throws(MergeError) {
        for index in changes.indices.dropFirst() where !(changes[index - 1].path < changes[index].path) {
            throw .outOfOrder(side: side, path: changes[index].path, previous: changes[index - 1].path)
        }
    }

    /// Emits every state whose path is settled: a head that is smaller than the other side's head,
    /// or any head once the other side has finished.
    private mutating func drain() -> [PathState] {
        var out: [PathState] = []
        // At most every queued change: one allocation instead of a doubling series (a first
        // sync drains 200,000 states of a few hundred bytes each at once).
        out.reserveCapacity(queues[0].count - heads[0] + queues[1].count - heads[1])
        while true {
            let ha = heads[0] < queues[0].count ? queues[0][heads[0]] : nil
            let hb = heads[1] < queues[1].count ? queues[1][heads[1]] : nil
            if let ca = ha, let cb = hb {
                let order = RelativePath.compare(ca.path.bytes, cb.path.bytes)
                if order < 0 {
                    out.append(Self.onlyOne(ca, side: .a)); heads[0] += 1
                } else if order > 0 {
                    out.append(Self.onlyOne(cb, side: .b)); heads[1] += 1
                } else {
                    out.append(Self.both(ca, cb)); heads[0] += 1; heads[1] += 1
                }
            } else if let ca = ha, finished[1] {
                out.append(Self.onlyOne(ca, side: .a)); heads[0] += 1
            } else if let cb = hb, finished[0] {
                out.append(Self.onlyOne(cb, side: .b)); heads[1] += 1
            } else {
                break
            }
        }
        compact()
        return out
    }

    /// A path both sides reported. Each `old` is that side's baseline, which is the archive; they
    /// agree after a clean run, and A's is taken when they do not.
    private static func both(_ a: ScanChange, _ b: ScanChange) -> PathState {
        PathState(path: a.path, archive: a.old, a: a.new, b: b.new)
    }

    /// A path only `side` reported: the other side is unchanged, so it still holds the archive entry.
    private static func onlyOne(_ change: ScanChange, side: Side) -> PathState {
        side == .a
            ? PathState(path: change.path, archive: change.old, a: change.new, b: change.old)
            : PathState(path: change.path, archive: change.old, a: change.old, b: change.new)
    }

    /// Drops consumed changes so the buffers hold only what is pending (amortised O(1) per change).
    private mutating func compact() {
        for s in 0..<2 where heads[s] > 0 {
            if heads[s] == queues[s].count {
                queues[s].removeAll(keepingCapacity: queues[s].count <= 4096)
                heads[s] = 0
            } else if heads[s] >= 4096 && heads[s] * 2 >= queues[s].count {
                queues[s].removeFirst(heads[s])
                heads[s] = 0
            }
        }
    }
}
