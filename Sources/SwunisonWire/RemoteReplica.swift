import Glibc
import Synchronization
import SwunisonReplica
import SwunisonModel

/// A ``Replica`` on the far side of a ``ByteStream``, served by `swunison server`
/// (``ReplicaServer``) with its own LocalReplica.
///
/// One reader thread dispatches every reply by request id, so any number of requests are in
/// flight at once (a 50-200 ms link must never cost one round trip per file). File content is
/// streamed in chunks both ways under flow control. When the stream breaks, every pending
/// request fails promptly with ``ReplicaError/connection(_:)``, which is retryable.
public final class RemoteReplica: Replica, Sendable {
    public let displayName: String
    /// The protocol version both sides agreed on.
    public let protocolVersion: UInt16
    /// Features both sides offered.
    public let features: Set<String>

    /// Bytes of one file the server may push before the reader takes them (read flow control).
    public static let readWindow: UInt32 = 4 << 20
    /// Files up to this size travel in the `writeFile` message itself.
    public static let inlineWriteLimit = 256 << 10
    /// Largest content chunk the client sends.
    public static let chunkSize = 256 << 10

    let core: ClientCore

    private init(displayName: String, core: ClientCore, version: UInt16, features: Set<String>) {
        self.displayName = displayName; self.core = core; self.protocolVersion = version; self.features = features
    }

    /// Says hello over `stream`, agrees on a protocol version, and opens `spec` on the server.
    /// - Parameters:
    ///   - versions: protocol versions to claim (tests change this to show a mismatch).
    ///   - stallTimeout: how long requests may make no progress before the connection is
    ///     declared stalled (``ReplicaError/stalled(_:)``, see ``StallWatchdog``); nil: never.
    ///   - onNotice: receives unsolicited notices from the server, on the reader thread.
    /// - Throws: ``WireError/versionMismatch(local:remote:peer:)`` (one line naming both sides'
    ///   versions), ``WireError/notSwunison(received:)``, or ``ReplicaError`` when the server
    ///   cannot open the root. The stream is closed on failure.
    public static func connect(over stream: any ByteStream, spec: ReplicaSpec, displayName: String,
                               versions: ClosedRange<UInt16> = ProtocolVersions.fromEnvironment(),
                               stallTimeout: Duration? = nil,
                               onNotice: @escaping @Sendable (String) -> Void = { _ in }) async throws -> RemoteReplica {
        let core = ClientCore(stream: stream, displayName: displayName, versions: versions,
                              stallTimeout: stallTimeout, onNotice: onNotice)
        do {
            // `open` goes out right behind `hello` (one round trip fewer: 100 ms on a distant
            // link). Every version so far encodes it the same way, and a server that refuses
            // our versions closes after its hello, so the handshake's error is the one reported.
            let opened = ReplyPromise()
            let (version, features) = try await core.start(pipelining: .open(spec), to: opened)
            let replica = RemoteReplica(displayName: displayName, core: core, version: version, features: features)
            _ = try await opened.value()
            return replica
        } catch {
            core.fail(.connection("connection to \(displayName) closed"))
            stream.close()
            throw error
        }
    }

