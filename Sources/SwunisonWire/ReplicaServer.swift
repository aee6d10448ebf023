import Glibc
import Synchronization
import SwunisonReplica
import SwunisonModel

/// Serves one ``Replica`` to one client over a ``ByteStream``: `swunison server`.
///
/// One thread reads frames; each request runs as its own task, concurrently with the others
/// (the client orders requests for a path after its parent's); replies go out through one
/// serialised writer. Content streams are flow-controlled both ways, so memory stays bounded
/// whatever the client sends. The replica is made by `makeReplica` from the client's `open`
/// request; paths in every request were validated by the decoder (Invariant 5).
public final class ReplicaServer: Sendable {
    private let stream: any ByteStream
    private let sender: FrameSender
    private let versions: ClosedRange<UInt16>
    private let features: [String]
    private let log: @Sendable (String) -> Void
    private let makeReplica: @Sendable (ReplicaSpec) async throws -> any Replica
    private let state = Mutex(State())

    /// How many bytes of one file a client may send before the server grants more (v1: 1 MiB).
    public static let initialWriteCredit = 1 << 20
    /// The largest content chunk the server sends.
    public static let chunkSize = 256 << 10
    /// Content one `readFiles` reply may carry.
    public static let maxBatchContent: Int64 = 8 << 20

    private struct State {
        var handshakeDone = false
        var replica: (any Replica)?
        var replicaClosed = false
        var tasks: [UInt64: Task<Void, Never>] = [:]
        /// File content held by the requests in `tasks` (what their frames carried).
        var heldBytes = 0
        var writes: [UInt64: IncomingContent] = [:]
        var reads: [UInt64: CreditGate] = [:]
        var scans: [UInt64: CancelFlag] = [:]
        /// Watch requests: they last until cancelled, and are not work in hand (`status`).
        var watches: Set<UInt64> = []
        var baselines: [UInt64: [BaselineUpdate]] = [:]
        /// Why staging a commit's updates failed (the commit then fails with it).
        var stagingFailures: [UInt64: any Error] = [:]
        var shutdownRequested = false
        var finished: CheckedContinuation<Void, any Error>?
        var endError: (any Error)?
        var ended = false
    }

    /// - Parameters:
    ///   - stream: the connection to the client.
    ///   - versions: protocol versions to claim (tests change this to show a mismatch).
    ///   - features: features to offer (tests leave some out to play an older server).
    ///   - log: where diagnostics go (stderr in `swunison server`; never stdout).
    ///   - makeReplica: opens the replica the client names.
    public init(stream: any ByteStream, versions: ClosedRange<UInt16> = ProtocolVersions.fromEnvironment(),
                features: [String] = ProtocolVersions.features, log: @escaping @Sendable (String) -> Void = { _ in },
                makeReplica: @escaping @Sendable (ReplicaSpec) async throws -> any Replica) {
        self.stream = stream
        self.sender = FrameSender(stream: stream)
        self.versions = versions
        self.features = features
        self.log = log
        self.makeReplica = makeReplica
    }

