import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonProfile
import SwunisonSSH
import SwunisonWire

/// Opens a replica for an `ssh://` root: SSH options from the profile (`sshargs`, `sshport`,
/// `sshuser`, `sshcompression`, `sshkeepalive`, `sshtimeout`), `servercmd`, `serverdeploy`,
/// and reconnection with backoff when the link drops in mid-run.
enum RemoteReplicaFactory {
    static func open(_ root: SSHRoot, written: String, cacheKey: String, profile: Profile,
                     console: Console) async throws -> any Replica {
        var destination = SSHDestination(user: root.user ?? profile.ssh.user, host: root.host,
                                         port: root.port ?? profile.ssh.port)
        var options = SSHOptions(compression: profile.ssh.compression,
                                 keepaliveSeconds: profile.ssh.keepAliveSeconds,
                                 connectTimeoutSeconds: profile.ssh.timeoutSeconds,
                                 // Invariant 8: batch mode never accepts an unknown host key.
                                 strictHostKeyChecking: profile.batch ? .yes : .ask,
                                 isInteractive: !profile.batch)
        if let sshargs = profile.ssh.arguments, !sshargs.isEmpty {
            let parsed = try SSHArguments.parse(sshargs)
            parsed.apply(to: &options)
            parsed.apply(to: &destination)
            // Explicit root parts win over sshargs, as they do over ~/.ssh/config.
            if let user = root.user { destination.user = user }
            if let port = root.port { destination.port = port }
        }
        if profile.ssh.command != "ssh" && !profile.silent {
            console.err("warning: sshcmd = \(profile.ssh.command) is ignored: swunison connects with libssh itself")
        }
        var serverCommand = profile.ssh.serverCommand ?? "swunison"
        if profile.ssh.addVersionNumber { serverCommand += "-" + SwunisonVersion.current }
        var endpoint = RemoteEndpoint(destination: destination, ssh: options, prompts: prompts(profile, console),
                                      serverCommand: serverCommand,
                                      deploy: profile.ssh.deployServer, displayName: written)
        endpoint.stallTimeoutSeconds = profile.ssh.stallTimeoutSeconds
        if !profile.batch && console.stdinIsTerminal && !profile.ssh.deployServer {
            // Interactive: offer to copy swunison when the remote has none (serverdeploy's question).
            let command = serverCommand
            endpoint.confirmDeploy = { host in
                console.raw("swunison is not installed on \(host) (servercmd = \(command)).\n"
                    + "Copy this swunison there (~/.swunison/bin) and use it? (yes/no) ")
                return console.readLine()?.trimmingWhitespace().lowercased() == "yes"
            }
        }
        // A relative path is resolved against the remote home directory by the server.
        let spec = ReplicaSpec(root: root.path, backupDirectory: profile.backupDir,
                               maxBackups: profile.maxBackups, attributes: profile.attributes, cacheKey: cacheKey)
        // Reconnections never ask: a deploy question belongs to the first connection only.
        var again = endpoint
        again.confirmDeploy = nil
        let reconnect = again
        let notice: @Sendable (String) -> Void = { message in if !profile.silent { console.err(message) } }
        let attempts = max(1, profile.retry + 1)
        if profile.batch {
            // Nobody to ask anything: connect while the other replica is scanned (the handshake and
            // the server's start are most of a no-change run's wait otherwise). A refused host key
            // or a missing server still stops the run, from the first call, with the same message.
            let first = Task { () async throws -> any Replica in try await RemoteConnector.connect(endpoint, spec: spec) }
            return ReconnectingReplica(displayName: written, connecting: first, maxAttempts: attempts, notice: notice,
                                       connect: { try await RemoteConnector.connect(reconnect, spec: spec) })
        }
        // Interactive: connect now, so that its questions (host key, passphrase, deploy) come
        // before any work and before the scan's progress output.
        let first = try await RemoteConnector.connect(endpoint, spec: spec)
        return ReconnectingReplica(displayName: written, initial: first, maxAttempts: attempts, notice: notice,
                                   connect: { try await RemoteConnector.connect(reconnect, spec: spec) })
    }

    /// Questions libssh may need answered, only when a person is there.
    private static func prompts(_ profile: Profile, _ console: Console) -> SSHPrompts {
        guard !profile.batch, console.stdinIsTerminal else { return SSHPrompts() }
        return SSHPrompts(
            confirmUnknownHost: { host, fingerprint in
                console.raw("The authenticity of host \(host) can't be established.\n"
                    + "Its key fingerprint is \(fingerprint).\nAdd it to known_hosts and continue? (yes/no) ")
                return console.readLine()?.trimmingWhitespace().lowercased() == "yes"
            },
            passphrase: { keyFile in
                guard let p = getpass("Passphrase for \(keyFile): ") else { return nil }
                return String(cString: p)
            },
            answerPrompts: { destination, instruction, prompts in
                // Keyboard-interactive and password authentication, only with a person at the terminal.
                if !instruction.isEmpty { console.err("\(destination): \(instruction)") }
                var answers: [String] = []
                for prompt in prompts {
                    if prompt.isEchoed {
                        console.raw(prompt.text)
                        guard let line = console.readLine() else { return nil }
                        answers.append(line)
                    } else {
                        guard let secret = getpass(prompt.text) else { return nil }
                        answers.append(String(cString: secret))
                    }
                }
                return answers
            })
    }
}