    public func scan(_ request: ScanRequest,
                     sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        var request = request
        // A server without the feature would refuse the flag; it hashes as it always did.
        if !features.contains(ProtocolVersions.digestFiles) { request.deferDigests = false }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<ScanResult, any Error>) in
            let pending = ScanPending(core: core, sink: sink, continuation: c)
            core.send(.scan(request), to: pending)
        }
    }

    public func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        let reader = RemoteFileReader(core: core, path: path, expectedSize: expected.size)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            reader.opened = c
            core.send(.openFile(path: path, expected: expected, window: Self.readWindow), to: reader)
        }
        return reader
    }

    public func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader,
                          replacing: Entry?, backup: Bool) async throws -> Entry {
        let placement = Placement(path: path, entry: entry, replacing: replacing, backup: backup)
        // Read ahead up to the inline limit: a small file travels in one message.
        var first: [UInt8] = []
        var carry: [UInt8]?
        var atEnd = false
        while first.count < Self.inlineWriteLimit {
            guard let chunk = try await source.read() else { atEnd = true; break }
            if first.count + chunk.count <= Self.inlineWriteLimit { first += chunk } else { carry = chunk; break }
        }
        if atEnd { return try entryReply(try await core.request(.writeFile(placement, data: first, isComplete: true))) }

        let upload = WriteUpload(credit: ReplicaServer.initialWriteCredit - first.count, sent: first.count)
        // The request leaves from this task, before any of its chunks: FrameSender keeps the
        // order of the frames one task sends. (Sent from a task of its own, it was sometimes
        // overtaken by its chunks, which the server drops as frames of no request: a torn file
        // or, when the end was dropped, a server waiting forever; issue 11.)
        core.send(.writeFile(placement, data: first, isComplete: false), to: upload)
        do {
            var next = carry
            while true {
                if next == nil { next = try await source.read() }
                guard let chunk = next else { break }
                next = nil
                var start = 0
                while start < chunk.count {
                    let end = min(start + Self.chunkSize, chunk.count)
                    try await upload.acquire(end - start)
                    try core.sendRaw(Frame(upload.id, .writeChunk(Array(chunk[start..<end]))))
                    start = end
                }
            }
            try core.sendRaw(Frame(upload.id, .writeEnd))
            upload.noteEndSent()
        } catch {
            // The server's reply (if it already failed the write) explains more than our side.
            if upload.hasReply { return try entryReply(try await upload.reply()) }
            try? core.sendRaw(Frame(upload.id, .writeAbort(String(describing: error))))
            _ = try? await upload.reply()
            throw error
        }
        return try entryReply(try await upload.reply())
    }

    /// One `readFiles` request for the whole batch when the server offers `batch-files`; one
    /// request per file otherwise.
    public func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        guard features.contains(ProtocolVersions.batchFiles) else { return await readFilesOneByOne(requests) }
        let reply = try await core.request(.readFiles(requests))
        guard case .fileContents(let results) = reply, results.count == requests.count else {
            throw ReplicaError.connection("\(displayName): unexpected reply \(reply.name) to readFiles")
        }
        return results
    }

    /// One `digestFiles` request for the whole batch when the server offers `digest-files`;
    /// otherwise each file's content comes over and is hashed here.
    public func digestFiles(_ requests: [FileReadRequest]) async throws -> [Result<Digest, ReplicaError>] {
        guard features.contains(ProtocolVersions.digestFiles) else { return await digestFilesByReading(requests) }
        let reply = try await core.request(.digestFiles(requests))
        guard case .digests(let results) = reply, results.count == requests.count else {
            throw ReplicaError.connection("\(displayName): unexpected reply \(reply.name) to digestFiles")
        }
        return results
    }

    /// One `writeFiles` request for the whole batch when the server offers `batch-files`; one
    /// request per file otherwise.
    public func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        guard features.contains(ProtocolVersions.batchFiles) else { return await writeFilesOneByOne(writes) }
        let reply = try await core.request(.writeFiles(writes))
        guard case .writeResults(let results) = reply, results.count == writes.count else {
            throw ReplicaError.connection("\(displayName): unexpected reply \(reply.name) to writeFiles")
        }
        return results
    }

    public func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try entryReply(try await core.request(.makeDirectory(Placement(path: path, entry: entry, replacing: replacing, backup: backup))))
    }

    public func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try entryReply(try await core.request(.makeSymlink(Placement(path: path, entry: entry, replacing: replacing, backup: backup))))
    }

    @discardableResult
    public func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        guard case .backupLocation(let where_) = try await core.request(.remove(path: path, expected: expected, backup: backup)) else {
            throw ReplicaError.connection("\(displayName): unexpected reply to remove")
        }
        return where_
    }

    public func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        guard case .backupLocation(let where_?) = try await core.request(.backup(path: path, expected: expected)) else {
            throw ReplicaError.connection("\(displayName): unexpected reply to backup")
        }
        return where_
    }

    public func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        try entryReply(try await core.request(.setAttributes(path: path, expected: expected, to: entry)))
    }

    public func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        let id = core.nextID()
        // Each batch goes out as soon as it is encoded: the server writes batches as they arrive,
        // so it starts on the first while the rest are still being encoded (200,000 after an
        // initial sync). The batches need no reply; the commit request's reply covers them.
        try FrameEncoder().forEachBatch(type: Message.baselineBatch([]).type, requestID: id, items: updates,
                                        encode: { $0.baselineUpdate($1) }) { frame in try core.sendRaw(bytes: frame) }
        _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<Message, any Error>) in
            core.send(id: id, .commitBaseline(snapshot: snapshot), to: SimplePending(c))
        }
    }

    /// Asks the server to watch its replica (feature `watch`): returns once the watches are in
    /// place there; notices then come as the server pushes them.
    public func watch(_ request: WatchRequest) async throws -> any ChangeSource {
        guard features.contains(ProtocolVersions.watch) else {
            throw WatchUnavailable("\(displayName): the swunison server there cannot watch (its protocol lacks the "
                + "feature `watch`, which swunison \(SwunisonVersion.current) has): install swunison "
                + "\(SwunisonVersion.current) there, or set serverdeploy = true")
        }
        let watch = RemoteWatch(core: core)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            watch.started = c
            core.send(.watch(request), to: watch)
        }
        return watch
    }

    /// Asks the server to finish its requests and close its replica, then closes the stream.
    public func close() async {
        _ = try? await core.request(.shutdown)
        core.fail(.connection("connection to \(displayName) closed"))
        core.stream.close()
    }

    private func entryReply(_ m: Message) throws -> Entry {
        guard case .entry(let e) = m else { throw ReplicaError.connection("\(displayName): unexpected reply \(m.name)") }
        return e
    }
}

