import Glibc
import Synchronization
import SwunisonModel

/// Writes frames to a stream from any number of tasks, whole frames only, so frames never
/// interleave, and in the order each task sent them.
///
/// Group writes: while one task is writing (over SSH a write encrypts and may wait for the
/// channel window), frames sent by others are queued, and the writer sends all of them in one
/// write when its own is done. Hundreds of small requests or replies in flight then cost a few
/// large writes (and SSH packets) instead of one each. The queue is bounded: past
/// ``queueLimit`` bytes a sender waits for the stream like a plain blocking write, which is the
/// protocol's backpressure (the peer's window is full).
final class FrameSender: Sendable {
    let stream: any ByteStream
    private let encoder = FrameEncoder()

    private struct State {
        var failed = false
        /// A task is writing and will send `queued` before it stops.
        var writing = false
        /// Frames waiting for that task, whole (never copied here), and their total size.
        var queued: [[UInt8]] = []
        var queuedBytes = 0
    }
    private let state = Mutex(State())
    /// Held while bytes go to the stream: one writer at a time.
    private let writeLock = Mutex(())
    /// Bytes that may wait in the queue before senders block.
    static let queueLimit = 1 << 20
    /// Told the frames of each write the stream took (the stall watchdog's "we are getting data out").
    private let wrote: (@Sendable ([[UInt8]]) -> Void)?

    init(stream: any ByteStream, wrote: (@Sendable ([[UInt8]]) -> Void)? = nil) { self.stream = stream; self.wrote = wrote }

    /// Encodes and writes one frame.
    /// - Throws: ``WireError`` for an oversized frame, or the stream's error.
    func send(_ frame: Frame) throws {
        let bytes = try encoder.encode(frame)
        try send(raw: bytes)
    }

    /// Writes already encoded frame bytes (or queues them for the task that is writing).
    /// - Throws: the stream's error when this task wrote and the write failed, or when the
    ///   stream had already failed. A frame queued for another writer whose write then fails is
    ///   lost with the connection, which fails every request still waiting for a reply.
    func send(raw bytes: [UInt8]) throws {
        let queued = try state.withLock { s throws -> Bool in
            if s.failed { throw WireError.peerClosed("stream already failed") }
            guard s.writing, s.queuedBytes + bytes.count <= Self.queueLimit else { return false }
            s.queued.append(bytes)
            s.queuedBytes += bytes.count
            return true
        }
        if queued { return }
        try writeLock.withLock { _ throws in
            // Whatever was queued before this frame goes first (per-task order is kept).
            var chunks = try state.withLock { s throws -> [[UInt8]] in
                if s.failed { throw WireError.peerClosed("stream already failed") }
                s.writing = true
                return Self.takeQueued(&s)
            }
            chunks.append(bytes)
            while !chunks.isEmpty {
                do {
                    try stream.write(contentsOf: chunks)
                    wrote?(chunks)
                } catch {
                    state.withLock { s in s.failed = true; s.writing = false; s.queued = []; s.queuedBytes = 0 }
                    throw error
                }
                chunks = state.withLock { s in
                    if s.queued.isEmpty { s.writing = false }
                    return Self.takeQueued(&s)
                }
            }
        }
    }

    private static func takeQueued(_ s: inout State) -> [[UInt8]] {
        defer { s.queued = []; s.queuedBytes = 0 }
        return s.queued
    }
}

/// Reads frames from a stream on a dedicated thread and hands each to `deliver`; the thread
/// never blocks on anything but the stream's `read`, so replies always drain (no deadlock
/// between two peers that are both writing).
struct FrameReceiver {
    /// Runs the read loop on a new thread. `deliver` runs on that thread for each frame, in order;
    /// `finish` runs once, with nil at a clean end of stream or the error that ended it.
    static func start(stream: any ByteStream, name: String,
                      deliver: @escaping @Sendable (Frame) throws -> Void,
                      finish: @escaping @Sendable ((any Error)?) -> Void) {
        startThread(name: name) {
            var buffer = InputBuffer()
            let decoder = FrameDecoder()
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
            defer { scratch.deallocate() }
            do {
                while true {
                    let n = try stream.read(into: scratch)
                    if n == 0 {
                        while let frame = try decoder.decodeLast(buffer: &buffer) { try deliver(frame) }
                        finish(nil)
                        return
                    }
                    buffer.append(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
                    while let frame = try decoder.decode(buffer: &buffer) { try deliver(frame) }
                }
            } catch {
                finish(error)
            }
        }
    }
}

private final class ThreadBody {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// Starts a detached POSIX thread (the reader threads must not occupy Swift's cooperative pool,
/// which has only as many threads as cores). The corresponding C function is `pthread_create`.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        // Without its reader thread a connection cannot work at all.
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        fatalError("pthread_create failed: \(String(cString: strerror(rc)))")
    }
    pthread_detach(thread)
}

/// The protocol versions this build speaks, and the test hook that changes them.
public enum ProtocolVersions {
    /// Versions this release implements. Version 2 carries XXH3-128 content digests (16 bytes);
    /// version 1 carried SHA-256 ones, which this release cannot compute or compare, so it no
    /// longer speaks version 1 (PROTOCOL.md, "Versioning rules").
    public static let supported: ClosedRange<UInt16> = 2...2
    /// Features this release offers (both sides must list one to use it).
    public static let features: [String] = ["notice", batchFiles, digestFiles, status, watch]
    /// `readFiles` / `writeFiles`: many small files in one request (a server without it gets
    /// one request per file).
    public static let batchFiles = "batch-files"
    /// `digestFiles`, and scans that defer digests (scan flag bit 1): a first sync reads each
    /// new file once, to copy it (a server without it hashes every file in its scan).
    public static let digestFiles = "digest-files"
    /// `status`: the client may ask what the server is doing with its requests (the stall
    /// watchdog's question; a server without it is judged by the frames it sends alone).
    public static let status = "status"
    /// `watch`: the client may ask the server to watch its replica and push change notices
    /// (watch mode on an ssh root).
    public static let watch = "watch"
    /// Test hook: when set to N, this side claims to speak only version N.
    public static let environmentVariable = "SWUNISON_TEST_PROTOCOL_VERSION"

    /// ``supported``, or the single version named by ``environmentVariable`` when it is set.
    public static func fromEnvironment() -> ClosedRange<UInt16> {
        guard let raw = getenv(environmentVariable), let v = UInt16(String(cString: raw)) else { return supported }
        return v...v
    }

    /// The version both sides speak (the highest common one).
    /// - Throws: ``WireError/versionMismatch(local:remote:peer:)`` when the ranges do not overlap.
    public static func negotiate(local: ClosedRange<UInt16>, remote: ClosedRange<UInt16>,
                                 peer: String) throws(WireError) -> UInt16 {
        let high = min(local.upperBound, remote.upperBound)
        guard high >= max(local.lowerBound, remote.lowerBound) else {
            throw .versionMismatch(local: local, remote: remote, peer: peer)
        }
        return high
    }
}

/// Describes the connection when it fails (a child's stderr, an SSH channel's exit status), so
/// that "connection lost" can say why.
public protocol StreamDiagnostics: AnyObject {
    /// The last lines the far side printed on its error output, or "" when none.
    var diagnostics: String { get }
}
