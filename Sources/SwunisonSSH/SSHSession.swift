import CLibSSH
import Glibc

/// How the host key was accepted (DESIGN invariant 8).
public enum HostKeyVerification: Sendable, Hashable {
    /// known_hosts already listed this key.
    case known(fingerprint: String)
    /// The key was unknown and has been recorded (the user confirmed, or `accept-new`/`no`).
    case added(fingerprint: String, knownHostsFile: String)
}

/// The result of `SSHSession.runCommand`.
public struct SSHCommandResult: Sendable, Hashable {
    /// The remote exit status; nil when the command reported none (killed by a signal).
    public var status: Int32?
    public var stdout: [UInt8]
    public var stderr: String
}

/// An authenticated SSH connection to one host (owns a libssh `ssh_session`).
///
/// Threads: libssh is not thread-safe per session, so the `ssh_session` is only ever used by one
/// thread at a time: by the thread calling `connect` until it returns, and from then on only by
/// the session's own I/O thread, which serves every channel. The public methods of
/// `SSHSession` and `SSHExecChannel` hand work to that thread and wait for it, so they may be
/// called from any thread. The I/O thread stops, and the connection closes, when the session and
/// all its channels have been released.
public final class SSHSession: @unchecked Sendable {
    /// Where the session is connected: the user and port actually used, the host as given.
    public let destination: SSHDestination
    /// The host name actually dialled (a ~/.ssh/config `HostName`, or `destination.host`).
    public let resolvedHost: String
    /// How the host key was trusted.
    public let hostKeyVerification: HostKeyVerification
    let core: SessionCore

    /// Connects, verifies the host key and authenticates.
    ///
    /// Order (PLATFORM-NOTES §1): host and SSH_DIR, then ~/.ssh/config, then the explicit user,
    /// port, known_hosts and options, so a config alias works and explicit values win.
    /// Invariant 8: the host key is checked against known_hosts before any authentication; a
    /// changed key is always refused, an unknown one is accepted only as
    /// `options.strictHostKeyChecking` and the user (through `prompts`) allow.
    /// - Throws: `SSHError` (connection, host key, authentication).
    public static func connect(
        to destination: SSHDestination, options: SSHOptions = SSHOptions(), prompts: SSHPrompts = SSHPrompts()
    ) throws(SSHError) -> SSHSession {
        guard let raw = ssh_new() else {
            throw .connectionFailed(destination: destination.description, message: "libssh could not allocate a session")
        }
        let handle = LibSSHHandle(raw)
        let sshDirectory = options.resolvedSSHDirectory
        let timeout = options.connectTimeoutSeconds ?? 30

        try handle.set(SSH_OPTIONS_HOST, destination.host, name: "Host")
        try handle.set(SSH_OPTIONS_SSH_DIR, sshDirectory, name: "SSH directory")
        // Before the config so that a `Ciphers` line there still wins; aes128-gcm is the fastest
        // cipher measured here (PLATFORM-NOTES §1 throughput table); the rest are libssh's defaults.
        let ciphers = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
        try handle.set(SSH_OPTIONS_CIPHERS_C_S, ciphers, name: "Ciphers")
        try handle.set(SSH_OPTIONS_CIPHERS_S_C, ciphers, name: "Ciphers")
        var timeoutValue = timeout
        guard ssh_options_set(raw, SSH_OPTIONS_TIMEOUT, &timeoutValue) == 0 else {
            throw .invalidOption(name: "ConnectTimeout", value: "\(timeout)", message: handle.errorMessage)
        }
        guard ssh_options_parse_config(raw, nil) == 0 else {
            throw .invalidOption(name: "config", value: sshDirectory + "/config", message: handle.errorMessage)
        }
        if let user = destination.user { try handle.set(SSH_OPTIONS_USER, user, name: "User") }
        if let port = destination.port {
            var value = UInt32(clamping: port)
            guard ssh_options_set(raw, SSH_OPTIONS_PORT, &value) == 0 else {
                throw .invalidOption(name: "Port", value: "\(port)", message: handle.errorMessage)
            }
        }
        if let knownHosts = options.knownHostsFile {
            try handle.set(SSH_OPTIONS_KNOWNHOSTS, expandingTilde(knownHosts), name: "UserKnownHostsFile")
        }
        if options.compression { try handle.set(SSH_OPTIONS_COMPRESSION, "yes", name: "Compression") }

        let user = handle.stringOption(SSH_OPTIONS_USER) ?? destination.user ?? ""
        let host = handle.stringOption(SSH_OPTIONS_HOST) ?? destination.host
        var portValue: UInt32 = 22
        _ = ssh_options_get_port(raw, &portValue)
        let port = Int(portValue)
        let resolved = SSHDestination(user: user, host: destination.host, port: port)
        let label = "\(user)@\(hostPort(host, port))"

        guard ssh_connect(raw) == SSH_OK else {
            throw .connectionFailed(destination: label, message: handle.errorMessage)
        }
        let knownHostsFile = handle.stringOption(SSH_OPTIONS_KNOWNHOSTS)
            ?? options.knownHostsFile.map(expandingTilde) ?? sshDirectory + "/known_hosts"
        let verification = try verifyHostKey(
            handle, host: host, port: port, knownHostsFile: knownHostsFile, options: options, prompts: prompts)
        try authenticate(handle, label: label, sshDirectory: sshDirectory, options: options, prompts: prompts)

        let core = SessionCore(handle: handle, label: label, keepaliveSeconds: options.keepaliveSeconds,
                               timeoutSeconds: timeout)
        try core.start()
        return SSHSession(destination: resolved, resolvedHost: host, hostKeyVerification: verification, core: core)
    }

