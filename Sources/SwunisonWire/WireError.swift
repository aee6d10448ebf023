import SwunisonModel

/// Why the wire protocol failed: a malformed or hostile frame, a peer that does not speak the
/// protocol, or versions that do not overlap. Each description is one line.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A frame announced a length above the limit (or a negative one, read as a signed 32-bit value).
    case oversizedFrame(length: UInt64, limit: Int)
    /// The input ended in the middle of a frame or a frame ended in the middle of a field.
    case truncated(String)
    /// A field held a value the protocol does not allow (unknown tag, overlong varint, bad count).
    case malformed(String)
    /// A path from the peer had an empty, `.`, `..`, NUL or `/`-containing component (Invariant 5).
    case hostilePath(PathError)
    /// A frame carried a message type this version of the protocol does not define.
    case unknownMessage(type: UInt8)
    /// The peer's first bytes were not a swunison hello (e.g. a shell error printed to stdout).
    case notSwunison(received: String)
    /// Both sides speak the protocol but their version ranges do not overlap.
    case versionMismatch(local: ClosedRange<UInt16>, remote: ClosedRange<UInt16>, peer: String)
    /// A message arrived where the protocol does not allow it.
    case unexpected(String)
    /// The peer closed the connection on purpose and said why.
    case peerClosed(String)

    public var description: String {
        switch self {
        case let .oversizedFrame(length, limit):
            return "wire protocol error: frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .truncated(let what): return "wire protocol error: truncated \(what)"
        case .malformed(let what): return "wire protocol error: \(what)"
        case .hostilePath(let e): return "wire protocol error: peer sent a hostile path: \(e)"
        case .unknownMessage(let t): return "wire protocol error: unknown message type \(t)"
        case .notSwunison(let got):
            return "the peer does not speak the swunison protocol; it sent: \(got)"
        case let .versionMismatch(local, remote, peer):
            return "protocol version mismatch: this swunison speaks \(Self.range(local)), the \(peer) speaks "
                + "\(Self.range(remote)); install releases with a common protocol version on both hosts"
        case .unexpected(let what): return "wire protocol error: unexpected \(what)"
        case .peerClosed(let why): return "the peer closed the connection: \(why)"
        }
    }

    static func range(_ r: ClosedRange<UInt16>) -> String {
        r.lowerBound == r.upperBound ? "protocol version \(r.lowerBound)"
            : "protocol versions \(r.lowerBound)-\(r.upperBound)"
    }
}
