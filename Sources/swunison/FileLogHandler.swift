import Glibc
import Logging
import Synchronization

/// A swift-log handler that appends one line per message to the profile's `logfile`
/// (Unison's `log`/`logfile` preferences). Opened once at start-up, in `main`.
struct FileLogHandler: LogHandler {
    private let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    init(sink: LogSink) { self.sink = sink }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = "\(Self.timestamp()) [\(event.level)] \(event.message)\n"
        sink.write(line)
    }

    private static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The open log file, shared by every logger of the process.
final class LogSink: Sendable {
    private let path: String
    /// The descriptor lines go to; swapped by ``reopen()``. One line at a time, whole.
    private let fd: Mutex<Int32>

    /// Opens (creating) `path` for appending; nil when it cannot be opened (logging is then off
    /// and the caller warns once).
    init?(path: String) {
        let fd = Self.open(path)
        guard fd >= 0 else { return nil }
        self.path = path
        self.fd = Mutex(fd)
    }

    private static func open(_ path: String) -> Int32 {
        Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    }

    func write(_ line: String) {
        var bytes = Array(line.utf8)
        fd.withLock { fd in
            _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        }
    }

    /// Opens the log file by its name again (SIGHUP, after logrotate moved the old one away);
    /// keeps writing to the old descriptor if the name cannot be opened.
    func reopen() {
        let fresh = Self.open(path)
        guard fresh >= 0 else { return }
        let old = fd.withLock { fd in defer { fd = fresh }; return fd }
        Glibc.close(old)
    }
}
