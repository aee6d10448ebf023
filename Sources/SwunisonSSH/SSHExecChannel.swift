import CLibSSH
import Glibc

/// A command running on the remote host, as a full-duplex byte stream: `write` feeds its stdin,
/// `read` returns its stdout; its stderr is collected for error messages.
///
/// It has the shape of `ByteStream` (SwunisonModel): `write` and `read` may be called at the same
/// time from one writer thread and one reader thread. Both only touch in-memory queues (bounded
/// at 1 MiB each way); the session's I/O thread moves the bytes, so neither direction can
/// deadlock the other however full the SSH windows are. A broken connection makes blocked and
/// later calls throw `SSHError.connectionLost`; it is noticed when the socket fails, and on a
/// silent link within about three keepalive intervals when `keepaliveSeconds` is set.
public final class SSHExecChannel: @unchecked Sendable {
    /// Keeps the session (and its I/O thread) alive while the channel is in use.
    public let session: SSHSession
    private let state: ChannelState
    private var lock: ConditionLock { session.core.lock }

    init(session: SSHSession, state: ChannelState) {
        self.session = session
        self.state = state
    }

    deinit { close() }

    /// The remote command line.
    public var command: String { state.command }

    /// Queues all of `bytes` for the remote stdin; blocks while 1 MiB is already queued.
    /// - Throws: `SSHError.connectionLost` when the connection or the channel broke,
    ///   `.closed` after `close()` or `closeWrite()`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SSHError) {
        var offset = 0
        while offset < bytes.count {
            let n = min(SessionCore.chunkSize, bytes.count - offset)
            try write(contentsOf: [Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))])
            offset += n
        }
    }

    /// Writes `chunks` in order, handing the arrays themselves to the I/O thread (no copy; this
    /// is how frames go out). Blocks while `queueCapacity` bytes are queued already, so at most
    /// that plus one call's chunks are ever waiting.
    public func write(contentsOf chunks: [[UInt8]]) throws(SSHError) {
        let failure: SSHError? = lock.withLock {
            while state.outgoing.count >= SessionCore.queueCapacity && state.failure == nil && !state.isClosed {
                lock.wait()
            }
            if state.isClosed || state.isWriteClosed { return .closed }
            if let failure = state.failure { return failure }
            for chunk in chunks { state.outgoing.append(chunk) }
            return nil
        }
        if let failure { throw failure }
        session.core.wake()
    }

    /// Reads at least one byte of the remote stdout into `buffer`; returns 0 at end of stream.
    /// Bytes that arrived before a failure are returned before the failure is thrown.
    /// - Throws: `SSHError.connectionLost` when the connection broke, `.closed` after `close()`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SSHError) -> Int {
        guard buffer.count > 0 else { return 0 }
        let (count, failure, wasFull): (Int, SSHError?, Bool) = lock.withLock {
            while !state.isReadable { lock.wait() }
            if state.isClosed { return (0, .closed, false) }
            let wasFull = state.incoming.count + SessionCore.chunkSize > SessionCore.queueCapacity
            let n = state.incoming.pop(into: buffer)
            if n > 0 { return (n, nil, wasFull) }
            if let failure = state.failure { return (0, failure, false) }
            return (0, nil, false)
        }
        if wasFull { session.core.wake() }
        if let failure { throw failure }
        return count
    }

    /// Sends EOF to the remote stdin once the queued bytes are out; reading goes on.
    public func closeWrite() {
        lock.withLock { state.isWriteClosed = true }
        session.core.wake()
    }

    /// Tears the channel down: queued bytes are dropped, blocked and later calls throw `.closed`.
    public func close() {
        lock.withLock {
            state.isClosed = true
            state.outgoing.removeAll()
            lock.broadcast()
        }
        session.core.wake()
    }

    /// The remote command's stderr so far (its last 64 KiB), decoded as UTF-8.
    public var standardError: String {
        let bytes = lock.withLock { state.stderr }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits for the remote command to end and returns its exit status: nil when it reported
    /// none (killed by a signal). 126/127 mean the command could not be run or was not found.
    /// Call it after `read` returned 0.
    /// - Throws: `SSHError.connectionLost` when the connection broke first, `.closed` after `close()`.
    public func exitStatus() throws(SSHError) -> Int32? {
        let (status, failure): (Int32?, SSHError?) = lock.withLock {
            while !state.isExitStatusKnown && state.failure == nil && !state.isClosed { lock.wait() }
            if state.isExitStatusKnown { return (state.exitStatus, nil) }
            return (nil, state.isClosed ? .closed : state.failure)
        }
        if let failure { throw failure }
        return status
    }
}
