import SwunisonModel

/// Turns `swunison NAME [options]` or `swunison ROOT1 ROOT2 [options]` into a checked ``Profile``.
///
/// - `NAME` is read from `NAME.prf` in the profile directory (or `NAME` there, or the file
///   `NAME` itself when it exists as given); no positional argument means `default`.
/// - Two positionals are the roots; `default.prf` is read too when it exists (its roots and the
///   command-line roots together must be exactly two, as in Unison).
/// - Settings apply in order: the profile (with its includes), then the command line, so the
///   command line wins for single-valued preferences and adds to list preferences.
///
/// Nothing is touched on disk besides reading the profile files.
public struct ProfileLoader: Sendable {
    /// `$SWUNISON`, else `~/.swunison`.
    public var profileDirectory: String
    public var homeDirectory: String
    /// What relative command-line roots are resolved against.
    public var currentDirectory: String

    /// - Parameters:
    ///   - profileDirectory: where profiles, `include`d files and relative `logfile`s live.
    ///   - homeDirectory: what relative profile roots (`root = sync`) and `~` resolve against.
    ///   - currentDirectory: what relative command-line roots resolve against (default: the
    ///     process's working directory).
    public init(profileDirectory: String, homeDirectory: String, currentDirectory: String? = nil) {
        self.profileDirectory = profileDirectory
        self.homeDirectory = homeDirectory
        self.currentDirectory = currentDirectory ?? FileAccess.currentDirectory() ?? homeDirectory
    }

    /// A loader for this process: profile directory `$SWUNISON` or `$HOME/.swunison`.
    public static func fromEnvironment() -> ProfileLoader {
        let home = FileAccess.homeDirectory()
        let directory = FileAccess.environment("SWUNISON") ?? home + "/.swunison"
        return ProfileLoader(profileDirectory: directory, homeDirectory: home)
    }

    /// Loads the profile for a sync run.
    /// - Parameter arguments: everything after `swunison` (and its subcommand, if any).
    /// - Throws: `ProfileError` naming file and line of the first problem.
    public func load(arguments: [String]) throws(ProfileError) -> Profile {
        let (positionals, overrides) = try CommandLineOverrides.parse(arguments)
        switch positionals.count {
        case 0:
            return try load(profileNamed: "default", overrides: overrides)
        case 1:
            return try load(profileNamed: positionals[0], overrides: overrides)
        case 2:
            let defaultFile = profileDirectory + "/default.prf"
            let file = FileAccess.isRegularFile(defaultFile) ? defaultFile : nil
            return try load(name: "default", file: file, commandLineRoots: positionals, overrides: overrides)
        default:
            throw .badCommandLine(Diagnostic(file: nil, line: nil,
                message: "expected a profile name or two roots, got \(positionals.count) arguments: "
                    + positionals.map { "'\($0)'" }.joined(separator: " ")))
        }
    }

    /// The profiles of a command line that names several (a star's hub watching its spokes:
    /// `swunison --watch hub-a hub-b`), or one profile as ``load(arguments:)`` reads it. Names
    /// count as profiles when each is a plain name (no `/`, not `ssh:`) with a file `NAME.prf`
    /// in the profile directory; two arguments that are not both such names are two roots, as
    /// always. The command line's preferences apply to every profile.
    /// - Throws: `ProfileError` naming file and line of the first problem.
    public func loadAll(arguments: [String]) throws(ProfileError) -> [Profile] {
        let (positionals, overrides) = try CommandLineOverrides.parse(arguments)
        let named = positionals.filter { name in
            !name.contains("/") && !name.hasPrefix("ssh:") && FileAccess.isRegularFile(profileDirectory + "/" + name + ".prf")
        }
        guard positionals.count >= 2, named.count == positionals.count else { return [try load(arguments: arguments)] }
        var profiles: [Profile] = []
        for name in positionals { profiles.append(try load(profileNamed: name, overrides: overrides)) }
        return profiles
    }

    /// Loads a named profile with command-line `overrides` applied on top.
    /// - Throws: `ProfileError.missingFile` when no file for `name` exists.
    public func load(profileNamed name: String, overrides: [Setting] = []) throws(ProfileError) -> Profile {
        let candidates = profileCandidates(name)
        guard let file = candidates.first(where: FileAccess.isRegularFile) else {
            var message = "profile '\(name)' not found (looked for \(candidates.joined(separator: ", ")))"
            if name == "default" { message += "; give a profile name or two roots" }
            throw .missingFile(Diagnostic(file: nil, line: nil, message: message))
        }
        return try load(name: name, file: file, commandLineRoots: [], overrides: overrides)
    }

