import Glibc

/// One Unison path specification: `Name *.tmp`, `Path a/b`, `BelowPath x` or `Regex a/.*\.o`,
/// optionally followed by ` -> associated string` (used by `preferpartial`, `forcepartial`).
///
/// Glob semantics are those of Unison 2.53's `Rx.globx` (the code, which the manual describes):
/// - `*` matches any run of bytes without `/`, `?` any one byte but `/`, `[a-z]` / `[!x]` / `[^x]`
///   one byte from (or not from) a set, `{a,bb}` any of the alternatives (nestable), `\c` the
///   character `c` itself.
/// - A name (a path component) that begins with `.` is matched only by a pattern component that
///   begins with a literal `.`: `*`, `?` and `[...]` never match a leading dot, in `Name`, `Path`
///   and `BelowPath` patterns alike. (Unison's manual says `Path */tmp` matches `.foo/tmp`; its
///   code does not, and swunison follows the code.)
/// - `Name p` matches a path whose last components match `p`; `Path p` matches the whole path;
///   `BelowPath p` matches `p` and everything beneath it; `Regex r` is anchored at both ends.
///
/// Matching works on the path's bytes; `Regex` patterns are POSIX extended regular expressions
/// (`regcomp`), matched against the path's bytes as Unison does.
public struct PathPattern: Sendable, Hashable, CustomStringConvertible {
    /// Which of Unison's four pattern forms this is.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case name = "Name"
        case path = "Path"
        case belowPath = "BelowPath"
        case regex = "Regex"
    }

    public let kind: Kind
    /// The pattern text after the keyword, as written (whitespace trimmed).
    public let pattern: String
    /// The text after ` -> `, if any (Unison's "associated string").
    public let associated: String?

    /// Glob alternatives (after `{,}` expansion), each a list of per-component token lists.
    let globs: [[GlobComponent]]
    /// The compiled regular expression for `.regex`.
    private let regex: CompiledRegex?

    /// Parses a path specification such as `Name {*.o,*.tmp}` or `Path a/b -> newer`.
    /// - Throws: `PatternError` when the keyword is missing, a `Path`/`BelowPath` starts with `/`,
    ///   braces or brackets are unbalanced, or a regular expression does not compile.
    public init(_ spec: String) throws(PatternError) {
        let (clause, associated) = Self.splitAssociated(spec)
        guard !clause.isEmpty else { throw PatternError(spec: spec, reason: "empty pattern") }
        var found: (Kind, String)?
        for kind in Kind.allCases where clause.hasPrefix(kind.rawValue + " ") {
            found = (kind, trimWhitespace(String(clause.dropFirst(kind.rawValue.count + 1))))
            break
        }
        guard let (kind, text) = found else {
            throw PatternError(spec: spec, reason: "a pattern must start with Name, Path, BelowPath or Regex")
        }
        if (kind == .path || kind == .belowPath) && text.hasPrefix("/") {
            throw PatternError(spec: spec,
                               reason: "'\(kind.rawValue)' patterns may not begin with '/'; only relative paths are allowed")
        }
        self.kind = kind
        self.pattern = text
        self.associated = associated
        if kind == .regex {
            do {
                self.regex = try CompiledRegex(text)
            } catch {
                throw PatternError(spec: spec, reason: error.reason)
            }
            self.globs = []
        } else {
            self.regex = nil
            var alternatives: [[GlobComponent]] = []
            for alternative in try Self.expandBraces(Array(text.utf8), spec: spec) {
                alternatives.append(try Self.compileGlob(alternative, spec: spec))
            }
            self.globs = alternatives
        }
    }

    /// A `BelowPath` specification that matches exactly `path` and everything beneath it,
    /// whatever characters its names hold (glob characters, braces, spaces are escaped).
    public static func belowPathSpec(_ path: RelativePath) -> String {
        var text = "BelowPath "
        for character in String(decoding: path.bytes, as: UTF8.self) {
            if "\\*?[]{}, \t".contains(character) { text.append("\\") }
            text.append(character)
        }
        return text
    }

    /// The pattern as it would be written in a profile.
    public var description: String {
        let base = "\(kind.rawValue) \(pattern)"
        if let associated { return base + " -> " + associated }
        return base
    }

    public static func == (lhs: PathPattern, rhs: PathPattern) -> Bool {
        lhs.kind == rhs.kind && lhs.pattern == rhs.pattern && lhs.associated == rhs.associated
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind); hasher.combine(pattern); hasher.combine(associated)
    }

    /// Whether `path` is matched by this pattern.
    public func matches(_ path: RelativePath) -> Bool {
        path.bytes.withUnsafeBufferPointer { matches(bytes: $0, lastStart: nil) }
    }

    /// Matches raw path bytes; `lastStart` is the start of the last component when the caller
    /// already knows it (saves a scan when many `Name` patterns are tried on one path).
    func matches(bytes: UnsafeBufferPointer<UInt8>, lastStart: Int?) -> Bool {
        switch kind {
        case .regex:
            guard let regex else { return false }
            return regex.wholeMatches(bytes)
        case .name:
            for glob in globs where Self.matchName(glob, bytes, lastStart: lastStart) { return true }
            return false
        case .path:
            for glob in globs where Self.matchFromStart(glob, bytes, allowBelow: false) { return true }
            return false
        case .belowPath:
            for glob in globs where Self.matchFromStart(glob, bytes, allowBelow: true) { return true }
            return false
        }
    }

    // MARK: - Associated strings

    /// Splits `pattern -> value` at the last ` -> ` (Unison: "only the last match of the separator
    /// string on the line is used"); a separator at either end leaves an empty side.
    public static func splitAssociated(_ spec: String) -> (pattern: String, associated: String?) {
        let padded = Array((" " + spec + " ").utf8)
        let separator = Array(" -> ".utf8)
        var i = padded.count - separator.count
        while i >= 0 {
            if padded[i..<(i + separator.count)].elementsEqual(separator) {
                let left = i > 1 ? String(decoding: padded[1..<i], as: UTF8.self) : ""
                let rightEnd = max(i + separator.count, padded.count - 1)
                let right = String(decoding: padded[(i + separator.count)..<rightEnd], as: UTF8.self)
                return (trimWhitespace(left), trimWhitespace(right))
            }
            i -= 1
        }
        return (trimWhitespace(spec), nil)
    }

    // MARK: - Compilation

    /// `{a,b{c,d}}` expansion as Unison's `Rx.explode`: backslash escapes are kept for the glob
    /// compiler; commas and closing braces outside braces are literal.
    static func expandBraces(_ text: [UInt8], spec: String) throws(PatternError) -> [[UInt8]] {
        var index = 0
        let result = try expandSequence(text, &index, nested: false, spec: spec)
        return result
    }

    private static func expandSequence(_ text: [UInt8], _ index: inout Int, nested: Bool,
                                       spec: String) throws(PatternError) -> [[UInt8]] {
        // Alternatives collected so far at this level, and the current alternative's expansions.
        var alternatives: [[UInt8]] = []
        var current: [[UInt8]] = [[]]
        while index < text.count {
            let c = text[index]
            if c == UInt8(ascii: "\\") {
                let end = min(index + 2, text.count)
                current = current.map { $0 + text[index..<end] }
                index = end
            } else if c == UInt8(ascii: "{") {
                index += 1
                let inner = try expandSequence(text, &index, nested: true, spec: spec)
                var next: [[UInt8]] = []
                for prefix in current { for suffix in inner { next.append(prefix + suffix) } }
                current = next
            } else if nested && c == UInt8(ascii: ",") {
                alternatives += current
                current = [[]]
                index += 1
            } else if nested && c == UInt8(ascii: "}") {
                index += 1
                return alternatives + current
            } else {
                current = current.map { $0 + [c] }
                index += 1
            }
        }
        if nested { throw PatternError(spec: spec, reason: "unbalanced '{'") }
        return alternatives + current
    }

    /// Compiles one brace-free glob into per-component token lists.
    static func compileGlob(_ text: [UInt8], spec: String) throws(PatternError) -> [GlobComponent] {
        var components: [GlobComponent] = []
        var tokens: [GlobToken] = []
        var i = 0
        func nextChar() throws(PatternError) -> UInt8 {
            if i < text.count && text[i] == UInt8(ascii: "\\") { i += 1 }
            guard i < text.count else { throw PatternError(spec: spec, reason: "pattern ends inside an escape or a '[' set") }
            defer { i += 1 }
            return text[i]
        }
        while i < text.count {
            let c = text[i]
            switch c {
            case UInt8(ascii: "*"):
                i += 1
                if tokens.last != .star { tokens.append(.star) }
            case UInt8(ascii: "?"):
                i += 1
                tokens.append(.any)
            case UInt8(ascii: "["):
                i += 1
                var negated = false
                if i < text.count && (text[i] == UInt8(ascii: "!") || text[i] == UInt8(ascii: "^")) {
                    negated = true; i += 1
                }
                var set = ByteSet()
                var first = true
                while true {
                    if !first && i < text.count && text[i] == UInt8(ascii: "]") { i += 1; break }
                    first = false
                    let low = try nextChar()
                    if i < text.count && text[i] == UInt8(ascii: "-") {
                        i += 1
                        if i < text.count && text[i] == UInt8(ascii: "]") {
                            i += 1
                            set.insert(low); set.insert(UInt8(ascii: "-"))
                            break
                        }
                        let high = try nextChar()
                        if low <= high { for b in low...high { set.insert(b) } }
                    } else {
                        set.insert(low)
                    }
                }
                if negated { set.invert() }
                set.remove(UInt8(ascii: "/"))
                tokens.append(.set(set))
            default:
                let literal = try nextChar()
                if literal == UInt8(ascii: "/") {
                    components.append(GlobComponent(tokens: tokens))
                    tokens = []
                } else {
                    tokens.append(.byte(literal))
                }
            }
        }
        components.append(GlobComponent(tokens: tokens))
        return components
    }

    // MARK: - Matching

    /// `Name`: the last `glob.count` components of the path match the glob's components.
    private static func matchName(_ glob: [GlobComponent], _ bytes: UnsafeBufferPointer<UInt8>,
                                  lastStart: Int?) -> Bool {
        var end = bytes.count
        var start: Int
        if let lastStart, glob.count >= 1 {
            start = lastStart
        } else {
            start = componentStart(bytes, before: end)
        }
        var k = glob.count - 1
        while true {
            if !glob[k].matches(bytes, start, end) { return false }
            if k == 0 { return true }
            if start == 0 { return false }  // fewer path components than pattern components
            end = start - 1
            start = componentStart(bytes, before: end)
            k -= 1
        }
    }

    /// `Path` (whole path) and `BelowPath` (a prefix ending at a component boundary).
    private static func matchFromStart(_ glob: [GlobComponent], _ bytes: UnsafeBufferPointer<UInt8>,
                                       allowBelow: Bool) -> Bool {
        var start = 0
        for (k, component) in glob.enumerated() {
            var end = start
            while end < bytes.count && bytes[end] != 0x2F { end += 1 }
            if !component.matches(bytes, start, end) { return false }
            let isLastPattern = k == glob.count - 1
            let isLastPath = end == bytes.count
            if isLastPattern { return isLastPath || allowBelow }
            if isLastPath { return false }
            start = end + 1
        }
        return false
    }

    /// Index where the component ending at `end` begins.
    static func componentStart(_ bytes: UnsafeBufferPointer<UInt8>, before end: Int) -> Int {
        var i = end
        while i > 0 && bytes[i - 1] != 0x2F { i -= 1 }
        return i
    }
}

