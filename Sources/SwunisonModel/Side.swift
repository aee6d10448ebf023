/// One of the two replicas, in profile root order: the first `root` is `.a`, the second `.b`.
public enum Side: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case a = 0
    case b = 1

    public var other: Side { self == .a ? .b : .a }
    public var description: String { self == .a ? "A" : "B" }
}
