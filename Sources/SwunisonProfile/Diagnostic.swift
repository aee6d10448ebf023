/// A message about a profile or command line, located where the offending text was written.
///
/// Its description is `file:line: message` (or `command line: message`), the form the CLI
/// prints before it exits with status 3 without touching either replica.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    /// The profile (or included file) the text came from; nil for the command line.
    public var file: String?
    /// 1-based line number in `file`; nil when the message concerns the file as a whole.
    public var line: Int?
    public var message: String

    public init(file: String?, line: Int?, message: String) {
        self.file = file; self.line = line; self.message = message
    }

    /// A diagnostic at a setting's origin.
    public init(at origin: SettingOrigin, _ message: String) {
        switch origin {
        case let .file(path, line): self.init(file: path, line: line, message: message)
        case .commandLine: self.init(file: nil, line: nil, message: message)
        }
    }

    public var description: String {
        switch (file, line) {
        case let (file?, line?): return "\(file):\(line): \(message)"
        case let (file?, nil): return "\(file): \(message)"
        default: return "command line: \(message)"
        }
    }
}

/// Why a profile could not be loaded. Every case carries a located ``Diagnostic``; nothing has
/// been touched on either replica when this is thrown.
public enum ProfileError: Error, Sendable, CustomStringConvertible {
    /// A preference name that neither Unison 2.53 nor swunison knows.
    case unknownPreference(Diagnostic)
    /// A known preference with a value it does not accept (`batch = yes`).
    case badValue(Diagnostic)
    /// A line that is neither blank, a comment, an include nor `name = value`.
    case garbledLine(Diagnostic)
    /// The profile, or a file named by `include` / `source`, does not exist or cannot be read.
    case missingFile(Diagnostic)
    /// A file includes itself, directly or through others.
    case includeCycle(Diagnostic)
    /// Not exactly two roots after merging the profile and the command line.
    case wrongRootCount(Diagnostic)
    /// Options or positional arguments that cannot be understood.
    case badCommandLine(Diagnostic)

    /// Where and what.
    public var diagnostic: Diagnostic {
        switch self {
        case .unknownPreference(let d), .badValue(let d), .garbledLine(let d), .missingFile(let d),
             .includeCycle(let d), .wrongRootCount(let d), .badCommandLine(let d):
            return d
        }
    }

    public var description: String { diagnostic.description }
}

/// Where a setting was written.
public enum SettingOrigin: Sendable, Hashable {
    /// A line of a profile or included file (path as opened, 1-based line).
    case file(String, line: Int)
    /// The command line.
    case commandLine
}

/// One `name = value` assignment, from a profile line or a command-line option, before it is
/// interpreted. Names are as written (aliases are resolved when the setting is applied).
public struct Setting: Sendable, Hashable {
    public var name: String
    public var value: String
    public var origin: SettingOrigin

    public init(name: String, value: String, origin: SettingOrigin) {
        self.name = name; self.value = value; self.origin = origin
    }
}