/// A request waiting for frames with its id. `deliver` runs on the reader thread and must not
/// block; it returns true when the request is finished.
protocol PendingRequest: AnyObject, Sendable {
    func deliver(_ message: Message) -> Bool
    func fail(_ error: ReplicaError)
    /// What this side has done for the request so far, for a stall report (nil: nothing to say).
    var progressNote: String? { get }
}

extension PendingRequest {
    var progressNote: String? { nil }
}

/// A pending request and how a stall report names it.
struct PendingEntry {
    var request: any PendingRequest
    var label: RequestLabel
}

/// The connection's shared state: request ids, the pending table, the sender.
final class ClientCore: Sendable {
    let stream: any ByteStream
    let displayName: String
    private let sender: FrameSender
    private let versions: ClosedRange<UInt16>
    private let onNotice: @Sendable (String) -> Void
    private struct S {
        var next: UInt64 = 1
        var pending: [UInt64: PendingEntry] = [:]
        var broken: ReplicaError?
        var handshake: CheckedContinuation<(UInt16, Set<String>), any Error>?
        var handshakeDone = false
        /// Features both sides offered (known once the server's hello came).
        var features: Set<String> = []
    }
    private let s = Mutex(S())
    /// Set once: at the start with a stall timeout (tests may set it after connecting).
    private let watchdogSlot = WatchdogSlot()
    private var watchdog: StallWatchdog? { watchdogSlot.watchdog.load() }
    private let stallTimeout: Duration?
    /// Forced interleavings for tests (never set outside them).
    let testHooks = Mutex(ClientTestHooks())

    init(stream: any ByteStream, displayName: String, versions: ClosedRange<UInt16>, stallTimeout: Duration?,
         onNotice: @escaping @Sendable (String) -> Void) {
        self.stream = stream; self.displayName = displayName; self.versions = versions; self.onNotice = onNotice
        self.stallTimeout = stallTimeout
        // Frames going out are progress, except the watchdog's own questions (each queued frame
        // is one array; its type byte follows the 4-byte length).
        let slot = watchdogSlot, status = Message.status.type
        sender = FrameSender(stream: stream, wrote: { frames in
            guard let watchdog = slot.watchdog.load() else { return }
            if frames.contains(where: { $0.count > 4 && $0[4] != status }) { watchdog.noteProgress() }
        })
    }

    /// Sends our hello, starts the reader thread, sends `first` as a request to `pending` without
    /// waiting for the server's hello, and waits for the handshake.
    func start(pipelining first: Message, to pending: any PendingRequest) async throws -> (UInt16, Set<String>) {
        try await withCheckedThrowingContinuation { c in
            s.withLock { $0.handshake = c }
            FrameReceiver.start(stream: stream, name: "swunison-cli-rd",
                                deliver: { [self] frame in try dispatch(frame) },
                                finish: { [self] error in finished(error) })
            do {
                try sender.send(Frame(0, .hello(Hello(versions: versions, features: ProtocolVersions.features))))
            } catch {
                // The reader sees the broken stream too; it reports the better message.
            }
            send(first, to: pending)
            if let stallTimeout { startWatching(timeout: stallTimeout) }
        }
    }

    // MARK: stall watchdog

    /// Starts the stall watchdog (once; a later call does nothing). `connect` does it when given
    /// a stall timeout; tests that must not time the handshake of a loaded machine call it after.
    func startWatching(timeout: Duration) {
        let watchdog = watchdogSlot.watchdog.storeIfNil(StallWatchdog(timeout: timeout))
        guard !watchdogSlot.isRunning.exchange(true, ordering: .relaxed) else { return }
        watch(with: watchdog)
    }

    /// Checks for progress every tick until the connection is broken or closed, on a thread of
    /// its own: when the link stops, the tasks sending on it block in their writes, and with
    /// them every thread of Swift's small cooperative pool (one per core).
    private func watch(with watchdog: StallWatchdog) {
        let tick = watchdog.tick.components
        let micros = UInt32(tick.seconds * 1_000_000 + tick.attoseconds / 1_000_000_000_000)
        startThread(name: "swunison-watch") { [weak self] in
            while true {
                usleep(micros)
                guard let self, self.watchOnce(watchdog) else { return }
            }
        }
    }

