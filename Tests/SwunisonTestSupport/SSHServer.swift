import Foundation

/// A private OpenSSH server on 127.0.0.1 for tests: its own host key, a user key for the user
/// running the tests, and an ssh directory (`sshDirectory`) to hand to the client as SSH_DIR.
///
/// Start one per test (each gets a free port and its own temp dir). A missing `/usr/sbin/sshd`
/// throws: SSH tests must fail, not be skipped, where sshd is not installed.
public final class SSHServer: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case missingProgram(String)
        case commandFailed(String, status: Int32, output: String)
        case didNotStart(log: String)

        public var description: String {
            switch self {
            case let .missingProgram(path): return "\(path) is missing: install openssh-server and openssh-client"
            case let .commandFailed(command, status, output): return "`\(command)` failed (\(status)): \(output)"
            case let .didNotStart(log): return "sshd did not start: \(log)"
            }
        }
    }

    /// The directory holding everything (keys, config, logs); removed by `stop()`.
    public let directory: TemporaryDirectory
    public let port: Int
    /// The user name the server accepts (the user running the tests).
    public let user: String
    /// `<dir>/ssh`: config (empty), id_ed25519(.pub), known_hosts listing this server.
    public let sshDirectory: String
    /// `<sshDirectory>/known_hosts`, with the line `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    public let knownHostsFile: String
    /// The client's private key (authorized on this server).
    public let userKeyPath: String
    /// The known_hosts line for this server (with trailing newline).
    public let knownHostsLine: String
    /// The host key's fingerprint as `ssh-keygen -l` prints it: `SHA256:...`.
    public let hostKeyFingerprint: String
    /// The sshd server config file.
    public let configPath: String
    /// The sshd process id.
    public let pid: Int32

    private let stopLock = NSLock()
    private var isStopped = false
    private let logLock = NSLock()
    private var logText = ""

    /// Generates keys, writes the config, starts `sshd -D -e` and waits until it listens.
    /// - Parameter extraConfig: sshd_config lines that override the defaults (e.g. `LogLevel DEBUG`).
    public init(extraConfig: [String] = []) throws {
        let sshd = "/usr/sbin/sshd"
        guard FileManager.default.isExecutableFile(atPath: sshd) else { throw Failure.missingProgram(sshd) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen") else {
            throw Failure.missingProgram("/usr/bin/ssh-keygen")
        }
        directory = try TemporaryDirectory("sshd")
        let dir = directory.path
        sshDirectory = dir + "/ssh"
        try FileManager.default.createDirectory(atPath: sshDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let hostKey = dir + "/host_ed25519"
        userKeyPath = sshDirectory + "/id_ed25519"
        try Self.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "swunison-test-host", "-f", hostKey])
        try Self.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "swunison-test-user", "-f", userKeyPath])
        try FileManager.default.copyItem(atPath: userKeyPath + ".pub", toPath: dir + "/authorized_keys")
        _ = FileManager.default.createFile(atPath: sshDirectory + "/config", contents: Data())
        user = String(cString: getpwuid(getuid()).pointee.pw_name)

        let hostPublic = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let fingerprintLine = try Self.run("/usr/bin/ssh-keygen", ["-l", "-f", hostKey + ".pub"])
        hostKeyFingerprint = String(fingerprintLine.split(separator: " ")[1])

        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        configPath = dir + "/sshd_config"

        // A free port: bind to 0, read it back, release it (sshd binds it a moment later; a
        // clash shows up as "did not start" below).
        port = try Self.freePort()
        // sshd takes the first value of a keyword, so the caller's lines go first to win.
        let config = extraConfig + [
            "Port \(port)",
            "ListenAddress 127.0.0.1",
            "HostKey \(hostKey)",
            "AuthorizedKeysFile \(dir)/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PidFile \(dir)/sshd.pid",
            "LogLevel INFO",
        ]
        try (config.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)

        knownHostsLine = "[127.0.0.1]:\(port) \(hostPublic)\n"
        knownHostsFile = sshDirectory + "/known_hosts"
        try knownHostsLine.write(toFile: knownHostsFile, atomically: true, encoding: .utf8)

        // posix_spawn, not Foundation's Process: sshd closes every inherited descriptor at start,
        // including the socket Process watches to notice a child's exit, so Process would block
        // its reaper thread in waitpid(sshd) and every later Process in the test would hang.
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        let argv = [sshd, "-D", "-e", "-f", configPath]
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var spawned: pid_t = 0
        let rc = posix_spawn(&spawned, sshd, &actions, nil, &cArguments, environ)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw POSIXError(.init(rawValue: rc) ?? .EIO)
        }
        pid = spawned
        let logFD = pipeFDs[0]

        // sshd -e logs "Server listening on 127.0.0.1 port N." once it accepts connections.
        // Drain its stderr for the whole run (a full pipe would block sshd) into `log`.
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            var announced = false
            while true {
                let n = read(logFD, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                guard let self else { continue }
                self.logLock.withLock { self.logText += text }
                if !announced && self.log.contains("Server listening on") {
                    announced = true
                    ready.signal()
                }
            }
            close(logFD)
            if !announced { ready.signal() }
        }
        thread.start()
        _ = ready.wait(timeout: .now() + 15)
        guard log.contains("Server listening on") else {
            stop()
            throw Failure.didNotStart(log: log)
        }
    }

    deinit { stop() }

    /// Everything sshd printed so far (connections, auth failures): useful in failed expectations.
    public var log: String { logLock.withLock { logText } }

    /// Stops sshd (its connections' processes too) and waits for it.
    public func stop() {
        let alreadyStopped = stopLock.withLock { () -> Bool in
            defer { isStopped = true }
            return isStopped
        }
        if alreadyStopped { return }
        killSessionProcesses()
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Kills every process sshd started for connections (and what they started), leaving the
    /// listener running: to clients this is a connection lost mid-session.
    public func killSessionProcesses() {
        for child in Self.descendants(of: pid).reversed() {
            kill(child, SIGKILL)
        }
    }

    /// The processes sshd started for connections (and what they started), parents first.
    public var sessionProcesses: [Int32] { Self.descendants(of: pid) }

    /// All descendants of `root`, parents before children (read from /proc).
    private static func descendants(of root: Int32) -> [Int32] {
        var parentOf: [Int32: Int32] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after "(comm)": state ppid ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parentOf[pid] = parent }
        }
        var result: [Int32] = []
        var frontier = [root]
        while let next = frontier.popLast() {
            let children = parentOf.filter { $0.value == next }.map(\.key)
            result += children
            frontier += children
        }
        return result
    }

    /// Runs a program to completion; returns its stdout; throws on a non-zero status.
    @discardableResult
    public static func run(_ path: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure.commandFailed(([path] + arguments).joined(separator: " "), status: process.terminationStatus, output: text)
        }
        return text
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
