import Foundation
import Testing
import SwunisonTestSupport

/// A local root, a "remote" root reached over a private sshd on 127.0.0.1, and a way to run the
/// built binary on them with the server's ssh directory (`SWUNISON_SSH_DIR`).
///
/// The sshd runs as the test user (root here), so the remote host is this machine: the remote
/// root, the remote backupdir and `~/.swunison` on the remote are local paths the test can check.
/// `@unchecked Sendable`: one test uses it from a second thread, only to run the binary.
final class SSHSandbox: @unchecked Sendable {
    let server: SSHServer
    /// `a` is the local root, `b` the remote root (an absolute path on the "remote" host).
    let sandbox: Sandbox
    /// The ssh directory the client uses; the server's own one unless a test swaps it.
    var sshDirectory: String

    var local: String { sandbox.a }
    var remote: String { sandbox.b }
    var backupDirectory: String { sandbox.dir.appending("backups") }

    init(_ label: String) throws {
        server = try SSHServer()
        sandbox = try Sandbox(label)
        sshDirectory = server.sshDirectory
    }

    deinit { server.stop() }

    /// `ssh://USER@127.0.0.1:PORT/` followed by `path` (absolute paths give the `//abs` form).
    func url(_ path: String) -> String { "ssh://\(server.user)@127.0.0.1:\(server.port)/\(path)" }

    /// Writes `NAME.prf`: the local root, the remote root (`remoteRoot`, default the absolute
    /// remote path), the built binary as servercmd, the backup directory, then `lines`.
    func profile(_ name: String = "t", remoteRoot: String? = nil, serverCommand: String? = SwunisonBinary.path,
                 _ lines: [String] = ["batch = true", "prefer = newer"]) throws {
        var text = ["root = \(local)", "root = \(remoteRoot ?? url(remote))", "backupdir = \(backupDirectory)"]
        if let serverCommand { text.append("servercmd = \(serverCommand)") }
        text += lines
        try (text.joined(separator: "\n") + "\n").write(toFile: "\(sandbox.profiles)/\(name).prf",
                                                       atomically: true, encoding: .utf8)
    }

    /// Runs the binary with the sandbox's profiles and home, and `sshDirectory` as the ssh dir.
    @discardableResult
    func run(_ arguments: [String] = ["t"], environment: [String: String] = [:],
             timeout: TimeInterval = 180) throws -> SwunisonBinary.Outcome {
        var env = ["SWUNISON": sandbox.profiles, "HOME": sandbox.dir.path, "SWUNISON_SSH_DIR": sshDirectory]
        for (k, v) in environment { env[k] = v }
        return try SwunisonBinary.run(arguments, environment: env, timeout: timeout)
    }

    /// A copy of the server's ssh directory (config, keys, known_hosts) to alter for one test.
    func copyOfSSHDirectory(_ name: String) throws -> String {
        let copy = sandbox.dir.appending(name)
        try FileManager.default.copyItem(atPath: server.sshDirectory, toPath: copy)
        chmod(copy, 0o700)
        return copy
    }

    func write(_ root: String, _ relative: String, _ text: String, mtime: TimeInterval? = nil) throws {
        try TestFiles.write(root + "/" + relative, text, mtime: mtime)
    }

    /// The two trees are equal (kind, content, mode, mtime, link targets; swunison's temp files aside).
    var inStep: Bool { sandbox.listing(local) == sandbox.listing(remote) }

    /// Both listings, for failure messages.
    var listings: String { "local \(sandbox.listing(local).sorted { $0.key < $1.key })\nremote \(sandbox.listing(remote).sorted { $0.key < $1.key })" }

    /// Every name under `root` starting with `.swunison` (temp or partial files).
    static func temporaryFiles(under root: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []
        return all.filter { ($0 as NSString).lastPathComponent.hasPrefix(".swunison") }
    }
}

extension SSHSandbox {
    /// The pids in `.swunison.<pid>.*.tmp` names and each one's state from /proc (`Z`: a zombie
    /// nobody reaped, which still counts as alive; `gone`: no such process).
    static func owners(of names: [String]) -> [String] {
        let pids = Set(names.compactMap { name -> String? in
            let parts = (name as NSString).lastPathComponent.split(separator: ".")
            return parts.count > 2 ? String(parts[1]) : nil
        })
        return pids.sorted().map { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return "\(pid): gone" }
            return "\(pid): " + (stat[stat.index(after: close)...].split(separator: " ").first.map(String.init) ?? "?")
        }
    }
}

extension SSHSandbox {
    /// Forty files of 4 MB in `d0` ... `d3` on the local side (about half a second of copying
    /// over ssh here); returns each one's content by number (`big0` ... `big39`).
    func writeLargeFiles() throws -> (Int) -> Data {
        let chunks = (0..<4).map { _ in randomData(4 << 20) }
        let content = { (i: Int) -> Data in chunks[i % 4] + Data("\(i)".utf8) }
        for i in 0..<40 {
            try FileManager.default.createDirectory(atPath: local + "/d\(i % 4)", withIntermediateDirectories: true)
            try content(i).write(to: URL(fileURLWithPath: local + "/d\(i % 4)/big\(i)"))
        }
        return content
    }

    /// Runs the binary on another thread and calls `act` once, as soon as the copy is under way
    /// (the first large or temporary file appears on the remote side). Returns the run's outcome
    /// and when `act` ran (nil: the run ended first).
    func run(timeout: TimeInterval, onceCopying act: () -> Void) throws -> (SwunisonBinary.Outcome, Date?) {
        nonisolated(unsafe) var outcome: Result<SwunisonBinary.Outcome, any Error>?
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            outcome = Result { try self.run(timeout: timeout) }
            done.signal()
        }
        let started = Date()
        var actedAt: Date?
        while actedAt == nil && Date().timeIntervalSince(started) < 60 {
            let remoteNames = FileManager.default.enumerator(atPath: remote)?.allObjects as? [String] ?? []
            if remoteNames.contains(where: { $0.contains("big") || $0.contains(".swunison") }) {
                act()
                actedAt = Date()
            } else if done.wait(timeout: .now() + 0.02) == .success {
                done.signal()
                break
            }
        }
        done.wait()
        return (try outcome!.get(), actedAt)
    }
}

/// Random bytes (so no compression or dedup can hide a short copy).
func randomData(_ count: Int) -> Data {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        var word = generator.next()
        withUnsafeBytes(of: &word) { raw in
            for b in raw where i < count { bytes[i] = b; i += 1 }
        }
    }
    return Data(bytes)
}

/// The lines of `text` that contain `needle`.
func lines(of text: String, containing needle: String) -> [Substring] {
    text.split(separator: "\n").filter { $0.contains(needle) }
}
