import Glibc
import Synchronization
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonSSH

// A libssh exec channel is a full-duplex byte stream: the wire protocol runs over it unchanged.
extension SSHExecChannel: ByteStream {}

/// Where and how to reach a remote replica: the SSH destination, the root on that host, and
/// the command that runs swunison there (`servercmd`).
public struct RemoteEndpoint: Sendable {
    public var destination: SSHDestination
    public var ssh: SSHOptions
    public var prompts: SSHPrompts
    /// `servercmd`: swunison's path on the remote host (default `swunison`, found on PATH).
    public var serverCommand: String
    /// `serverdeploy`: when the remote has no swunison, copy this binary there and use it.
    public var deploy: Bool
    /// The root as the user wrote it (for messages).
    public var displayName: String
    /// `stalltimeout`: how long the connection's requests may make no progress (nil: never,
    /// for tests only; see ``StallWatchdog``).
    public var stallTimeoutSeconds: Int? = 120
    /// Asked (interactive mode) whether to deploy when the remote has no swunison and `deploy`
    /// is off; the argument is `user@host:port`.
    public var confirmDeploy: (@Sendable (String) -> Bool)?

    public init(destination: SSHDestination, ssh: SSHOptions, prompts: SSHPrompts = SSHPrompts(),
                serverCommand: String, deploy: Bool, displayName: String) {
        self.destination = destination; self.ssh = ssh; self.prompts = prompts
        self.serverCommand = serverCommand; self.deploy = deploy; self.displayName = displayName
    }
}

/// The channel as the wire client sees it, except that a `close()` during the handshake is held
/// back: when the handshake fails, the connector still needs the remote command's exit status.
private final class HeldStream: ByteStream, Sendable {
    private let channel: SSHExecChannel
    private let state = Mutex<(holding: Bool, closeRequested: Bool)>((true, false))

    init(_ channel: SSHExecChannel) { self.channel = channel }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try channel.write(bytes) }
    func write(contentsOf chunks: [[UInt8]]) throws { try channel.write(contentsOf: chunks) }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try channel.read(into: buffer) }
    func closeWrite() { channel.closeWrite() }
    func close() {
        let now = state.withLock { state -> Bool in
            state.closeRequested = true
            return !state.holding
        }
        if now { channel.close() }
    }

    /// The handshake succeeded: from now on `close()` closes the channel (at once if it was asked).
    func release() {
        let pending = state.withLock { state -> Bool in
            state.holding = false
            return state.closeRequested
        }
        if pending { channel.close() }
    }
}

/// Opens remote replicas over SSH: connect, verify the host, authenticate, run
/// `servercmd server` on an exec channel, say hello, open the root.
public enum RemoteConnector {
    /// Connects and opens `spec` on the remote host.
    /// - Throws: `SSHError` (host key, authentication, connection: fatal for the run),
    ///   `ReplicaError.connection` when swunison is missing on the remote (naming host and
    ///   `servercmd`), `WireError` for a protocol version mismatch.
    public static func connect(_ endpoint: RemoteEndpoint, spec: ReplicaSpec) async throws -> RemoteReplica {
        let session = try SSHSession.connect(to: endpoint.destination, options: endpoint.ssh, prompts: endpoint.prompts)
        do {
            return try await start(endpoint.serverCommand, on: session, endpoint: endpoint, spec: spec)
        } catch let missing as MissingServer {
            guard endpoint.deploy || endpoint.confirmDeploy?(session.label) == true else {
                throw ReplicaError.connection(
                    "swunison was not found on \(session.label): '\(endpoint.serverCommand) server' exited with "
                    + "status \(missing.status) (\(missing.stderr.isEmpty ? "command not found" : missing.stderr)). "
                    + "Install swunison there and set servercmd to its path (see README, \"On the remote host\"), "
                    + "or set serverdeploy = true to copy this binary there.")
            }
            let deployed = try deploy(to: session)
            return try await start(deployed, on: session, endpoint: endpoint, spec: spec)
        }
    }

    /// The remote command could not be run (exit 126/127).
    struct MissingServer: Error {
        var status: Int32
        var stderr: String
    }

    private static func start(_ command: String, on session: SSHSession, endpoint: RemoteEndpoint,
                              spec: ReplicaSpec) async throws -> RemoteReplica {
        let channel = try session.exec(command + " server")
        let stream = HeldStream(channel)
        do {
            // The channel keeps its session alive for as long as the replica uses it.
            let replica = try await RemoteReplica.connect(over: stream, spec: spec, displayName: endpoint.displayName,
                                                          stallTimeout: endpoint.stallTimeoutSeconds.map { .seconds($0) })
            stream.release()
            return replica
        } catch {
            // Tell a missing or unrunnable binary from a real protocol failure by the exit status,
            // which is only known once the remote command has ended.
            defer { channel.close() }
            if let status = try? channel.exitStatus(), status == 126 || status == 127 {
                throw MissingServer(status: status, stderr: channel.standardError.trimmingTrailingNewlines())
            }
            let stderr = channel.standardError.trimmingTrailingNewlines()
            if !stderr.isEmpty, case ReplicaError.connection = error {
                throw ReplicaError.connection("\(endpoint.displayName): the remote server failed: \(stderr)")
            }
            throw error
        }
    }