    /// Serves until the client shuts down or the stream ends.
    /// - Throws: ``WireError`` when the client broke the protocol (after telling it why), or the
    ///   stream's error.
    public func run() async throws {
        try sender.send(Frame(0, .hello(Hello(versions: versions, features: features))))
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            state.withLock { $0.finished = c }
            FrameReceiver.start(stream: stream, name: "swunison-srv-rd",
                                deliver: { [self] frame in try handle(frame) },
                                finish: { [self] error in end(error) })
        }
    }

    /// Sends an unsolicited line to the client's log (request id 0).
    public func sendNotice(_ text: String) {
        try? sender.send(Frame(0, .notice(text)))
    }

    // MARK: - Dispatch (reader thread: never blocks except for tiny control replies)

    private func handle(_ frame: Frame) throws {
        let id = frame.requestID
        if !state.withLock({ $0.handshakeDone }) {
            guard case .hello(let hello) = frame.message else {
                throw WireError.unexpected("\(frame.message.name) before hello")
            }
            do {
                _ = try ProtocolVersions.negotiate(local: versions, remote: hello.versions, peer: "client")
            } catch {
                try? sender.send(Frame(0, .fatal(error.description)))
                throw error
            }
            state.withLock { $0.handshakeDone = true }
            return
        }
        switch frame.message {
        case .hello: throw WireError.unexpected("second hello")
        case .fatal(let reason): throw WireError.peerClosed(reason)
        case .open(let spec):
            try spawn(id) { [self] in
                let replica = try await makeReplica(spec)
                state.withLock { $0.replica = replica }
                return .ok
            }
        case .scan(let request):
            let flag = CancelFlag()
            state.withLock { $0.scans[id] = flag }
            try spawn(id) { [self] in
                defer { state.withLock { _ = $0.scans.removeValue(forKey: id) } }
                let result = try await replica().scan(request) { [self] changes in
                    if flag.isCancelled { throw CancellationError() }
                    let frames = try FrameEncoder().batches(type: Message.scanBatch([]).type, requestID: id,
                                                            items: changes) { $0.change($1) }
                    for f in frames { try sender.send(raw: f) }
                }
                return .scanDone(result)
            }
        case let .openFile(path, expected, window):
            let gate = CreditGate(window: Int(max(window, 1)))
            state.withLock { $0.reads[id] = gate }
            try spawn(id) { [self] in
                defer { state.withLock { _ = $0.reads.removeValue(forKey: id) } }
                let reader = try await replica().openFile(path, expected: expected)
                do {
                    try sender.send(Frame(id, .ok))
                    let piece = min(Self.chunkSize, gate.window)
                    while let chunk = try await reader.read() {
                        var start = 0
                        repeat {
                            let end = min(start + piece, chunk.count)
                            try await gate.acquire(end - start)
                            try sender.send(Frame(id, .fileChunk(Array(chunk[start..<end]))))
                            start = end
                        } while start < chunk.count
                    }
                    await reader.close()
                } catch {
                    await reader.close()
                    throw error
                }
                return .fileEnd
            }
        case let .writeFile(p, data, isComplete):
            // Credit is granted from wherever the replica reads (a task), or, when the replica
            // was already waiting, from this thread: that send goes through a task, so the
            // reader thread never blocks on a write.
            let incoming = IncomingContent(first: data, isComplete: isComplete, announcedSize: p.entry.size) { [sender] n in
                Task { try? sender.send(Frame(id, .writeCredit(UInt32(n)))) }
            }
            if !isComplete { state.withLock { $0.writes[id] = incoming } }
            try spawn(id) { [self] in
                defer {
                    incoming.abort("the server finished the request")
                    state.withLock { _ = $0.writes.removeValue(forKey: id) }
                }
                let e = try await replica().writeFile(p.path, entry: p.entry, from: incoming,
                                                      replacing: p.replacing, backup: p.backup)
                return .entry(e)
            }
        case .makeDirectory(let p):
            try spawn(id) { [self] in
                .entry(try await replica().makeDirectory(p.path, entry: p.entry, replacing: p.replacing, backup: p.backup))
            }
        case .makeSymlink(let p):
            try spawn(id) { [self] in
                .entry(try await replica().makeSymlink(p.path, entry: p.entry, replacing: p.replacing, backup: p.backup))
            }
        case let .remove(path, expected, backup):
            try spawn(id) { [self] in .backupLocation(try await replica().remove(path, expected: expected, backup: backup)) }
        case let .backup(path, expected):
            try spawn(id) { [self] in .backupLocation(try await replica().backup(path, expected: expected)) }
        case let .setAttributes(path, expected, to):
            try spawn(id) { [self] in .entry(try await replica().setAttributes(path, expected: expected, to: to)) }
        case .readFiles(let requests):
            try spawn(id) { [self] in
                // The reply must fit in one frame; the client's batches stay far below this.
                // (Saturating: the sizes are the peer's numbers.)
                let total = requests.reduce(Int64(0)) { sum, request in
                    let (next, overflow) = sum.addingReportingOverflow(max(request.expected.size, 0))
                    return overflow ? .max : next
                }
                guard total <= Self.maxBatchContent else {
                    throw ReplicaError.other("readFiles: \(requests.count) files, \(total) bytes: more than one reply can carry")
                }
                return .fileContents(try await replica().readFiles(requests))
            }
        case .writeFiles(let writes):
            try spawn(id, holding: writes.reduce(0) { $0 + $1.content.count }) { [self] in
                .writeResults(try await replica().writeFiles(writes))
            }
        case .digestFiles(let requests):
            try spawn(id) { [self] in .digests(try await replica().digestFiles(requests)) }
        case .baselineBatch(let updates):
            // A local replica applies each batch now, on this (receiving) thread, so the batches
            // stay in order and the cache is written while the rest is on the wire; others get
            // them all with the commit.
            if let staging = try? replica() as? any StagesBaselineUpdates {
                guard state.withLock({ $0.stagingFailures[id] == nil }) else { return }
                do { try staging.stageBaseline(updates) } catch { state.withLock { $0.stagingFailures[id] = error } }
            } else {
                state.withLock { $0.baselines[id, default: []].append(contentsOf: updates) }
            }
        case .commitBaseline(let snapshot):
            let (updates, stagingFailure) = state.withLock {
                ($0.baselines.removeValue(forKey: id) ?? [], $0.stagingFailures.removeValue(forKey: id))
            }
            try spawn(id) { [self] in
                if let stagingFailure { throw stagingFailure }
                try await replica().commitBaseline(updates, snapshot: snapshot)
                return .ok
            }
        case .shutdown:
            // Watches last until cancelled: they end here, the other requests are waited for.
            let watches = state.withLock { s in
                s.shutdownRequested = true
                return s.watches.compactMap { s.tasks[$0] }
            }
            for watch in watches { watch.cancel() }
            Task { [self] in
                await drainTasks()
                await closeReplica()
                try? sender.send(Frame(id, .ok))
                stream.closeWrite()
            }
        case .writeChunk(let data):
            state.withLock { $0.writes[id] }?.append(data)
        case .writeEnd:
            state.withLock { $0.writes.removeValue(forKey: id) }?.end()
        case .writeAbort(let reason):
            state.withLock { $0.writes.removeValue(forKey: id) }?.abort("the client aborted the transfer: \(reason)")
        case .readCredit(let n):
            state.withLock { $0.reads[id] }?.add(Int(n))
        case .watch(let request):
            state.withLock { _ = $0.watches.insert(id) }
            try spawn(id) { [self] in
                defer { state.withLock { _ = $0.watches.remove(id) } }
                let source = try await replica().watch(request)
                try sender.send(Frame(id, .ok))
                // Until `cancel` (or the end of the connection) cancels this task.
                return try await withTaskCancellationHandler {
                    while true {
                        let notices = try await source.next()
                        try sender.send(Frame(id, .changeNotices(notices)))
                    }
                } onCancel: {
                    Task { await source.stop() }
                }
            }
        case .status:
            // Not from this thread (it never waits for the writer), nor from a task: when the
            // tasks are all blocked, or busy, is when the client most needs the answer.
            let report = statusReport()
            startThread(name: "swunison-status") { [sender] in try? sender.send(Frame(id, .statusReport(report))) }
        case .cancel:
            let (task, gate, flag, write) = state.withLock {
                ($0.tasks[id], $0.reads[id], $0.scans[id], $0.writes.removeValue(forKey: id))
            }
            flag?.cancel(); gate?.cancel(); write?.abort("the client cancelled the transfer"); task?.cancel()
        case .ok, .entry, .backupLocation, .failure, .scanBatch, .scanDone, .fileChunk, .fileEnd,
             .writeCredit, .notice, .fileContents, .writeResults, .digests, .statusReport, .changeNotices:
            throw WireError.unexpected("\(frame.message.name) message from the client")
        }
    }

    /// What each request in hand is doing: its task runs, or it waits for the client (a streamed
    /// write for content, a streamed read for credit). For the client's stall watchdog.
    private func statusReport() -> [RequestStatus] {
        state.withLock { s in
            s.tasks.keys.filter { !s.watches.contains($0) }.sorted().map { id in
                if let write = s.writes[id] {
                    let (waiting, bytes) = write.progress
                    return RequestStatus(requestID: id, state: waiting ? .waitingForData : .working, bytes: bytes)
                }
                if let read = s.reads[id] {
                    let (waiting, bytes) = read.progress
                    return RequestStatus(requestID: id, state: waiting ? .waitingForCredit : .working, bytes: bytes)
                }
                return RequestStatus(requestID: id, state: .working)
            }
        }
    }

    /// The open replica.
    private func replica() throws -> any Replica {
        guard let r = state.withLock({ $0.replica }) else {
            throw ReplicaError.other("no replica is open on the server (the client must send open first)")
        }
        return r
    }

    /// Runs a request as a task and sends its reply (or its failure) when it ends.
    /// Requests a server works on at once, and the file content they may hold. An honest client
    /// stays far below (at most 1,024 operations and 64 MiB of content in flight); one that does
    /// not is cut off rather than allowed to grow the server without bound.
    public static let maxRequestsInFlight = 4096
    public static let maxHeldBytes = 256 << 20

    private func spawn(_ id: UInt64, holding bytes: Int = 0, _ body: @escaping @Sendable () async throws -> Message) throws {
        try state.withLock { (s) throws(WireError) in
            guard s.tasks.count < Self.maxRequestsInFlight, s.heldBytes + bytes <= Self.maxHeldBytes else {
                throw WireError.unexpected("more than \(Self.maxRequestsInFlight) requests or \(Self.maxHeldBytes >> 20) MiB "
                    + "of content in flight: the client ignores the protocol's limits")
            }
            s.heldBytes += bytes
            s.tasks[id] = Task { [self] in
                let reply: Message
                do {
                    reply = try await body()
                } catch let e as ReplicaError {
                    reply = .failure(e)
                } catch is CancellationError {
                    reply = .failure(.other("request cancelled"))
                } catch {
                    reply = .failure(.other(String(describing: error)))
                }
                try? sender.send(Frame(id, reply))
                state.withLock { $0.tasks.removeValue(forKey: id); $0.heldBytes -= bytes }
            }
        }
    }

    /// Waits for every request in flight.
    private func drainTasks() async {
        while true {
            let pending = state.withLock { Array($0.tasks.values) }
            if pending.isEmpty { return }
            for t in pending { await t.value }
        }
    }

    private func closeReplica() async {
        let r: (any Replica)? = state.withLock { s in
            defer { s.replicaClosed = true }
            return s.replicaClosed ? nil : s.replica
        }
        await r?.close()
    }

    /// The input ended (cleanly or not): stops every stream, waits for the requests, closes the
    /// replica, and returns from ``run()``.
    private func end(_ error: (any Error)?) {
        let (writes, gates, flags, tasks, shutdown) = state.withLock { s in
            (Array(s.writes.values), Array(s.reads.values), Array(s.scans.values), Array(s.tasks.values),
             s.shutdownRequested)
        }
        if let error {
            if let w = error as? WireError, !(w.isPeerClosed) {
                try? sender.send(Frame(0, .fatal(w.description)))
            }
            log("swunison server: \(error)")
        } else if !shutdown {
            log("swunison server: the client disconnected without shutdown")
        }
        for w in writes { w.abort("connection to the client lost") }
        for g in gates { g.cancel() }
        for f in flags { f.cancel() }
        for t in tasks { t.cancel() }
        Task { [self] in
            await drainTasks()
            await closeReplica()
            let c = state.withLock { s in defer { s.finished = nil }; return s.finished }
            if let error { c?.resume(throwing: error) } else { c?.resume() }
        }
    }
}

