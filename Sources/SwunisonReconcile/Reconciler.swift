import SwunisonModel

/// Reconciles path states, in walk order, into a plan (DESIGN.md's three-way table).
///
/// Pure: no I/O, no clocks, no globals; the same states and options always give the same plan.
/// - Parameters:
///   - states: merged states in walk order (as ``ChangeMerger`` emits them).
///   - options: attribute selection and conflict policies.
/// - Returns: plan items in walk order of their paths.
public func reconcile(_ states: some Sequence<PathState>, options: ReconcileOptions) -> [PlanItem] {
    var reconciler = Reconciler(options: options)
    var plan: [PlanItem] = []
    for state in states { reconciler.add(state, to: &plan) }
    reconciler.finish(to: &plan)
    return plan
}

/// The streaming form of ``reconcile(_:options:)``: feed states in walk order, collect items.
///
/// Memory holds one open subtree at most (the states beneath a directory whose item is still
/// being decided), never the whole tree. Items come out in walk order of their paths; a subtree
/// item comes out when the first state outside its subtree arrives, or at ``finish(to:)``.
public struct Reconciler: Sendable {
    public let options: ReconcileOptions
    /// A directory-involving state whose decision waits for every state beneath it.
    private var subtreeRoot: PathState?
    private var subtreeDescendants: [PathState] = []
    private var lastPath: RelativePath?

    public init(options: ReconcileOptions) { self.options = options }

    /// Adds the next state (walk order) and appends every item that is now decided to `plan`.
    public mutating func add(_ state: PathState, to plan: inout [PlanItem]) {
        assert(lastPath.map { $0 < state.path } ?? true, "states must arrive in walk order")
        lastPath = state.path

        if let root = subtreeRoot {
            if state.path.isStrictDescendant(of: root.path) {
                subtreeDescendants.append(state)
                return
            }
            plan.append(settle(root, descendants: subtreeDescendants))
            subtreeRoot = nil
            subtreeDescendants = []
        }

        let attributes = options.attributes
        if attributes.equivalent(state.a, state.b) {
            // At this point we know both replicas agree on the path (both absent counts), so there
            // is nothing to copy. The archive may still lag behind them (both made the same change,
            // or only unselected details such as a directory's mtime moved): record what they hold.
            if !Self.archiveMatches(state) {
                plan.append(item(state, decision: .archiveOnly))
            }
            return
        }

        let aIsDirectory = state.a?.kind == .directory, bIsDirectory = state.b?.kind == .directory
        if (aIsDirectory || bIsDirectory || state.archive?.kind == .directory) && !(aIsDirectory && bIsDirectory) {
            // At this point we know the replicas disagree and a directory is involved on one side
            // only (created, deleted, or a kind change to or from a directory). Whatever happens to
            // the path happens to its whole subtree, so the decision waits for every state beneath it.
            subtreeRoot = state
            return
        }

        // At this point we know the replicas disagree and either neither holds a directory here, or
        // both do (then only their attributes can differ, and the children are reconciled on their own).
        plan.append(settle(state, descendants: []))
    }

    /// Decides the pending subtree, if any, and appends it to `plan`. Call once, after the last state.
    public mutating func finish(to plan: inout [PlanItem]) {
        if let root = subtreeRoot {
            plan.append(settle(root, descendants: subtreeDescendants))
            subtreeRoot = nil
            subtreeDescendants = []
        }
    }

    // MARK: - Deciding

    /// Decides a path on which the replicas disagree, with the states beneath it for a subtree item.
    private func settle(_ state: PathState, descendants: [PathState]) -> PlanItem {
        let attributes = options.attributes
        let changedA = !attributes.equivalent(state.archive, state.a)
        let changedB = !attributes.equivalent(state.archive, state.b)

        // Either one side's change goes across, or this is a conflict of some kind.
        let conflict: ConflictKind?
        var decision: Decision
        if changedA != changedB {
            let changed: Side = changedA ? .a : .b
            // At this point we know only one side changed the path itself, so its change goes to
            // the other side, unless the other side changed something beneath it that the change
            // would destroy: deleting (or replacing) a directory the other side edited inside is a
            // conflict over the whole subtree. Beneath-changes the changed side already agrees with
            // (a file both sides removed) do not count.
            if Self.otherSideChangedInside(state, descendants, changed: changed, attributes) {
                let kind: ConflictKind = state.entry(on: changed) == nil
                    ? .deletedVersusChangedInside : .replacedVersusChangedInside
                conflict = kind
                decision = resolve(kind, state, descendants)
            } else {
                conflict = nil
                decision = .propagate(from: changed)
            }
        } else {
            // At this point we know both sides changed the path, differently (equal replicas were
            // handled before). Two directories differ only in attributes; anything else is a
            // content, kind or delete/modify conflict.
            let kind = ConflictKind(state)
            conflict = kind
            decision = resolve(kind, state, descendants)
        }

        if let policy = options.forced(for: state.path),
           case .winner(let side, _) = choose(policy, state, descendants) {
            // `force` overrides everything, including one-sided changes it sends back the other way.
            // The reverted version is a loser like any other, so it is backed up (Invariant 3).
            if let conflict {
                decision = .resolvedConflict(from: side, reason: "\(conflict); forced")
            } else if decision != .propagate(from: side) {
                decision = .resolvedConflict(from: side, reason: "forced; reverts the change on the other side")
            }
        }
        return item(state, descendants: descendants, decision: decision)
    }

