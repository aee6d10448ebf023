import SwunisonModel

/// A conflict policy (Unison's `prefer` / `force` values).
public enum Prefer: Sendable, Hashable, CustomStringConvertible {
    /// The side with the later mtime wins; a modification beats a deletion whatever the times;
    /// equal mtimes leave the conflict unresolved.
    case newer
    /// The side with the earlier mtime wins; a modification still beats a deletion.
    case older
    /// This side wins, deletions included.
    case side(Side)

    /// The same policy with the replicas swapped.
    public func mirrored() -> Prefer {
        if case .side(let s) = self { return .side(s.other) }
        return self
    }

    public var description: String {
        switch self {
        case .newer: return "newer"
        case .older: return "older"
        case .side(let s): return "\(s)"
        }
    }
}

/// The preferences reconciliation depends on, already parsed and typed.
public struct ReconcileOptions: Sendable {
    /// Which attributes take part in "equal" (content plus these).
    public var attributes: AttributeSelection
    /// How conflicts are settled (`prefer`); nil leaves them to the user.
    public var prefer: Prefer?
    /// Per-path policy (`preferpartial`); a non-nil answer takes precedence over ``prefer``.
    public var preferFor: @Sendable (RelativePath) -> Prefer?
    /// Direction imposed on every item, conflict or not (`force`); it can revert a change.
    public var force: Prefer?
    /// Per-path `force` (`forcepartial`); a non-nil answer takes precedence over ``force``.
    public var forceFor: @Sendable (RelativePath) -> Prefer?

    public init(attributes: AttributeSelection = AttributeSelection(), prefer: Prefer? = nil,
                preferFor: @escaping @Sendable (RelativePath) -> Prefer? = { _ in nil },
                force: Prefer? = nil,
                forceFor: @escaping @Sendable (RelativePath) -> Prefer? = { _ in nil }) {
        self.attributes = attributes; self.prefer = prefer; self.preferFor = preferFor
        self.force = force; self.forceFor = forceFor
    }

    /// The policy that settles a conflict at `path`.
    public func preference(for path: RelativePath) -> Prefer? { preferFor(path) ?? prefer }

    /// The forced direction for `path`, if any.
    public func forced(for path: RelativePath) -> Prefer? { forceFor(path) ?? force }

    /// The same options with the replicas swapped (every `.side` policy names the other side).
    public func mirrored() -> ReconcileOptions {
        let preferFor = self.preferFor, forceFor = self.forceFor
        return ReconcileOptions(attributes: attributes, prefer: prefer?.mirrored(),
                                preferFor: { preferFor($0)?.mirrored() }, force: force?.mirrored(),
                                forceFor: { forceFor($0)?.mirrored() })
    }
}
