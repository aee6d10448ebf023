/// How a conflict is settled (Unison's `prefer` and `force` values, and their `partial` forms).
public enum Prefer: Sendable, Hashable, CustomStringConvertible {
    /// The side with the later modification time wins; a modification beats a deletion whatever
    /// the times; equal times leave the conflict unresolved.
    case newer
    /// The side with the earlier modification time wins; a modification still beats a deletion.
    case older
    /// That replica wins, deletions included.
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
        case .side(let side): return "root \(side)"
        }
    }
}