    /// One look: nothing to do, ask the server what it is doing, or declare a stall. Returns
    /// false once there is nothing more to watch.
    private func watchOnce(_ watchdog: StallWatchdog) -> Bool {
        let (waiting, broken, canAsk) = s.withLock { st in
            (st.pending.values.contains { !$0.label.isLongLived }, st.broken != nil,
             st.features.contains(ProtocolVersions.status))
        }
        if broken { return false }
        switch watchdog.check(waiting: waiting, canAsk: canAsk) {
        case .fine:
            return true
        case .ask:
            // A write may block (that may be the very stall): never on the watchdog's thread.
            startThread(name: "swunison-ask") { [self] in
                send(.status, to: StatusProbe { [weak watchdog] report in watchdog?.received(report) })
            }
            return true
        case .stalled(let seconds):
            let (waitingRequests, features) = s.withLock { st in
                (st.pending.filter { !$0.value.label.isLongLived }.sorted { $0.key < $1.key }
                    .map { (id: $0.key, label: $0.value.label, here: $0.value.request.progressNote) }, st.features)
            }
            let report = watchdog.report(about: displayName, seconds: seconds, waiting: waitingRequests,
                                         serverCanSay: features.contains(ProtocolVersions.status))
            fail(.stalled(report))
            // Closing wakes the tasks blocked in writes, and ends the server's side too (end of
            // input cancels what it has in hand).
            stream.close()
            return false
        }
    }

    func nextID() -> UInt64 { s.withLock { st in defer { st.next += 1 }; return st.next } }

    /// Registers `pending` under a new id and sends `message`; on failure `pending` is failed.
    @discardableResult
    func send(_ message: Message, to pending: any PendingRequest) -> UInt64 {
        let id = nextID()
        send(id: id, message, to: pending)
        return id
    }

    /// Registers `pending` under `id`, sends pre-encoded frames, then `message`.
    func send(id: UInt64, _ message: Message, to pending: any PendingRequest) {
        let broken: ReplicaError? = s.withLock { st in
            if let b = st.broken { return b }
            st.pending[id] = PendingEntry(request: pending, label: message.label)
            return nil
        }
        if let broken { pending.fail(broken); return }
        if let p = pending as? IdentifiedPending { p.assign(id) }
        testHooks.withLock { $0.beforeRequest }?(message)
        do {
            try sender.send(Frame(id, message))
        } catch {
            fail(connectionError(error))
        }
    }

    /// A request with one reply; a `failure` reply is thrown as its ``ReplicaError``.
    func request(_ message: Message) async throws -> Message {
        try await withCheckedThrowingContinuation { c in send(message, to: SimplePending(c)) }
    }

    /// Sends a stream-control frame (chunks, credit, cancel).
    func sendRaw(_ frame: Frame) throws {
        let hooks = testHooks.withLock { $0 }
        if hooks.dropFrame?(frame) == true { return }
        try sendEncoded { () throws in try sender.send(frame) }
        hooks.afterFrame?(frame)
    }

    /// Sends an already encoded frame that expects no reply of its own (a `baselineBatch`).
    func sendRaw(bytes: [UInt8]) throws {
        try sendEncoded { () throws in try sender.send(raw: bytes) }
    }

    private func sendEncoded(_ write: () throws -> Void) throws {
        if let b = s.withLock({ $0.broken }) { throw b }
        do { try write() } catch {
            let e = connectionError(error)
            fail(e)
            throw e
        }
    }

    /// Sends a control frame without waiting on the caller's thread (the reader thread must
    /// never block on a write).
    func sendSoon(_ frame: Frame) {
        Task { try? self.sendRaw(frame) }
    }

    func forget(_ id: UInt64) { s.withLock { _ = $0.pending.removeValue(forKey: id) } }

    /// Fails every pending request and every later one with `error`.
    func fail(_ error: ReplicaError) {
        let (pending, handshake) = s.withLock { st in
            if st.broken == nil { st.broken = error }
            defer { st.pending = [:]; st.handshake = nil }
            return (st.pending.values.map(\.request), st.handshake)
        }
        handshake?.resume(throwing: error)
        for p in pending { p.fail(error) }
    }

