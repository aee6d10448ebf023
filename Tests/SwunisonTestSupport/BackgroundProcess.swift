import Foundation
import Glibc

/// A program started in the background (the built binary in watch mode), with its output going
/// to files the test can read while it runs, and signals the test can send.
///
/// Started with `posix_spawn` and an empty signal mask: a child of the test runner would
/// otherwise inherit its blocked signals (SIGTERM among them), as Foundation's `Process` does.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    private let outPath: String
    private let errPath: String
    private var status: Int32?

    /// Starts `path` with `arguments` and `environment` on top of the current one; stdin is
    /// /dev/null, stdout and stderr go to files in `directory`.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:], directory: String) throws {
        outPath = directory + "/stdout-\(UInt32.random(in: 0...UInt32.max))"
        errPath = outPath.replacingOccurrences(of: "stdout", with: "stderr")
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw POSIXError(.init(rawValue: rc) ?? .EIO) }
        pid = child
    }

    deinit {
        if status == nil { kill(pid, SIGKILL); _ = wait(seconds: 5) }
    }

    public var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the process to end; its exit status (128 + N when killed by signal N), or nil
    /// if it is still running after `seconds`.
    public func wait(seconds: Double) -> Int32? {
        if let status { return status }
        let deadline = Date().addingTimeInterval(seconds)
        var raw: Int32 = 0
        while true {
            let r = waitpid(pid, &raw, WNOHANG)
            if r == pid {
                let code = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                status = code
                return code
            }
            if r < 0 && errno != EINTR { return nil }
            if Date() > deadline { return nil }
            usleep(20_000)
        }
    }

    /// Waits until `condition` holds (polling every 20 ms); false after `seconds`.
    public static func eventually(_ seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }
}