/// Why a path specification was rejected.
public struct PatternError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The specification as written.
    public var spec: String
    public var reason: String
    public init(spec: String, reason: String) { self.spec = spec; self.reason = reason }
    public var description: String { "bad pattern '\(spec)': \(reason)" }
}

/// Unison's `ignore` / `ignorenot` semantics, precompiled for the scanner.
///
/// A path is ignored when it matches some `ignore` pattern and no `ignorenot` pattern. The
/// caller does not descend into an ignored directory (so its descendants are ignored too), as
/// Unison does. Also used for `backup` / `backupnot`.
public struct IgnoreRules: Sendable {
    /// The `ignore` patterns, in profile order.
    public let ignore: [PathPattern]
    /// The `ignorenot` patterns, in profile order.
    public let ignoreNot: [PathPattern]
    private let ignoreMatcher: PatternSet
    private let ignoreNotMatcher: PatternSet

    /// Rules that ignore nothing.
    public static let none = IgnoreRules(compiled: [], ignoreNot: [])

    /// Compiles `ignore` and `ignorenot` specifications (`Name *.o`, `Path a/b`, ...).
    /// - Throws: `PatternError` for the first specification that does not parse.
    public init(ignore: [String], ignoreNot: [String]) throws(PatternError) {
        var compiled: [PathPattern] = []
        for spec in ignore { compiled.append(try PathPattern(spec)) }
        var compiledNot: [PathPattern] = []
        for spec in ignoreNot { compiledNot.append(try PathPattern(spec)) }
        self.init(compiled: compiled, ignoreNot: compiledNot)
    }

