import SwunisonModel

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