    /// Copies this executable to `~/.swunison/bin/swunison-<version>` on the remote host, unless
    /// an identical copy is there, and checks that it runs. Returns its path.
    /// - Throws: when the remote is not Linux on this architecture, or lacks a runtime library
    ///   (the message names the `apt-get install` line).
    static func deploy(to session: SSHSession) throws -> String {
        let local = localSystem()
        let remote = try session.runCommand("uname -sm")
        let remoteSystem = String(decoding: remote.stdout, as: UTF8.self).trimmingTrailingNewlines()
        guard remote.status == 0, remoteSystem == local else {
            throw ReplicaError.connection("cannot deploy swunison to \(session.label): it runs '\(remoteSystem)', "
                + "this binary is for '\(local)'. Install swunison there yourself and set servercmd.")
        }
        guard let executable = selfExecutable() else {
            throw ReplicaError.connection("cannot deploy swunison: the path of this executable is unknown")
        }
        let path = "~/.swunison/bin/swunison-\(SwunisonVersion.current)"
        let localDigest = try digestOfFile(executable)
        let check = "sha256sum \(remoteHomePath(path)) 2>/dev/null | cut -d' ' -f1"
        let existing = try session.runCommand(check)
        if String(decoding: existing.stdout, as: UTF8.self).trimmingTrailingNewlines() != localDigest {
            try session.upload(fileAt: executable, toRemotePath: path, mode: 0o755)
            let copied = try session.runCommand(check)
            guard String(decoding: copied.stdout, as: UTF8.self).trimmingTrailingNewlines() == localDigest else {
                throw ReplicaError.connection("deploying swunison to \(session.label): the copy's digest does not match")
            }
        }
        // A binary that links a C library the remote lacks fails to start: name the package.
        let ldd = try session.runCommand("ldd \(remoteHomePath(path)) 2>&1 | grep 'not found' || true")
        let missing = String(decoding: ldd.stdout, as: UTF8.self)
            .split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        if !missing.isEmpty {
            let packages = missing.map { runtimePackages[$0] ?? $0 }
            throw ReplicaError.connection("swunison was copied to \(session.label):\(path) but cannot start there: "
                + "missing \(missing.joined(separator: ", ")). Run there: apt-get install \(packages.joined(separator: " "))")
        }
        try checkOnlyOwnerCanWrite(path, on: session)
        return remoteHomePath(path)
    }

    /// Refuses to run a deployed binary that someone else could have replaced: the binary,
    /// `~/.swunison/bin` and `~/.swunison` must be owned by the remote user (or root) and
    /// writable by nobody else.
    static func checkOnlyOwnerCanWrite(_ path: String, on session: SSHSession) throws {
        let places = ["~/.swunison", "~/.swunison/bin", path]
        let command = "id -u; stat -c '%a %u' " + places.map(remoteHomePath).joined(separator: " ")
        let result = try session.runCommand(command)
        let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        guard result.status == 0, lines.count == places.count + 1, let user = UInt32(lines[0]) else {
            throw ReplicaError.connection("deploying swunison to \(session.label): cannot check who may write to "
                + "\(places.joined(separator: ", ")) (\(command) failed)")
        }
        for (place, line) in zip(places, lines.dropFirst()) {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let mode = UInt32(fields[0], radix: 8), let owner = UInt32(fields[1]) else {
                throw ReplicaError.connection("deploying swunison to \(session.label): unexpected stat output for \(place): \(line)")
            }
            if mode & 0o022 != 0 || (owner != user && owner != 0) {
                throw ReplicaError.connection("swunison will not run \(session.label):\(path): \(place) is "
                    + (mode & 0o022 != 0 ? "writable by other users (mode \(String(mode, radix: 8)))" : "owned by user \(owner)")
                    + ", so someone else could replace the binary. Run there: chmod go-w \(place) (and check its owner)")
            }
        }
    }

    /// Debian runtime packages of the shared libraries a release binary may still need.
    static let runtimePackages = [
        "libssh.so.4": "libssh-4", "libsqlite3.so.0": "libsqlite3-0", "libcrypto.so.3": "libssl3",
        "libz.so.1": "zlib1g", "librsync.so.2": "librsync2", "libstdc++.so.6": "libstdc++6",
        "libgcc_s.so.1": "libgcc-s1",
    ]

    /// `~/x` as a shell word that the remote shell expands to the home directory.
    private static func remoteHomePath(_ path: String) -> String {
        path.hasPrefix("~/") ? "\"$HOME\"/" + shellQuoted(String(path.dropFirst(2))) : shellQuoted(path)
    }

    private static func localSystem() -> String {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return field(names.sysname) + " " + field(names.machine)
    }

    private static func selfExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func digestOfFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReplicaError.connection("cannot read \(path) to deploy it") }
        defer { close(fd) }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finalize()
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s.removeLast() }
        return String(s)
    }
}