    /// Rules from already parsed patterns.
    public init(compiled ignore: [PathPattern], ignoreNot: [PathPattern]) {
        self.ignore = ignore
        self.ignoreNot = ignoreNot
        self.ignoreMatcher = PatternSet(ignore)
        self.ignoreNotMatcher = PatternSet(ignoreNot)
    }

    /// True when no path can be ignored (no `ignore` patterns).
    public var isEmpty: Bool { ignore.isEmpty }

    /// Whether `path` is ignored: it matches an `ignore` pattern and no `ignorenot` pattern.
    public func isIgnored(_ path: RelativePath) -> Bool {
        if ignoreMatcher.isEmpty { return false }
        return path.bytes.withUnsafeBufferPointer { bytes in
            let lastStart = PathPattern.componentStart(bytes, before: bytes.count)
            return ignoreMatcher.matches(bytes, lastStart: lastStart)
                && !ignoreNotMatcher.matches(bytes, lastStart: lastStart)
        }
    }
}

/// Patterns flattened for matching many paths: single-component `Name` alternatives (the
/// common case: `Name *.o`, `Name {.git,node_modules}`) are checked against the last component
/// directly; other patterns go through ``PathPattern``.
struct PatternSet: Sendable {
    private let lastNames: [GlobComponent]
    private let others: [PathPattern]

