import Glibc
import Synchronization
import SwunisonFS
import SwunisonModel
import SwunisonReplica

/// A ``TreeWatcher``'s machinery: the inotify instance, its watches, the files held while being
/// written, and the thread that reads events and hands notices to the subscriptions.
///
/// The thread is a POSIX thread of its own, not one of Swift's cooperative pool (which has one
/// thread per core and must never block). It sleeps in `poll` on the inotify descriptor and a
/// self-pipe (stop, test records), with a timeout only while something is due: a held file, a
/// parked own-change notice, the check for a missing root. So an idle watcher costs no CPU.
///
/// Thread safety: the properties under "Thread-confined" belong to whoever runs the loop: the
/// caller of ``start()`` until the thread exists, then the thread alone. The rest are locks and
/// atomics.
final class WatchLoop: @unchecked Sendable {
    let rootPath: String
    let options: TreeWatcher.Options
    let inotify: Inotify
    let wake: WakePipe
    let root: WatchedRoot
    /// Watches now held, for ``TreeWatcher/watchCount``.
    let watchCount = Atomic<Int>(0)
    /// The thread's kernel id once it runs (0 before): tests read its scheduler statistics in
    /// `/proc/self/task/<id>` to check that an idle watcher never wakes up.
    let threadID = Atomic<Int32>(0)

    private enum Lifecycle { case idle, starting, running(pthread_t), stopped }
    private let lifecycle = Mutex<Lifecycle>(.idle)
    private let stopRequested = Atomic<Bool>(false)

    private struct Subscribers {
        var inboxes: [Inbox] = []
        /// Set when the loop ended: later subscriptions fail at once.
        var closedWith: WatcherError?
    }
    private let subscribers = Mutex(Subscribers())
    /// Records injected by tests, handled after those read from the kernel.
    private let injected = Mutex<[UInt8]>([])

    // Thread-confined.
    let watches: WatchSet
    var holds: WriteHolds
    /// Directories moved away (`IN_MOVED_FROM`) whose `IN_MOVED_TO` has not been seen: cookie to
    /// watch descriptor. Those still here once the queue is empty moved out of the tree.
    var pendingMoves: [UInt32: Int32] = [:]
    /// When to look for a missing root again.
    var rootRecheckAt: Int64?
    /// Notices of the current round, handed to the subscriptions at its end.
    var outgoing: [ChangeNotice] = []
    private let buffer: UnsafeMutableRawBufferPointer

    /// How often a missing root is looked for.
    static let rootRecheckNanoseconds: Int64 = 2_000_000_000
    /// Reads per round before notices are handed out (a flood must not starve the subscribers).
    static let readsPerRound = 64

    init(rootPath: String, options: TreeWatcher.Options, inotify: Inotify, wake: WakePipe) {
        self.rootPath = rootPath
        self.options = options
        self.inotify = inotify
        self.wake = wake
        root = WatchedRoot(path: rootPath)
        watches = WatchSet(inotify: inotify, limit: options.limit, shouldWatch: options.shouldWatch)
        holds = WriteHolds(maxHoldNanoseconds: options.holdWhileWritingNanoseconds)
        // 64 KiB holds at least 200 records; aligned for `inotify_event` (4).
        buffer = .allocate(byteCount: 64 * 1024, alignment: 8)
    }

    deinit { buffer.deallocate() }

    // MARK: Starting and stopping

