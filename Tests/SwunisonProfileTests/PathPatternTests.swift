import Testing
import SwunisonModel

/// One row of the glob table: does `pattern` match `path`?
struct GlobCase: Sendable, CustomTestStringConvertible {
    let pattern: String
    let path: String
    let matches: Bool
    var testDescription: String { "\(pattern) \(matches ? "matches" : "does not match") '\(path)'" }
}

/// Unison 2.53's glob semantics (src/ubase/rx.ml `globx`, src/pred.ml), row by row.
let globTable: [GlobCase] = [
    // Name: the last component(s); * and ? stay within a name.
    .init(pattern: "Name *.tmp", path: "a.tmp", matches: true),
    .init(pattern: "Name *.tmp", path: "dir/sub/a.tmp", matches: true),
    .init(pattern: "Name *.tmp", path: "a.tmp/inner", matches: false),
    .init(pattern: "Name *.tmp", path: "atmp", matches: false),
    .init(pattern: "Name *.tmp", path: "a.TMP", matches: false),
    // Leading dot: never matched by *, ? or [..] at the start of a name.
    .init(pattern: "Name *.tmp", path: ".tmp", matches: false),
    .init(pattern: "Name *.tmp", path: "dir/.x.tmp", matches: false),
    .init(pattern: "Name *", path: "visible", matches: true),
    .init(pattern: "Name *", path: "dir/.hidden", matches: false),
    .init(pattern: "Name ?*", path: "a", matches: true),
    .init(pattern: "Name ?x", path: ".x", matches: false),
    .init(pattern: "Name ?x", path: "ax", matches: true),
    .init(pattern: "Name [.a]x", path: ".x", matches: false),
    .init(pattern: "Name [.a]x", path: "ax", matches: true),
    .init(pattern: "Name [!a]x", path: ".x", matches: false),
    .init(pattern: "Name *x", path: ".x", matches: false),
    // ... but a literal leading dot matches it, and later dots are ordinary.
    .init(pattern: "Name .*", path: ".git", matches: true),
    .init(pattern: "Name .*", path: "a/.git", matches: true),
    .init(pattern: "Name .*", path: "git", matches: false),
    .init(pattern: "Name {.*}", path: "sub/.cache", matches: true),
    .init(pattern: "Name a*", path: "a.b.c", matches: true),
    .init(pattern: "Name *~", path: "notes.txt~", matches: true),
    // Braces: alternatives, nestable; commas outside braces are literal.
    .init(pattern: "Name {CVS,*.cmo}", path: "src/CVS", matches: true),
    .init(pattern: "Name {CVS,*.cmo}", path: "x.cmo", matches: true),
    .init(pattern: "Name {CVS,*.cmo}", path: "x.cmi", matches: false),
    .init(pattern: "Name {a,b{c,d}}", path: "bd", matches: true),
    .init(pattern: "Name {a,b{c,d}}", path: "b", matches: false),
    .init(pattern: "Name a,b", path: "a,b", matches: true),
    .init(pattern: "Name x{}y", path: "xy", matches: true),
    // Name with a slash: the last components.
    .init(pattern: "Name a/b", path: "x/a/b", matches: true),
    .init(pattern: "Name a/b", path: "a/b", matches: true),
    .init(pattern: "Name a/b", path: "xa/b", matches: false),
    .init(pattern: "Name a/b", path: "b", matches: false),
    // Sets and escapes.
    .init(pattern: "Name [a-c]x", path: "bx", matches: true),
    .init(pattern: "Name [a-c]x", path: "dx", matches: false),
    .init(pattern: "Name [!a]b", path: "cb", matches: true),
    .init(pattern: "Name [^a]b", path: "ab", matches: false),
    .init(pattern: "Name []]", path: "]", matches: true),
    .init(pattern: "Name [a-]", path: "-", matches: true),
    .init(pattern: "Name a\\*b", path: "a*b", matches: true),
    .init(pattern: "Name a\\*b", path: "axb", matches: false),
    .init(pattern: "Name \\{x\\}", path: "{x}", matches: true),
    .init(pattern: "Name ü*", path: "dir/über", matches: true),
    // Path: the whole path; * never crosses '/'; the dot rule holds in every component.
    .init(pattern: "Path a/b", path: "a/b", matches: true),
    .init(pattern: "Path a/b", path: "a/b/c", matches: false),
    .init(pattern: "Path a/b", path: "x/a/b", matches: false),
    .init(pattern: "Path */tmp", path: "foo/tmp", matches: true),
    .init(pattern: "Path */tmp", path: "foo/bar/tmp", matches: false),
    .init(pattern: "Path */tmp", path: ".foo/tmp", matches: false),
    .init(pattern: "Path .*/tmp", path: ".foo/tmp", matches: true),
    .init(pattern: "Path a/*", path: "a/x", matches: true),
    .init(pattern: "Path a/*", path: "a/.x", matches: false),
    .init(pattern: "Path a*", path: "ab/c", matches: false),
    .init(pattern: "Path {a,b}/c", path: "b/c", matches: true),
    // BelowPath: the path and everything beneath, at component boundaries.
    .init(pattern: "BelowPath a/b", path: "a/b", matches: true),
    .init(pattern: "BelowPath a/b", path: "a/b/c/d", matches: true),
    .init(pattern: "BelowPath a/b", path: "a/bc", matches: false),
    .init(pattern: "BelowPath a/b", path: "a", matches: false),
    .init(pattern: "BelowPath *.d", path: "x.d/y", matches: true),
    // Regex: anchored at both ends, on the whole path.
    .init(pattern: "Regex a/b/.*\\.ml", path: "a/b/c.ml", matches: true),
    .init(pattern: "Regex a/b/.*\\.ml", path: "a/b/c/d.ml", matches: true),
    .init(pattern: "Regex a/b/.*\\.ml", path: "x/a/b/c.ml", matches: false),
    .init(pattern: "Regex .*\\.o", path: "dir/x.o", matches: true),
    .init(pattern: "Regex (foo|bar)/[0-9]+", path: "bar/42", matches: true),
    .init(pattern: "Regex (foo|bar)/[0-9]+", path: "bar/42x", matches: false),
    // An associated string does not take part in matching.
    .init(pattern: "Path docs -> newer", path: "docs", matches: true),
    .init(pattern: "Name x -> y -> z", path: "x -> y", matches: true),
]