    init(_ patterns: [PathPattern]) {
        var lastNames: [GlobComponent] = []
        var others: [PathPattern] = []
        for pattern in patterns {
            if pattern.kind == .name, pattern.globs.allSatisfy({ $0.count == 1 }) {
                lastNames += pattern.globs.map { $0[0] }
            } else {
                others.append(pattern)
            }
        }
        self.lastNames = lastNames
        self.others = others
    }

    var isEmpty: Bool { lastNames.isEmpty && others.isEmpty }

    func matches(_ bytes: UnsafeBufferPointer<UInt8>, lastStart: Int) -> Bool {
        for name in lastNames where name.matches(bytes, lastStart, bytes.count) { return true }
        for pattern in others where pattern.matches(bytes: bytes, lastStart: lastStart) { return true }
        return false
    }
}

// MARK: - Glob internals

/// One element of a compiled glob component.
enum GlobToken: Hashable, Sendable {
    case byte(UInt8)
    case any
    case star
    case set(ByteSet)
}

/// The tokens between two `/` of a glob; matches exactly one path component.
///
/// Common shapes (`name`, `*.ext`, `prefix*`) get a direct comparison instead of the general
/// backtracking matcher: the scanner asks about every path of a large tree.
struct GlobComponent: Hashable, Sendable {
    enum Shape: Hashable, Sendable {
        /// Literal bytes only: the name must equal them.
        case literal([UInt8])
        /// `*` then literal bytes: the name must end with them (and not start with a dot).
        case suffix([UInt8])
        /// Literal bytes then `*`: the name must start with them.
        case prefix([UInt8])
        /// Anything else.
        case general([GlobToken])
    }

    let shape: Shape
    /// Unison's leading-dot rule: only a leading literal `.` may match a name's leading dot.
    let startsWithLiteralDot: Bool

    init(tokens: [GlobToken]) {
        self.startsWithLiteralDot = tokens.first == .byte(UInt8(ascii: "."))
        func literals(_ t: ArraySlice<GlobToken>) -> [UInt8]? {
            var out: [UInt8] = []
            for token in t {
                guard case .byte(let b) = token else { return nil }
                out.append(b)
            }
            return out
        }
        if let bytes = literals(tokens[...]) {
            shape = .literal(bytes)
        } else if tokens.first == .star, let bytes = literals(tokens.dropFirst()) {
            shape = .suffix(bytes)
        } else if tokens.last == .star, let bytes = literals(tokens.dropLast()) {
            shape = .prefix(bytes)
        } else {
            shape = .general(tokens)
        }
    }

