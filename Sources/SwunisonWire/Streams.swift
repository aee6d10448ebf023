import Glibc
import CSwunisonShims
import Synchronization
import SwunisonFS
import SwunisonModel

/// A ``ByteStream`` over two file descriptors: one read, one written (stdin/stdout of
/// `swunison server`, or pipes to a child). Owns the descriptors when `owning` is true.
public final class FileDescriptorStream: ByteStream, Sendable {
    public let readFD: Int32
    public let writeFD: Int32
    private let owning: Bool
    // Which sides are still open: bit 0 read side, bit 1 write side.
    private let open = Mutex<UInt8>(3)

    public init(readFD: Int32, writeFD: Int32, owning: Bool) {
        self.readFD = readFD; self.writeFD = writeFD; self.owning = owning
        ignoreBrokenPipeSignal()
    }

    deinit { close() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard open.withLock({ $0 & 2 != 0 }) else { throw SystemCallError("write", errno: EBADF) }
        var done = 0
        while done < bytes.count {
            let base = bytes.baseAddress! + done
            let n = try retryingOnInterrupt("write") { Glibc.write(writeFD, base, bytes.count - done) }
            done += n
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard open.withLock({ $0 & 1 != 0 }) else { throw SystemCallError("read", errno: EBADF) }
        return try retryingOnInterrupt("read") { Glibc.read(readFD, buffer.baseAddress, buffer.count) }
    }

    public func closeWrite() {
        let wasOpen = open.withLock { s in defer { s &= ~2 }; return s & 2 != 0 }
        if wasOpen && owning { _ = Glibc.close(writeFD) }
    }

    public func close() {
        closeWrite()
        let wasOpen = open.withLock { s in defer { s &= ~1 }; return s & 1 != 0 }
        // shutdown() wakes a reader blocked in read() on a socket; a pipe's reader wakes when
        // the peer's end closes. Closing our own end is what frees the descriptor.
        if wasOpen && owning { _ = Glibc.close(readFD) }
    }
}

/// Makes a write to a pipe whose reader is gone fail with EPIPE instead of killing the process
/// (the default action of SIGPIPE). Process-wide, and done once: a peer that dies must become a
/// connection error, never a silent exit of the client or server.
func ignoreBrokenPipeSignal() {
    _ = ignoreSIGPIPEOnce
}

private let ignoreSIGPIPEOnce: Void = {
    signal(SIGPIPE, SIG_IGN)
}()

/// Two connected in-process streams over two pipes: what one side writes the other reads.
/// For tests that run client and server in one process.
public enum PipeStream {
    /// A connected pair (client end, server end).
    public static func pair() throws -> (FileDescriptorStream, FileDescriptorStream) {
        let (r1, w1) = try makePipe()
        let (r2, w2) = try makePipe()
        return (FileDescriptorStream(readFD: r1, writeFD: w2, owning: true),
                FileDescriptorStream(readFD: r2, writeFD: w1, owning: true))
    }
}

/// A close-on-exec pipe (read end, write end), made so atomically (`pipe2` with `O_CLOEXEC`):
/// a child spawned by another thread at that moment cannot inherit an end, which would keep
/// the pipe open (a writer blocked, a reader without EOF) for as long as that child lives.
func makePipe() throws -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    _ = try retryingOnInterrupt("pipe") { swunison_pipe_cloexec(&fds) }
    return (fds[0], fds[1])
}

