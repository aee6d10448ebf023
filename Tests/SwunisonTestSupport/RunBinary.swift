import Foundation

/// The built `swunison` executable beside the test bundle (SwiftPM builds it for `swift test`).
public enum SwunisonBinary {
    /// Path of the binary; `SWUNISON_BIN` overrides it (to test a release build).
    public static var path: String {
        if let override = ProcessInfo.processInfo.environment["SWUNISON_BIN"] { return override }
        // The test bundle lives in the build's bin directory, next to the executables.
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("swunison").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("swunison").path
    }

    /// What a run printed and how it ended.
    public struct Outcome: Sendable, CustomStringConvertible {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var output: String { stdout + stderr }
        public var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status; self.stdout = stdout; self.stderr = stderr
        }
    }

    /// Runs the binary with `arguments`, no stdin (or `input`), and an environment of `environment`
    /// on top of the current one. Blocks until it exits.
    /// - Parameter wrapper: a command to run the binary under (e.g. `setpriv` to drop privileges);
    ///   the binary and `arguments2` follow it.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil,
                           timeout: TimeInterval = 120, wrapper: [String] = [], arguments2: [String] = []) throws -> Outcome {
        let process = Process()
        if wrapper.isEmpty {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments + arguments2
        } else {
            process.executableURL = URL(fileURLWithPath: wrapper[0])
            process.arguments = Array(wrapper.dropFirst()) + [path] + arguments + arguments2
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inp
        try process.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try? inp.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data(), errData = Data()
        group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        var note = ""
        if group.wait(timeout: .now() + timeout) == .timedOut {
            // A hung run: ask it to stop, then kill it; never wait for it forever (a grandchild
            // holding the pipes open must not hang the test either).
            process.terminate()
            if group.wait(timeout: .now() + 10) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                _ = group.wait(timeout: .now() + 10)
            }
            note = "\n[test harness: stopped after \(Int(timeout)) s]\n"
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus,
                       stdout: String(decoding: outData, as: UTF8.self),
                       stderr: String(decoding: errData, as: UTF8.self) + note)
    }
}

/// Small file helpers for tests.
public enum TestFiles {
    public static func write(_ path: String, _ text: String, mtime: TimeInterval? = nil) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        if let mtime { try setMtime(path, mtime) }
    }

    public static func read(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Sets a file's mtime (seconds since the epoch) without following symlinks.
    public static func setMtime(_ path: String, _ seconds: TimeInterval) throws {
        var times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw NSError(domain: "utimensat", code: Int(errno))
        }
    }
}
