import CLibSSH
import Glibc

/// The state of one exec channel, shared by the session's I/O thread and the threads using the
/// `SSHExecChannel`. Every `var` is guarded by `core.lock`, except those marked "I/O thread only".
final class ChannelState: @unchecked Sendable {
    enum Phase { case opening, requestingExec, open, finished }

    let command: String
    /// Data queued by `write`, not yet taken by the I/O thread (bounded by `queueCapacity`).
    var outgoing = ChunkQueue()
    /// Bytes read from the remote stdout, not yet taken by `read` (bounded by `queueCapacity`).
    var incoming = ByteQueue()
    /// The tail of the remote stderr (at most `stderrLimit` bytes).
    var stderr: [UInt8] = []
    var phase = Phase.opening
    var openDeadline: UInt64
    var isWriteClosed = false
    var isClosed = false
    var isEOFSent = false
    var isRemoteEOF = false
    var isExitStatusKnown = false
    var exitStatus: Int32?
    var failure: SSHError?

    /// The libssh channel (I/O thread only).
    var handle: OpaquePointer?
    /// The chunk taken from `outgoing`, of which libssh has accepted `pendingOffset` bytes so
    /// far (I/O thread only).
    var pendingOut: [UInt8] = []
    var pendingOffset = 0
    /// When EOF was seen, to give up waiting for an exit status eventually (I/O thread only).
    var remoteEOFAt: UInt64 = 0

    init(command: String, openDeadline: UInt64) {
        self.command = command
        self.openDeadline = openDeadline
    }

    /// Whether a reader blocked in `read` can return (data, EOF, failure or close).
    var isReadable: Bool { !incoming.isEmpty || isRemoteEOF || failure != nil || isClosed }

    /// Whether the I/O thread must look at this channel soon even when the socket is quiet:
    /// while it is being opened (a deadline), and after EOF until its exit status is known (or
    /// given up).
    var needsPolling: Bool {
        if isClosed || failure != nil { return false }
        switch phase {
        case .opening, .requestingExec: return true
        case .open: return isRemoteEOF && !isExitStatusKnown
        case .finished: return false
        }
    }

    /// Whether the channel is open and in use: any libssh call may take packets off the socket
    /// for it (data, EOF, a window adjust) that `poll()` then never shows, so the I/O thread
    /// never sleeps longer than a second while one is.
    var isInUse: Bool { phase == .open && !isClosed && failure == nil }
}

/// The I/O machinery of one session: the libssh handle, its channels, and the one thread that
/// drives them all in non-blocking mode (PLATFORM-NOTES §1 "Deadlock": blocking writes deadlock
/// when both windows are full, so one thread moves both directions).
final class SessionCore: @unchecked Sendable {
    static let queueCapacity = 1 << 20
    static let chunkSize = 64 * 1024
    static let stderrLimit = 64 * 1024

    let handle: LibSSHHandle
    let label: String
    let keepaliveSeconds: Int?
    let timeoutSeconds: Int
    let lock = ConditionLock()

    // Guarded by `lock`.
    private var channels: [ChannelState] = []
    private var sessionFailure: SSHError?
    private var isStopping = false

    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1
    private var thread: pthread_t?

    init(handle: LibSSHHandle, label: String, keepaliveSeconds: Int?, timeoutSeconds: Int) {
        self.handle = handle
        self.label = label
        self.keepaliveSeconds = keepaliveSeconds
        self.timeoutSeconds = timeoutSeconds
    }

    deinit {
        if wakeRead >= 0 { Glibc.close(wakeRead) }
        if wakeWrite >= 0 { Glibc.close(wakeWrite) }
    }

