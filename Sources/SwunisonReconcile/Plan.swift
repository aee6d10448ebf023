import SwunisonModel

/// What to do with one path (and, for a subtree item, everything beneath it).
public enum Decision: Sendable, Hashable, CustomStringConvertible {
    /// Make the other side like `from` (create, update, delete, change kind, set attributes).
    case propagate(from: Side)
    /// A conflict settled by policy: `from` wins, and the other side's version must be backed up
    /// before it is replaced (Invariant 3).
    case resolvedConflict(from: Side, reason: String)
    /// A conflict no policy settles: skipped and reported; nothing changes on either side.
    case conflict(reason: String)
    /// Both sides already agree; only the archive must be updated to say so.
    case archiveOnly

    /// The side whose state the other side gets, if anything is copied.
    public var source: Side? {
        switch self {
        case .propagate(let side), .resolvedConflict(let side, _): return side
        case .conflict, .archiveOnly: return nil
        }
    }

    /// Whether the decision came from a conflict (resolved or not).
    public var isConflict: Bool {
        switch self {
        case .resolvedConflict, .conflict: return true
        case .propagate, .archiveOnly: return false
        }
    }

    /// The same decision with the replicas swapped. Reasons never name a side, so they carry over.
    public func mirrored() -> Decision {
        switch self {
        case .propagate(let side): return .propagate(from: side.other)
        case let .resolvedConflict(side, reason): return .resolvedConflict(from: side.other, reason: reason)
        case .conflict, .archiveOnly: return self
        }
    }

    public var description: String {
        switch self {
        case .propagate(let side): return "propagate from \(side)"
        case let .resolvedConflict(side, reason): return "conflict resolved for \(side) (\(reason))"
        case .conflict(let reason): return "conflict (\(reason))"
        case .archiveOnly: return "archive only"
        }
    }
}

/// How one side's entry differs from the archive, for Unison-style plan lines
/// (`new file ---->            a/b`, `changed  <-?-> changed    c`).
public enum ChangeKind: Sendable, Hashable, CustomStringConvertible {
    case unchanged
    /// Absent from the archive, present now, of this kind.
    case new(EntryKind)
    /// Content or kind changed (or, for a directory item, something beneath it changed).
    case changed
    /// Only the selected attributes changed.
    case props
    /// In the archive, absent now.
    case deleted

    /// Classifies `now` against `archive` with the profile's attribute selection.
    public static func between(archive: Entry?, now: Entry?, attributes: AttributeSelection) -> ChangeKind {
        switch (archive, now) {
        case (nil, nil): return .unchanged
        case (nil, let n?): return .new(n.kind)
        case (_?, nil): return .deleted
        case let (o?, n?):
            if !o.sameContent(as: n) { return .changed }
            return attributes.sameAttributes(o, n) ? .unchanged : .props
        }
    }

    /// The label Unison prints: "new file", "new dir", "new link", "changed", "props", "deleted",
    /// or the empty string when unchanged.
    public var description: String {
        switch self {
        case .unchanged: return ""
        case .new(let kind): return "new \(kind)"
        case .changed: return "changed"
        case .props: return "props"
        case .deleted: return "deleted"
        }
    }
}

/// One line of the plan: a path, what each side did to it, and what to do about it.
///
/// A *subtree item* (a decision about a directory that is not "both directories": a new or
/// deleted directory, a kind change to or from a directory, a conflict involving one) carries
/// every reported state beneath its path in `descendants`, in walk order; those paths have no
/// items of their own, and Propagate carries them out (or skips them) together with `path`.
public struct PlanItem: Sendable, Hashable, CustomStringConvertible {
    public var path: RelativePath
    public var state: PathState
    /// Every merged state strictly beneath `path`, in walk order; empty unless a subtree item.
    public var descendants: [PathState]
    public var decision: Decision
    /// What A did at `path` relative to the archive (`.changed` also when only beneath it).
    public var changeA: ChangeKind
    /// What B did at `path` relative to the archive (`.changed` also when only beneath it).
    public var changeB: ChangeKind

    public init(state: PathState, descendants: [PathState] = [], decision: Decision,
                changeA: ChangeKind, changeB: ChangeKind) {
        self.path = state.path; self.state = state; self.descendants = descendants
        self.decision = decision; self.changeA = changeA; self.changeB = changeB
    }

    /// The change on `side`.
    public func change(on side: Side) -> ChangeKind { side == .a ? changeA : changeB }

    /// `state`, then every descendant, in walk order, without copying the descendants (an
    /// initial sync's item may hold tens of thousands).
    public var allStates: FlattenSequence<[[PathState]]> { [[state], descendants].joined() }

    /// The same item with the replicas swapped.
    public func mirrored() -> PlanItem {
        PlanItem(state: state.mirrored(), descendants: descendants.map { $0.mirrored() },
                 decision: decision.mirrored(), changeA: changeB, changeB: changeA)
    }

    /// Unison-style arrow: `---->` (A to B), `<----` (B to A), `<-?->` (unresolved), `<--->`
    /// (archive only), with `?` marking a resolved conflict (`--?->`, `<-?--`).
    public var arrow: String {
        switch decision {
        case .propagate(.a): return "---->"
        case .propagate(.b): return "<----"
        case .resolvedConflict(.a, _): return "--?->"
        case .resolvedConflict(.b, _): return "<-?--"
        case .conflict: return "<-?->"
        case .archiveOnly: return "<--->"
        }
    }

    /// One plan line, e.g. `new file ---->            a/b`.
    public var description: String {
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, 8 - s.count)) }
        return "\(pad(changeA.description)) \(arrow) \(pad(changeB.description))   \(path)"
    }
}