    /// Where a profile name is looked for, in order.
    func profileCandidates(_ name: String) -> [String] {
        if name.contains("/") { return [name] }
        return [profileDirectory + "/" + name + ".prf", profileDirectory + "/" + name, name]
    }

    private func load(name: String, file: String?, commandLineRoots: [String],
                      overrides: [Setting]) throws(ProfileError) -> Profile {
        let reader = ProfileReader(profileDirectory: profileDirectory)
        var builder = ProfileBuilder(profile: Profile(name: name, profileDirectory: profileDirectory), loader: self)
        builder.profile.sourceFile = file
        if let file {
            for setting in try reader.read(file: file) { try builder.apply(setting) }
        }
        for root in commandLineRoots {
            try builder.apply(Setting(name: "root", value: root, origin: .commandLine))
        }
        for setting in overrides {
            if let info = PreferenceTable.lookup(setting.name), info.kind == .directive {
                let optional = setting.name.hasSuffix("?")
                let settings = try reader.include(setting.value, keyword: setting.name, optional: optional,
                                                  addExtension: setting.name.hasPrefix("include"),
                                                  origin: .commandLine, stack: [])
                for included in settings { try builder.apply(included) }
            } else {
                try builder.apply(setting)
            }
        }
        return try builder.finish()
    }
}

/// Applies settings one by one to a ``Profile`` and checks the result.
struct ProfileBuilder {
    var profile: Profile
    let loader: ProfileLoader

    private var rootOrigins: [SettingOrigin] = []
    private var writtenRoots: [String] = []
    private var preferText: (String, SettingOrigin)?
    private var forceText: (String, SettingOrigin)?
    private var partialTexts: [(isForce: Bool, pattern: PathPattern, value: String, origin: SettingOrigin)] = []
    private var backupPatterns: [String] = []
    private var backupNotPatterns: [String] = []
    private var backupsEverything = false
    private var dontChmodOrigin: SettingOrigin?
    private var permsOrigin: SettingOrigin?
    private var maxDelayOrigin: SettingOrigin?
    private var warned: Set<String> = []

    init(profile: Profile, loader: ProfileLoader) {
        self.profile = profile
        self.loader = loader
    }