    private func connectionError(_ error: any Error) -> ReplicaError {
        if let r = error as? ReplicaError, case .connection = r { return r }
        var text = "connection to \(displayName) lost: \(error)"
        if let d = (stream as? any StreamDiagnostics)?.diagnostics, !d.isEmpty { text += " (remote said: \(d))" }
        return .connection(text)
    }

    // MARK: reader thread

    private func dispatch(_ frame: Frame) throws {
        // Any frame but the watchdog's own answer shows the server is getting on.
        if case .statusReport = frame.message {} else { watchdog?.noteProgress() }
        if frame.requestID == 0 {
            switch frame.message {
            case .hello(let hello):
                let c = s.withLock { st -> CheckedContinuation<(UInt16, Set<String>), any Error>? in
                    if st.handshakeDone { return nil }
                    st.handshakeDone = true
                    defer { st.handshake = nil }
                    return st.handshake
                }
                guard let c else { throw WireError.unexpected("second hello from the server") }
                do {
                    let v = try ProtocolVersions.negotiate(local: versions, remote: hello.versions, peer: "server")
                    let features = Set(hello.features).intersection(ProtocolVersions.features)
                    s.withLock { $0.features = features }
                    c.resume(returning: (v, features))
                } catch {
                    c.resume(throwing: error)
                    throw error
                }
            case .notice(let text): onNotice(text)
            case .fatal(let reason): throw WireError.peerClosed(reason)
            default: throw WireError.unexpected("\(frame.message.name) message without a request id")
            }
            return
        }
        guard s.withLock({ $0.handshakeDone }) else { throw WireError.unexpected("\(frame.message.name) before hello") }
        // Frames for a request we gave up on (cancelled reads, failed scans) are dropped.
        guard let p = s.withLock({ $0.pending[frame.requestID]?.request }) else { return }
        if p.deliver(frame.message) { forget(frame.requestID) }
    }

    private func finished(_ error: (any Error)?) {
        let handshake = s.withLock { st in defer { st.handshake = nil }; return st.handshake }
        if let handshake {
            // The stream ended before the server's hello: say what the other end printed instead.
            var text: String
            if let w = error as? WireError, case .oversizedFrame = w {
                text = "\(displayName): the remote command did not answer with the swunison protocol"
            } else if let error {
                text = "\(displayName): connection failed before the protocol hello: \(error)"
            } else {
                // Not installed, a wrong servercmd, or a server that died at start: its stderr
                // (below) tells which, when it printed anything.
                text = "\(displayName): the remote command ended without answering (it was not found, "
                    + "or it stopped at start: check servercmd, and that swunison runs there)"
            }
            if let d = (stream as? any StreamDiagnostics)?.diagnostics, !d.isEmpty { text += "; it said: \(d)" }
            handshake.resume(throwing: ReplicaError.connection(text))
        }
        if let w = error as? WireError, case .versionMismatch = w {
            fail(.connection(w.description))
        } else if let w = error as? WireError, case .peerClosed = w {
            fail(.connection("\(displayName): \(w.description)"))
        } else if let error {
            fail(connectionError(error))
        } else {
            fail(connectionError(WireError.peerClosed("end of stream")))
        }
    }
}

/// Forced interleavings for tests: each runs on the sending task at a point where a race could
/// put it; all are nil outside tests.
struct ClientTestHooks: Sendable {
    /// Runs after a request is registered under its id and before its frame is handed to the
    /// sender (a slow encoder, or a sender busy with other tasks' frames).
    var beforeRequest: (@Sendable (Message) -> Void)?
    /// Returns true for a stream-control frame that must be lost instead of sent (a frame that
    /// overtook its request, as in issue 11, is lost the same way on the server).
    var dropFrame: (@Sendable (Frame) -> Bool)?
    /// Runs after a stream-control frame was handed to the sender.
    var afterFrame: (@Sendable (Frame) -> Void)?
}

/// Pending requests that need to know their id once registered.
protocol IdentifiedPending: AnyObject { func assign(_ id: UInt64) }

/// One reply; `failure` is thrown.
final class SimplePending: PendingRequest {
    private let c: Mutex<CheckedContinuation<Message, any Error>?>
    init(_ c: CheckedContinuation<Message, any Error>) { self.c = Mutex(c) }

    private func take() -> CheckedContinuation<Message, any Error>? { c.withLock { x in defer { x = nil }; return x } }

    func deliver(_ message: Message) -> Bool {
        if case .failure(let e) = message { take()?.resume(throwing: e) } else { take()?.resume(returning: message) }
        return true
    }

    func fail(_ error: ReplicaError) { take()?.resume(throwing: error) }
}

/// A reply that may arrive before anyone waits for it (a request pipelined behind the hello).
final class ReplyPromise: PendingRequest {
    private let state = Mutex<(result: Result<Message, any Error>?, waiter: CheckedContinuation<Message, any Error>?)>((nil, nil))

