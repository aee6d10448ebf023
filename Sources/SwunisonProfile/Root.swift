/// One end of a synchronisation, as given by a `root` preference or a command-line root.
public enum Root: Sendable, Hashable, CustomStringConvertible {
    /// A directory on this host; `path` is absolute (relative roots are resolved when parsed).
    case local(path: String)
    /// A directory on another host, reached with ssh and `swunison server`.
    case ssh(SSHRoot)

    /// The root as written in the profile or on the command line (for a local root: its
    /// resolved absolute path).
    public var written: String {
        switch self {
        case .local(let path): return path
        case .ssh(let root): return root.written
        }
    }

    public var description: String { written }

    /// Parses a root as Unison writes it.
    ///
    /// - `/abs/dir` is local; a relative `dir` (or `~/dir`) is resolved against `relativeTo`.
    /// - `ssh://[user@]host[:port]//abs/dir` is an absolute path on the remote host;
    ///   `ssh://[user@]host[:port]/dir` is relative to the remote home directory, and
    ///   `ssh://host` or `ssh://host/` is the remote home directory itself.
    /// - `file:///abs` and `//host/...` are local paths (Unison's `file:` protocol).
    /// - Parameters:
    ///   - text: the root as written (surrounding whitespace is ignored).
    ///   - relativeTo: absolute directory that a relative local root is resolved against.
    ///   - home: the home directory, for `~`.
    /// - Throws: a message saying what is wrong (the caller adds file and line).
    public static func parse(_ text: String, relativeTo base: String, home: String) throws(RootParseError) -> Root {
        let s = trimmed(text)
        guard !s.isEmpty else { throw RootParseError("root is empty") }
        if let schemeEnd = s.firstRange(of: "://"), isScheme(s[s.startIndex..<schemeEnd.lowerBound]) {
            let scheme = String(s[s.startIndex..<schemeEnd.lowerBound])
            let rest = String(s[schemeEnd.upperBound...])
            switch scheme {
            case "ssh": return .ssh(try SSHRoot(parsing: rest, written: s))
            case "file":
                guard let slash = rest.firstIndex(of: "/") else { throw RootParseError("'\(s)': a file:// root needs a path") }
                return .local(path: resolveLocal(String(rest[slash...]), relativeTo: base, home: home))
            case "socket":
                throw RootParseError("'\(s)': socket:// roots are not supported by swunison; use ssh://")
            case "rsh":
                throw RootParseError("'\(s)': protocol rsh has been deprecated; use ssh://")
            case "unison":
                throw RootParseError("'\(s)': protocol unison has been deprecated; use ssh://")
            default:
                throw RootParseError("'\(s)': unrecognised protocol '\(scheme)'; a root is a local path or ssh://[user@]host[:port]/path")
            }
        }
        for scheme in ["ssh:", "file:", "socket:"] where s.hasPrefix(scheme) {
            throw RootParseError("'\(s)': ill-formed root (\(scheme) must be followed by //)")
        }
        if s.hasPrefix("//") {
            // Unison reads `//host/path` as a file: root; on Linux it is simply an absolute path.
            return .local(path: resolveLocal(String(s.dropFirst()), relativeTo: base, home: home))
        }
        return .local(path: resolveLocal(s, relativeTo: base, home: home))
    }

    private static func isScheme(_ s: Substring) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) }
    }

    /// Makes a local path absolute and tidy: `~` expanded, relative paths joined to `base`,
    /// repeated and trailing slashes removed. `.` and `..` are left for the file system.
    static func resolveLocal(_ path: String, relativeTo base: String, home: String) -> String {
        var p = path
        if p == "~" { p = home } else if p.hasPrefix("~/") { p = home + "/" + p.dropFirst(2) }
        if !p.hasPrefix("/") { p = base + "/" + p }
        var out = ""
        var lastWasSlash = false
        for c in p {
            if c == "/" {
                if lastWasSlash { continue }
                lastWasSlash = true
            } else {
                lastWasSlash = false
            }
            out.append(c)
        }
        while out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        return out
    }
}