extension WireError {
    var isPeerClosed: Bool { if case .peerClosed = self { return true } else { return false } }
}

/// A cancellation flag shared between the reader thread and a request's task.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isCancelled: Bool { flag.load(ordering: .acquiring) }
    func cancel() { flag.store(true, ordering: .releasing) }
}

/// Read-side flow control: the server may have at most `window` bytes of one file in flight;
/// the client returns credit as its consumer takes chunks.
final class CreditGate: Sendable {
    let window: Int
    private struct S {
        var credit: Int
        var cancelled = false
        var waiter: CheckedContinuation<Void, any Error>?
        var needed = 0
        /// Bytes taken so far (sent, or about to be).
        var taken: UInt64 = 0
    }
    private let s: Mutex<S>

    init(window: Int) { self.window = window; s = Mutex(S(credit: window)) }

    /// Whether the sender waits for credit, and how many bytes it has taken.
    var progress: (waiting: Bool, bytes: UInt64) { s.withLock { ($0.waiter != nil, $0.taken) } }

    /// Waits until `n` bytes may be sent, and takes them.
    func acquire(_ n: Int) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, any Error>? = s.withLock { st in
                if st.cancelled { return .failure(CancellationError()) }
                if st.credit >= n { st.credit -= n; st.taken += UInt64(n); return .success(()) }
                st.waiter = c; st.needed = n
                return nil
            }
            if let outcome { c.resume(with: outcome) }
        }
    }

    func add(_ n: Int) {
        let c: CheckedContinuation<Void, any Error>? = s.withLock { st in
            st.credit += n
            guard let w = st.waiter, st.credit >= st.needed else { return nil }
            st.credit -= st.needed; st.taken += UInt64(st.needed); st.waiter = nil
            return w
        }
        c?.resume()
    }

    func cancel() {
        let c = s.withLock { st in
            st.cancelled = true
            defer { st.waiter = nil }
            return st.waiter
        }
        c?.resume(throwing: CancellationError())
    }
}