    private func settle(_ result: Result<Message, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Message, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    func deliver(_ message: Message) -> Bool {
        if case .failure(let e) = message { settle(.failure(e)) } else { settle(.success(message)) }
        return true
    }

    func fail(_ error: ReplicaError) { settle(.failure(error)) }

    /// The reply, once it arrived.
    func value() async throws -> Message {
        try await withCheckedThrowingContinuation { c in
            let ready = state.withLock { s -> Result<Message, any Error>? in
                if let r = s.result { return r }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }
}

/// A scan: batches go to the sink on the reader thread, in order (its blocking is the scan's
/// backpressure); `scanDone` ends it. When the sink throws, the scan is cancelled on the server.
final class ScanPending: PendingRequest, IdentifiedPending {
    private let core: ClientCore
    private let sink: @Sendable ([ScanChange]) throws -> Void
    private let state: Mutex<(c: CheckedContinuation<ScanResult, any Error>?, id: UInt64)>

    init(core: ClientCore, sink: @escaping @Sendable ([ScanChange]) throws -> Void,
         continuation: CheckedContinuation<ScanResult, any Error>) {
        self.core = core; self.sink = sink; state = Mutex((continuation, 0))
    }

    func assign(_ id: UInt64) { state.withLock { $0.id = id } }

    private func take() -> CheckedContinuation<ScanResult, any Error>? {
        state.withLock { x in defer { x.c = nil }; return x.c }
    }

    func deliver(_ message: Message) -> Bool {
        switch message {
        case .scanBatch(let changes):
            do {
                try sink(changes)
                return false
            } catch {
                let id = state.withLock { $0.id }
                core.sendSoon(Frame(id, .cancel))
                take()?.resume(throwing: error)
                return true
            }
        case .scanDone(let result): take()?.resume(returning: result)
        case .failure(let e): take()?.resume(throwing: e)
        default: take()?.resume(throwing: ReplicaError.connection("unexpected \(message.name) reply to scan"))
        }
        return true
    }

    func fail(_ error: ReplicaError) { take()?.resume(throwing: error) }
}

/// A file streamed from the server: chunks are queued by the reader thread (at most the read
/// window, which the server honours) and handed out by `read()`, which returns credit.
final class RemoteFileReader: FileReader, PendingRequest, IdentifiedPending {
    private let core: ClientCore
    private struct S {
        var id: UInt64 = 0
        var opened: CheckedContinuation<Void, any Error>?
        var chunks: [[UInt8]] = []
        var head = 0
        var ended = false
        var error: ReplicaError?
        var closed = false
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        /// Content bytes received so far.
        var received = 0
        /// Bytes queued and not yet read (at most the read window from an honest server).
        var buffered = 0
    }
    private let s = Mutex(S())
    /// The file and its size as expected: an honest server never sends more (a file that grew
    /// meanwhile is sent as long as it was when opened, then reported changed).
    private let path: RelativePath
    private let expectedSize: Int

    init(core: ClientCore, path: RelativePath, expectedSize: Int64) {
        self.core = core
        self.path = path
        self.expectedSize = Int(clamping: max(0, expectedSize))
    }

    var progressNote: String? {
        s.withLock { st in st.opened != nil ? "we wait for the file to be opened" : "we received \(st.received) bytes of it" }
    }

    var opened: CheckedContinuation<Void, any Error>? {
        get { s.withLock { $0.opened } }
        set { s.withLock { $0.opened = newValue } }
    }

    func assign(_ id: UInt64) { s.withLock { $0.id = id } }

    func deliver(_ message: Message) -> Bool {
        var resumeOpen: CheckedContinuation<Void, any Error>?
        var resumeRead: CheckedContinuation<[UInt8]?, any Error>?
        var value: Result<[UInt8]?, any Error>?
        var openError: ReplicaError?
        let done: Bool = s.withLock { st in
            switch message {
            case .ok:
                resumeOpen = st.opened; st.opened = nil
                return false
            case .fileChunk(let data):
                st.received += data.count
                // A server that ignores the read window, or sends past the size, is cut off
                // rather than allowed to grow this process's memory or the file being written.
                let overrun: ReplicaError? = st.received > expectedSize ? .changedDuringSync(path)
                    : st.buffered + data.count > Int(RemoteReplica.readWindow)
                        ? .connection("the server sent more than its read window while streaming \(path): it is broken or hostile")
                        : nil
                if let e = overrun {
                    st.error = e
                    st.chunks = []; st.head = 0; st.buffered = 0
                    if let w = st.waiter { st.waiter = nil; resumeRead = w; value = .failure(e) }
                    return true
                }
                if let w = st.waiter { st.waiter = nil; resumeRead = w; value = .success(data) } else {
                    st.chunks.append(data)
                    st.buffered += data.count
                }
                return false
            case .fileEnd:
                st.ended = true
                if let w = st.waiter { st.waiter = nil; resumeRead = w; value = .success(nil) }
                return true
            case .failure(let e):
                st.error = e
                if let o = st.opened { st.opened = nil; resumeOpen = o; openError = e }
                if let w = st.waiter { st.waiter = nil; resumeRead = w; value = .failure(e) }
                return true
            default:
                let e = ReplicaError.connection("unexpected \(message.name) while reading a file")
                st.error = e
                if let o = st.opened { st.opened = nil; resumeOpen = o; openError = e }
                if let w = st.waiter { st.waiter = nil; resumeRead = w; value = .failure(e) }
                return true
            }
        }
        if let resumeOpen { if let openError { resumeOpen.resume(throwing: openError) } else { resumeOpen.resume() } }
        if let resumeRead, let value {
            resumeRead.resume(with: value)
            if case .success(let d?) = value { grant(d.count) }
        }
        return done
    }

    func fail(_ error: ReplicaError) {
        let (o, w) = s.withLock { st -> (CheckedContinuation<Void, any Error>?, CheckedContinuation<[UInt8]?, any Error>?) in
            if !st.ended && st.error == nil { st.error = error }
            defer { st.opened = nil; st.waiter = nil }
            return (st.opened, st.waiter)
        }
        o?.resume(throwing: error)
        w?.resume(throwing: error)
    }

    private func grant(_ n: Int) {
        let (id, more) = s.withLock { ($0.id, !$0.ended && $0.error == nil && !$0.closed) }
        if more && n > 0 { core.sendSoon(Frame(id, .readCredit(UInt32(n)))) }
    }

    func read() async throws -> [UInt8]? {
        var granted = 0
        let chunk: [UInt8]? = try await withCheckedThrowingContinuation { c in
            let outcome: Result<[UInt8]?, any Error>? = s.withLock { st in
                if st.closed { return .failure(ReplicaError.other("file reader used after close")) }
                if st.head < st.chunks.count {
                    let chunk = st.chunks[st.head]
                    st.head += 1
                    st.buffered -= chunk.count
                    if st.head == st.chunks.count { st.chunks.removeAll(keepingCapacity: true); st.head = 0 }
                    granted = chunk.count
                    return .success(chunk)
                }
                if st.ended { return .success(nil) }
                if let e = st.error { return .failure(e) }
                st.waiter = c
                return nil
            }
            if let outcome { c.resume(with: outcome) }
        }
        if granted > 0 { grant(granted) }
        return chunk
    }

    /// Cancels the transfer on the server if it has not ended.
    func close() async {
        let (id, active) = s.withLock { st in
            defer { st.closed = true; st.chunks = []; st.head = 0 }
            return (st.id, !st.ended && st.error == nil && !st.closed)
        }
        if active {
            core.forget(id)
            try? core.sendRaw(Frame(id, .cancel))
        }
    }
}

/// A file being sent: write credit from the server, and the final reply.
final class WriteUpload: PendingRequest, IdentifiedPending {
    private struct S {
        var id: UInt64 = 0
        var credit: Int
        var needed = 0
        var creditWaiter: CheckedContinuation<Void, any Error>?
        /// Why no more chunks may go (the write ended, or failed).
        var finished: ReplicaError?
        var reply: Result<Message, any Error>?
        var replyWaiter: CheckedContinuation<Message, any Error>?
        /// Content bytes sent (or taken credit for), and whether `writeEnd` went out.
        var sent: Int
        var endSent = false
    }
    private let s: Mutex<S>

    /// - Parameters:
    ///   - credit: bytes that may be sent before the server grants more.
    ///   - sent: content bytes the request itself carries.
    init(credit: Int, sent: Int) { s = Mutex(S(credit: credit, sent: sent)) }

    /// The whole content and `writeEnd` are on their way.
    func noteEndSent() { s.withLock { $0.endSent = true } }

    var progressNote: String? {
        s.withLock { st in
            if st.endSent { return "we sent all \(st.sent) bytes and the end, and wait for its reply" }
            if st.creditWaiter != nil { return "we wait for write credit after \(st.sent) bytes" }
            return "we are sending its content (\(st.sent) bytes so far)"
        }
    }

    /// The request's id (0 until it is registered, which `ClientCore.send` does before sending).
    var id: UInt64 { s.withLock { $0.id } }
    var hasReply: Bool { s.withLock { $0.reply != nil } }

    func assign(_ id: UInt64) { s.withLock { $0.id = id } }

    /// Waits for credit to send `n` more bytes.
    func acquire(_ n: Int) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, any Error>? = s.withLock { st in
                if let e = st.finished { return .failure(e) }
                if st.credit >= n { st.credit -= n; st.sent += n; return .success(()) }
                st.creditWaiter = c; st.needed = n
                return nil
            }
            if let outcome { c.resume(with: outcome) }
        }
    }

    /// The server's final reply (`failure` thrown), once it came.
    func reply() async throws -> Message {
        try await withCheckedThrowingContinuation { c in
            let ready = s.withLock { st -> Result<Message, any Error>? in
                if let r = st.reply { return r }
                st.replyWaiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    func deliver(_ message: Message) -> Bool {
        if case .writeCredit(let n) = message {
            let c: CheckedContinuation<Void, any Error>? = s.withLock { st in
                st.credit += Int(n)
                guard let w = st.creditWaiter, st.credit >= st.needed else { return nil }
                st.credit -= st.needed; st.sent += st.needed; st.creditWaiter = nil
                return w
            }
            c?.resume()
            return false
        }
        let e: ReplicaError? = if case .failure(let e) = message { e } else { nil }
        finish(e ?? .other("the write is finished"), reply: e == nil ? .success(message) : .failure(e!))
        return true
    }

    func fail(_ error: ReplicaError) { finish(error, reply: .failure(error)) }

    private func finish(_ stop: ReplicaError, reply value: Result<Message, any Error>) {
        // A waiter exists only while no reply is known, so it gets this first one.
        let (waiter, creditWaiter) = s.withLock { st in
            st.finished = st.finished ?? stop
            if st.reply == nil { st.reply = value }
            defer { st.replyWaiter = nil; st.creditWaiter = nil }
            return (st.replyWaiter, st.creditWaiter)
        }
        creditWaiter?.resume(throwing: stop)
        waiter?.resume(with: value)
    }
}

/// A watch on the server's replica: notices queue here as the server pushes them, until
/// `stop()` cancels the request or the connection ends (then `next()` throws).
final class RemoteWatch: PendingRequest, IdentifiedPending, ChangeSource {
    private let core: ClientCore
    private struct S {
        var id: UInt64 = 0
        var started: CheckedContinuation<Void, any Error>?
        var notices: [ChangeNotice] = []
        var waiter: CheckedContinuation<[ChangeNotice], any Error>?
        var error: (any Error)?
    }
    private let s = Mutex(S())

    init(core: ClientCore) { self.core = core }

    var started: CheckedContinuation<Void, any Error>? {
        get { s.withLock { $0.started } }
        set { s.withLock { $0.started = newValue } }
    }

    func assign(_ id: UInt64) { s.withLock { $0.id = id } }

    func deliver(_ message: Message) -> Bool {
        switch message {
        case .ok:
            s.withLock { st in defer { st.started = nil }; return st.started }?.resume()
            return false
        case .changeNotices(let notices):
            let ready = s.withLock { st -> (CheckedContinuation<[ChangeNotice], any Error>, [ChangeNotice])? in
                st.notices += notices
                guard let waiter = st.waiter, !st.notices.isEmpty else { return nil }
                defer { st.waiter = nil; st.notices = [] }
                return (waiter, st.notices)
            }
            if let (waiter, notices) = ready { waiter.resume(returning: notices) }
            return false
        case .failure(let error):
            end(error)
            return true
        default:
            end(ReplicaError.connection("unexpected \(message.name) reply to watch"))
            return true
        }
    }

    func fail(_ error: ReplicaError) { end(error) }

    private func end(_ error: any Error) {
        let (started, waiter) = s.withLock { st in
            if st.error == nil { st.error = error }
            defer { st.started = nil; st.waiter = nil }
            return (st.started, st.waiter)
        }
        started?.resume(throwing: error)
        waiter?.resume(throwing: error)
    }

    func next() async throws -> [ChangeNotice] {
        try await withCheckedThrowingContinuation { c in
            let ready = s.withLock { st -> Result<[ChangeNotice], any Error>? in
                if !st.notices.isEmpty { defer { st.notices = [] }; return .success(st.notices) }
                if let error = st.error { return .failure(error) }
                st.waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    func stop() async {
        let id = s.withLock { $0.id }
        end(WatchUnavailable("the watch was stopped"))
        core.forget(id)
        try? core.sendRaw(Frame(id, .cancel))
    }
}
