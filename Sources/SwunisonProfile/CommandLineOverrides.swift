/// Splits swunison's command line into positional arguments (a profile name, or two roots) and
/// preference overrides, the way Unison reads its own options.
///
/// Accepted forms, with one or two dashes: `-batch` (a boolean alone means true),
/// `-batch=false`, `-prefer newer`, `-prefer=newer`, `--retry=3`. Booleans never take the next
/// argument (`-batch false` is `-batch` plus a positional `false`, as in Unison), except that
/// `fastcheck`/`links`-style preferences take a following `true`, `false`, `yes`, `no`, `default`
/// or `auto`. `--` ends the options. swunison's own flags: `--dry-run`, `--watch` (watch mode,
/// like `-repeat watch`), and every preference name of a profile, including `-include NAME` and
/// `-source NAME`.
public enum CommandLineOverrides {
    /// Parses `arguments` (everything after the program name and subcommand).
    /// - Returns: positionals in order, and settings with origin `.commandLine` in order.
    /// - Throws: `ProfileError.badCommandLine` for an unknown option or a missing value.
    public static func parse(_ arguments: [String]) throws(ProfileError) -> (positionals: [String], settings: [Setting]) {
        var positionals: [String] = []
        var settings: [Setting] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--" {
                positionals += arguments[i...]
                break
            }
            guard arg.hasPrefix("-"), arg.count > 1 else {
                positionals.append(arg)
                continue
            }
            let body = arg.hasPrefix("--") ? arg.dropFirst(2) : arg.dropFirst()
            let name: String
            var value: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[body.startIndex..<equals])
                value = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
            }
            guard let info = PreferenceTable.lookup(name) else {
                var message = "unknown option '\(arg)'"
                if let hint = PreferenceTable.suggestion(for: name) { message += " (did you mean '-\(hint)'?)" }
                else { message += " (options are preference names, see swunison.prf(5))" }
                throw .badCommandLine(Diagnostic(file: nil, line: nil, message: message))
            }
            if value == nil {
                switch info.kind {
                case .bool:
                    value = "true"
                case .boolWithDefault:
                    if i < arguments.count, Self.booleanWords.contains(arguments[i]) {
                        value = arguments[i]; i += 1
                    } else {
                        value = "true"
                    }
                default:
                    guard i < arguments.count else {
                        throw .badCommandLine(Diagnostic(file: nil, line: nil, message: "option '\(arg)' needs a value"))
                    }
                    value = arguments[i]
                    i += 1
                }
            }
            settings.append(Setting(name: name, value: value ?? "", origin: .commandLine))
        }
        return (positionals, settings)
    }

    private static let booleanWords: Set<String> = ["true", "false", "yes", "no", "default", "auto"]
}
