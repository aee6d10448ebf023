import SwunisonModel

/// Turns a replica's full scan (every entry present, `old == nil`, in walk order) into the
/// changes relative to the archive, by merging it with an archive cursor read in the same order.
///
/// Used when the replica's cache snapshot does not match what the archive expects, so the
/// replica could not diff itself. Feed the scan's batches in order with ``feed(_:)``, then call
/// ``finish()`` for the archive rows left over (deletions). Neither side is ever loaded whole:
/// memory is one archive row plus the batch at hand.
///
/// A change is reported for every path where `!selection.equivalent(archive, now)`, with
/// `old` = the archived entry and `new` = the scanned one (nil = deleted). Paths inside an
/// `excluded` subtree (paths the scan could not read) produce nothing: their absence from the
/// scan is not a deletion, and their archive state must stay as it is.
public struct FullScanDiff<Cursor: BaselineCursor> {
    private var archive: Cursor
    private var pending: BaselineEntry?
    private var archiveDone = false
    private let selection: AttributeSelection
    private let excluded: [RelativePath]
    private var excludedIndex = 0
    private var lastScanned: RelativePath?

    /// - Parameters:
    ///   - archive: the archive's entries beneath the scanned paths, in walk order.
    ///   - selection: which attributes count as a change.
    ///   - excluded: subtrees to leave alone (scan problems), in any order.
    public init(archive: Cursor, selection: AttributeSelection, excluded: [RelativePath] = []) {
        self.archive = archive
        self.selection = selection
        self.excluded = excluded.isEmpty ? [] : KeyRange.roots(of: excluded)
    }

    /// Merges one batch of the scan, returning the changes up to its last path, in walk order.
    /// - Throws: ``FullScanDiffError/outOfOrder(previous:next:)`` if the scan is not strictly in
    ///   walk order (a merge over unsorted input would invent deletions); errors of the cursor.
    public mutating func feed(_ batch: [ScanChange]) throws -> [ScanChange] {
        var out: [ScanChange] = []
        out.reserveCapacity(batch.count)
        for current in batch {
            if let last = lastScanned, !(last < current.path) {
                throw FullScanDiffError.outOfOrder(previous: last, next: current.path)
            }
            lastScanned = current.path
            // Archive rows before this path are gone from the replica.
            while let a = try peekArchive(), a.path < current.path {
                emit(path: a.path, old: a.entry, new: nil, into: &out)
                pending = nil
            }
            var old: Entry?
            if let a = try peekArchive(), a.path == current.path {
                old = a.entry
                pending = nil
            }
            emit(path: current.path, old: old, new: current.new, into: &out)
        }
        return out
    }

    /// Reports the archive rows after the last scanned path: all deleted on the replica.
    public mutating func finish() throws -> [ScanChange] {
        var out: [ScanChange] = []
        while let a = try peekArchive() {
            emit(path: a.path, old: a.entry, new: nil, into: &out)
            pending = nil
        }
        return out
    }

    private mutating func peekArchive() throws -> BaselineEntry? {
        if pending == nil && !archiveDone {
            pending = try archive.next()
            if pending == nil { archiveDone = true }
        }
        return pending
    }

    private mutating func emit(path: RelativePath, old: Entry?, new: Entry?, into out: inout [ScanChange]) {
        if isExcluded(path) || selection.equivalent(old, new) { return }
        out.append(ScanChange(path: path, old: old, new: new))
    }

    /// Whether `path` lies in an excluded subtree. Paths arrive in walk order and each subtree is
    /// contiguous in that order, so one index moving forward answers in amortised O(1).
    private mutating func isExcluded(_ path: RelativePath) -> Bool {
        while excludedIndex < excluded.count {
            let root = excluded[excludedIndex]
            if path.isDescendant(orEqualTo: root) { return true }
            if root < path { excludedIndex += 1 } else { return false }
        }
        return false
    }
}

/// Why a full-scan merge stopped.
public enum FullScanDiffError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The scan stream was not strictly increasing in walk order.
    case outOfOrder(previous: RelativePath, next: RelativePath)

    public var description: String {
        switch self {
        case let .outOfOrder(previous, next):
            return "the replica's scan is out of order ('\(next)' after '\(previous)'): the run stops instead of guessing"
        }
    }
}