    /// Switches libssh to non-blocking mode, tunes the socket and starts the I/O thread.
    func start() throws(SSHError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw .connectionFailed(destination: label, message: "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        configureSocket()
        ssh_set_blocking(handle.raw, 0)

        var created = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&created, nil, { argument in
            let core = Unmanaged<SessionCore>.fromOpaque(argument!).takeRetainedValue()
            core.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<SessionCore>.fromOpaque(context).release()
            throw .connectionFailed(destination: label, message: "could not start the I/O thread: \(String(cString: strerror(rc)))")
        }
        thread = created
    }

    /// TCP keepalive always; with SSH keepalives also TCP_USER_TIMEOUT, so that a link that
    /// silently died makes the unanswered keepalive fail the socket instead of hanging.
    private func configureSocket() {
        let fd = ssh_get_fd(handle.raw)
        guard fd >= 0 else { return }
        func set(_ level: Int32, _ name: Int32, _ value: Int32) {
            var value = value
            _ = setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
        let idle = Int32(clamping: keepaliveSeconds ?? 60)
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        set(Int32(IPPROTO_TCP), TCP_KEEPIDLE, idle)
        set(Int32(IPPROTO_TCP), TCP_KEEPINTVL, max(1, idle / 3))
        set(Int32(IPPROTO_TCP), TCP_KEEPCNT, 3)
        if let keepaliveSeconds {
            set(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, Int32(clamping: max(10, keepaliveSeconds * 3) * 1000))
        }
    }

    /// Stops the I/O thread, closes the channels; the connection closes when `handle` goes.
    func shutdown() {
        lock.withLock { isStopping = true }
        wake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        for channel in lock.withLock({ channels }) {
            if let raw = channel.handle {
                ssh_channel_free(raw)
                channel.handle = nil
            }
        }
        lock.withLock {
            for channel in channels where channel.failure == nil {
                channel.failure = .closed
            }
            channels.removeAll()
            lock.broadcast()
        }
    }

    /// Wakes the I/O thread out of `poll` (self-pipe).
    func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// Asks the I/O thread to open a channel and run `command`; waits until it runs or fails.
    func openChannel(command: String) throws(SSHError) -> ChannelState {
        let deadline = MonotonicClock.now() + UInt64(timeoutSeconds) * 1_000_000_000
        let state = ChannelState(command: command, openDeadline: deadline)
        let failure: SSHError? = lock.withLock {
            if let sessionFailure { return sessionFailure }
            if isStopping { return .closed }
            channels.append(state)
            return nil
        }
        if let failure { throw failure }
        wake()
        let outcome: SSHError? = lock.withLock {
            while state.phase != .open && state.failure == nil { lock.wait() }
            return state.failure
        }
        if let outcome { throw outcome }
        return state
    }

    // MARK: The I/O thread

    private func run() {
        var scratch = [UInt8](repeating: 0, count: Self.chunkSize)
        var lastKeepalive = MonotonicClock.now()
        var idleRounds = 0
        let backoffMilliseconds: [Int32] = [1, 5, 20, 100, 250, 1000]
        while true {
            drainWakePipe()
            let (active, stopping, failed) = lock.withLock { (channels, isStopping, sessionFailure != nil) }
            if stopping { return }
            var progressed = false
            if !failed {
                for channel in active {
                    progressed = service(channel, scratch: &scratch) || progressed
                }
                if ssh_is_connected(handle.raw) == 0 {
                    failSession(message: handle.errorMessage)
                }
            }
            lock.withLock {
                channels.removeAll { $0.phase == .finished && $0.handle == nil }
            }
            let now = MonotonicClock.now()
            if let keepaliveSeconds, !failed, now - lastKeepalive >= UInt64(keepaliveSeconds) * 1_000_000_000 {
                // Non-blocking: sends a keepalive@openssh.com request; the reply is consumed by a
                // later call. An unanswered one trips TCP_USER_TIMEOUT on a dead link.
                _ = ssh_send_keepalive(handle.raw)
                lastKeepalive = now
            }
            if progressed || (!failed && libsshHoldsWork(active)) {
                idleRounds = 0
                continue
            }
            // Nothing moved and libssh holds nothing poll() cannot see: sleep until the socket or
            // a writer wakes us; with backoff (1 ms growing to 1 s) while a channel has a
            // deadline, and for at most a second while one is open (packets libssh may have
            // taken in during the checks above).
            var timeout: Int32 = -1
            if active.contains(where: { lock.withLock { [channel = $0] in channel.needsPolling } }) {
                timeout = backoffMilliseconds[min(idleRounds, backoffMilliseconds.count - 1)]
                idleRounds += 1
            } else if active.contains(where: { lock.withLock { [channel = $0] in channel.isInUse } }) {
                timeout = 1000
            }
            if let keepaliveSeconds {
                let due = lastKeepalive + UInt64(keepaliveSeconds) * 1_000_000_000
                let untilDue = due > now ? Int32(clamping: (due - now) / 1_000_000) : 0
                timeout = timeout < 0 ? untilDue : min(timeout, untilDue)
            }
            waitForActivity(timeoutMilliseconds: failed ? -1 : timeout, watchSocket: !failed)
        }
    }

    /// Whether libssh holds work for an open channel that a `poll()` of the socket would not
    /// show: bytes or the EOF already read into a channel's buffer (by a call for another
    /// channel, or for stderr), or a send window that opened meanwhile. (`ssh_get_poll_flags`'
    /// SSH_READ_PENDING is no help: it only says libssh wants to read, which it always does.)
    /// These checks call into libssh too and may take in more packets; the one-second look while
    /// a channel is in use (`isInUse`) covers what arrives during them.
    private func libsshHoldsWork(_ channels: [ChannelState]) -> Bool {
        for channel in channels {
            guard let raw = channel.handle else { continue }
            // Bytes to send and a remote window that opened while libssh read for something else
            // (a window adjust taken off the socket by a read call): write now, poll() would
            // not wake us for it.
            let hasOutput = channel.pendingOffset < channel.pendingOut.count
                || lock.withLock { channel.phase == .open && channel.failure == nil && !channel.outgoing.isEmpty }
            if hasOutput && ssh_channel_window_size(raw) > 0 { return true }
            let (isOpen, room) = lock.withLock {
                (channel.phase == .open && channel.failure == nil && !channel.isClosed && !channel.isRemoteEOF,
                 Self.queueCapacity - channel.incoming.count)
            }
            guard isOpen else { continue }
            // Stdout counts only when the reader's queue has room (otherwise the reader wakes us).
            // Not only bytes: an EOF (or error) libssh took in while reading for another call
            // leaves nothing on the socket, and the reader waits for it (SSH_EOF is negative).
            if room > 0 && ssh_channel_poll(raw, 0) != 0 { return true }
            if ssh_channel_poll(raw, 1) > 0 { return true }
        }
        return false
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while Glibc.read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    private func waitForActivity(timeoutMilliseconds: Int32, watchSocket: Bool) {
        let socket = ssh_get_fd(handle.raw)
        var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if socket >= 0 && watchSocket {
            var events = Int16(POLLIN)
            if ssh_get_poll_flags(handle.raw) & SSH_WRITE_PENDING != 0 { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: socket, events: events, revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
    }

    /// Marks the whole session broken and fails every channel (their callers throw).
    private func failSession(message: String) {
        lock.withLock {
            let failure = SSHError.connectionLost(destination: label, message: message)
            if sessionFailure == nil { sessionFailure = failure }
            for channel in channels where channel.failure == nil {
                channel.failure = failure
            }
            lock.broadcast()
        }
    }

    private func fail(_ channel: ChannelState, _ failure: SSHError) {
        lock.withLock {
            if channel.failure == nil { channel.failure = failure }
            lock.broadcast()
        }
    }

    /// One round of work on one channel; returns whether anything moved.
    private func service(_ channel: ChannelState, scratch: inout [UInt8]) -> Bool {
        let (phase, isClosed, hasFailed) = lock.withLock { (channel.phase, channel.isClosed, channel.failure != nil) }
        if isClosed || (hasFailed && phase != .open) {
            finish(channel)
            return true
        }
        switch phase {
        case .finished:
            return false
        case .opening, .requestingExec:
            return advanceOpening(channel, phase: phase)
        case .open:
            if hasFailed { return false }
            return pump(channel, scratch: &scratch)
        }
    }

    private func finish(_ channel: ChannelState) {
        if let raw = channel.handle {
            if ssh_channel_is_closed(raw) == 0 && ssh_is_connected(handle.raw) != 0 {
                _ = ssh_channel_close(raw)
            }
            ssh_channel_free(raw)
            channel.handle = nil
        }
        lock.withLock {
            channel.phase = .finished
            if channel.failure == nil { channel.failure = .closed }
            lock.broadcast()
        }
    }

    private func advanceOpening(_ channel: ChannelState, phase: ChannelState.Phase) -> Bool {
        if channel.handle == nil {
            guard let raw = ssh_channel_new(handle.raw) else {
                fail(channel, .channelFailed(destination: label, command: channel.command, message: handle.errorMessage))
                return true
            }
            channel.handle = raw
        }
        let raw = channel.handle!
        let rc = phase == .opening
            ? ssh_channel_open_session(raw)
            : ssh_channel_request_exec(raw, channel.command)
        if rc == SSH_OK {
            lock.withLock {
                channel.phase = phase == .opening ? .requestingExec : .open
                lock.broadcast()
            }
            return true
        }
        if rc == SSH_AGAIN {
            if MonotonicClock.now() > channel.openDeadline {
                fail(channel, .channelFailed(destination: label, command: channel.command,
                                             message: "no answer within \(timeoutSeconds) s"))
                return true
            }
            return false
        }
        fail(channel, .channelFailed(destination: label, command: channel.command, message: handle.errorMessage))
        return true
    }

    /// Moves bytes both ways between the channel and its queues.
    private func pump(_ channel: ChannelState, scratch: inout [UInt8]) -> Bool {
        guard let raw = channel.handle else { return false }
        var progressed = false

        // Outgoing: refill the private chunk from the queue, hand libssh what it accepts.
        if channel.pendingOffset == channel.pendingOut.count {
            let (chunk, sendEOF) = lock.withLock { () -> ([UInt8], Bool) in
                var chunk = channel.outgoing.takeChunk()
                // Small frames (requests, replies) go out together, as one SSH packet: libssh
                // sends a packet per write. Large ones (file content) are written as they are.
                if chunk.count < Self.chunkSize / 4 {
                    while let next = channel.outgoing.firstCount, next < Self.chunkSize / 4,
                          chunk.count + next <= Self.chunkSize {
                        chunk.append(contentsOf: channel.outgoing.takeChunk())
                    }
                }
                if !chunk.isEmpty { lock.broadcast() }
                return (chunk, chunk.isEmpty && channel.isWriteClosed && !channel.isEOFSent)
            }
            channel.pendingOut = chunk
            channel.pendingOffset = 0
            if sendEOF {
                if ssh_channel_send_eof(raw) == SSH_ERROR {
                    return failChannelOrSession(channel)
                }
                lock.withLock { channel.isEOFSent = true }
                progressed = true
            }
        }
        if channel.pendingOffset < channel.pendingOut.count {
            let written = channel.pendingOut.withUnsafeBytes { bytes in
                ssh_channel_write(raw, bytes.baseAddress! + channel.pendingOffset,
                                  UInt32(bytes.count - channel.pendingOffset))
            }
            if written < 0 { return failChannelOrSession(channel) }
            if written > 0 {
                channel.pendingOffset += Int(written)
                progressed = true
            }
        }

        // Incoming stdout, as far as the reader's queue has room (that is the backpressure).
        let (room, isRemoteEOF) = lock.withLock { (Self.queueCapacity - channel.incoming.count, channel.isRemoteEOF) }
        if !isRemoteEOF && room > 0 {
            let n = scratch.withUnsafeMutableBytes { buffer in
                ssh_channel_read_nonblocking(raw, buffer.baseAddress, UInt32(min(room, buffer.count)), 0)
            }
            if n > 0 {
                lock.withLock {
                    scratch.withUnsafeBytes { channel.incoming.append(UnsafeRawBufferPointer(rebasing: $0[0..<Int(n)])) }
                    lock.broadcast()
                }
                progressed = true
            } else if n == SSH_EOF {
                channel.remoteEOFAt = MonotonicClock.now()
                lock.withLock {
                    channel.isRemoteEOF = true
                    lock.broadcast()
                }
                progressed = true
            } else if n < 0 {
                return failChannelOrSession(channel)
            }
        }

        // Stderr, always (kept for error messages; never blocks stdout).
        let m = scratch.withUnsafeMutableBytes { buffer in
            ssh_channel_read_nonblocking(raw, buffer.baseAddress, UInt32(buffer.count), 1)
        }
        if m > 0 {
            lock.withLock {
                channel.stderr += scratch[0..<Int(m)]
                if channel.stderr.count > Self.stderrLimit {
                    channel.stderr.removeFirst(channel.stderr.count - Self.stderrLimit)
                }
            }
            progressed = true
        } else if m < 0 && m != SSH_EOF {
            return failChannelOrSession(channel)
        }

        // After EOF: the exit status (sent just before or after EOF), or give up when the channel
        // closed without one (a signal) or nothing came for the timeout.
        if lock.withLock({ channel.isRemoteEOF && !channel.isExitStatusKnown }) {
            let status = ssh_channel_get_exit_status(raw)
            let closedWithout = ssh_channel_is_closed(raw) != 0
            let tooLate = MonotonicClock.now() - channel.remoteEOFAt > UInt64(timeoutSeconds) * 1_000_000_000
            if status != -1 || closedWithout || tooLate {
                lock.withLock {
                    channel.exitStatus = status == -1 ? nil : status
                    channel.isExitStatusKnown = true
                    lock.broadcast()
                }
                progressed = true
            }
        }
        return progressed
    }

    /// A libssh call on `channel` failed: the whole session if the connection is gone, else
    /// just this channel (e.g. the remote command exited while we were still writing).
    private func failChannelOrSession(_ channel: ChannelState) -> Bool {
        let message = handle.errorMessage
        if ssh_is_connected(handle.raw) == 0 {
            failSession(message: message)
        } else if let raw = channel.handle, ssh_channel_is_closed(raw) != 0 || ssh_channel_is_eof(raw) != 0 {
            fail(channel, .connectionLost(destination: label,
                                          message: "the remote command `\(channel.command)` closed the channel (\(message))"))
        } else {
            fail(channel, .connectionLost(destination: label, message: message))
        }
        return true
    }
}