    /// Watches the tree (on the caller's thread), then starts the loop's thread.
    func start() throws(WatcherError) -> WatchSetupReport {
        let canStart = lifecycle.withLock { state -> WatcherError? in
            switch state {
            case .idle: state = .starting; return nil
            case .starting, .running: return .alreadyStarted(root: rootPath)
            case .stopped: return .stopped(root: rootPath)
            }
        }
        if let canStart { throw canStart }
        let report: WatchSetupReport
        switch Result(catching: { () throws(WatcherError) in try setUp() }) {
        case .success(let made): report = made
        case .failure(let error):
            let stopped = lifecycle.withLock { state -> Bool in
                if case .stopped = state { return true }
                state = .idle  // the root may be back later: start() can be tried again
                return false
            }
            if stopped { closeDown(.stopped(root: rootPath)) }
            throw error
        }
        let started = lifecycle.withLock { state -> Result<Void, WatcherError> in
            guard case .starting = state else { return .failure(.stopped(root: rootPath)) }
            switch spawnThread() {
            case .success(let thread): state = .running(thread); return .success(())
            case .failure(let error): state = .stopped; return .failure(error)
            }
        }
        if case .failure(let error) = started {
            closeDown(error)
            throw error
        }
        return report
    }

    /// Ends the loop: joins its thread (or detaches it, when called from that thread), closes
    /// the inotify descriptor (every watch goes) and fails every subscription's `next()`.
    func stop() {
        enum Action { case none, closeNow, join(pthread_t) }
        let action = lifecycle.withLock { state -> Action in
            switch state {
            case .idle: state = .stopped; return .closeNow
            case .starting: state = .stopped; return .none  // start() closes down when its walk ends
            case .running(let thread): state = .stopped; return .join(thread)
            case .stopped: return .none
            }
        }
        stopRequested.store(true, ordering: .releasing)
        switch action {
        case .none: break
        case .closeNow: closeDown(.stopped(root: rootPath))
        case .join(let thread):
            wake.signal()
            if pthread_equal(pthread_self(), thread) != 0 {
                pthread_detach(thread)  // the loop ends when this call returns to it
            } else {
                pthread_join(thread, nil)
            }
        }
    }

    func add(_ inbox: Inbox) {
        let closed = subscribers.withLock { subscribers -> WatcherError? in
            if let closed = subscribers.closedWith { return closed }
            subscribers.inboxes.append(inbox)
            return nil
        }
        if let closed { inbox.close(closed) }
    }

    func remove(_ inbox: Inbox) {
        subscribers.withLock { $0.inboxes.removeAll { $0 === inbox } }
    }

    /// Test hook: queues records as if the kernel had written them (an `IN_Q_OVERFLOW` cannot be
    /// had on demand without changing a machine-wide sysctl).
    func inject(_ events: [InotifyEvent]) {
        injected.withLock { bytes in for event in events { bytes.append(contentsOf: event.record) } }
        wake.signal()
    }

    /// The first watch of the whole tree.
    private func setUp() throws(WatcherError) -> WatchSetupReport {
        let opened: DirectoryFD
        switch Result(catching: { () throws(SystemCallError) in try DirectoryFD.openRoot(rootPath) }) {
        case .success(let directory): opened = directory
        case .failure(let error): throw .rootUnavailable(root: rootPath, error)
        }
        let unwatched: [RelativePath]
        switch Result(catching: { () throws(SystemCallError) in try watches.watchTree(root: opened) }) {
        case .success(let tops): unwatched = tops
        case .failure(let error) where error.errno == ENOSPC:
            throw .noWatchesLeft(root: rootPath, maxUserWatches: KernelLimits.maxUserWatches)
        case .failure(let error): throw .cannotWatchRoot(root: rootPath, error)
        }
        root.watching(opened)
        watchCount.store(watches.table.count, ordering: .relaxed)
        return WatchSetupReport(watched: watches.table.count, unwatched: unwatched.sorted(), needed: watches.needed,
                                available: watches.available, limitReason: unwatched.isEmpty ? nil : watches.limitReason)
    }

