/// Reads profile files into ``Setting``s, in order, expanding `include` and `source`.
///
/// Syntax as Unison's: `name = value` (split at the first `=`, both sides trimmed), whole-line
/// `#` comments, blank lines; a UTF-8 byte-order mark on the first line and CR line ends are
/// ignored. `include NAME` reads `NAME` or else `NAME.prf` in the profile directory,
/// `source NAME` reads `NAME`; the `?` forms skip a missing file silently. Includes nest;
/// a file that includes itself (directly or not) is an error.
struct ProfileReader {
    /// Where relative include names are looked up.
    let profileDirectory: String
    /// How many more files one load may read: an include that fans out (a file including
    /// another many times, which does the same) would otherwise read without end.
    private let budget = IncludeBudget()

    /// Files one profile load may read, includes included.
    static let maxFilesRead = 1000

    init(profileDirectory: String) { self.profileDirectory = profileDirectory }

    /// The settings of `path` and everything it includes, in file order.
    /// - Parameter including: the files currently being read (canonical paths), for cycle detection.
    /// - Throws: `ProfileError` located at the offending line.
    func read(file path: String, including: [String] = []) throws(ProfileError) -> [Setting] {
        let bytes: [UInt8]
        do {
            bytes = try FileAccess.contents(of: path)
        } catch {
            throw .missingFile(Diagnostic(file: path, line: nil, message: "cannot read profile: \(error.message)"))
        }
        let canonical = FileAccess.canonicalPath(path) ?? path
        let stack = including + [canonical]
        var settings: [Setting] = []
        var lineNumber = 0
        for rawLine in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var lineBytes = rawLine[...]
            if lineNumber == 1 && lineBytes.starts(with: [0xEF, 0xBB, 0xBF]) { lineBytes = lineBytes.dropFirst(3) }
            if lineBytes.last == 0x0D { lineBytes = lineBytes.dropLast() }
            let origin = SettingOrigin.file(path, line: lineNumber)
            // Never altered silently: a byte that is not UTF-8 would change a root or a pattern.
            guard let line = String(validating: lineBytes, as: UTF8.self) else {
                let offset = Self.firstInvalidUTF8Offset(lineBytes)
                throw .garbledLine(Diagnostic(at: origin,
                    "not valid UTF-8 (at byte \(offset + 1) of the line): save the profile as UTF-8"))
            }
            let content = trimmed(line)
            if content.isEmpty || content.hasPrefix("#") { continue }
            if let directive = Self.directive(content) {
                let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard words.count == 2 else {
                    throw .garbledLine(Diagnostic(at: origin,
                        "garbled '\(directive.keyword)' directive '\(content)': expected '\(directive.keyword) NAME' (one name, no spaces)"))
                }
                settings += try include(String(words[1]), keyword: directive.keyword, optional: directive.optional,
                                        addExtension: directive.addExtension, origin: origin, stack: stack)
                continue
            }
            guard let equals = content.firstIndex(of: "=") else {
                throw .garbledLine(Diagnostic(at: origin,
                    "line without '=': '\(content)' (expected 'name = value', a '#' comment, or include/source NAME)"))
            }
            let name = trimmed(content[content.startIndex..<equals])
            let value = trimmed(content[content.index(after: equals)...])
            guard !name.isEmpty else {
                throw .garbledLine(Diagnostic(at: origin, "no preference name before '=' in '\(content)'"))
            }
            settings.append(Setting(name: name, value: value, origin: origin))
        }
        return settings
    }

    /// Reads an included file; `origin` is the include line (or the command line).
    func include(_ name: String, keyword: String, optional: Bool, addExtension: Bool,
                 origin: SettingOrigin, stack: [String]) throws(ProfileError) -> [Setting] {
        let candidates = includeCandidates(name, addExtension: addExtension)
        guard let path = candidates.first(where: FileAccess.isRegularFile) else {
            if optional { return [] }
            let looked = candidates.joined(separator: " or ")
            throw .missingFile(Diagnostic(at: origin, "\(keyword) '\(name)': file not found (looked for \(looked))"))
        }
        guard budget.take() else {
            throw .includeCycle(Diagnostic(at: origin, "\(keyword) '\(name)': more than \(Self.maxFilesRead) files read for "
                + "one profile; check for includes that fan out (a file included many times over)"))
        }
        let canonical = FileAccess.canonicalPath(path) ?? path
        if let start = stack.firstIndex(of: canonical) {
            let chain = (stack[start...] + [canonical]).joined(separator: " -> ")
            throw .includeCycle(Diagnostic(at: origin, "\(keyword) '\(name)' makes an include cycle: \(chain)"))
        }
        return try read(file: path, including: stack)
    }

    /// Where in `bytes` the first byte that does not decode as UTF-8 is.
    static func firstInvalidUTF8Offset(_ bytes: ArraySlice<UInt8>) -> Int {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: return offset
            }
        }
    }

    /// Where `include NAME` (with extension) or `source NAME` looks, in order.
    func includeCandidates(_ name: String, addExtension: Bool) -> [String] {
        let base = name.hasPrefix("/") ? name : profileDirectory + "/" + name
        return addExtension ? [base, base + ".prf"] : [base]
    }

    /// Recognises `include `, `source `, `include? `, `source? ` at the start of a line.
    static func directive(_ line: String) -> (keyword: String, optional: Bool, addExtension: Bool)? {
        for (keyword, optional, addExtension) in [("include", false, true), ("source", false, false),
                                                  ("include?", true, true), ("source?", true, false)] {
            if line.hasPrefix(keyword + " ") || line.hasPrefix(keyword + "\t") {
                return (keyword, optional, addExtension)
            }
        }
        return nil
    }
}

/// The files a profile load may still read (shared by the nested reads of one load).
final class IncludeBudget: @unchecked Sendable {
    private var remaining = ProfileReader.maxFilesRead
    func take() -> Bool {
        guard remaining > 0 else { return false }
        remaining -= 1
        return true
    }
}