    /// Settles a conflict by the policy for its path, or leaves it to the user saying why
    /// (nothing changes on either side then).
    private func resolve(_ conflict: ConflictKind, _ state: PathState, _ descendants: [PathState]) -> Decision {
        switch choose(options.preference(for: state.path), state, descendants) {
        case let .winner(side, how): return .resolvedConflict(from: side, reason: "\(conflict); \(how)")
        case .unresolved(let why): return .conflict(reason: "\(conflict); \(why)")
        }
    }

    /// Which side a policy picks for `state` (and its subtree), or why it picks none.
    private func choose(_ policy: Prefer?, _ state: PathState, _ descendants: [PathState]) -> Choice {
        guard let policy else { return .unresolved("no preference set") }
        switch policy {
        case .side(let side):
            return .winner(side, "preferred side kept")
        case .newer, .older:
            let aPresent = state.a != nil, bPresent = state.b != nil
            // A modification beats a deletion whatever the times: keeping the surviving version
            // loses nothing, deleting it would (and a deleted entry has no mtime to compare).
            if aPresent != bPresent { return .winner(aPresent ? .a : .b, "modification kept over deletion") }
            if !aPresent { return .unresolved("both deleted") }
            let timeA = latestChange(on: .a, state, descendants)
            let timeB = latestChange(on: .b, state, descendants)
            if timeA == timeB { return .unresolved("same modification time") }
            let aWins = (timeA > timeB) == (policy == .newer)
            return .winner(aWins ? .a : .b, policy == .newer ? "newer kept" : "older kept")
        }
    }

    /// The mtime that stands for `side`'s version of a subtree: its entry at the path, or the
    /// latest entry it changed beneath (a directory's own mtime does not move when a file inside
    /// is rewritten).
    private func latestChange(on side: Side, _ state: PathState, _ descendants: [PathState]) -> Nanoseconds {
        var latest = state.entry(on: side)?.mtime ?? .min
        for d in descendants {
            if let e = d.entry(on: side), e.mtime > latest, !options.attributes.equivalent(d.archive, e) {
                latest = e.mtime
            }
        }
        return latest
    }

    /// Whether the side that did not change the path changed something beneath it that the
    /// changed side does not already agree with.
    private static func otherSideChangedInside(_ state: PathState, _ descendants: [PathState], changed: Side,
                                               _ attributes: AttributeSelection) -> Bool {
        let other = changed.other
        return descendants.contains { d in
            let theirs = d.entry(on: other)
            return !attributes.equivalent(d.archive, theirs) && !attributes.equivalent(d.entry(on: changed), theirs)
        }
    }

    /// Whether the archive already holds exactly what both replicas hold (fingerprints aside).
    private static func archiveMatches(_ state: PathState) -> Bool {
        let archive = state.archive?.withoutFingerprint
        return archive == state.a?.withoutFingerprint && archive == state.b?.withoutFingerprint
    }

    /// Builds the item, classifying each side's change (a directory counts as changed when
    /// something beneath it changed on that side).
    private func item(_ state: PathState, descendants: [PathState] = [], decision: Decision) -> PlanItem {
        let attributes = options.attributes
        func change(_ side: Side) -> ChangeKind {
            let kind = ChangeKind.between(archive: state.archive, now: state.entry(on: side), attributes: attributes)
            guard kind == .unchanged || kind == .props else { return kind }
            let inside = descendants.contains { !attributes.equivalent($0.archive, $0.entry(on: side)) }
            return inside ? .changed : kind
        }
        return PlanItem(state: state, descendants: descendants, decision: decision,
                        changeA: change(.a), changeB: change(.b))
    }
}

/// What a policy made of a conflict.
private enum Choice {
    case winner(Side, String)
    case unresolved(String)
}

/// What kind of conflict a path has, worded for the user; never names a side, so that a
/// mirrored conflict reads the same.
private enum ConflictKind: CustomStringConvertible {
    case bothCreated(sameContent: Bool)
    case bothChanged(sameContent: Bool)
    case changedVersusDeleted
    case directoryProperties
    case deletedVersusChangedInside
    case replacedVersusChangedInside

    /// Classifies a path both sides changed differently.
    init(_ state: PathState) {
        guard let a = state.a, let b = state.b else { self = .changedVersusDeleted; return }
        if a.kind == .directory && b.kind == .directory { self = .directoryProperties; return }
        self = state.archive == nil ? .bothCreated(sameContent: a.sameContent(as: b))
                                    : .bothChanged(sameContent: a.sameContent(as: b))
    }

    var description: String {
        switch self {
        case .bothCreated(true): return "both created, properties differ"
        case .bothCreated(false): return "both created, contents differ"
        case .bothChanged(true): return "both changed properties"
        case .bothChanged(false): return "both changed"
        case .changedVersusDeleted: return "changed on one side, deleted on the other"
        case .directoryProperties: return "directory properties differ"
        case .deletedVersusChangedInside: return "directory deleted on one side, changed inside on the other"
        case .replacedVersusChangedInside: return "directory replaced on one side, changed inside on the other"
        }
    }
}