    private func spawnThread() -> Result<pthread_t, WatcherError> {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<WatchLoop>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<WatchLoop>.fromOpaque(box).release()
            return .failure(.cannotStart(root: rootPath, SystemCallError("pthread_create", errno: rc)))
        }
        return .success(thread)
    }

    /// After the loop: no more watches, no more notices.
    private func closeDown(_ reason: WatcherError) {
        inotify.close()
        watchCount.store(0, ordering: .relaxed)
        root.missing()
        let inboxes = subscribers.withLock { subscribers -> [Inbox] in
            if subscribers.closedWith == nil { subscribers.closedWith = reason }
            defer { subscribers.inboxes = [] }
            return subscribers.inboxes
        }
        for inbox in inboxes { inbox.close(reason) }
    }

    // MARK: The thread

    private func run() {
        threadID.store(Self.currentThreadID(), ordering: .relaxed)
        var fds = [pollfd(fd: inotify.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)]
        var failure: WatcherError?
        while !stopRequested.load(ordering: .acquiring) {
            if poll(&fds, 2, pollTimeout()) < 0 && errno != EINTR {
                failure = .readFailed(root: rootPath, SystemCallError("poll", errno: errno))
                break
            }
            if stopRequested.load(ordering: .acquiring) { break }
            if fds[1].revents != 0 { wake.drain() }
            if let error = readEvents() {
                failure = .readFailed(root: rootPath, error)
                break
            }
            handleInjected()
            handleDeadlines()
            watchCount.store(watches.table.count, ordering: .relaxed)
            deliver()
        }
        closeDown(failure ?? .stopped(root: rootPath))
    }

    /// This thread's kernel id, from `/proc/thread-self` (a link to `<pid>/task/<tid>`); 0 when
    /// `/proc` does not say.
    private static func currentThreadID() -> Int32 {
        var target = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &target, target.count - 1)
        guard length > 0 else { return 0 }
        let text = String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.flatMap { Int32($0) } ?? 0
    }

    /// Milliseconds until the next thing is due; -1 (sleep until an event) when nothing is.
    private func pollTimeout() -> Int32 {
        var deadline = holds.nextDeadline()
        if let at = rootRecheckAt { deadline = min(deadline ?? at, at) }
        for inbox in subscribers.withLock({ $0.inboxes }) {
            if let at = inbox.nextParkedDeadline { deadline = min(deadline ?? at, at) }
        }
        guard let deadline else { return -1 }
        let milliseconds = (deadline - monotonicNanoseconds() + 999_999) / 1_000_000
        return Int32(clamping: max(0, milliseconds))
    }

    /// Reads and handles what the kernel queued. Moves whose second half never came are settled
    /// once the queue is empty.
    /// - Returns: the error that makes the descriptor unusable, if any.
    private func readEvents() -> SystemCallError? {
        for _ in 0..<Self.readsPerRound {
            let count: Int
            switch Result(catching: { () throws(SystemCallError) in try inotify.read(into: buffer) }) {
            case .success(let n): count = n
            case .failure(let error): return error
            }
            if count == 0 {
                settleMoves()
                return nil
            }
            let now = monotonicNanoseconds()
            InotifyEvent.parse(UnsafeRawBufferPointer(rebasing: buffer[..<count])) { handle($0, now: now) }
        }
        return nil
    }

    private func handleInjected() {
        let bytes = injected.withLock { bytes in
            defer { bytes = [] }
            return bytes
        }
        guard !bytes.isEmpty else { return }
        let aligned = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { aligned.deallocate() }
        aligned.copyBytes(from: bytes)
        let now = monotonicNanoseconds()
        InotifyEvent.parse(UnsafeRawBufferPointer(aligned)) { handle($0, now: now) }
        settleMoves()
    }

    private func handleDeadlines() {
        let now = monotonicNanoseconds()
        for path in holds.expire(now: now) { outgoing.append(.changed(path)) }
        if let at = rootRecheckAt, at <= now { recheckRoot(now: now) }
        for inbox in subscribers.withLock({ $0.inboxes }) { inbox.expireParked(now: now) }
    }

    /// Hands this round's notices to every subscription.
    private func deliver() {
        guard !outgoing.isEmpty else { return }
        let notices = outgoing
        outgoing = []
        for inbox in subscribers.withLock({ $0.inboxes }) { inbox.receive(notices, root: root) }
    }
}