/// File content arriving from the client, as the ``FileReader`` handed to the replica's
/// `writeFile`. The reader thread appends chunks without blocking; every chunk the replica
/// takes is returned to the client as credit, so at most the credit window is buffered.
final class IncomingContent: FileReader {
    private struct S {
        var chunks: [[UInt8]] = []
        var head = 0
        var buffered = 0
        var ended = false
        var abortReason: String?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        /// Content bytes received from the client so far.
        var received: UInt64 = 0
    }
    private let s = Mutex(S())
    private let grant: @Sendable (Int) -> Void
    private let grantsCredit: Bool
    /// The size the request announced: a stream that goes past it is cut off (the temporary
    /// file would otherwise grow for as long as the client keeps sending within its credit).
    private let announcedSize: UInt64

    /// Whether the replica waits for more content, and how many bytes have come.
    var progress: (waiting: Bool, bytes: UInt64) { s.withLock { ($0.waiter != nil, $0.received) } }

    init(first: [UInt8], isComplete: Bool, announcedSize: Int64, grant: @escaping @Sendable (Int) -> Void) {
        self.grant = grant
        grantsCredit = !isComplete
        self.announcedSize = UInt64(max(0, announcedSize))
        s.withLock { st in
            if !first.isEmpty { st.chunks.append(first); st.buffered = first.count }
            st.received = UInt64(first.count)
            st.ended = isComplete
        }
    }

