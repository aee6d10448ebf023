import Glibc

/// Everything that can go wrong while reaching a host over SSH. Each description is one or two
/// sentences that say what failed and what to do about it.
public enum SSHError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An option could not be given to libssh (bad value), with libssh's message.
    case invalidOption(name: String, value: String, message: String)
    /// TCP connection or SSH handshake failed.
    case connectionFailed(destination: String, message: String)
    /// The host presented a key other than the one recorded for it (invariant 8: always refused).
    case hostKeyChanged(host: String, port: Int, fingerprint: String, knownHostsFile: String)
    /// The host is not in known_hosts and nobody could (batch mode) or did (`yes`) accept it.
    case hostKeyUnknown(host: String, port: Int, fingerprint: String, knownHostsFile: String)
    /// The user answered no when asked to trust an unknown host key.
    case hostKeyRejected(host: String, port: Int, fingerprint: String)
    /// known_hosts could not be read or written.
    case knownHostsFailed(host: String, port: Int, knownHostsFile: String, message: String)
    /// No authentication method worked.
    case authenticationFailed(destination: String, triedMethods: [String], hint: String)
    /// An identity file is passphrase-protected and batch mode cannot ask for the passphrase.
    case passphraseRequired(destination: String, keyFile: String)
    /// A channel could not be opened or the command could not be started.
    case channelFailed(destination: String, command: String, message: String)
    /// The connection broke while in use (network loss, remote sshd killed, timeout).
    case connectionLost(destination: String, message: String)
    /// The channel or session was closed locally and cannot be used any more.
    case closed
    /// A remote upload (`serverdeploy`) failed.
    case uploadFailed(destination: String, remotePath: String, status: Int32, stderr: String)
    /// A local file to upload could not be read.
    case localFileUnreadable(path: String, errno: Int32)
    /// `sshargs` contains an option swunison does not support (it is never silently dropped).
    case unsupportedSSHArgument(argument: String, sshargs: String)
    /// `sshargs` contains a supported option with a bad or missing value.
    case invalidSSHArgument(argument: String, sshargs: String, message: String)

    public var description: String {
        switch self {
        case let .invalidOption(name, value, message):
            return "SSH option \(name)=\(value) was refused by libssh: \(message)."
        case let .connectionFailed(destination, message):
            return "Could not connect to \(destination): \(message). Check the host name, the port and that sshd is running there."
        case let .hostKeyChanged(host, port, fingerprint, knownHostsFile):
            return """
                The host key of \(hostPort(host, port)) has CHANGED: it now presents \(fingerprint), which does not \
                match the key recorded in \(knownHostsFile). Someone may be intercepting the connection, or the host \
                was reinstalled. Refusing to connect. If you know why the key changed, remove the old entry with \
                `ssh-keygen -f \(knownHostsFile) -R '\(knownHostsName(host, port))'` and connect again.
                """
        case let .hostKeyUnknown(host, port, fingerprint, knownHostsFile):
            return """
                The host \(hostPort(host, port)) is not in \(knownHostsFile) (its key fingerprint is \(fingerprint)). \
                Batch mode never trusts a new host key. Check the fingerprint, then add it with \
                `ssh-keyscan\(port == 22 ? "" : " -p \(port)") \(host) >> \(knownHostsFile)`, or connect once interactively.
                """
        case let .hostKeyRejected(host, port, fingerprint):
            return "The host key \(fingerprint) of \(hostPort(host, port)) was not accepted; not connecting."
        case let .knownHostsFailed(host, port, knownHostsFile, message):
            return "Could not check or record the host key of \(hostPort(host, port)) in \(knownHostsFile): \(message)."
        case let .authenticationFailed(destination, triedMethods, hint):
            let tried = triedMethods.isEmpty ? "nothing could be tried" : "tried " + triedMethods.joined(separator: "; ")
            return "Authentication to \(destination) failed (\(tried)). \(hint)"
        case let .passphraseRequired(destination, keyFile):
            return """
                Authentication to \(destination) needs the identity file \(keyFile), which is passphrase-protected, \
                and batch mode cannot ask for a passphrase. Load the key into ssh-agent (`ssh-add \(keyFile)`) \
                and make SSH_AUTH_SOCK available, or use a key without a passphrase.
                """
        case let .channelFailed(destination, command, message):
            return "Could not run `\(command)` on \(destination): \(message)."
        case let .connectionLost(destination, message):
            return "The connection to \(destination) was lost: \(message)."
        case .closed:
            return "The SSH channel was already closed."
        case let .uploadFailed(destination, remotePath, status, stderr):
            let detail = stderr.isEmpty ? "" : ": \(stderr)"
            return "Could not upload \(remotePath) to \(destination) (remote exit status \(status))\(detail)."
        case let .localFileUnreadable(path, errno):
            return "Could not read \(path) to upload it: \(String(cString: strerror(errno)))."
        case let .unsupportedSSHArgument(argument, sshargs):
            return """
                sshargs option `\(argument)` is not supported (in "\(sshargs)"). Supported: -p PORT, -l USER, \
                -i FILE, -C, and -o with Port, User, IdentityFile, Compression, StrictHostKeyChecking, \
                UserKnownHostsFile, ConnectTimeout, ServerAliveInterval; put other settings in ~/.ssh/config.
                """
        case let .invalidSSHArgument(argument, sshargs, message):
            return "sshargs option `\(argument)` is invalid (in \"\(sshargs)\"): \(message)."
        }
    }
}

/// `host:port` for messages.
func hostPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// The name a known_hosts line uses: `host` on port 22, `[host]:port` otherwise.
func knownHostsName(_ host: String, _ port: Int) -> String {
    port == 22 ? host : "[\(host)]:\(port)"
}