@Test("glob table", arguments: globTable)
func globSemantics(_ row: GlobCase) throws {
    let pattern = try PathPattern(row.pattern)
    let path = try RelativePath(validating: row.path)
    #expect(pattern.matches(path) == row.matches)
}

@Test("IgnoreRules' flattened matcher agrees with the table", arguments: globTable)
func ignoreRulesAgree(_ row: GlobCase) throws {
    let rules = try IgnoreRules(ignore: [row.pattern], ignoreNot: [])
    #expect(rules.isIgnored(try RelativePath(validating: row.path)) == row.matches)
}

@Test func patternsRememberTheirParts() throws {
    let p = try PathPattern("  Path docs/a b -> older ")
    #expect(p.kind == .path)
    #expect(p.pattern == "docs/a b")
    #expect(p.associated == "older")
    #expect(p.description == "Path docs/a b -> older")
    #expect(try PathPattern("Name x").associated == nil)
    #expect(try PathPattern("Name a -> b -> c").pattern == "a -> b")
    #expect(try PathPattern("Name a -> b -> c").associated == "c")
}

@Test("bad patterns are rejected", arguments: [
    "", "*.tmp", "name *.tmp", "Glob *.tmp", "Path /etc/passwd", "BelowPath /x", "Name {a,b", "Name [ab", "Name a\\",
    "Regex (unclosed", "-> newer",
])
func badPatterns(_ spec: String) {
    #expect(throws: PatternError.self) { try PathPattern(spec) }
}

@Test func ignoreNotOverridesIgnore() throws {
    let rules = try IgnoreRules(ignore: ["Name *.o", "BelowPath build"], ignoreNot: ["Name keep.o", "Path build/README"])
    #expect(!rules.isEmpty)
    #expect(rules.isIgnored(try RelativePath(validating: "src/x.o")))
    #expect(!rules.isIgnored(try RelativePath(validating: "src/keep.o")))
    #expect(rules.isIgnored(try RelativePath(validating: "build")))
    #expect(rules.isIgnored(try RelativePath(validating: "build/out/a")))
    #expect(!rules.isIgnored(try RelativePath(validating: "build/README")))
    #expect(!rules.isIgnored(try RelativePath(validating: "src/x.c")))
}

@Test func emptyRulesIgnoreNothing() throws {
    #expect(IgnoreRules.none.isEmpty)
    #expect(!IgnoreRules.none.isIgnored(try RelativePath(validating: "a.o")))
    // ignorenot alone ignores nothing either.
    let onlyNot = try IgnoreRules(ignore: [], ignoreNot: ["Name *"])
    #expect(onlyNot.isEmpty)
    #expect(!onlyNot.isIgnored(try RelativePath(validating: "a")))
}