    private init(destination: SSHDestination, resolvedHost: String, hostKeyVerification: HostKeyVerification, core: SessionCore) {
        self.destination = destination
        self.resolvedHost = resolvedHost
        self.hostKeyVerification = hostKeyVerification
        self.core = core
    }

    deinit { core.shutdown() }

    /// `user@host:port` for messages.
    public var label: String { core.label }

    /// Starts `command` on the remote host (through the user's login shell, as ssh(1) does) and
    /// returns its stdin/stdout as a byte stream; stderr is collected separately.
    /// - Throws: `SSHError.channelFailed` or `.connectionLost`.
    public func exec(_ command: String) throws(SSHError) -> SSHExecChannel {
        let state = try core.openChannel(command: command)
        return SSHExecChannel(session: self, state: state)
    }

    /// Runs `command` with empty stdin and waits for it to finish. For short commands
    /// (`uname -sm`, deploy checks): the whole output is kept in memory.
    public func runCommand(_ command: String) throws(SSHError) -> SSHCommandResult {
        let channel = try exec(command)
        defer { channel.close() }
        channel.closeWrite()
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            let n = try buffer.withUnsafeMutableBytes { raw in catching { () throws(SSHError) in try channel.read(into: raw) } }.get()
            if n == 0 { break }
            output += buffer[0..<n]
        }
        let status = try channel.exitStatus()
        return SSHCommandResult(status: status, stdout: output, stderr: channel.standardError)
    }
}

// MARK: - Host key verification

extension SSHSession {
    /// Invariant 8: checks the server's key against known_hosts before any authentication.
    private static func verifyHostKey(
        _ handle: LibSSHHandle, host: String, port: Int, knownHostsFile: String,
        options: SSHOptions, prompts: SSHPrompts
    ) throws(SSHError) -> HostKeyVerification {
        let fingerprint = try serverFingerprint(handle, host: host, port: port)
        let state = ssh_session_is_known_server(handle.raw)
        switch state {
        case SSH_KNOWN_HOSTS_OK:
            return .known(fingerprint: fingerprint)
        case SSH_KNOWN_HOSTS_CHANGED, SSH_KNOWN_HOSTS_OTHER:
            throw .hostKeyChanged(host: host, port: port, fingerprint: fingerprint, knownHostsFile: knownHostsFile)
        case SSH_KNOWN_HOSTS_UNKNOWN, SSH_KNOWN_HOSTS_NOT_FOUND:
            let accepted: Bool
            switch options.strictHostKeyChecking {
            case .yes:
                throw .hostKeyUnknown(host: host, port: port, fingerprint: fingerprint, knownHostsFile: knownHostsFile)
            case .ask:
                guard options.isInteractive, let confirm = prompts.confirmUnknownHost else {
                    throw .hostKeyUnknown(host: host, port: port, fingerprint: fingerprint, knownHostsFile: knownHostsFile)
                }
                accepted = confirm(hostPort(host, port), fingerprint)
            case .acceptNew, .no:
                accepted = true
            }
            guard accepted else { throw .hostKeyRejected(host: host, port: port, fingerprint: fingerprint) }
            guard ssh_session_update_known_hosts(handle.raw) == SSH_OK else {
                throw .knownHostsFailed(host: host, port: port, knownHostsFile: knownHostsFile, message: handle.errorMessage)
            }
            return .added(fingerprint: fingerprint, knownHostsFile: knownHostsFile)
        default:
            throw .knownHostsFailed(host: host, port: port, knownHostsFile: knownHostsFile, message: handle.errorMessage)
        }
    }

