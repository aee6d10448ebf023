import Synchronization
import SwunisonModel
import SwunisonReplica

/// One subscriber's view of a ``TreeWatcher``: the notices for the paths it cares about, minus
/// the events of its own changes.
///
/// A hub whose root several profiles sync has one watcher and one subscription per peer: a
/// file written for peer A is suppressed for A's subscription but reported to B's, since B has
/// not got it yet.
///
/// Holds its watcher: the watches stay while a subscription or the watcher's owner needs them,
/// and go with the last of them (or at ``TreeWatcher/stop()``).
public final class TreeWatchSubscription: ChangeSource, Sendable {
    /// Released at ``stop()``, so that the last subscription's stop ends the watches.
    private let watcher: Mutex<TreeWatcher?>
    let inbox: Inbox
    private let root: WatchedRoot

    init(watcher: TreeWatcher, inbox: Inbox, root: WatchedRoot) {
        self.watcher = Mutex(watcher)
        self.inbox = inbox
        self.root = root
    }

    deinit {
        watcher.withLock { $0 }?.unsubscribe(inbox)
    }

    /// Waits until there is at least one notice, then returns all gathered so far, coalesced (see
    /// ``ChangeSource/next()``). One caller at a time.
    /// - Throws: ``WatcherError/stopped(root:)`` once the watcher or this subscription stopped,
    ///   ``WatcherError/readFailed(root:_:)`` when the watch broke, `CancellationError` when the
    ///   waiting task is cancelled.
    public func next() async throws -> [ChangeNotice] {
        try await inbox.next()
    }

    /// Ends this subscription: a pending ``next()`` throws. The watches stay for the other
    /// subscriptions and go with the watcher.
    public func stop() async {
        inbox.close(.stopped(root: inbox.rootPath))
        let watcher = watcher.withLock { watcher in
            defer { watcher = nil }
            return watcher
        }
        watcher?.unsubscribe(inbox)
    }

    /// The subscriber is about to change `path` itself (its own write, rename, removal, chmod...):
    /// events for it wait for ``endOwnChange(_:state:)``.
    public func beginOwnChange(_ path: RelativePath) {
        inbox.beginOwnChange(path)
    }

    /// ... and has: `path` is now `state` (nil = absent). Events that leave `path` in this state
    /// are not reported to this subscription (for 60 s); any other state is (a user's change
    /// right after ours). Removing a directory covers the events beneath it.
    public func endOwnChange(_ path: RelativePath, state: Entry?) {
        inbox.endOwnChange(path, state: state, root: root)
    }

    /// ... or did not make it (the operation failed): events for `path` are reported again, those
    /// that waited for the change's end included.
    public func cancelOwnChange(_ path: RelativePath) {
        inbox.cancelOwnChange(path)
    }
}

/// A subscription's queue of notices, its own changes and its waiting ``next()``. The watcher's
/// thread fills it; the subscriber empties it.
final class Inbox: Sendable {
    let rootPath: String
    let isRelevant: @Sendable (RelativePath) -> Bool

    private struct State {
        var queue: [ChangeNotice] = []
        var waiter: CheckedContinuation<[ChangeNotice], any Error>?
        var ownChanges = OwnChanges()
        var failure: WatcherError?
        /// The queue is coalesced when it grows past this (nobody called `next()` for a while).
        var compactAt = Inbox.firstCompaction
    }

    private let state = Mutex(State())
    static let firstCompaction = 4096
    /// Beyond this many distinct paths, "rescan everything" is cheaper to hold and to act on.
    static let maxQueued = 65_536

    init(rootPath: String, isRelevant: @escaping @Sendable (RelativePath) -> Bool) {
        self.rootPath = rootPath
        self.isRelevant = isRelevant
    }

    // MARK: The watcher's side

    /// Takes the notices of one round of events: keeps those relevant to this subscriber and not
    /// its own changes, and wakes a waiting ``next()``.
    func receive(_ notices: [ChangeNotice], root: WatchedRoot) {
        var accepted: [ChangeNotice] = []
        var judged: [RelativePath: Bool] = [:]
        let now = monotonicNanoseconds()
        for notice in notices {
            switch notice {
            case .changed(let path):
                guard isRelevant(path) else { continue }
                let verdict = state.withLock { $0.ownChanges.verdict(for: path, now: now) }
                if accept(verdict, root: root, judged: &judged) { accepted.append(notice) }
            case let .unwatched(paths, needed, available):
                let relevant = paths.filter(isRelevant)
                if !relevant.isEmpty { accepted.append(.unwatched(relevant, needed: needed, available: available)) }
            case .overflow, .rootMissing, .rootBack:
                accepted.append(notice)
            }
        }
        deliver(accepted)
    }