    /// Whether `bytes[start..<end]` (one component, no `/`) matches.
    func matches(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        if start < end && bytes[start] == UInt8(ascii: ".") && !startsWithLiteralDot { return false }
        let count = end - start
        switch shape {
        case .literal(let lit):
            return lit.count == count && Self.equal(lit, bytes, at: start)
        case .suffix(let lit):
            return lit.count <= count && Self.equal(lit, bytes, at: end - lit.count)
        case .prefix(let lit):
            return lit.count <= count && Self.equal(lit, bytes, at: start)
        case .general(let tokens):
            return Self.backtrack(tokens, bytes, start, end)
        }
    }

    /// Whether `bytes[at...]` begins with `literal` (the caller checked the length).
    private static func equal(_ literal: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> Bool {
        for i in literal.indices where literal[i] != bytes[offset + i] { return false }
        return true
    }

    /// The general matcher: greedy, backtracking to the most recent `*` on a mismatch (enough
    /// because `*` cannot cross a component boundary).
    private static func backtrack(_ tokens: [GlobToken], _ bytes: UnsafeBufferPointer<UInt8>,
                                  _ start: Int, _ end: Int) -> Bool {
        tokens.withUnsafeBufferPointer { t in
            var p = 0, s = start
            var starP = -1, starS = start
            while s < end {
                if p < t.count {
                    switch t[p] {
                    case .star:
                        starP = p; starS = s; p += 1
                        continue
                    case .byte(let b) where b == bytes[s]:
                        p += 1; s += 1
                        continue
                    case .any:
                        p += 1; s += 1
                        continue
                    case .set(let set) where set.contains(bytes[s]):
                        p += 1; s += 1
                        continue
                    default:
                        break
                    }
                }
                guard starP >= 0 else { return false }
                starS += 1
                s = starS
                p = starP + 1
            }
            while p < t.count && t[p] == .star { p += 1 }
            return p == t.count
        }
    }
}

/// A set of bytes as a 256-bit bitmap.
struct ByteSet: Hashable, Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    mutating func remove(_ b: UInt8) {
        let bit = ~(UInt64(1) << UInt64(b & 63))
        switch b >> 6 {
        case 0: words.0 &= bit
        case 1: words.1 &= bit
        case 2: words.2 &= bit
        default: words.3 &= bit
        }
    }

    mutating func invert() { words = (~words.0, ~words.1, ~words.2, ~words.3) }

    static func == (l: ByteSet, r: ByteSet) -> Bool {
        l.words.0 == r.words.0 && l.words.1 == r.words.1 && l.words.2 == r.words.2 && l.words.3 == r.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0); hasher.combine(words.1); hasher.combine(words.2); hasher.combine(words.3)
    }
}

/// A POSIX extended regular expression (what Unison's `Regex` patterns are), compiled once by
/// `regcomp` and anchored at both ends. Owns its `regex_t`.
///
/// Matching runs on the path's bytes: swunison never calls `setlocale`, so the C locale applies
/// and `.` matches any byte, as in Unison's own matcher. `regexec` on a compiled expression is
/// safe to call from several threads at once.
final class CompiledRegex: @unchecked Sendable {
    private var regex = regex_t()

    /// Compiles `^(pattern)$`.
    /// - Throws: `regerror`'s message when the expression is invalid, or why it is refused
    ///   (``refusal(_:)``).
    init(_ pattern: String) throws(PatternError) {
        if let why = Self.refusal(Array(pattern.utf8)) {
            throw PatternError(spec: "Regex " + pattern, reason: why)
        }
        let status = regcomp(&regex, "^(" + pattern + ")$", REG_EXTENDED | REG_NOSUB)
        if status != 0 {
            var message = [CChar](repeating: 0, count: 256)
            regerror(status, &regex, &message, message.count)
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw PatternError(spec: "Regex " + pattern, reason: "bad regular expression: \(text)")
        }
    }

    deinit { regfree(&regex) }

    /// The most copies one `{m,n}` may ask for: POSIX's smallest `RE_DUP_MAX`. glibc allows
    /// 32767, and builds `a{1,n}` in time and memory quadratic in n (n = 10,000: 790 MB).
    static let maxRepeat = 255

    /// The most states ``estimatedStates(_:)`` may count: glibc copies the expression under a
    /// `{m,n}` or `+`, so nesting multiplies (`((a{1,255}){1,255}){1,255}` went past 2 GB and
    /// `a` under 16 nested `+` ran for over 30 s). 10,000 is about 50 MB and a fraction of a
    /// second; a path pattern needs a few hundred.
    static let maxStates = 10_000