    /// The server key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:base64`).
    private static func serverFingerprint(_ handle: LibSSHHandle, host: String, port: Int) throws(SSHError) -> String {
        var key: ssh_key?
        guard ssh_get_server_publickey(handle.raw, &key) == SSH_OK, let key else {
            throw .connectionFailed(destination: hostPort(host, port), message: "no server key: \(handle.errorMessage)")
        }
        defer { ssh_key_free(key) }
        var hash: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == 0, hash != nil else {
            throw .connectionFailed(destination: hostPort(host, port), message: "could not hash the server key")
        }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length) else {
            throw .connectionFailed(destination: hostPort(host, port), message: "could not format the server key fingerprint")
        }
        defer { ssh_string_free_char(text) }
        return String(cString: text)
    }
}

// MARK: - Authentication

extension SSHSession {
    /// Public keys (agent and default identities, then explicit identity files), then
    /// keyboard-interactive and password only when a person can answer.
    private static func authenticate(
        _ handle: LibSSHHandle, label: String, sshDirectory: String, options: SSHOptions, prompts: SSHPrompts
    ) throws(SSHError) {
        let raw = handle.raw
        var tried: [String] = []
        var needsPassphrase: [String] = []

        func check(_ rc: Int32) throws(SSHError) -> Bool {
            if rc == SSH_AUTH_SUCCESS.rawValue { return true }
            if rc == SSH_AUTH_ERROR.rawValue {
                throw .connectionLost(destination: label, message: handle.errorMessage)
            }
            return false
        }

        if try check(ssh_userauth_none(raw, nil)) { return }
        let methods = UInt32(bitPattern: ssh_userauth_list(raw, nil))

        if methods & SSH_AUTH_METHOD_PUBLICKEY != 0 {
            let agent = getenv("SSH_AUTH_SOCK") != nil ? "ssh-agent and " : ""
            tried.append("publickey with \(agent)the default keys in \(sshDirectory)")
            if try check(ssh_userauth_publickey_auto(raw, nil, nil)) { return }

            // libssh's automatic method skips a default key locked with a passphrase without a
            // word: such keys (the common `~/.ssh/id_ed25519` with a passphrase and no agent)
            // are tried below like named ones, so a person is asked for the passphrase and a
            // batch run says that the key needs one.
            let named = options.identityFiles.map(expandingTilde)
            let lockedDefaults = ["id_ed25519", "id_ecdsa", "id_rsa"].map { sshDirectory + "/" + $0 }
                .filter { !named.contains($0) && access($0, R_OK) == 0 }
            for file in named + lockedDefaults {
                let isDefault = !named.contains(file)
                let context = PassphraseContext(
                    keyFile: file, ask: options.isInteractive ? prompts.passphrase : nil)
                var key: ssh_key?
                let unmanaged = Unmanaged.passRetained(context)
                let rc = ssh_pki_import_privkey_file(file, nil, passphraseCallback, unmanaged.toOpaque(), &key)
                unmanaged.release()
                if isDefault && !context.wasAsked {
                    // Not locked: the automatic method above has offered it already.
                    if rc == SSH_OK, let key { ssh_key_free(key) }
                    continue
                }
                guard rc == SSH_OK, let key else {
                    if context.wasAsked {
                        if !options.isInteractive { needsPassphrase.append(file) }
                        tried.append("publickey \(file) (passphrase-protected, not unlocked)")
                    } else if access(file, R_OK) != 0 {
                        tried.append("publickey \(file) (cannot read it: \(String(cString: strerror(errno))))")
                    } else {
                        tried.append("publickey \(file) (not a private key libssh can read)")
                    }
                    continue
                }
                defer { ssh_key_free(key) }
                tried.append("publickey \(file)")
                if try check(ssh_userauth_publickey(raw, nil, key)) { return }
            }
        }

        if options.isInteractive, let answer = prompts.answerPrompts {
            if methods & SSH_AUTH_METHOD_INTERACTIVE != 0 {
                tried.append("keyboard-interactive")
                if try keyboardInteractive(handle, label: label, answer: answer) { return }
            }
            if methods & SSH_AUTH_METHOD_PASSWORD != 0 {
                tried.append("password")
                if let answers = answer(label, "", [SSHPrompt(text: "Password: ", isEchoed: false)]), let password = answers.first {
                    if try check(ssh_userauth_password(raw, nil, password)) { return }
                }
            }
        }

        if let file = needsPassphrase.first { throw .passphraseRequired(destination: label, keyFile: file) }
        var offered: [String] = []
        if methods & SSH_AUTH_METHOD_PUBLICKEY != 0 { offered.append("publickey") }
        if methods & SSH_AUTH_METHOD_INTERACTIVE != 0 { offered.append("keyboard-interactive") }
        if methods & SSH_AUTH_METHOD_PASSWORD != 0 { offered.append("password") }
        var hint = "The server accepts: \(offered.isEmpty ? "no method swunison knows" : offered.joined(separator: ", "))."
        hint += " Check that your public key is in the remote ~/.ssh/authorized_keys, or name the key with"
        hint += " `-i FILE` in sshargs or `IdentityFile` in \(sshDirectory)/config."
        if !options.isInteractive && methods & (SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE) != 0 {
            hint += " Passwords are never asked for in batch mode."
        }
        throw .authenticationFailed(destination: label, triedMethods: tried, hint: hint)
    }

