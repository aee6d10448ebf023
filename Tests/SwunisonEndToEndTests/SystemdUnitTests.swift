import Foundation
import Testing
import SwunisonTestSupport

/// The systemd units in `systemd/`: systemd itself accepts them, their command lines are the
/// ones README.md documents, and the notifier's datagrams reach a listening socket as systemd
/// would receive them.
@Suite("systemd units and notifications")
struct SystemdUnitTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let units = ["swunison@.service", "swunison-batch@.service", "swunison-batch@.timer"]

    static func unit(_ name: String) throws -> String {
        try String(contentsOfFile: repository + "/systemd/" + name, encoding: .utf8)
    }

    /// The value of every `key=` line of a unit, in order.
    static func values(_ key: String, in text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            line.hasPrefix(key + "=") ? String(line.dropFirst(key.count + 1)) : nil
        }
    }

    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `systemd-analyze --user verify` on the units as shipped, instantiated as `@default`.
    ///
    /// Their `ExecStart=` names `%h/.local/bin/swunison`, and verify insists that the binary
    /// exists: HOME is a temporary directory whose `.local/bin/swunison` is the built binary
    /// (systemd's `%h` is `$HOME`), so the files are checked unmodified. Their `Documentation=`
    /// man pages are looked up in a temporary MANPATH holding this repository's `man/` pages.
    /// Any message on stderr (an unknown key, a bad value) fails the test, although verify
    /// itself exits 0 for most of them.
    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed"))
    func systemdAcceptsTheUnits() throws {
        let dir = try TemporaryDirectory("systemd-verify")
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir.appending("home/.local/bin"), withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: dir.appending("home/.local/bin/swunison"), withDestinationPath: SwunisonBinary.path)
        try fm.createDirectory(atPath: dir.appending("runtime"), withIntermediateDirectories: true)
        chmod(dir.appending("runtime"), 0o700)
        for (section, page) in [("man1", "swunison.1"), ("man5", "swunison.prf.5")] {
            try fm.createDirectory(atPath: dir.appending("man/" + section), withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: dir.appending("man/\(section)/\(page)"),
                                      withDestinationPath: Self.repository + "/man/" + page)
        }
        // Without man(1), verify cannot look the pages up at all.
        let hasMan = ["/usr/bin/man", "/bin/man"].contains { fm.isExecutableFile(atPath: $0) }
        let instances = ["swunison@default.service", "swunison-batch@default.service", "swunison-batch@default.timer"]
        let run = try Self.execute(Self.systemdAnalyze!,
                                   ["--user"] + (hasMan ? [] : ["--man=no"]) + ["verify"]
                                       + instances.map { Self.repository + "/systemd/" + $0 },
                                   environment: ["HOME": dir.appending("home"), "XDG_RUNTIME_DIR": dir.appending("runtime"),
                                                 "MANPATH": dir.appending("man")])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.isEmpty && run.stdout.isEmpty, "\(run)")

        // The check is real: a unit with a mistake is refused.
        let broken = dir.appending("broken")
        try fm.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try (try Self.unit("swunison@.service").replacingOccurrences(of: "Type=notify", with: "Type=notifyy"))
            .write(toFile: broken + "/swunison@.service", atomically: true, encoding: .utf8)
        let refused = try Self.execute(Self.systemdAnalyze!, ["--user", "--man=no", "verify", broken + "/swunison@default.service"],
                                       environment: ["HOME": dir.appending("home"), "XDG_RUNTIME_DIR": dir.appending("runtime")])
        #expect(refused.stderr.contains("notifyy"), "\(refused)")
    }

    /// Each unit's command line is exactly the one README.md shows, so that the documentation
    /// and the units cannot drift apart.
    @Test func commandLinesAreTheOnesTheREADMEShows() throws {
        let readme = try String(contentsOfFile: Self.repository + "/README.md", encoding: .utf8)
        let expected = [
            "swunison@.service": "%h/.local/bin/swunison %i --watch -batch",
            "swunison-batch@.service": "%h/.local/bin/swunison %i -batch",
        ]
        for (name, command) in expected {
            let text = try Self.unit(name)
            #expect(Self.values("ExecStart", in: text) == [command], "\(name)")
            #expect(readme.contains("ExecStart=" + command), "README.md does not show \(name)'s ExecStart=\(command)")
        }
        for line in ["mkdir -p ~/.config/systemd/user && cp systemd/* ~/.config/systemd/user/",
                     "systemctl --user daemon-reload", "systemctl --user enable --now swunison@default",
                     "loginctl enable-linger $USER", "journalctl --user -u swunison@default", "swunison status default",
                     "systemctl --user enable --now swunison-batch@default.timer"] {
            #expect(readme.contains(line), "README.md lacks: \(line)")
        }
    }

    /// The settings the watch engine and the README rely on.
    @Test func theUnitsSayWhatTheEngineExpects() throws {
        let watch = try Self.unit("swunison@.service")
        for (key, value) in [("Type", "notify"), ("NotifyAccess", "main"), ("Restart", "on-failure"), ("RestartSec", "10"),
                             ("TimeoutStopSec", "60"), ("KillMode", "mixed"), ("NoNewPrivileges", "yes"),
                             ("WantedBy", "default.target")] {
            #expect(Self.values(key, in: watch) == [value], "swunison@.service \(key)")
        }
        // Nothing that would hide the roots, $HOME, /tmp or the ssh agent's socket.
        for key in ["PrivateTmp", "ProtectHome", "ProtectSystem", "PrivateUsers", "ReadOnlyPaths", "InaccessiblePaths"] {
            #expect(Self.values(key, in: watch).isEmpty, "swunison@.service sets \(key)")
        }
        let batch = try Self.unit("swunison-batch@.service")
        #expect(Self.values("Type", in: batch) == ["oneshot"])
        let timer = try Self.unit("swunison-batch@.timer")
        #expect(Self.values("OnUnitActiveSec", in: timer) == ["15min"])
        #expect(Self.values("WantedBy", in: timer) == ["timers.target"])
    }

    // MARK: The notifier

    /// `Sources/swunison/SystemdNotifier.swift` compiled on its own with a small driver (the
    /// executable's types cannot be imported by a test target): the datagrams it sends are read
    /// from a socket this test binds, as systemd's would be.
    static let notifierDriver: Result<String, NotifierBuildFailure> = {
        let swiftc = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
            .map { $0 + "/swiftc" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let swiftc else { return .failure(NotifierBuildFailure(message: "swiftc is not on PATH")) }
        let dir = NSTemporaryDirectory() + "swunison-notifier-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let main = """
            import Glibc
            let notifier = SystemdNotifier.fromEnvironment()
            print(notifier.isEnabled ? "enabled" : "disabled")
            let arguments = CommandLine.arguments.dropFirst()
            if arguments.first == "flood" {
                for n in 0..<Int(arguments.last!)! { notifier.send(.status("message \\(n)")) }
                print("flooded")
            } else {
                notifier.send(.ready, .status("watching /srv/a\\nand /srv/b"))
                notifier.send(.watchdog)
                notifier.send(.extendTimeout(microseconds: 5_000_000))
                notifier.send(.reloading)
                notifier.send([])
                notifier.send(.stopping)
            }
            print(SystemdNotifier.watchdogInterval().map { "watchdog \\($0)" } ?? "no watchdog")
            """
        do {
            try main.write(toFile: dir + "/main.swift", atomically: true, encoding: .utf8)
            let run = try execute(swiftc, ["-swift-version", "6", "-Onone", "-o", dir + "/notifier", dir + "/main.swift",
                                           repository + "/Sources/swunison/SystemdNotifier.swift"],
                                  timeout: 600)
            guard run.status == 0 else { return .failure(NotifierBuildFailure(message: "swiftc failed: \(run)")) }
            return .success(dir + "/notifier")
        } catch {
            return .failure(NotifierBuildFailure(message: "\(error)"))
        }
    }()

    struct NotifierBuildFailure: Error, CustomStringConvertible { var message: String; var description: String { message } }

    @Test(arguments: ["path", "abstract"])
    func notificationsReachTheSocket(_ kind: String) throws {
        let driver = try Self.notifierDriver.get()
        let dir = try TemporaryDirectory("notify")
        let name = kind == "path" ? dir.appending("notify.sock") : "@swunison-test-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let socket = try DatagramSocket(binding: name)
        let run = try Self.execute(driver, [], environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000000"])
        #expect(run.status == 0 && run.stdout == "enabled\nwatchdog 20.0 seconds\n", "\(run)")
        #expect(socket.receiveAll() == [
            "READY=1\nSTATUS=watching /srv/a and /srv/b",
            "WATCHDOG=1",
            "EXTEND_TIMEOUT_USEC=5000000",
            "RELOADING=1",
            "STOPPING=1",
        ])
    }

    @Test func withoutASocketNothingHappensAndNothingFails() throws {
        let driver = try Self.notifierDriver.get()
        let dir = try TemporaryDirectory("notify-none")
        for (value, enabled) in [(nil, false), ("relative/path", false), ("@", false), (dir.appending("nobody-listens"), true),
                                 ("/" + String(repeating: "x", count: 200), false)] as [(String?, Bool)] {
            var environment: [String: String] = ["WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"]
            if let value { environment["NOTIFY_SOCKET"] = value }
            let run = try Self.execute(driver, [], environment: environment, unset: value == nil ? ["NOTIFY_SOCKET"] : [])
            // A watchdog meant for another process is not ours.
            #expect(run.status == 0 && run.stdout == (enabled ? "enabled" : "disabled") + "\nno watchdog\n",
                    "\(value ?? "unset"): \(run)")
        }
    }

    /// A receiver that does not read (a busy or stuck systemd) must not hold the service up:
    /// datagrams beyond its queue are dropped, never waited for.
    @Test func aFullSocketNeverBlocksTheSender() throws {
        let driver = try Self.notifierDriver.get()
        let dir = try TemporaryDirectory("notify-flood")
        let socket = try DatagramSocket(binding: dir.appending("notify.sock"))
        let run = try Self.execute(driver, ["flood", "5000"], environment: ["NOTIFY_SOCKET": dir.appending("notify.sock")],
                                   timeout: 20)
        #expect(run.status == 0 && run.stdout.contains("flooded"), "\(run)")
        let received = socket.receiveAll()
        #expect(!received.isEmpty && received.count < 5000)
        #expect(received.first == "STATUS=message 0")
    }

    // MARK: Helpers

    struct Outcome: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    }

    /// Runs `executable` with `arguments` and the current environment plus `environment`
    /// (minus `unset`); fails after `timeout` seconds.
    static func execute(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                        unset: [String] = [], timeout: TimeInterval = 60) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        for key in unset { env[key] = nil }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            // SIGKILL: a child of Process starts with SIGTERM blocked, so terminate() may do nothing.
            kill(process.processIdentifier, SIGKILL)
            group.wait()
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                       stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// An AF_UNIX datagram socket bound to a path or an `@abstract` name: what systemd listens on.
final class DatagramSocket {
    let fd: Int32

    init(binding name: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in bytes.enumerated() { path[index] = byte }
        }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length = socklen_t(offset + bytes.count + (bytes.first == 0 ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    deinit { close(fd) }

    /// Every datagram waiting now, in order (without waiting for more).
    func receiveAll() -> [String] {
        var out: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 { return out }
            out.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
    }
}
