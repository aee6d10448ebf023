/// A path beneath a replica's root, as raw bytes.
///
/// File names on Linux are byte strings, not text: a name may be invalid UTF-8 or contain a
/// newline, and it must round-trip exactly. So a `RelativePath` keeps the bytes of its components
/// joined by `/`. The empty path is the root itself.
///
/// Every component is checked once, in the initializers (Invariant 5): it is never empty, `.` or
/// `..`, and never contains `/` or NUL. Anything that arrives from a peer or from disk becomes a
/// `RelativePath` through these checks before it is used.
///
/// Paths order as a depth-first walk that visits each directory's entries sorted by name bytes:
/// `a` < `a/x` < `a-b`. This is the order of the scanner's stream, of the scan cache and of the
/// archive, so the three can be merged with cursors instead of lookups. It equals `memcmp` order
/// of the ``sortKey`` (components joined by NUL), which is what the databases store.
public struct RelativePath: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Components joined by `/` (no leading or trailing slash); empty for the root.
    public let bytes: [UInt8]

    /// The root of the replica.
    public static let root = RelativePath(uncheckedBytes: [])

    /// Builds a path from bytes already known to be valid (components checked by the caller).
    public init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }

    /// Parses `a/b/c` from bytes, checking every component.
    /// - Throws: `PathError` when a component is empty, `.`, `..` or contains NUL.
    public init(validating bytes: some Collection<UInt8>) throws(PathError) {
        let array = Array(bytes)
        if array.isEmpty { self.bytes = []; return }
        var start = 0
        for i in 0...array.count where i == array.count || array[i] == 0x2F {
            try PathComponent.check(array[start..<i], in: array)
            start = i + 1
        }
        self.bytes = array
    }

    /// Parses a path written as text, e.g. in a profile's `path = a/b`.
    public init(validating string: String) throws(PathError) {
        try self.init(validating: Array(string.utf8))
    }

    /// Builds a path from components, each checked.
    public init(components: [PathComponent]) {
        var out: [UInt8] = []
        for (i, c) in components.enumerated() {
            if i > 0 { out.append(0x2F) }
            out.append(contentsOf: c.bytes)
        }
        self.bytes = out
    }

    public var isRoot: Bool { bytes.isEmpty }

    /// The path's components, in order.
    public var components: [PathComponent] {
        if bytes.isEmpty { return [] }
        return bytes.split(separator: 0x2F, omittingEmptySubsequences: false).map {
            PathComponent(uncheckedBytes: Array($0))
        }
    }

    /// Number of components (0 for the root).
    public var depth: Int { bytes.isEmpty ? 0 : bytes.reduce(1) { $1 == 0x2F ? $0 + 1 : $0 } }

    /// The last component, or nil for the root.
    public var lastComponent: PathComponent? {
        if bytes.isEmpty { return nil }
        if let slash = bytes.lastIndex(of: 0x2F) {
            return PathComponent(uncheckedBytes: Array(bytes[(slash + 1)...]))
        }
        return PathComponent(uncheckedBytes: bytes)
    }

    /// The parent directory's path, or nil for the root.
    public var parent: RelativePath? {
        if bytes.isEmpty { return nil }
        if let slash = bytes.lastIndex(of: 0x2F) { return RelativePath(uncheckedBytes: Array(bytes[..<slash])) }
        return .root
    }

    /// This path with one more component.
    public func appending(_ component: PathComponent) -> RelativePath {
        if bytes.isEmpty { return RelativePath(uncheckedBytes: component.bytes) }
        var out = bytes
        out.reserveCapacity(bytes.count + 1 + component.bytes.count)
        out.append(0x2F)
        out.append(contentsOf: component.bytes)
        return RelativePath(uncheckedBytes: out)
    }

    /// The smallest set of subtrees covering `paths`, sorted, none beneath another; empty (the
    /// whole root) when one of them is the root.
    public static func minimalSubtrees(_ paths: [RelativePath]) -> [RelativePath] {
        if paths.contains(where: \.isRoot) { return [] }
        var out: [RelativePath] = []
        for p in paths.sorted() where !(out.last.map { p.isDescendant(orEqualTo: $0) } ?? false) {
            out.append(p)
        }
        return out
    }

    /// True when `self` is `other` or lies beneath it. Every path lies beneath the root.
    public func isDescendant(orEqualTo other: RelativePath) -> Bool {
        if other.bytes.isEmpty { return true }
        guard bytes.count >= other.bytes.count, bytes.starts(with: other.bytes) else { return false }
        return bytes.count == other.bytes.count || bytes[other.bytes.count] == 0x2F
    }

    /// True when `self` lies strictly beneath `other`.
    public func isStrictDescendant(of other: RelativePath) -> Bool {
        bytes.count != other.bytes.count && isDescendant(orEqualTo: other)
    }

    /// The key stored in the databases: components joined by NUL, so that `memcmp` (SQLite's
    /// BLOB order) equals the walk order defined by `<`.
    public var sortKey: [UInt8] { bytes.map { $0 == 0x2F ? 0 : $0 } }

    /// Rebuilds a path from a stored ``sortKey``.
    /// - Throws: `PathError` if the stored key is not a valid path (a corrupt database).
    public init(sortKey: some Collection<UInt8>) throws(PathError) {
        try self.init(validating: sortKey.map { $0 == 0 ? 0x2F : $0 })
    }

    /// Walk order: compares byte by byte with `/` ranking below every other byte.
    public static func < (lhs: RelativePath, rhs: RelativePath) -> Bool {
        compare(lhs.bytes, rhs.bytes) < 0
    }

    /// Three-way comparison in walk order: negative, zero or positive.
    public static func compare(_ l: [UInt8], _ r: [UInt8]) -> Int {
        let n = min(l.count, r.count)
        return l.withUnsafeBufferPointer { lp in
            r.withUnsafeBufferPointer { rp in
                for i in 0..<n {
                    let a = lp[i], b = rp[i]
                    if a != b {
                        let ka: Int = a == 0x2F ? -1 : Int(a)
                        let kb: Int = b == 0x2F ? -1 : Int(b)
                        return ka - kb
                    }
                }
                return l.count - r.count
            }
        }
    }

    /// The path as text for messages: invalid UTF-8 bytes are shown as `\xNN`, control characters
    /// (a newline in a name) as `\n` or `\xNN`, so one path is always one line.
    public var description: String { PathComponent.display(bytes[...]) }
}