    /// Why `pattern` is not compiled, or nil: a `)` without its `(` (it would end the anchoring
    /// group), a back-reference (not POSIX ERE but a glibc
    /// extension, whose matching backtracks without bound: `((a*)*\2)*b` took 13 s on a
    /// 151-byte name), a repeat count over ``maxRepeat`` or more than ``maxStates`` states.
    static func refusal(_ pattern: [UInt8]) -> String? {
        var i = 0
        var depth = 0
        while i < pattern.count {
            if pattern[i] == UInt8(ascii: "(") {
                depth += 1; i += 1
            } else if pattern[i] == UInt8(ascii: ")") {
                // glibc would close the `^(` this is wrapped in: the rest would be unanchored,
                // and a count after it would repeat the whole expression.
                guard depth > 0 else { return "unbalanced ')' (write \\) for a literal parenthesis)" }
                depth -= 1; i += 1
            } else if pattern[i] == UInt8(ascii: "[") {
                i = bracketEnd(pattern, from: i)
            } else if pattern[i] == UInt8(ascii: "\\") {
                if i + 1 < pattern.count, (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(pattern[i + 1]) {
                    return "back-references (\\1 to \\9) are not supported"
                }
                i += 2
            } else if pattern[i] == UInt8(ascii: "{"), let (low, high, _) = interval(pattern, from: i),
                      max(low, high ?? 0) > maxRepeat {
                return "a repeat count above \(maxRepeat)"
            } else {
                i += 1
            }
        }
        if countsRepeatsOfEmptyMatches(pattern) {
            return "a repeat count on an expression that can match nothing (such as (a*){2}); write it without"
        }
        let states = estimatedStates(pattern)
        return states > maxStates ? "too complex (about \(states) states, at most \(maxStates))" : nil
    }

    /// Whether a `{m,n}` repeats an expression that can match the empty string (`a*{1,255}`,
    /// `(a?|b){2,9}`): glibc's epsilon closures over those copies grow far faster than the
    /// states (`(a?{1,255})*` took 8.6 GB; `((a*){0,50}){0,50}` ran for over 30 s). Such a
    /// repeat means the same as the expression with `*`, `?` or no count.
    static func countsRepeatsOfEmptyMatches(_ pattern: [UInt8]) -> Bool {
        // For the innermost open group: whether a finished alternative can match nothing,
        // whether every atom of the current one before the last can, and the last atom (nil:
        // none yet, so nothing to repeat). The enclosing groups' are on the stack.
        var groups: [(finished: Bool, prefix: Bool, last: Bool?)] = []
        var finished = false, prefix = true
        var last: Bool?
        var alternativeMatchesNothing: Bool { prefix && (last ?? true) }
        func atom(_ matchesNothing: Bool) { prefix = alternativeMatchesNothing; last = matchesNothing }
        var i = 0
        while i < pattern.count {
            switch pattern[i] {
            case UInt8(ascii: "["):
                i = bracketEnd(pattern, from: i); atom(false); continue
            case UInt8(ascii: "\\"):
                // Anchors and word boundaries match nothing; any other escape is one byte.
                let next = i + 1 < pattern.count ? pattern[i + 1] : 0
                i += 2; atom(Array("bB<>`'".utf8).contains(next)); continue
            case UInt8(ascii: "^"), UInt8(ascii: "$"):
                atom(true)
            case UInt8(ascii: "("):
                groups.append((finished, prefix, last)); finished = false; prefix = true; last = nil
            case UInt8(ascii: ")") where !groups.isEmpty:
                let group = finished || alternativeMatchesNothing
                (finished, prefix, last) = groups.removeLast()
                atom(group)
            case UInt8(ascii: "|"):
                finished = finished || alternativeMatchesNothing; prefix = true; last = nil
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                if last != nil { last = true }
            case UInt8(ascii: "{"):
                if let (low, high, end) = interval(pattern, from: i) {
                    if last == true && max(low, high ?? low + 1) > 1 { return true }
                    if low == 0 && last != nil { last = true }
                    i = end; continue
                }
                atom(false)
            case UInt8(ascii: "+"):
                break
            default:
                atom(false)
            }
            i += 1
        }
        return false
    }

    /// An upper bound on the states glibc's `regcomp` builds: one per atom, an atom under
    /// `{m,n}` copied max(m, n) + 1 times and under `+` twice, inner groups first. Saturates.
    static func estimatedStates(_ pattern: [UInt8]) -> Int {
        var outer: [Int] = []  // the enclosing groups' sums so far
        var sum = 0            // this group's states so far
        var last = 0           // the states of the atom a repeat would apply to
        var i = 0
        func add(_ atom: Int) { last = atom; sum = sum.addingSaturating(atom) }
        while i < pattern.count {
            switch pattern[i] {
            case UInt8(ascii: "["):
                i = bracketEnd(pattern, from: i); add(1); continue
            case UInt8(ascii: "\\"):
                i += 2; add(1); continue
            case UInt8(ascii: "("):
                outer.append(sum); sum = 0; last = 0
            case UInt8(ascii: ")") where !outer.isEmpty:
                let group = sum.addingSaturating(1)
                sum = outer.removeLast(); add(group)
            case UInt8(ascii: "|"):
                last = 0
            case UInt8(ascii: "+"):
                sum = sum.addingSaturating(last); last = last.multipliedSaturating(2)
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                break
            case UInt8(ascii: "{"):
                if let (low, high, end) = interval(pattern, from: i) {
                    let copies = min(max(low, high ?? 0), Int(UInt16.max)) + 1
                    sum = sum.addingSaturating(last.multipliedSaturating(copies - 1))
                    last = last.multipliedSaturating(copies)
                    i = end; continue
                }
                add(1)
            default:
                add(1)
            }
            i += 1
        }
        for enclosing in outer { sum = sum.addingSaturating(enclosing) }
        return sum
    }

    /// `{m}`, `{m,}` or `{m,n}` at `start`: the counts (nil for no upper bound, capped at
    /// 100,000) and the index after `}`; nil when the brace does not open an interval.
    private static func interval(_ p: [UInt8], from start: Int) -> (Int, Int?, Int)? {
        var i = start + 1
        func number() -> Int? {
            var value: Int?
            while i < p.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p[i]) {
                value = min((value ?? 0) * 10 + Int(p[i] - UInt8(ascii: "0")), 100_000); i += 1
            }
            return value
        }
        // glibc reads `{,n}` as `{0,n}`.
        guard let low = number() ?? (i < p.count && p[i] == UInt8(ascii: ",") ? 0 : nil) else { return nil }
        var high: Int? = low
        if i < p.count && p[i] == UInt8(ascii: ",") { i += 1; high = number() }
        guard i < p.count && p[i] == UInt8(ascii: "}") else { return nil }
        return (low, high, i + 1)
    }