    /// Interprets one setting; list preferences accumulate, the others are overwritten.
    mutating func apply(_ setting: Setting) throws(ProfileError) {
        let origin = setting.origin
        let value = setting.value
        guard let info = PreferenceTable.lookup(setting.name) else {
            var message = "unknown preference '\(setting.name)'"
            if let hint = PreferenceTable.suggestion(for: setting.name) {
                message += " (did you mean '\(hint)'?)"
            } else {
                message += " (not a Unison or swunison preference; see swunison.prf(5) for the list)"
            }
            throw .unknownPreference(Diagnostic(at: origin, message))
        }
        let name = info.name
        switch info.support {
        case .commandLineOnly where origin != .commandLine:
            throw .badValue(Diagnostic(at: origin, "'\(setting.name)' is a command-line option (--\(name)); it cannot be set in a profile"))
        case .noEffect, .removed:
            // The command-line `--watch` is swunison's watch mode, not Unison's `watch` preference.
            if name == "watch" && origin == .commandLine {
                profile.watch = try Self.bool(value, name, origin)
                return
            }
            try Self.validate(value, info: info, origin: origin)
            if warned.insert(name).inserted {
                let reason = info.support == .removed ? " (it was removed from Unison)" : ""
                profile.warnings.append(Diagnostic(at: origin, "'\(setting.name)' has no effect in swunison\(reason)"))
            }
            return
        default:
            break
        }

        switch name {
        case "root":
            guard !value.isEmpty else { throw .badValue(Diagnostic(at: origin, "root needs a value (a directory or ssh://host/path)")) }
            if profile.roots.count == 2 {
                let existing = writtenRoots.map { "'\($0)'" }.joined(separator: " and ")
                throw .wrongRootCount(Diagnostic(at: origin,
                    "third root '\(value)': exactly two roots are allowed, and \(existing) are already given"
                        + (origin == .commandLine && rootOrigins.contains { $0 != .commandLine }
                            ? " by the profile (command-line roots add to the profile's, as in Unison)" : "")))
            }
            let base = origin == .commandLine ? loader.currentDirectory : loader.homeDirectory
            do {
                profile.roots.append(try Root.parse(value, relativeTo: base, home: loader.homeDirectory))
            } catch {
                throw .badValue(Diagnostic(at: origin, "bad root: \(error.message)"))
            }
            writtenRoots.append(value)
            rootOrigins.append(origin)
        case "path":
            profile.paths.append(try Self.relativePath(value, origin))
        case "ignore", "ignorenot":
            _ = try Self.pattern(value, name, origin)
            if name == "ignore" { profile.ignorePatterns.append(value) } else { profile.ignoreNotPatterns.append(value) }
        case "backup", "backupnot":
            _ = try Self.pattern(value, name, origin)
            if name == "backup" { backupPatterns.append(value) } else { backupNotPatterns.append(value) }
        case "preferpartial", "forcepartial":
            let pattern = try Self.pattern(value, name, origin)
            guard let target = pattern.associated, !target.isEmpty else {
                throw .badValue(Diagnostic(at: origin,
                    "\(name) '\(value)' needs a target: '\(name) = PATTERN -> newer|older|ROOT', e.g. 'Path docs -> newer'"))
            }
            partialTexts.append((name == "forcepartial", pattern, target, origin))
        case "prefer": preferText = value.isEmpty ? nil : (value, origin)
        case "force": forceText = value.isEmpty ? nil : (value, origin)
        case "batch": profile.batch = try Self.bool(value, name, origin)
        case "auto": profile.auto = try Self.bool(value, name, origin)
        case "confirmbigdel": profile.confirmBigDeletes = try Self.bool(value, name, origin)
        case "times": profile.attributes.times = try Self.bool(value, name, origin)
        case "owner": profile.attributes.owner = try Self.bool(value, name, origin)
        case "group": profile.attributes.group = try Self.bool(value, name, origin)
        case "dontchmod":
            profile.dontChmod = try Self.bool(value, name, origin)
            dontChmodOrigin = origin
        case "numericids":
            profile.numericIds = try Self.bool(value, name, origin)
            if !profile.numericIds {
                note(name, origin, "numericids = false has no effect: swunison always keeps owner and group by number (as numericids = true)")
            }
        case "backups": backupsEverything = try Self.bool(value, name, origin)
        case "log": profile.log = try Self.bool(value, name, origin)
        case "silent": profile.silent = try Self.bool(value, name, origin)
        case "terse": profile.terse = try Self.bool(value, name, origin)
        case "copyonconflict":
            profile.copyOnConflict = try Self.bool(value, name, origin)
            note(name, origin, "copyonconflict has no effect: swunison always keeps the losing version of a conflict, in backupdir")
        case "ignorearchives": profile.ignoreArchives = try Self.bool(value, name, origin)
        case "ignorelocks":
            profile.ignoreLocks = try Self.bool(value, name, origin)
            if profile.ignoreLocks {
                note(name, origin, "ignorelocks has no effect: swunison's lock is released by the kernel when its run ends, so it is never stale")
            }
        case "ignoreinodenumbers":
            profile.ignoreInodeNumbers = try Self.bool(value, name, origin)
            if profile.ignoreInodeNumbers {
                note(name, origin, "ignoreinodenumbers has no effect: a file whose inode number changed is only rehashed, never reported as changed when its content is the same")
            }
        case "addversionno": profile.ssh.addVersionNumber = try Self.bool(value, name, origin)
        case "serverdeploy": profile.ssh.deployServer = try Self.bool(value, name, origin)
        case "sshcompression": profile.ssh.compression = try Self.bool(value, name, origin)
        case "dry-run": profile.dryRun = try Self.bool(value, name, origin)
        case "fastcheck": profile.fastcheck = try Self.boolWithDefault(value, name, origin) ?? true
        case "links": profile.links = try Self.boolWithDefault(value, name, origin) ?? true
        case "retry": profile.retry = try Self.int(value, name, origin, minimum: 0)
        case "maxbackups": profile.maxBackups = try Self.int(value, name, origin, minimum: 0)
        case "maxerrors":
            profile.maxErrors = try Self.int(value, name, origin, minimum: 0)
            note(name, origin, "maxerrors has no effect: swunison propagates every path on its own and reports each failure, it never aborts a directory's transfer")
        case "perms":
            let mask = try Self.int(value, name, origin)
            profile.attributes.permissionMask = UInt32(truncatingIfNeeded: mask) & 0o7777
            permsOrigin = origin
            if Self.looksOctalButIsDecimal(value) {
                profile.warnings.append(Diagnostic(at: origin,
                    "perms = \(value) is read as decimal \(mask), as Unison does; write 0o\(value.drop { $0 == "0" }) for octal"))
            }
        case "sshport":
            let port = try Self.int(value, name, origin, minimum: 1)
            guard port <= 65535 else { throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for sshport: expected a port number 1-65535")) }
            profile.ssh.port = port
        case "sshkeepalive":
            let seconds = try Self.int(value, name, origin, minimum: 0)
            profile.ssh.keepAliveSeconds = seconds == 0 ? nil : seconds
        case "sshtimeout":
            let seconds = try Self.int(value, name, origin, minimum: 0)
            profile.ssh.timeoutSeconds = seconds == 0 ? nil : seconds
        case "watchlimit":
            profile.watchLimit = try Self.int(value, name, origin, minimum: 1)
        case "stalltimeout":
            // No "never": a run must not be left waiting forever on a stuck peer (issue 11).
            profile.ssh.stallTimeoutSeconds = try Self.int(value, name, origin, minimum: 1)
        case "backupdir":
            profile.backupDir = value.isEmpty ? nil
                : Root.resolveLocal(value, relativeTo: loader.homeDirectory, home: loader.homeDirectory)
        case "backuploc":
            guard let location = BackupLocation(rawValue: value) else {
                throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for backuploc: expected central or local"))
            }
            profile.backupLocation = location
            if location == .local {
                note(name, origin, "backuplocation = local has no effect: swunison keeps backups in backupdir")
            }
        case "backupprefix", "backupsuffix":
            if name == "backupprefix" { profile.backupPrefix = value } else { profile.backupSuffix = value }
            note("backupname", origin, "\(name) has no effect: swunison names backups .bak.N.NAME, in backupdir")
        case "logfile":
            profile.logFile = value.isEmpty ? nil
                : Root.resolveLocal(value, relativeTo: loader.profileDirectory, home: loader.homeDirectory)
        case "statusfile":
            profile.statusFile = value.isEmpty ? nil
                : Root.resolveLocal(value, relativeTo: loader.profileDirectory, home: loader.homeDirectory)
        case "label": profile.label = value.isEmpty ? nil : value
        case "sshcmd": profile.ssh.command = value.isEmpty ? "ssh" : value
        case "sshargs": profile.ssh.arguments = value.isEmpty ? nil : value
        case "servercmd": profile.ssh.serverCommand = value.isEmpty ? nil : value
        case "sshuser": profile.ssh.user = value.isEmpty ? nil : value
        case "repeat":
            let (watch, interval) = try Self.repeatValue(value, origin)
            profile.watch = watch
            profile.repeatIntervalSeconds = interval
        case "delay": profile.delay = try Self.seconds(value, name, origin)
        case "maxdelay":
            let seconds = try Self.seconds(value, name, origin)
            guard seconds > 0 else {
                throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for maxdelay: expected seconds above 0, e.g. 30"))
            }
            profile.maxDelaySeconds = seconds
            maxDelayOrigin = origin
        default:
            // Every typed name is handled above; reaching here is a table/switch mismatch.
            throw .unknownPreference(Diagnostic(at: origin, "preference '\(name)' is not implemented (internal error)"))
        }
    }

    /// Checks the merged result: exactly two roots, `prefer`/`force` naming one of them, and
    /// the compiled pattern sets.
    /// A one-line warning, once per preference, for a setting swunison accepts but does not act
    /// on, saying what it does instead.
    private mutating func note(_ name: String, _ origin: SettingOrigin, _ text: String) {
        if warned.insert(name).inserted { profile.warnings.append(Diagnostic(at: origin, text)) }
    }

    mutating func finish() throws(ProfileError) -> Profile {
        if profile.roots.count != 2 {
            let file = profile.sourceFile
            let given = profile.roots.isEmpty ? "no root" : "only one root ('\(writtenRoots[0])')"
            throw .wrongRootCount(Diagnostic(file: file, line: nil,
                message: "\(given) given; exactly two are needed (two 'root = ...' lines, or two roots on the command line)"))
        }
        if let (text, origin) = preferText { profile.prefer = try resolve(text, "prefer", origin) }
        if let (text, origin) = forceText { profile.force = try resolve(text, "force", origin) }
        for rule in partialTexts {
            let prefer = try resolve(rule.value, rule.isForce ? "forcepartial" : "preferpartial", rule.origin)
            let partial = PartialPreference(pattern: rule.pattern, prefer: prefer)
            if rule.isForce { profile.forcePartial.append(partial) } else { profile.preferPartial.append(partial) }
        }
        if profile.dontChmod && profile.attributes.permissionMask != 0, let origin = dontChmodOrigin {
            throw .badValue(Diagnostic(at: origin,
                "dontchmod = true needs perms = 0 (as in Unison)" + (permsOrigin == nil ? "; perms defaults to 0o1777" : "")))
        }
        if profile.maxDelaySeconds < profile.delay {
            let text = "maxdelay (\(Self.format(profile.maxDelaySeconds)) s) is shorter than delay (\(Self.format(profile.delay)) s): "
                + "in watch mode a change then waits maxdelay, not delay"
            profile.warnings.append(maxDelayOrigin.map { Diagnostic(at: $0, text) }
                                    ?? Diagnostic(file: profile.sourceFile, line: nil, message: text))
        }
        do {
            profile.ignore = try IgnoreRules(ignore: profile.ignorePatterns, ignoreNot: profile.ignoreNotPatterns)
            var backup = backupPatterns
            if backupsEverything { backup.append("Name *") }
            profile.backup = try IgnoreRules(ignore: backup, ignoreNot: backupNotPatterns)
        } catch {
            // Each pattern was checked when its line was read.
            throw .badValue(Diagnostic(file: profile.sourceFile, line: nil, message: error.description))
        }
        return profile
    }

    /// `newer`, `older`, or one of the roots: as written, its resolved form, a unique prefix or
    /// suffix of its path, or a unique prefix of its host name (Unison's rules).
    private func resolve(_ text: String, _ name: String, _ origin: SettingOrigin) throws(ProfileError) -> Prefer {
        switch text {
        case "newer": return .newer
        case "older": return .older
        default: break
        }
        let roots = profile.roots
        let allowed = "expected newer, older, or one of the roots '\(writtenRoots[0])' and '\(writtenRoots[1])'"
        for (index, root) in roots.enumerated() where writtenRoots[index] == text || root.written == text {
            return .side(index == 0 ? .a : .b)
        }
        var matching: [Int] = []
        for (index, root) in roots.enumerated() {
            let path: String
            var host: String?
            switch root {
            case .local(let p): path = p
            case .ssh(let r): path = r.path; host = r.host
            }
            let written = writtenRoots[index]
            if path.hasPrefix(text) || path.hasSuffix(text) || written.hasSuffix(text)
                || (host?.hasPrefix(text) ?? false) {
                matching.append(index)
            }
        }
        if matching.count == 1 { return .side(matching[0] == 0 ? .a : .b) }
        let problem = matching.isEmpty ? "matches neither root" : "matches both roots"
        throw .badValue(Diagnostic(at: origin, "bad value '\(text)' for \(name): it \(problem); \(allowed)"))
    }

    // MARK: - Value parsing

    static func bool(_ value: String, _ name: String, _ origin: SettingOrigin) throws(ProfileError) -> Bool {
        switch value {
        case "true": return true
        case "false": return false
        default: throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for \(name): expected true or false"))
        }
    }

    /// `true`/`yes`, `false`/`no`, or nil for `default`/`auto`.
    static func boolWithDefault(_ value: String, _ name: String, _ origin: SettingOrigin) throws(ProfileError) -> Bool? {
        switch value {
        case "true", "yes": return true
        case "false", "no": return false
        case "default", "auto": return nil
        default: throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for \(name): expected true, false or default"))
        }
    }

    static func int(_ value: String, _ name: String, _ origin: SettingOrigin, minimum: Int? = nil) throws(ProfileError) -> Int {
        guard let n = parseOCamlInt(value) else {
            throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for \(name): expected an integer"))
        }
        if let minimum, n < minimum {
            throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for \(name): expected an integer of at least \(minimum)"))
        }
        return n
    }

    /// An integer as OCaml's `int_of_string` reads it (what Unison uses): optional sign, then
    /// decimal, `0x`/`0o`/`0b` with either case, `_` allowed between digits.
    static func parseOCamlInt(_ text: String) -> Int? {
        var s = Substring(text)
        var negative = false
        if s.hasPrefix("-") { negative = true; s = s.dropFirst() } else if s.hasPrefix("+") { s = s.dropFirst() }
        var radix = 10
        for (prefix, r) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] where s.hasPrefix(prefix) {
            radix = r; s = s.dropFirst(2); break
        }
        guard let first = s.first, first != "_" else { return nil }
        let digits = s.filter { $0 != "_" }
        guard let magnitude = Int(digits, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// `0644`-style values: octal to a reader, decimal to Unison.
    static func looksOctalButIsDecimal(_ value: String) -> Bool {
        value.count > 1 && value.hasPrefix("0") && value.allSatisfy { ("0"..."7").contains($0) }
            && value.contains { $0 != "0" }
    }

    /// Seconds as `1`, `0.5`, `1.5s` or `250ms`.
    static func seconds(_ value: String, _ name: String, _ origin: SettingOrigin) throws(ProfileError) -> Double {
        var text = Substring(value)
        var scale = 1.0
        if text.hasSuffix("ms") { text = text.dropLast(2); scale = 0.001 } else if text.hasSuffix("s") { text = text.dropLast() }
        guard let n = Double(text), n.isFinite, n >= 0 else {
            throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for \(name): expected seconds, e.g. 1, 0.5 or 250ms"))
        }
        return n * scale
    }

    /// Seconds for a message: `3`, `0.25`.
    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : String(seconds)
    }

    /// Unison's `repeat`: empty (once), `watch`, `watch+N` or `N` seconds.
    static func repeatValue(_ value: String, _ origin: SettingOrigin) throws(ProfileError) -> (Bool, Int?) {
        let bad = ProfileError.badValue(Diagnostic(at: origin,
            "bad value '\(value)' for repeat: expected watch, watch+SECONDS or SECONDS"))
        if value.isEmpty { return (false, nil) }
        if value == "watch" { return (true, nil) }
        if value.hasPrefix("watch+") {
            guard let n = Int(value.dropFirst(6)), n > 0 else { throw bad }
            return (true, n)
        }
        guard let n = Int(value), n > 0 else { throw bad }
        return (false, n)
    }

    static func pattern(_ value: String, _ name: String, _ origin: SettingOrigin) throws(ProfileError) -> PathPattern {
        do {
            return try PathPattern(value)
        } catch {
            throw .badValue(Diagnostic(at: origin,
                "\(error.description) in \(name) (expected Name, Path, BelowPath or Regex followed by a pattern)"))
        }
    }

    static func relativePath(_ value: String, _ origin: SettingOrigin) throws(ProfileError) -> RelativePath {
        var text = value
        while text.count > 1 && text.hasSuffix("/") { text.removeLast() }
        if text.isEmpty || text.hasPrefix("/") {
            throw .badValue(Diagnostic(at: origin, "bad path '\(value)': expected a path relative to the roots, e.g. 'path = docs/2024'"))
        }
        if text == "*" || text.hasSuffix("/*") {
            throw .badValue(Diagnostic(at: origin, "bad path '\(value)': a path ending in '*' is not supported by swunison; list the subdirectories"))
        }
        do {
            return try RelativePath(validating: text)
        } catch {
            throw .badValue(Diagnostic(at: origin, "bad path '\(value)': \(error.description)"))
        }
    }

    /// Type-checks the value of a preference that has no effect, so that a profile Unison
    /// rejects is rejected here too.
    static func validate(_ value: String, info: PreferenceInfo, origin: SettingOrigin) throws(ProfileError) {
        switch info.kind {
        case .bool: _ = try bool(value, info.name, origin)
        case .boolWithDefault: _ = try boolWithDefault(value, info.name, origin)
        case .int: _ = try int(value, info.name, origin)
        case .pathSpec: _ = try pattern(value, info.name, origin)
        case .special where info.name == "ui":
            guard value == "text" || value == "graphic" else {
                throw .badValue(Diagnostic(at: origin, "bad value '\(value)' for ui: expected text or graphic"))
            }
        default: break
        }
    }
}