/// A child process (e.g. `swunison server`, or `ssh host swunison server` when debugging with
/// `-servercmd`) with its stdin and stdout as the stream. Its stderr is collected (the last
/// 16 KiB) so a failed connection can say what the child printed.
public final class ChildProcessStream: ByteStream, StreamDiagnostics, Sendable {
    public let pid: pid_t
    private let io: FileDescriptorStream
    private let errors = ErrorCollector()
    private let exitStatus = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (searched in `PATH`) with the rest as its arguments.
    /// - Parameters:
    ///   - environment: extra variables for the child, added to this process's environment.
    /// - Throws: `SystemCallError` when the pipes or the spawn fail (e.g. ENOENT for a missing command).
    public init(arguments: [String], environment: [String: String] = [:]) throws {
        precondition(!arguments.isEmpty, "ChildProcessStream needs a command")
        let (inRead, inWrite) = try makePipe()      // child's stdin
        let (outRead, outWrite) = try makePipe()    // child's stdout
        let (errRead, errWrite) = try makePipe()    // child's stderr
        defer { _ = Glibc.close(inRead); _ = Glibc.close(outWrite); _ = Glibc.close(errWrite) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inRead, 0)
        posix_spawn_file_actions_adddup2(&actions, outWrite, 1)
        posix_spawn_file_actions_adddup2(&actions, errWrite, 2)

        var env = Self.currentEnvironment().filter { entry in
            !environment.keys.contains { entry.hasPrefix($0 + "=") }
        }
        for (k, v) in environment.sorted(by: { $0.key < $1.key }) { env.append("\(k)=\(v)") }

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments[0], &actions, nil, argv, envp)
        guard rc == 0 else {
            for fd in [inWrite, outRead, errRead] { _ = Glibc.close(fd) }
            throw SystemCallError("posix_spawnp \(arguments[0])", errno: rc)
        }
        pid = child
        io = FileDescriptorStream(readFD: outRead, writeFD: inWrite, owning: true)
        startThread(name: "swunison-stderr") { [errors] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(errRead, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                errors.output.withLock { out in
                    out.append(contentsOf: buffer[0..<n])
                    if out.count > 16384 { out.removeFirst(out.count - 16384) }
                }
            }
            _ = Glibc.close(errRead)
            errors.isDone.store(true, ordering: .releasing)
        }
    }

    deinit { close() }

    /// This process's environment, read from `/proc/self/environ`.
    private static func currentEnvironment() -> [String] {
        let fd = Glibc.open("/proc/self/environ", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { _ = Glibc.close(fd) }
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            all.append(contentsOf: buffer[0..<n])
        }
        return all.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try io.write(bytes) }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try io.read(into: buffer) }
    public func closeWrite() { io.closeWrite() }

    /// Closes both pipes and reaps the child: it normally exits on end of input; if it has not
    /// within two seconds it gets SIGTERM, then SIGKILL.
    public func close() {
        io.close()
        _ = waitForExit(graceMilliseconds: 2000)
    }

    /// Waits for the child to exit and returns its wait status; escalates to SIGTERM and then
    /// SIGKILL after `graceMilliseconds`.
    @discardableResult
    public func waitForExit(graceMilliseconds: Int) -> Int32 {
        if let s = exitStatus.withLock({ $0 }) { return s }
        var status: Int32 = 0
        var waited = 0
        var signalled = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if waited >= graceMilliseconds {
                if signalled == 0 { kill(pid, SIGTERM); signalled = 1; waited = graceMilliseconds / 2 }
                else if signalled == 1 { kill(pid, SIGKILL); signalled = 2 }
            }
            usleep(10_000); waited += 10
        }
        exitStatus.withLock { $0 = status }
        return status
    }

    /// What the child printed on stderr (last 16 KiB), trimmed, as one line per line.
    public var diagnostics: String {
        // Give the stderr thread a moment to collect the child's last words after a failure.
        for _ in 0..<50 where !errors.isDone.load(ordering: .acquiring) { usleep(2000) }
        let bytes = errors.output.withLock { $0 }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").map { $0.trimmingCharacters() }.filter { !$0.isEmpty }
            .joined(separator: " | ")
    }
}

/// The child's stderr as collected by its reader thread.
private final class ErrorCollector: Sendable {
    let output = Mutex<[UInt8]>([])
    let isDone = Atomic<Bool>(false)
}

private extension Substring {
    func trimmingCharacters() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