/// A root on another host: `ssh://[user@]host[:port]//abs` or `ssh://[user@]host[:port]/rel`.
public struct SSHRoot: Sendable, Hashable, CustomStringConvertible {
    public var user: String?
    /// Host name or IP address (an IPv6 literal without its brackets).
    public var host: String
    public var port: Int?
    /// The directory on the remote host: absolute (`/srv/data`) when `isAbsolute`, otherwise
    /// relative to the remote user's home directory (empty = the home directory itself).
    public var path: String
    public var isAbsolute: Bool
    /// The root as written, for display and for matching `prefer = <root>`.
    public var written: String

    public init(user: String?, host: String, port: Int?, path: String, isAbsolute: Bool, written: String? = nil) {
        self.user = user; self.host = host; self.port = port; self.path = path; self.isAbsolute = isAbsolute
        self.written = written ?? Self.render(user: user, host: host, port: port, path: path, isAbsolute: isAbsolute)
    }

    public var description: String { written }

    /// Parses what follows `ssh://`.
    init(parsing rest: String, written: String) throws(RootParseError) {
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = Substring(rest[rest.startIndex..<authorityEnd])
        var user: String?
        if let at = authority.lastIndex(of: "@") {
            let name = authority[authority.startIndex..<at]
            if let colon = name.firstIndex(of: ":") {
                // user:password@host: a secret in a profile, and in every message and log line
                // that names the root. Refused, and never repeated.
                let shown = "ssh://" + name[..<colon] + ":***@" + authority[authority.index(after: at)...]
                    + rest[authorityEnd...]
                throw RootParseError("'\(shown)': a password in a root is not supported (it would be kept in the "
                    + "profile and shown wherever the root is named); authenticate with a key "
                    + "(ssh-copy-id \(name[..<colon])@host) or ssh-agent, and remove the password from the root")
            }
            guard !name.isEmpty, name.unicodeScalars.allSatisfy(Self.isUserScalar) else {
                throw RootParseError("'\(written)': bad user name '\(name)'")
            }
            user = String(name)
            authority = authority[authority.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw RootParseError("'\(written)': unterminated '[' in IPv6 host")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw RootParseError("'\(written)': unexpected '\(after)' after the host")
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[authority.startIndex..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw RootParseError("'\(written)': an ssh:// root needs a host name") }
        guard host.unicodeScalars.allSatisfy(Self.isHostScalar) else {
            throw RootParseError("'\(written)': bad host name '\(host)'")
        }
        var port: Int?
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw RootParseError("'\(written)': bad port '\(portText)' (expected 1-65535)")
            }
            port = value
        }
        // After the authority: "" or "/" = home, "/rel" = relative to home, "//abs" = absolute.
        let pathPart = rest[authorityEnd...]
        let path: String
        let isAbsolute: Bool
        if pathPart.hasPrefix("//") {
            path = Root.resolveLocal(String(pathPart.dropFirst()), relativeTo: "/", home: "/")
            isAbsolute = true
        } else if pathPart.hasPrefix("/") {
            var rel = String(pathPart.dropFirst())
            while rel.hasSuffix("/") { rel.removeLast() }
            path = rel
            isAbsolute = false
        } else {
            path = ""
            isAbsolute = false
        }
        self.init(user: user, host: String(host), port: port, path: path, isAbsolute: isAbsolute, written: written)
    }

    private static func isUserScalar(_ c: Unicode.Scalar) -> Bool {
        isHostScalar(c) || c == "@"
    }

    private static func isHostScalar(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
            || c == "-" || c == "_" || c == "." || c == "%" || c == ":"
    }

    private static func render(user: String?, host: String, port: Int?, path: String, isAbsolute: Bool) -> String {
        var s = "ssh://"
        if let user { s += user + "@" }
        s += host.contains(":") ? "[\(host)]" : host
        if let port { s += ":\(port)" }
        s += "/"
        if isAbsolute { s += path.hasPrefix("/") ? path : "/" + path } else { s += path }
        return s
    }
}

/// Why a root could not be parsed.
public struct RootParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `s` without leading and trailing spaces, tabs, CR and LF.
func trimmed(_ s: some StringProtocol) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
    guard let first = s.firstIndex(where: { !isSpace($0) }),
          let last = s.lastIndex(where: { !isSpace($0) }) else { return "" }
    return String(s[first...last])
}