@Test func nameStarMatchesTheRootAsUnisonWarns() throws {
    // Unison's manual: "it is not a good idea to include Name * as an ignore pattern".
    #expect(try PathPattern("Name *").matches(.root))
    #expect(!(try PathPattern("Name ?*").matches(.root)))
}

@Test func invalidUTF8NamesAreMatchedByBytes() throws {
    let path = try RelativePath(validating: [0x64, 0x2F, 0xFF, 0x2E, 0x6F])  // d/\xff.o
    #expect(try PathPattern("Name *.o").matches(path))
    #expect(try PathPattern("Path d/?.o").matches(path))
    #expect(!(try PathPattern("Path d/??.o").matches(path)))
    // POSIX regular expressions run on bytes too: `.` is one byte.
    #expect(try PathPattern("Regex d/.\\.o").matches(path))
    #expect(!(try PathPattern("Regex d/..\\.o").matches(path)))
}

@Test func regexErrorsCarryRegcompsMessage() {
    do {
        _ = try PathPattern("Regex a(b")
        Issue.record("accepted an unbalanced regex")
    } catch {
        #expect(error.description.hasPrefix("bad pattern 'Regex a(b': bad regular expression: "))
    }
}

/// Found by Tests/fuzz (FuzzProfile): glibc's `regcomp` copies the expression under each
/// `{m,n}`, so nested repeats made one profile line take gigabytes, and its back-references
/// backtrack without bound. Such expressions are refused before they are compiled.
@Test("regular expressions that would exhaust memory or time are refused", arguments: [
    ("Regex ((a{1,255}){1,255}){1,255}", "too complex"),
    ("Regex (a{0,32767}){0,32767}", "a repeat count above 255"),
    ("Regex a{1,10000}", "a repeat count above 255"),
    ("Regex a{,10000}", "a repeat count above 255"),
    ("Regex ((((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)", "too complex"),
    ("Regex ((a*)*\\2)*b", "back-references"),
    ("Regex ((a*{1,255})*)*b", "can match nothing"),
    ("Regex (a?{1,255})*", "can match nothing"),
    ("Regex ((a*){0,50}){0,50}", "can match nothing"),
    ("Regex (x|(y)?){2,3}", "can match nothing"),
    ("Regex (^){2}", "can match nothing"),
    ("Regex @(a{1,255}){1,25}){1,255}){15}){1,255}", "unbalanced ')'"),
])
func costlyRegexesAreRefused(_ spec: String, _ reason: String) {
    do {
        _ = try PathPattern(spec)
        Issue.record("accepted \(spec)")
    } catch {
        #expect(error.reason.contains(reason), "\(error)")
    }
}

/// The expression is compiled as `^(pattern)$`: a `)` of its own must not end that group, or
/// `a)|(b` would match any path that starts with `a` or ends with `b`.
@Test func regexesStayAnchored() throws {
    #expect(throws: PatternError.self) { try PathPattern("Regex a)|(b") }
    #expect(try PathPattern("Regex a\\)|(b)").matches(try RelativePath(validating: "a)")))
    #expect(try PathPattern("Regex [)]").matches(try RelativePath(validating: ")")))
}

@Test func ordinaryRegexesStillCompile() throws {
    let path = try RelativePath(validating: "src/0123456789abcdef0123456789abcdef01234567.o")
    #expect(try PathPattern("Regex src/[0-9a-f]{40}\\.o").matches(path))
    #expect(try PathPattern("Regex ([a-z]+/){1,3}[[:alnum:]]{2,255}\\.[\\1o]").matches(path))
    #expect(try PathPattern("Regex (a{1,20}){1,20}|.*").matches(path))
    #expect(!(try PathPattern("Regex []x]{1,255}/(y+)+").matches(path)))
    // Repeats of what must match something, and counts of at most one on what need not.
    #expect(try PathPattern("Regex (s?r?c/){1,2}(a?[0-9a-f]){40}\\.o{0,1}").matches(path))
    #expect(try PathPattern("Regex ((x*)?|src)/.*{1}").matches(path))
}

@Test func patternsCompareByText() throws {
    #expect(try PathPattern("Name a") == PathPattern(" Name a "))
    #expect(try PathPattern("Name a") != PathPattern("Path a"))
    #expect(Set([try PathPattern("Name a"), try PathPattern("Name a")]).count == 1)
}
