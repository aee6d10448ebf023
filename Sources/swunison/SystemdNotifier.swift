import Glibc

/// Tells systemd how a service is doing, with the datagrams of `sd_notify(3)`: `READY=1` once
/// the service works, `STATUS=...` for `systemctl status`, `STOPPING=1` when it shuts down,
/// `WATCHDOG=1` to show it is alive.
///
/// systemd passes the socket in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace)
/// to a unit with `Type=notify`. Without the variable every call does nothing, so the same code
/// runs under systemd, from a terminal and in tests. A message is one non-blocking datagram;
/// errors are ignored: telling systemd must never delay or fail a synchronisation.
///
/// Watch mode's contract with `systemd/swunison@.service` (`Type=notify`, `NotifyAccess=main`,
/// `TimeoutStartSec=5min`): send ``Message/ready`` once the profile is loaded, the lock held and
/// the watches set, before the first full cycle (which may take hours on a big tree); a
/// ``Message/status(_:)`` on each change of state; ``Message/stopping`` on SIGTERM, before the
/// file in flight is finished and the archive committed (`TimeoutStopSec=60`). This file uses
/// only Glibc, so that a test can compile it on its own.
struct SystemdNotifier: Sendable {
    /// One assignment of the notification protocol.
    enum Message: Sendable, Equatable {
        /// `READY=1`: start-up is finished (for `Type=notify`, the unit is then "active").
        case ready
        /// `RELOADING=1`: the configuration is being reread.
        case reloading
        /// `STOPPING=1`: shutting down.
        case stopping
        /// `STATUS=...`: one line for `systemctl status` (newlines become spaces).
        case status(String)
        /// `WATCHDOG=1`: alive (needed only when the unit sets `WatchdogSec=`; see ``watchdogInterval``).
        case watchdog
        /// `EXTEND_TIMEOUT_USEC=...`: start-up or shutdown needs this much longer.
        case extendTimeout(microseconds: UInt64)

        var assignment: String {
            switch self {
            case .ready: return "READY=1"
            case .reloading: return "RELOADING=1"
            case .stopping: return "STOPPING=1"
            case .status(let text):
                return "STATUS=" + String(text.map { $0.isNewline ? " " : $0 })
            case .watchdog: return "WATCHDOG=1"
            case .extendTimeout(let microseconds): return "EXTEND_TIMEOUT_USEC=\(microseconds)"
            }
        }
    }

    /// The socket's address as `sockaddr_un` wants it (path bytes, or a NUL and the abstract
    /// name), and its length; nil when there is no socket to tell.
    private let address: (bytes: [UInt8], length: socklen_t)?

    /// A notifier for the socket `NOTIFY_SOCKET` names; nil or an unusable value makes every
    /// call a no-op.
    init(socket: String?) {
        address = socket.flatMap(Self.address(of:))
    }

    /// A notifier for this process's `$NOTIFY_SOCKET`.
    static func fromEnvironment() -> SystemdNotifier {
        SystemdNotifier(socket: getenv("NOTIFY_SOCKET").map { String(cString: $0) })
    }

    /// Whether there is a socket to send to (the process runs under systemd with `Type=notify`).
    var isEnabled: Bool { address != nil }

    /// How often systemd expects ``Message/watchdog`` (`$WATCHDOG_USEC`, when `$WATCHDOG_PID` is
    /// unset or this process), or nil when the unit has no watchdog. Send at half this interval.
    static func watchdogInterval() -> Duration? {
        if let pid = getenv("WATCHDOG_PID").map({ String(cString: $0) }), Int32(pid) != getpid() { return nil }
        guard let text = getenv("WATCHDOG_USEC").map({ String(cString: $0) }),
              let microseconds = Int64(text), microseconds > 0 else { return nil }
        return .microseconds(microseconds)
    }

    /// Sends `messages` in one datagram (systemd applies them together). Never blocks, never
    /// fails: without a socket, or when sending fails, nothing happens.
    func send(_ messages: Message...) { send(messages) }

    func send(_ messages: [Message]) {
        guard let address, !messages.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let payload = Array(messages.map(\.assignment).joined(separator: "\n").utf8)
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { path in
            for (index, byte) in address.bytes.enumerated() { path[index] = byte }
        }
        _ = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                payload.withUnsafeBytes { bytes in
                    // MSG_DONTWAIT: a full socket buffer drops the message instead of waiting.
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), socketAddress, address.length)
                }
            }
        }
    }

    /// `sun_path` bytes and address length for `/path` or `@abstract`; nil for anything else or
    /// a name too long for `sockaddr_un`.
    private static func address(of socket: String) -> (bytes: [UInt8], length: socklen_t)? {
        var bytes = Array(socket.utf8)
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
        switch bytes.first {
        case UInt8(ascii: "/"):
            // A path, NUL-terminated.
            guard bytes.count < capacity else { return nil }
            return (bytes, socklen_t(pathOffset + bytes.count + 1))
        case UInt8(ascii: "@"):
            // The abstract namespace: a leading NUL, and the name's length counts exactly.
            guard bytes.count > 1, bytes.count <= capacity else { return nil }
            bytes[0] = 0
            return (bytes, socklen_t(pathOffset + bytes.count))
        default:
            return nil
        }
    }
}