    private static func keyboardInteractive(
        _ handle: LibSSHHandle, label: String,
        answer: @Sendable (String, String, [SSHPrompt]) -> [String]?
    ) throws(SSHError) -> Bool {
        let raw = handle.raw
        var rc = ssh_userauth_kbdint(raw, nil, nil)
        while rc == SSH_AUTH_INFO.rawValue {
            let instruction = ssh_userauth_kbdint_getinstruction(raw).map { String(cString: $0) } ?? ""
            let count = ssh_userauth_kbdint_getnprompts(raw)
            var questions: [SSHPrompt] = []
            for index in 0..<max(count, 0) {
                var echo: CChar = 0
                let text = ssh_userauth_kbdint_getprompt(raw, UInt32(index), &echo).map { String(cString: $0) } ?? ""
                questions.append(SSHPrompt(text: text, isEchoed: echo != 0))
            }
            if !questions.isEmpty {
                guard let answers = answer(label, instruction, questions), answers.count == questions.count else { return false }
                for (index, reply) in answers.enumerated() {
                    guard ssh_userauth_kbdint_setanswer(raw, UInt32(index), reply) >= 0 else { return false }
                }
            }
            rc = ssh_userauth_kbdint(raw, nil, nil)
        }
        if rc == SSH_AUTH_ERROR.rawValue { throw .connectionLost(destination: label, message: handle.errorMessage) }
        return rc == SSH_AUTH_SUCCESS.rawValue
    }
}

/// What libssh's passphrase callback needs: which key, how to ask, and whether it was asked.
private final class PassphraseContext {
    let keyFile: String
    let ask: (@Sendable (String) -> String?)?
    var wasAsked = false

    init(keyFile: String, ask: (@Sendable (String) -> String?)?) {
        self.keyFile = keyFile
        self.ask = ask
    }
}

/// libssh's `ssh_auth_callback`: fills `buffer` with the passphrase, or returns -1 (batch mode).
private let passphraseCallback: ssh_auth_callback = { _, buffer, length, _, _, userdata in
    guard let userdata else { return -1 }
    let context = Unmanaged<PassphraseContext>.fromOpaque(userdata).takeUnretainedValue()
    context.wasAsked = true
    guard let ask = context.ask, let buffer, let passphrase = ask(context.keyFile) else { return -1 }
    let bytes = Array(passphrase.utf8)
    guard bytes.count < length else { return -1 }
    for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[bytes.count] = 0
    return 0
}

/// Owns a libssh `ssh_session` (`ssh_new`/`ssh_free`); not thread-safe (see `SSHSession`).
final class LibSSHHandle: @unchecked Sendable {
    let raw: OpaquePointer

    init(_ raw: OpaquePointer) { self.raw = raw }

    deinit {
        if ssh_is_connected(raw) != 0 { ssh_disconnect(raw) }
        ssh_free(raw)
    }

    /// libssh's last error text. The corresponding C function is `ssh_get_error`.
    var errorMessage: String {
        guard let text = ssh_get_error(UnsafeMutableRawPointer(raw)) else { return "unknown error" }
        let message = String(cString: text)
        return message.isEmpty ? "unknown error" : message
    }

    /// Sets a string option. The corresponding C function is `ssh_options_set`.
    func set(_ option: ssh_options_e, _ value: String, name: String) throws(SSHError) {
        guard ssh_options_set(raw, option, value) == 0 else {
            throw .invalidOption(name: name, value: value, message: errorMessage)
        }
    }

    /// Reads a string option, or nil. The corresponding C function is `ssh_options_get`.
    func stringOption(_ option: ssh_options_e) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard ssh_options_get(raw, option, &value) == SSH_OK, let value else { return nil }
        defer { ssh_string_free_char(value) }
        return String(cString: value)
    }
}