    /// Reports the notices parked under own changes that never ended.
    func expireParked(now: Int64) {
        let expired = state.withLock { $0.ownChanges.expireParked(now: now) }
        deliver(expired.map { .changed($0) })
    }

    /// When a parked notice must be reported anyway; nil when none waits.
    var nextParkedDeadline: Int64? {
        state.withLock { $0.ownChanges.nextParkedDeadline }
    }

    /// Ends the subscription with `error`: the waiting ``next()`` and every later one throw it.
    func close(_ error: WatcherError) {
        let waiter = state.withLock { state in
            if state.failure == nil { state.failure = error }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: error)
    }

    // MARK: The subscriber's side

    func next() async throws -> [ChangeNotice] {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[ChangeNotice], any Error>) in
                enum Outcome { case wait, deliver([ChangeNotice]), fail(any Error) }
                let outcome = state.withLock { state -> Outcome in
                    if let failure = state.failure { return .fail(failure) }
                    if !state.queue.isEmpty {
                        defer { state.queue = []; state.compactAt = Inbox.firstCompaction }
                        return .deliver(state.queue)
                    }
                    if state.waiter != nil { return .fail(WatcherError.alreadyWaiting(root: rootPath)) }
                    if Task.isCancelled { return .fail(CancellationError()) }
                    state.waiter = continuation
                    return .wait
                }
                switch outcome {
                case .wait: break
                case .deliver(let notices): continuation.resume(returning: coalesce(notices))
                case .fail(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func beginOwnChange(_ path: RelativePath) {
        let now = monotonicNanoseconds()
        state.withLock { $0.ownChanges.begin(path, now: now) }
    }

    func endOwnChange(_ path: RelativePath, state entry: Entry?, root: WatchedRoot) {
        let now = monotonicNanoseconds()
        let parked = state.withLock { $0.ownChanges.end(path, state: entry, now: now) }
        var accepted: [ChangeNotice] = []
        var judged: [RelativePath: Bool] = [:]
        for (eventPath, verdict) in parked where accept(verdict, root: root, judged: &judged) {
            accepted.append(.changed(eventPath))
        }
        deliver(accepted)
    }

    func cancelOwnChange(_ path: RelativePath) {
        let parked = state.withLock { $0.ownChanges.cancel(path) }
        deliver(parked.map { .changed($0) })
    }

    // MARK: Both

    /// Whether a notice is reported, given its verdict. The judging `fstatat` runs outside the
    /// lock, once per marked path however many notices it covers (`judged`: a removed tree's
    /// thousands of events are judged by one look at its top).
    private func accept(_ verdict: OwnChanges.Verdict, root: WatchedRoot, judged: inout [RelativePath: Bool]) -> Bool {
        switch verdict {
        case .report: return true
        case .parked: return false
        case let .judge(marked, state):
            if let known = judged[marked] { return known }
            let reported = !root.matches(marked, state)
            judged[marked] = reported
            return reported
        }
    }

    /// Queues `notices` and hands the queue to a waiting ``next()``.
    private func deliver(_ notices: [ChangeNotice]) {
        guard !notices.isEmpty else { return }
        let handOff = state.withLock { state -> (CheckedContinuation<[ChangeNotice], any Error>, [ChangeNotice])? in
            guard state.failure == nil else { return nil }
            state.queue.append(contentsOf: notices)
            if let waiter = state.waiter {
                state.waiter = nil
                defer { state.queue = [] }
                return (waiter, state.queue)
            }
            if state.queue.count >= state.compactAt {
                state.queue = coalesce(state.queue)
                if state.queue.count >= Inbox.maxQueued { state.queue = coalesce(state.queue + [.overflow]) }
                state.compactAt = max(Inbox.firstCompaction, state.queue.count * 2)
            }
            return nil
        }
        if let (waiter, queue) = handOff { waiter.resume(returning: coalesce(queue)) }
    }
}
