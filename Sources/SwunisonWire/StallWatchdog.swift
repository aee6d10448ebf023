import Glibc
import Synchronization
import SwunisonReplica
import SwunisonModel

/// Notices when a connection's requests stop moving, and says which ones wait, on which side.
///
/// Progress is any frame from the server, any frame the client gets onto the stream, or a
/// server that says it is working on something. After a quarter of the timeout without any,
/// the client asks the server what it is doing (`status`, PROTOCOL.md): a server busy hashing a
/// large file or committing a large cache says so, and the clock starts again. After the whole
/// timeout the connection is declared stalled: every request fails with
/// ``ReplicaError/stalled(_:)`` and a report naming each waiting request, what the client did
/// for it, and what the server last said about it. Without this a lost frame (issue 11) left
/// client and server each waiting for the other, forever.
final class StallWatchdog: Sendable {
    /// Nanoseconds without progress that make a stall.
    let timeout: UInt64
    private let lastProgress: Atomic<UInt64>
    private struct State {
        /// When the status request in flight was sent (nil: none in flight).
        var probeSentAt: UInt64?
        /// The server's last answer, by request id, and when it came.
        var view: [UInt64: RequestStatus]?
        var viewAt: UInt64 = 0
    }
    private let state = Mutex(State())

    init(timeout: Duration) {
        let (seconds, attoseconds) = timeout.components
        self.timeout = UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        lastProgress = Atomic(monotonicNanoseconds())
    }

    /// How often ``check(waiting:canAsk:)`` should run: an eighth of the timeout, within 50 ms to 5 s.
    var tick: Duration { .nanoseconds(Int64(min(max(timeout / 8, 50_000_000), 5_000_000_000))) }

    /// Something moved.
    func noteProgress() { lastProgress.store(monotonicNanoseconds(), ordering: .relaxed) }

    enum Verdict { case fine, ask, stalled(seconds: Int) }

    /// - Parameters:
    ///   - waiting: whether any request waits for the server.
    ///   - canAsk: whether the server understands `status`.
    func check(waiting: Bool, canAsk: Bool) -> Verdict {
        let now = monotonicNanoseconds()
        guard waiting else {
            // Nothing to wait for is not a stall; the clock starts with the next request.
            lastProgress.store(now, ordering: .relaxed)
            return .fine
        }
        let idle = now &- lastProgress.load(ordering: .relaxed)
        if idle >= timeout { return .stalled(seconds: Int(idle / 1_000_000_000)) }
        guard canAsk, idle >= timeout / 4 else { return .fine }
        return state.withLock { s in
            if s.probeSentAt != nil { return .fine }
            s.probeSentAt = now
            return .ask
        }
    }

    /// The server answered `status` (nil: the request failed). A server working on anything is
    /// progress: the requests waiting for it are waiting for real work.
    func received(_ report: [RequestStatus]?) {
        let now = monotonicNanoseconds()
        state.withLock { s in
            s.probeSentAt = nil
            if let report { s.view = Dictionary(report.map { ($0.requestID, $0) }, uniquingKeysWith: { a, _ in a }); s.viewAt = now }
        }
        if report?.contains(where: { $0.state == .working }) == true { noteProgress() }
    }

    /// One line naming every waiting request (the first few in full) and each side's part.
    func report(about peer: String, seconds: Int, waiting: [(id: UInt64, label: RequestLabel, here: String?)],
                serverCanSay: Bool) -> String {
        let now = monotonicNanoseconds()
        let (view, viewAge, probeAge) = state.withLock { s in
            (s.view, s.view == nil ? nil : Int((now &- s.viewAt) / 1_000_000_000),
             s.probeSentAt.map { Int((now &- $0) / 1_000_000_000) })
        }
        func server(_ id: UInt64) -> String? {
            guard let view else { return nil }
            guard let line = view[id] else { return "the server has nothing in hand for it (the request or its reply was lost)" }
            switch line.state {
            case .working: return "the server was working on it"
            case .waitingForData: return "the server waits for more of its content from us (\(line.bytes) bytes received)"
            case .waitingForCredit: return "the server waits for us to take more of the file (\(line.bytes) bytes sent)"
            }
        }
        let shown = waiting.prefix(5).map { request -> String in
            let sides = [request.here, server(request.id)].compactMap { $0 }
            return "\(request.label) (request \(request.id))" + (sides.isEmpty ? "" : ": " + sides.joined(separator: "; "))
        }
        var text = "no progress with \(peer) for \(seconds) s (stalltimeout), so this run stops here. "
            + "\(waiting.count) request\(waiting.count == 1 ? "" : "s") waited for the server: "
            + shown.joined(separator: ", ")
        if waiting.count > shown.count { text += ", and \(waiting.count - shown.count) more" }
        text += "."
        if let probeAge {
            text += " The server did not answer a status request sent \(probeAge) s ago: it is stuck, or the link is."
        } else if let viewAge {
            text += " (The server's part is what it said \(viewAge) s ago.)"
        } else if !serverCanSay {
            text += " (The server's swunison is too old to say what it was doing.)"
        }
        text += " What earlier runs committed is kept, and the next run goes on from there."
            + " A stall is a bug or a host that stopped answering: if the host was fine, please report this message."
        return text
    }
}

/// Where a connection keeps its watchdog, set at most once, read on every frame without a lock.
final class WatchdogSlot: Sendable {
    let watchdog = AtomicLazyReference<StallWatchdog>()
    /// Whether its thread was started.
    let isRunning = Atomic<Bool>(false)
}

/// A request as a stall report names it: its message name and what it is about.
struct RequestLabel: Sendable, CustomStringConvertible {
    var name: String
    var path: RelativePath?
    /// Files in a batch request (0 for others).
    var files = 0

    var description: String {
        if files > 0 { return "\(name) of \(files) file\(files == 1 ? "" : "s")" + (path.map { " (\($0), ...)" } ?? "") }
        if let path { return "\(name) \(path.isRoot ? "." : path.description)" }
        return name
    }

    /// Requests nobody waits for to finish: the watchdog's own questions, and watches (which
    /// last until cancelled).
    var isLongLived: Bool { name == "status" || name == "watch" }
}

extension Message {
    /// How a stall report names this request.
    var label: RequestLabel {
        switch self {
        case .writeFile(let p, _, _), .makeDirectory(let p), .makeSymlink(let p):
            return RequestLabel(name: name, path: p.path)
        case .openFile(let path, _, _), .remove(let path, _, _), .backup(let path, _), .setAttributes(let path, _, _):
            return RequestLabel(name: name, path: path)
        case .readFiles(let requests), .digestFiles(let requests):
            return RequestLabel(name: name, path: requests.first?.path, files: requests.count)
        case .writeFiles(let writes):
            return RequestLabel(name: name, path: writes.first?.path, files: writes.count)
        case .open(let spec):
            return RequestLabel(name: "open \(spec.root)")
        default:
            return RequestLabel(name: name)
        }
    }
}

/// The server's answer to the watchdog's `status` request.
final class StatusProbe: PendingRequest {
    private let answered: @Sendable ([RequestStatus]?) -> Void
    init(_ answered: @escaping @Sendable ([RequestStatus]?) -> Void) { self.answered = answered }

    func deliver(_ message: Message) -> Bool {
        if case .statusReport(let lines) = message { answered(lines) } else { answered(nil) }
        return true
    }

    func fail(_ error: ReplicaError) { answered(nil) }
}

/// Nanoseconds on CLOCK_MONOTONIC (unaffected by changes of the wall clock).
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}
