import Glibc
import Logging
import Synchronization
import SwunisonModel
import SwunisonReplica
import SwunisonReconcile
import SwunisonStorage

/// Runs synchronisation cycles over one pair of replicas for as long as the process lives: once
/// (a batch or interactive run), every so often (`repeat = SECONDS`), or whenever either side
/// changes (watch mode). The lock, the archive and the replicas (and so a remote connection)
/// stay open from one cycle to the next; each cycle is a `Session` over the whole profile or
/// over the subtrees that changed.
///
/// Watch mode: both sides' watches are in place before the first full scan, so nothing changed
/// during start-up is missed. Then each burst of change notices (see ``Debouncer``) leads to a
/// cycle over just the subtrees named, a full cycle after lost events (overflow), a root that
/// came back or a reconnection, and the periodic full rescan. A cycle's own writes are not
/// reported by the replicas' watches, so they do not start another. A root that went away
/// stops every cycle until it is back (Invariant 6: never "everything was deleted"); a lost
/// connection is reopened with backoff, forever. Nothing but a failure to start, or `stop()`,
/// ends watch mode.
public final class SyncDriver: Sendable {
    private let options: SessionOptions
    private let replicas: ReplicaPair
    private let archive: Archive
    private let interface: any SessionInterface
    private let logger: Logger
    private let observer: any DriverObserver
    private let inbox = Inbox()

    public init(options: SessionOptions, replicas: ReplicaPair, archive: Archive, interface: any SessionInterface,
                logger: Logger, observer: any DriverObserver) {
        var options = options
        let flag = StopFlag()
        options.shouldStop = { flag.isSet }
        self.options = options
        self.stopFlag = flag
        self.replicas = replicas
        self.archive = archive
        self.interface = interface
        self.logger = logger
        self.observer = observer
    }

    private let stopFlag: StopFlag

    /// Asks the driver to stop: operations in flight finish, what succeeded is committed, no
    /// new cycle starts (SIGTERM, SIGINT). Safe from any thread.
    public func stop() {
        stopFlag.set()
        inbox.post(.stop)
    }

    public var isStopping: Bool { stopFlag.isSet }

    // MARK: Runs

    /// One run over everything the profile covers.
    public func runOnce() async throws -> RunSummary {
        defer { observer.stateChanged(.stopped) }
        return try await cycle(.full).summaryOrThrow()
    }

    /// A run, then another `interval` after each one ends (`repeat = SECONDS`), until `stop()`
    /// or a fatal error. `each` sees every run's summary; returns the last one.
    public func repeatRuns(every interval: Duration, each: (RunSummary) -> Void) async throws -> RunSummary {
        defer { observer.stateChanged(.stopped) }
        while true {
            let summary = try await cycle(.full).summaryOrThrow()
            each(summary)
            if isStopping { return summary }
            observer.stateChanged(.idle)
            _ = await inbox.take(until: .now + interval)
            if isStopping { return summary }
        }
    }

    /// Watch mode, until `stop()`. Throws only when it cannot start (a replica that cannot be
    /// watched, a first connection that fails).
    public func watch(_ request: WatchRequest, timing: WatchTiming) async throws {
        observer.stateChanged(.starting)
        // Watches first, then the first full scan: what changes in between is not missed.
        var watching = WatchedSides()
        for side in [Side.a, .b] {
            watching.sources[side] = try await startWatch(side, request)
        }
        var state = WatchLoopState(timing: timing)
        await runCycle(.full, state: &state)
        while !isStopping {
            let deadline = state.nextDeadline(now: .now)
            for item in await inbox.take(until: deadline) {
                state.absorb(item, observer: observer, logger: logger)
            }
            if isStopping { break }
            await reconnectDueSides(&state, &watching, request)
            guard state.paused.isEmpty else {
                observer.stateChanged(state.pausedState)
                continue
            }
            if let scope = state.dueScope(now: .now, profilePaths: options.paths) {
                await runCycle(scope, state: &state)
            } else {
                observer.pendingChanged(Array(state.dirty.prefix(100)), count: state.dirty.count)
            }
        }
        for source in watching.sources.values { await source.stop() }
        observer.stateChanged(.stopped)
    }

