/// How a preference's value is written.
enum PreferenceKind: Sendable {
    /// `true` or `false` (Unison accepts nothing else).
    case bool
    /// `true`/`yes`, `false`/`no` or `default`/`auto` (Unison's `createBoolWithDefault`).
    case boolWithDefault
    /// An integer as OCaml reads it: decimal, `0o17`, `0x1f`, `0b101`, optional sign, `_` separators.
    case int
    /// Free text; the last assignment wins.
    case string
    /// Free text; every assignment adds one element.
    case stringList
    /// A path specification (`Name ...`), checked when read; every assignment adds one.
    case pathSpec
    /// A value with its own syntax, checked by the loader (`path`, `repeat`, `delay`, `maxdelay`, `ui`).
    case special
    /// `include` / `source`: read another file.
    case directive
}

/// What swunison does with a preference.
enum PreferenceSupport: Sendable {
    /// Read into a typed field of ``Profile``.
    case typed
    /// A Unison preference that swunison accepts and ignores, with one warning.
    case noEffect
    /// A preference Unison has removed; accepted with a warning like `noEffect`.
    case removed
    /// swunison's own command-line flag (`--dry-run`); not allowed in a profile.
    case commandLineOnly
}

/// One known preference name.
struct PreferenceInfo: Sendable {
    let name: String
    let kind: PreferenceKind
    let support: PreferenceSupport
}

/// Every preference name Unison 2.53 knows (documented ones plus the developer switches it
/// accepts in profiles, with its aliases), and swunison's own additions.
///
/// Gathered from the `Prefs.create*` and `Pred.create` calls of Unison 2.53.8's `src/`; names in
/// Unison's internal "pseudo" category, which Unison itself rejects in profiles, are left out.
enum PreferenceTable {
    /// Unison's aliases, old spellings mapped to the canonical name.
    static let aliases: [String: String] = [
        "confirmbigdeletes": "confirmbigdel",
        "numericIds": "numericids",
        "backuplocation": "backuploc",
        "mirrorversions": "maxbackups",
        "backupversions": "maxbackups",
        "pretendwin": "ignoreinodenumbers",
        "killServer": "killserver",
        "testServer": "testserver",
        "showArchiveName": "showarchive",
        "host": "listen",
        "dryrun": "dry-run",
    ]

    static let all: [String: PreferenceInfo] = {
        var table: [String: PreferenceInfo] = [:]
        func add(_ support: PreferenceSupport, _ kind: PreferenceKind, _ names: String...) {
            for name in names { table[name] = PreferenceInfo(name: name, kind: kind, support: support) }
        }
        // Implemented: typed fields of Profile.
        add(.typed, .stringList, "root")
        add(.typed, .special, "path", "repeat", "delay", "maxdelay")
        add(.typed, .pathSpec, "ignore", "ignorenot", "backup", "backupnot", "preferpartial", "forcepartial")
        add(.typed, .bool, "batch", "auto", "confirmbigdel", "times", "dontchmod", "owner", "group", "numericids",
            "backups", "log", "silent", "terse", "copyonconflict", "ignorearchives", "ignorelocks",
            "ignoreinodenumbers", "addversionno", "serverdeploy", "sshcompression")
        add(.typed, .boolWithDefault, "fastcheck", "links")
        add(.typed, .int, "retry", "perms", "maxbackups", "maxerrors", "sshkeepalive", "sshtimeout", "sshport",
            "stalltimeout", "watchlimit")
        add(.typed, .string, "prefer", "force", "backupdir", "backuploc", "backupprefix", "backupsuffix",
            "logfile", "statusfile", "label", "sshcmd", "sshargs", "servercmd", "sshuser")
        add(.typed, .directive, "include", "source")
        add(.commandLineOnly, .bool, "dry-run")

        // Known to Unison, no effect in swunison.
        add(.noEffect, .bool, "rsync", "keeptempfilesaftermerge", "fastercheckUNSAFE", "watch", "fat",
            "moves-experimental", "xattrs", "acl", "stream", "halfduplex", "killserver", "sortbysize",
            "sortnewfirst", "debugtimes", "timers", "expert", "contactquietly", "confirmmerge", "showprev",
            "testserver", "dumbtty", "showarchive", "dumparchives", "xferbycopying", "version", "prefsdocs",
            "server", "selftest", "i")
        add(.noEffect, .boolWithDefault, "ignorecase", "unicode", "rsrc", "color")
        add(.noEffect, .int, "copythreshold", "copymax", "maxsizethreshold", "maxthreads", "height")
        add(.noEffect, .string, "copyprog", "copyprogrest", "diff", "clientHostName", "addprefsto", "key",
            "doc", "prefsman", "socket", "listen")
        add(.noEffect, .stringList, "nodeletion", "noupdate", "nocreation", "debug", "rootalias", "mountpoint")
        add(.noEffect, .pathSpec, "atomic", "merge", "follow", "xattrignore", "xattrignorenot",
            "nodeletionpartial", "noupdatepartial", "nocreationpartial", "sortfirst", "sortlast",
            "backupcurr", "backupcurrnot", "immutable", "immutablenot")
        add(.noEffect, .special, "ui")
        // Removed from Unison (2.52 and later); still recognised so old profiles load.
        add(.removed, .string, "rshcmd", "rshargs", "sshversion", "copyquoterem")
        return table
    }()

    /// The entry for `name` (after resolving an alias), or nil for an unknown name.
    static func lookup(_ name: String) -> PreferenceInfo? {
        all[aliases[name] ?? name]
    }

    /// The known name closest to `name` by edit distance, if it is close enough to be a typo.
    static func suggestion(for name: String) -> String? {
        let lowered = name.lowercased()
        var best: (name: String, distance: Int)?
        for candidate in all.keys.sorted() {
            let d = editDistance(lowered, candidate.lowercased())
            if let current = best, current.distance <= d { continue }
            best = (candidate, d)
        }
        guard let best else { return nil }
        let limit = max(1, min(3, name.count / 3))
        return best.distance <= limit ? best.name : nil
    }

    /// Levenshtein distance between two strings, by Unicode scalar.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }
}
