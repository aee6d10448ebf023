import Foundation
import SwunisonSSH
import SwunisonTestSupport

/// Options that point the client at `server`'s ssh directory and known_hosts.
func clientOptions(for server: SSHServer, configure: (inout SSHOptions) -> Void = { _ in }) -> SSHOptions {
    var options = SSHOptions(sshDirectory: server.sshDirectory, knownHostsFile: server.knownHostsFile,
                             connectTimeoutSeconds: 10)
    configure(&options)
    return options
}

func destination(for server: SSHServer) -> SSHDestination {
    SSHDestination(user: server.user, host: "127.0.0.1", port: server.port)
}

/// Runs `body` on a new thread; `wait(seconds:)` says whether it finished in time.
final class BackgroundJob: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var storedError: (any Error)?

    init(_ body: @escaping @Sendable () throws -> Void) {
        let thread = Thread { [self] in
            do { try body() } catch { lock.withLock { storedError = error } }
            done.signal()
        }
        thread.start()
    }

    func wait(seconds: Double) -> Bool { done.wait(timeout: .now() + seconds) == .success }
    var error: (any Error)? { lock.withLock { storedError } }
}

/// Deterministic, non-repeating-looking bytes (so a shifted or dropped chunk cannot compare equal).
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

extension SSHExecChannel {
    func write(all bytes: [UInt8], chunk: Int = 64 * 1024) throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            try bytes.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[offset..<end])) }
            offset = end
        }
    }

    func readToEnd(limit: Int = .max) throws -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 50_000)
        while result.count < limit {
            let n = try buffer.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { break }
            result += buffer[0..<n]
        }
        return result
    }
}

func writeFile(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Runs a helper program to completion (see `SSHServer.run`).
@discardableResult
func runTool(_ path: String, _ arguments: [String]) throws -> String { try SSHServer.run(path, arguments) }