/// One name in a directory: raw bytes, never empty, `.` or `..`, no `/` or NUL.
public struct PathComponent: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(uncheckedBytes: [UInt8]) { self.bytes = uncheckedBytes }

    /// Checks a name (Invariant 5).
    /// - Throws: `PathError` naming what is wrong with it.
    public init(validating bytes: some Collection<UInt8>) throws(PathError) {
        let array = Array(bytes)
        try Self.check(array[...], in: array)
        self.bytes = array
    }

    public init(validating string: String) throws(PathError) {
        try self.init(validating: Array(string.utf8))
    }

    static func check(_ c: ArraySlice<UInt8>, in whole: [UInt8]) throws(PathError) {
        if c.isEmpty { throw .emptyComponent(display(whole[...])) }
        if c.count == 1 && c.first == 0x2E { throw .dotComponent(display(whole[...])) }
        if c.count == 2 && c.first == 0x2E && c.last == 0x2E { throw .dotComponent(display(whole[...])) }
        if c.contains(0) { throw .nulByte(display(whole[...].map { $0 == 0 ? 0x40 : $0 }[...])) }
        if c.contains(0x2F) { throw .slashInName(display(whole[...])) }
    }

    /// Whether the name begins with a dot (hidden by convention; `*` does not match it).
    public var isHidden: Bool { bytes.first == 0x2E }

    public static func < (lhs: PathComponent, rhs: PathComponent) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    public var description: String { Self.display(bytes[...]) }

    /// The name as a Swift string when it is valid UTF-8, for pattern matching.
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// Renders bytes for a message: valid UTF-8 as is, other bytes and control characters escaped.
    public static func display(_ bytes: ArraySlice<UInt8>) -> String {
        if let s = String(validating: bytes, as: UTF8.self),
           !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\\" }) {
            return s
        }
        var out = ""
        var i = bytes.startIndex
        while i < bytes.endIndex {
            // Decode one scalar if the bytes there are valid UTF-8; otherwise escape one byte.
            var decoded: Unicode.Scalar?
            var length = 1
            for n in 1...4 where i + n <= bytes.endIndex {
                if let s = String(validating: bytes[i..<(i + n)], as: UTF8.self), s.unicodeScalars.count == 1 {
                    decoded = s.unicodeScalars.first; length = n; break
                }
            }
            if let scalar = decoded, scalar.value >= 0x20, scalar.value != 0x7F, scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else if let scalar = decoded, scalar == "\n" {
                out += "\\n"
            } else if let scalar = decoded, scalar == "\\" {
                out += "\\\\"
            } else {
                let b = bytes[i]
                let hex = Array("0123456789abcdef")
                out += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
                length = 1
            }
            i += length
        }
        return out
    }
}

/// Why a path or name was rejected. Each case carries the offending path, escaped for display.
public enum PathError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyComponent(String)
    case dotComponent(String)
    case nulByte(String)
    case slashInName(String)

    public var description: String {
        switch self {
        case .emptyComponent(let p): return "path '\(p)' has an empty component (a doubled, leading or trailing '/')"
        case .dotComponent(let p): return "path '\(p)' has a '.' or '..' component"
        case .nulByte(let p): return "path '\(p)' contains a NUL byte"
        case .slashInName(let p): return "name '\(p)' contains '/'"
        }
    }
}
