// The little JSON the status file needs, written by hand (no Foundation in Sources/).
//
// The writer emits objects in the order their members were given, two-space indented, so the
// file is stable from one write to the next and readable with `cat`. The reader accepts any
// RFC 8259 document (unknown keys are skipped by the caller, not rejected here), with a depth
// limit so that a hostile file cannot exhaust the stack.

/// A JSON value. Objects keep their members in order; numbers keep the text they were written
/// with (the status file only reads integers back, see ``integer``).
enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    static func int(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }

    /// `.string(value)`, or `.null` for nil.
    static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// The first member named `key` of an object; nil when absent or when this is no object.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The value as an integer, when it is a number without fraction or exponent that fits.
    var integer: Int64? {
        guard case .number(let text) = self else { return nil }
        return Int64(text)
    }
}

/// One `"key": value` of an object.
struct JSONMember: Equatable, Sendable {
    var key: String
    var value: JSONValue
    init(_ key: String, _ value: JSONValue) { self.key = key; self.value = value }
}

/// Why a document is not JSON: what was wrong and at which byte.
struct JSONSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    var offset: Int
    var message: String
    var description: String { "\(message) at byte \(offset)" }
}

// MARK: - Writing

extension JSONValue {
    /// The document as UTF-8 text, two-space indented, ending with a newline.
    func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(to: &out, indent: 0)
        out.append(0x0A)
        return out
    }

    private func write(to out: inout [UInt8], indent: Int) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let value): out += Array((value ? "true" : "false").utf8)
        case .number(let text): out += Array(text.utf8)
        case .string(let text): Self.writeString(text, to: &out)
        case .array(let elements):
            guard !elements.isEmpty else { out += [0x5B, 0x5D]; return }
            out.append(0x5B)
            for (index, element) in elements.enumerated() {
                out += index == 0 ? [0x0A] : [0x2C, 0x0A]
                Self.writeIndent(indent + 1, to: &out)
                element.write(to: &out, indent: indent + 1)
            }
            out.append(0x0A)
            Self.writeIndent(indent, to: &out)
            out.append(0x5D)
        case .object(let members):
            guard !members.isEmpty else { out += [0x7B, 0x7D]; return }
            out.append(0x7B)
            for (index, member) in members.enumerated() {
                out += index == 0 ? [0x0A] : [0x2C, 0x0A]
                Self.writeIndent(indent + 1, to: &out)
                Self.writeString(member.key, to: &out)
                out += [0x3A, 0x20]
                member.value.write(to: &out, indent: indent + 1)
            }
            out.append(0x0A)
            Self.writeIndent(indent, to: &out)
            out.append(0x7D)
        }
    }

    private static func writeIndent(_ level: Int, to out: inout [UInt8]) {
        out += repeatElement(0x20, count: 2 * level)
    }

    /// A string literal as RFC 8259 section 7 wants it: `"` and `\` escaped, control characters
    /// (U+0000 to U+001F) as `\n`, `\t`... or `\u00XX`; everything else, non-ASCII included, as
    /// its UTF-8 bytes.
    static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(0x22)
        for byte in text.utf8 {
            switch byte {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, 0x6E]
            case 0x0D: out += [0x5C, 0x72]
            case 0x09: out += [0x5C, 0x74]
            case 0x08: out += [0x5C, 0x62]
            case 0x0C: out += [0x5C, 0x66]
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [0x5C, 0x75, 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(0x22)
    }
}

// MARK: - Reading

extension JSONValue {
    /// Parses one JSON document (a UTF-8 byte order mark before it is skipped).
    /// - Throws: `JSONSyntaxError` for anything RFC 8259 does not allow, invalid UTF-8, or
    ///   nesting deeper than `maximumDepth`.
    init(parsing bytes: [UInt8], maximumDepth: Int = 32) throws(JSONSyntaxError) {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw JSONSyntaxError(offset: 0, message: "not UTF-8 text")
        }
        var parser = JSONParser(bytes: bytes, maximumDepth: maximumDepth)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
        self = try parser.document()
    }
}

/// A recursive-descent reader over the bytes of one document.
private struct JSONParser {
    let bytes: [UInt8]
    let maximumDepth: Int
    var position = 0
    var depth = 0

    init(bytes: [UInt8], maximumDepth: Int) { self.bytes = bytes; self.maximumDepth = maximumDepth }

    mutating func document() throws(JSONSyntaxError) -> JSONValue {
        let value = try self.value()
        skipWhitespace()
        if position < bytes.count { throw fail("unexpected text after the document") }
        return value
    }