    // MARK: Watch mode's parts

    private struct WatchedSides {
        var sources: [Side: any ChangeSource] = [:]
    }

    /// Starts `side`'s watch and the task that carries its notices to the inbox.
    private func startWatch(_ side: Side, _ request: WatchRequest) async throws -> any ChangeSource {
        var sideRequest = request
        sideRequest.cacheKey = options.cacheKey(for: side)
        let source = try await replicas[side].watch(sideRequest)
        let inbox = self.inbox
        Task {
            while true {
                do {
                    let notices = try await source.next()
                    inbox.post(.notices(side, notices))
                } catch {
                    inbox.post(.watchEnded(side, String(describing: error)))
                    return
                }
            }
        }
        return source
    }

    /// Sides whose watch ended: reconnect (the replica reconnects on its next call) when their
    /// backoff is over; on success, a full cycle follows.
    private func reconnectDueSides(_ state: inout WatchLoopState, _ watching: inout WatchedSides,
                                   _ request: WatchRequest) async {
        let now = ContinuousClock.now
        for (side, due) in state.reconnectAt where due <= now {
            if let old = watching.sources[side] { await old.stop() }
            if let reconnecting = replicas[side] as? ReconnectingReplica { await reconnecting.dropConnection() }
            do {
                watching.sources[side] = try await startWatch(side, request)
                logger.info("watch: \(replicas[side].displayName) is back; rescanning both sides")
                state.reconnected(side)
            } catch {
                let wait = state.backOff(side, now: now)
                observer.stateChanged(.disconnected(side, String(describing: error)))
                logger.warning("watch: cannot reach \(replicas[side].displayName): \(error); next attempt in \(wait)")
            }
        }
    }

    /// Runs one cycle in watch mode: never throws, reports to the observer and the log.
    private func runCycle(_ scope: CycleReport.Scope, state: inout WatchLoopState) async {
        state.cycleStarting(scope)
        observer.pendingChanged([], count: 0)
        let report = await cycle(scope)
        if let error = report.error {
            logger.warning("watch: cycle failed: \(error)")
        }
        observer.stateChanged(isStopping ? .stopped : .idle)
    }

    /// One `Session` over `scope`; never throws (the report carries the error).
    private func cycle(_ scope: CycleReport.Scope) async -> CycleReport {
        var sessionOptions = options
        if case .paths(let paths) = scope {
            sessionOptions.wholeScope = options.paths
            sessionOptions.paths = paths
        }
        let started = wallClockNanoseconds()
        let clock = ContinuousClock.now
        let states = StateReporter(observer: observer, inner: interface)
        let session = Session(options: sessionOptions, replicas: replicas, archive: archive, interface: states,
                              logger: logger)
        var report = CycleReport(scope: scope, started: started, duration: .zero)
        do {
            report.summary = try await session.run()
        } catch {
            report.error = describe(error)
            report.failure = error
        }
        report.duration = ContinuousClock.now - clock
        observer.cycleFinished(report)
        return report
    }

    private func describe(_ error: any Error) -> String {
        if let first = error as? FirstConnectionFailure { return "\(first.underlying)" }
        return "\(error)"
    }
}

/// A flag set once, read from any thread.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// Turns a session's progress into driver states (scanning, propagating), and passes every
/// call on to the real interface.
private struct StateReporter: SessionInterface {
    let observer: any DriverObserver
    let inner: any SessionInterface

    func scanStarted() { observer.stateChanged(.scanning); inner.scanStarted() }
    func scanFinished(a: ScanResult, b: ScanResult) { inner.scanFinished(a: a, b: b) }
    func review(_ items: [PlanItem]) async -> [PlanItem]? {
        let reviewed = await inner.review(items)
        if let reviewed, !reviewed.isEmpty { observer.stateChanged(.propagating) }
        return reviewed
    }
    func propagated(_ path: RelativePath, bytes: Int64) { inner.propagated(path, bytes: bytes) }
    func notice(_ message: String) { inner.notice(message) }
}

/// The current wall-clock time in nanoseconds since the epoch.
func wallClockNanoseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}
