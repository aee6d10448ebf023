import Glibc

/// Where to connect: `[user@]host[:port]`. A nil user or port comes from ~/.ssh/config, else
/// libssh's defaults (the local user name, port 22). `host` may be a ~/.ssh/config alias.
public struct SSHDestination: Sendable, Hashable, CustomStringConvertible {
    public var user: String?
    public var host: String
    public var port: Int?

    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    public var description: String {
        (user.map { "\($0)@" } ?? "") + (port.map { hostPort(host, $0) } ?? host)
    }
}

/// What to do with a host key that known_hosts does not list (a *changed* key is refused whatever
/// this says: DESIGN invariant 8). Names follow OpenSSH's `StrictHostKeyChecking`.
public enum StrictHostKeyChecking: String, Sendable, Hashable, CaseIterable {
    /// Never accept an unknown key: the user must add it to known_hosts first.
    case yes
    /// Ask in interactive mode (through `SSHPrompts.confirmUnknownHost`); refuse in batch mode.
    case ask
    /// Record an unknown key in known_hosts and go on (the session reports it as `.added`).
    case acceptNew = "accept-new"
    /// Same as `acceptNew` here: unlike OpenSSH, a changed key is still refused.
    case no
}

/// How to reach and trust a host. Explicit values win over ~/.ssh/config, which wins over
/// libssh's defaults.
public struct SSHOptions: Sendable, Hashable {
    /// The directory holding `config`, `known_hosts` and the default identities (`id_ed25519`,
    /// ...). nil: `$SWUNISON_SSH_DIR` if set, else `~/.ssh` of the user running swunison (from the
    /// password database, not `$HOME`, as libssh and OpenSSH do).
    public var sshDirectory: String?
    /// Identity files tried after the agent and the default identities (a leading `~/` is expanded).
    public var identityFiles: [String]
    /// known_hosts to check and update; nil: ~/.ssh/config's `UserKnownHostsFile`, else
    /// `<sshDirectory>/known_hosts`.
    public var knownHostsFile: String?
    /// Ask for zlib compression (costly on fast links: see PLATFORM-NOTES §1).
    public var compression: Bool
    /// Send an SSH keepalive this often while the session is open; nil: never.
    public var keepaliveSeconds: Int?
    /// Give up connecting (and opening channels) after this long; nil: 30 s.
    public var connectTimeoutSeconds: Int?
    /// What to do with an unknown host key.
    public var strictHostKeyChecking: StrictHostKeyChecking
    /// Whether a person is there to answer prompts. When false (batch mode) the prompts given to
    /// `SSHSession.connect` are never called.
    public var isInteractive: Bool

    public init(
        sshDirectory: String? = nil, identityFiles: [String] = [], knownHostsFile: String? = nil,
        compression: Bool = false, keepaliveSeconds: Int? = nil, connectTimeoutSeconds: Int? = nil,
        strictHostKeyChecking: StrictHostKeyChecking = .ask, isInteractive: Bool = false
    ) {
        self.sshDirectory = sshDirectory
        self.identityFiles = identityFiles
        self.knownHostsFile = knownHostsFile
        self.compression = compression
        self.keepaliveSeconds = keepaliveSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.strictHostKeyChecking = strictHostKeyChecking
        self.isInteractive = isInteractive
    }

    /// The directory actually used: `sshDirectory`, else `$SWUNISON_SSH_DIR`, else `~/.ssh`.
    public var resolvedSSHDirectory: String {
        if let sshDirectory { return expandingTilde(sshDirectory) }
        if let fromEnvironment = getenv("SWUNISON_SSH_DIR"), fromEnvironment.pointee != 0 {
            return expandingTilde(String(cString: fromEnvironment))
        }
        return userHomeDirectory() + "/.ssh"
    }
}

/// Questions the connection may need a person to answer. Used only when
/// `SSHOptions.isInteractive` is true; each may be nil (then that question counts as "no").
public struct SSHPrompts: Sendable {
    /// Trust this unknown host? Arguments: `host:port` and the key fingerprint (`SHA256:...`).
    public var confirmUnknownHost: (@Sendable (_ host: String, _ fingerprint: String) -> Bool)?
    /// The passphrase of this identity file, or nil to skip the key.
    public var passphrase: (@Sendable (_ keyFile: String) -> String?)?
    /// Answers to keyboard-interactive or password prompts: one answer per prompt, or nil to give up.
    /// Without this closure, password and keyboard-interactive authentication are never tried.
    public var answerPrompts: (@Sendable (_ destination: String, _ instruction: String, _ prompts: [SSHPrompt]) -> [String]?)?

    public init(
        confirmUnknownHost: (@Sendable (_ host: String, _ fingerprint: String) -> Bool)? = nil,
        passphrase: (@Sendable (_ keyFile: String) -> String?)? = nil,
        answerPrompts: (@Sendable (_ destination: String, _ instruction: String, _ prompts: [SSHPrompt]) -> [String]?)? = nil
    ) {
        self.confirmUnknownHost = confirmUnknownHost
        self.passphrase = passphrase
        self.answerPrompts = answerPrompts
    }
}

/// One keyboard-interactive (or password) prompt.
public struct SSHPrompt: Sendable, Hashable {
    public var text: String
    /// Whether the answer may be shown while typed (false for passwords).
    public var isEchoed: Bool

    public init(text: String, isEchoed: Bool) {
        self.text = text
        self.isEchoed = isEchoed
    }
}

/// The home directory of the user running the process, from the password database.
func userHomeDirectory() -> String {
    var record = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 4096)
    if getpwuid_r(getuid(), &record, &buffer, buffer.count, &result) == 0, let result, let dir = result.pointee.pw_dir {
        return String(cString: dir)
    }
    if let home = getenv("HOME") { return String(cString: home) }
    return "/"
}

/// `~` and `~/x` become the user's home directory (as OpenSSH does for -i and IdentityFile).
func expandingTilde(_ path: String) -> String {
    if path == "~" { return userHomeDirectory() }
    if path.hasPrefix("~/") { return userHomeDirectory() + path.dropFirst() }
    return path
}
