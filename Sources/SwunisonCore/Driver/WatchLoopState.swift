import Logging
import SwunisonModel
import SwunisonReplica

/// What watch mode remembers between cycles: what changed, what is paused, what is due when.
/// A plain value, no I/O: the driver feeds it inbox items and asks it what to do next.
struct WatchLoopState {
    let timing: WatchTiming
    var debouncer: Debouncer
    /// Paths named by notices since the last cycle (both sides together: a cycle scans both).
    private(set) var dirty: Set<RelativePath> = []
    /// The next cycle must cover everything (lost events, a root back, a reconnection).
    private(set) var needsFull = false
    /// Subtrees without watches, per side (the watch limit): rescanned every
    /// `unwatchedRescanEvery`.
    private(set) var unwatched: [Side: [RelativePath]] = [:]
    /// Sides that cannot take part now, and why (root missing, connection lost).
    private(set) var paused: [Side: DriverState] = [:]
    /// When to try reconnecting each side whose watch ended, and the wait after a failure.
    private(set) var reconnectAt: [Side: ContinuousClock.Instant] = [:]
    private var reconnectWait: [Side: Duration] = [:]
    private var nextFull: ContinuousClock.Instant
    private var nextUnwatched: ContinuousClock.Instant
    /// The watch-limit warning is given once per side.
    private var warnedUnwatched: Set<Side> = []

    init(timing: WatchTiming) {
        self.timing = timing
        debouncer = Debouncer(firstWindow: timing.firstWindow, delay: timing.delay, maxDelay: timing.maxDelay)
        nextFull = .now + timing.fullRescanEvery
        nextUnwatched = .now + timing.unwatchedRescanEvery
    }

    /// The state to report while some side is paused.
    var pausedState: DriverState { paused[.a] ?? paused[.b] ?? .idle }

    /// Takes in one inbox item.
    mutating func absorb(_ item: Inbox.Item, observer: any DriverObserver, logger: Logger) {
        let now = ContinuousClock.now
        switch item {
        case .stop:
            break
        case .watchEnded(let side, let why):
            paused[side] = .disconnected(side, why)
            if reconnectAt[side] == nil { reconnectAt[side] = now }
            observer.stateChanged(.disconnected(side, why))
            logger.warning("watch: \(side) side's watch ended (\(why)); reconnecting")
        case .notices(let side, let notices):
            for notice in notices {
                switch notice {
                case .changed(let path):
                    dirty.insert(path)
                    debouncer.noted(at: now)
                case .overflow:
                    needsFull = true
                    debouncer.noted(at: now)
                    logger.info("watch: \(side) side lost events (inotify queue overflow); rescanning everything")
                case let .unwatched(paths, needed, available):
                    let known = Set(unwatched[side] ?? [])
                    unwatched[side, default: []] += paths.filter { !known.contains($0) }
                    if !warnedUnwatched.contains(side) && needed == 0 {
                        // No inotify instance at all (see ChangeNotice.unwatched): the whole root.
                        warnedUnwatched.insert(side)
                        observer.warning("the \(side) side could not get an inotify instance (the user's "
                            + "`fs.inotify.max_user_instances` is reached): it is rescanned every "
                            + "\(timing.unwatchedRescanEvery) instead; raise the limit with "
                            + "`sysctl fs.inotify.max_user_instances=512`, or stop other watchers")
                    } else if !warnedUnwatched.contains(side) {
                        warnedUnwatched.insert(side)
                        observer.warning("the \(side) side needs \(needed) inotify watches and can have \(available): "
                            + "\(unwatched[side]!.count) subtrees are not watched and are rescanned every "
                            + "\(timing.unwatchedRescanEvery) instead; raise the limit with "
                            + "`sysctl fs.inotify.max_user_watches=\(max(needed * 2, 65536))` (or `watchlimit`)")
                    }
                case .rootMissing(let why):
                    paused[side] = .rootMissing(side, why)
                    observer.stateChanged(.rootMissing(side, why))
                    observer.warning("the \(side) side's root is gone (\(why)): nothing is propagated until it is back")
                case .rootBack:
                    paused[side] = nil
                    needsFull = true
                    debouncer.noted(at: now)
                    logger.info("watch: \(side) side's root is back; rescanning everything")
                }
            }
        }
    }

    /// When the driver must look again even if nothing arrives.
    func nextDeadline(now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        var candidates: [ContinuousClock.Instant] = [nextFull]
        if let deadline = debouncer.deadline { candidates.append(deadline) }
        if !unwatched.isEmpty { candidates.append(nextUnwatched) }
        candidates += reconnectAt.values
        return candidates.min()
    }

    /// The scope of the cycle due now, if one is: everything (the periodic rescan, lost events),
    /// or the changed paths once their burst's window closed, plus unwatched subtrees when their
    /// rescan is due. nil: nothing to do yet.
    mutating func dueScope(now: ContinuousClock.Instant, profilePaths: [RelativePath]) -> CycleReport.Scope? {
        if now >= nextFull { needsFull = true }
        var paths = dirty
        var due = debouncer.deadline.map { $0 <= now } ?? false
        if !unwatched.isEmpty && now >= nextUnwatched {
            for list in unwatched.values { paths.formUnion(list) }
            nextUnwatched = now + timing.unwatchedRescanEvery
            due = true
        }
        if needsFull && (due || now >= nextFull || debouncer.deadline == nil) { return .full }
        guard due, !paths.isEmpty else { return nil }
        let scope = Self.scope(of: paths, within: profilePaths)
        return scope.isEmpty ? nil : .paths(scope)
    }

    /// A cycle over `scope` is about to start: what it covers is no longer pending.
    mutating func cycleStarting(_ scope: CycleReport.Scope) {
        dirty = []
        debouncer.reset()
        if case .full = scope {
            needsFull = false
            nextFull = .now + timing.fullRescanEvery
        }
    }

    /// `side` is watched again: a full cycle follows.
    mutating func reconnected(_ side: Side) {
        paused[side] = nil
        reconnectAt[side] = nil
        reconnectWait[side] = nil
        needsFull = true
        debouncer.noted(at: .now)
    }

    /// A reconnection of `side` failed: the next attempt waits twice as long (up to the
    /// maximum). Returns the wait.
    mutating func backOff(_ side: Side, now: ContinuousClock.Instant) -> Duration {
        let wait = min((reconnectWait[side] ?? timing.reconnectFirst / 2) * 2, timing.reconnectMax)
        reconnectWait[side] = wait
        reconnectAt[side] = now + wait
        return wait
    }

    /// The smallest set of subtrees covering `paths`, kept inside the profile's `path`s (a
    /// changed ancestor of a profile path stands for that path).
    static func scope(of paths: Set<RelativePath>, within profilePaths: [RelativePath]) -> [RelativePath] {
        var candidates: [RelativePath] = []
        if profilePaths.isEmpty || profilePaths.contains(where: \.isRoot) {
            candidates = Array(paths)
        } else {
            for path in paths {
                if profilePaths.contains(where: { path.isDescendant(orEqualTo: $0) }) {
                    candidates.append(path)
                } else {
                    candidates += profilePaths.filter { $0.isDescendant(orEqualTo: path) }
                }
            }
        }
        var scope: [RelativePath] = []
        for path in candidates.sorted(by: <) {
            if let last = scope.last, path.isDescendant(orEqualTo: last) { continue }
            scope.append(path)
        }
        return scope
    }
}