    /// The index after the bracket expression opening at `start` (`[]a]`, `[^]a]` and
    /// `[[:alpha:]]` included), or the end of the pattern when it is not closed.
    private static func bracketEnd(_ p: [UInt8], from start: Int) -> Int {
        var i = start + 1
        if i < p.count && p[i] == UInt8(ascii: "^") { i += 1 }
        if i < p.count && p[i] == UInt8(ascii: "]") { i += 1 }
        while i < p.count && p[i] != UInt8(ascii: "]") {
            if p[i] == UInt8(ascii: "["), i + 1 < p.count, [UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "=")].contains(p[i + 1]) {
                let delimiter = p[i + 1]
                i += 2
                while i + 1 < p.count && !(p[i] == delimiter && p[i + 1] == UInt8(ascii: "]")) { i += 1 }
                i += 2
            } else {
                i += 1
            }
        }
        return min(i + 1, p.count)
    }

    /// Whether the whole of `bytes` matches. The corresponding C function is `regexec`.
    func wholeMatches(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: bytes.count + 1) { buffer in
            for i in 0..<bytes.count { buffer[i] = CChar(bitPattern: bytes[i]) }
            buffer[bytes.count] = 0
            return regexec(&regex, buffer.baseAddress, 0, nil, 0) == 0
        }
    }
}

/// Trims spaces, tabs, CR and LF at both ends (Unison's `trimWhitespace`).
func trimWhitespace(_ s: String) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
    guard let first = s.firstIndex(where: { !isSpace($0) }),
          let last = s.lastIndex(where: { !isSpace($0) }) else { return "" }
    return String(s[first...last])
}

fileprivate extension Int {
    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    func multipliedSaturating(_ other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