    private func fail(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: position, message: message) }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
    }

    private mutating func value() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count else { throw fail("unexpected end of the document") }
        switch bytes[position] {
        case 0x7B: return try nested { (p: inout JSONParser) throws(JSONSyntaxError) in try p.object() }
        case 0x5B: return try nested { (p: inout JSONParser) throws(JSONSyntaxError) in try p.array() }
        case 0x22: return .string(try string())
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39: return .number(try number())
        default: throw fail("unexpected character")
        }
    }

    private mutating func nested(_ body: (inout JSONParser) throws(JSONSyntaxError) -> JSONValue) throws(JSONSyntaxError) -> JSONValue {
        depth += 1
        defer { depth -= 1 }
        if depth > maximumDepth { throw fail("nested deeper than \(maximumDepth) levels") }
        return try body(&self)
    }

    private mutating func literal(_ word: String) throws(JSONSyntaxError) {
        let expected = Array(word.utf8)
        guard bytes.count - position >= expected.count,
              bytes[position..<(position + expected.count)].elementsEqual(expected) else {
            throw fail("unexpected character")
        }
        position += expected.count
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var members: [JSONMember] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == 0x7D { position += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == 0x22 else { throw fail("expected a key in quotes") }
            let key = try string()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == 0x3A else { throw fail("expected ':' after a key") }
            position += 1
            members.append(JSONMember(key, try value()))
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of the document in an object") }
            if bytes[position] == 0x2C { position += 1; continue }
            if bytes[position] == 0x7D { position += 1; return .object(members) }
            throw fail("expected ',' or '}' in an object")
        }
    }

    private mutating func array() throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == 0x5D { position += 1; return .array(elements) }
        while true {
            elements.append(try value())
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of the document in an array") }
            if bytes[position] == 0x2C { position += 1; continue }
            if bytes[position] == 0x5D { position += 1; return .array(elements) }
            throw fail("expected ',' or ']' in an array")
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = position
        func digits(_ p: inout JSONParser) -> Int {
            let from = p.position
            while p.position < p.bytes.count, (0x30...0x39).contains(p.bytes[p.position]) { p.position += 1 }
            return p.position - from
        }
        if bytes[position] == 0x2D { position += 1 }
        guard position < bytes.count, (0x30...0x39).contains(bytes[position]) else { throw fail("expected a digit") }
        if bytes[position] == 0x30 { position += 1 } else { _ = digits(&self) }
        if position < bytes.count, bytes[position] == 0x2E {
            position += 1
            guard digits(&self) > 0 else { throw fail("expected a digit after '.'") }
        }
        if position < bytes.count, bytes[position] == 0x65 || bytes[position] == 0x45 {
            position += 1
            if position < bytes.count, bytes[position] == 0x2B || bytes[position] == 0x2D { position += 1 }
            guard digits(&self) > 0 else { throw fail("expected a digit in an exponent") }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    /// A string literal: escapes decoded, a surrogate pair joined; a lone surrogate becomes
    /// U+FFFD (this writer never produces one).
    private mutating func string() throws(JSONSyntaxError) -> String {
        position += 1
        var out: [UInt8] = []
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[position]
            switch byte {
            case 0x22:
                position += 1
                return String(decoding: out, as: UTF8.self)
            case 0x5C:
                position += 1
                guard position < bytes.count else { throw fail("unterminated string") }
                let escape = bytes[position]
                position += 1
                switch escape {
                case 0x22, 0x5C, 0x2F: out.append(escape)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75: out += Array(String(try unicodeEscape()).utf8)
                default: throw fail("unknown escape '\\\(Unicode.Scalar(escape))'")
                }
            case 0x00..<0x20:
                throw fail("control character in a string (it must be escaped)")
            default:
                out.append(byte)
                position += 1
            }
        }
    }

    /// The scalar of `\uXXXX` (the `\u` already read), joining a surrogate pair.
    private mutating func unicodeEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
        let first = try hex4()
        if (0xD800...0xDBFF).contains(first), bytes.count - position >= 6,
           bytes[position] == 0x5C, bytes[position + 1] == 0x75 {
            let saved = position
            position += 2
            let second = try hex4()
            if (0xDC00...0xDFFF).contains(second) {
                let value = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                return Unicode.Scalar(value) ?? "\u{FFFD}"
            }
            position = saved
        }
        return Unicode.Scalar(first) ?? "\u{FFFD}"
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard bytes.count - position >= 4 else { throw fail("expected four hexadecimal digits after '\\u'") }
        var value: UInt32 = 0
        for byte in bytes[position..<(position + 4)] {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: throw fail("expected four hexadecimal digits after '\\u'")
            }
            value = value << 4 | UInt32(digit)
        }
        position += 4
        return value
    }
}