    /// Queues a chunk from the client. A client that sends more than its credit allows is
    /// cut off (the write fails) rather than allowed to grow the server's memory.
    func append(_ data: [UInt8]) {
        var overrun = false
        var tooLong = false
        let c: CheckedContinuation<[UInt8]?, any Error>? = s.withLock { st in
            if st.ended || st.abortReason != nil { return nil }
            st.received += UInt64(data.count)
            if st.received > announcedSize { tooLong = true; return nil }
            if let w = st.waiter { st.waiter = nil; return w }
            st.chunks.append(data)
            st.buffered += data.count
            overrun = st.buffered > ReplicaServer.initialWriteCredit
            return nil
        }
        if let c { c.resume(returning: data); if grantsCredit { grant(data.count) } }
        if overrun { abort("the client sent more than its write credit") }
        if tooLong { abort("the client sent more than the file's announced size") }
    }

    func end() {
        let c = s.withLock { st in
            st.ended = true
            defer { st.waiter = nil }
            return st.waiter
        }
        c?.resume(returning: nil)
    }

    func abort(_ reason: String) {
        let c = s.withLock { st in
            if !st.ended { st.abortReason = st.abortReason ?? reason }
            st.chunks = []; st.head = 0; st.buffered = 0
            defer { st.waiter = nil }
            return st.waiter
        }
        c?.resume(throwing: ReplicaError.other(reason))
    }

    func read() async throws -> [UInt8]? {
        try await withCheckedThrowingContinuation { c in
            var granted = 0
            let outcome: Result<[UInt8]?, any Error>? = s.withLock { st in
                if st.head < st.chunks.count {
                    let chunk = st.chunks[st.head]
                    st.head += 1
                    if st.head == st.chunks.count { st.chunks.removeAll(keepingCapacity: true); st.head = 0 }
                    granted = chunk.count
                    st.buffered -= chunk.count
                    return .success(chunk)
                }
                if let reason = st.abortReason { return .failure(ReplicaError.other(reason)) }
                if st.ended { return .success(nil) }
                st.waiter = c
                return nil
            }
            // A chunk handed straight to a waiter by append() is granted there.
            if granted > 0 && grantsCredit { grant(granted) }
            if let outcome { c.resume(with: outcome) }
        }
    }

    func close() async { abort("the server closed the transfer") }
}

/// The entry point of `swunison server`: serves the replica the client opens over two file
/// descriptors (stdin and stdout) until the client shuts down.
///
/// SIGPIPE is ignored (a vanished client is an error, not a silent death), diagnostics go to
/// `log` (stderr), and nothing but frames is ever written to `output`.
/// - Returns: 0 after a clean shutdown or end of input, 1 when the connection failed.
public func runServer(input: Int32, output: Int32,
                      log: @escaping @Sendable (String) -> Void = { line in writeToStandardError(line) },
                      makeReplica: @escaping @Sendable (ReplicaSpec) async throws -> any Replica) async -> Int32 {
    ignoreBrokenPipeSignal()
    let stream = FileDescriptorStream(readFD: input, writeFD: output, owning: false)
    let server = ReplicaServer(stream: stream, log: log, makeReplica: makeReplica)
    do {
        try await server.run()
        return 0
    } catch {
        log("swunison server: \(error)")
        return 1
    }
}

/// Writes one line to file descriptor 2, unbuffered.
public func writeToStandardError(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.append(0x0A)
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = Glibc.write(2, raw.baseAddress! + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}
