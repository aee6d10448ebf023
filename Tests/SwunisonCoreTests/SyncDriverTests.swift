import Foundation
import Logging
import Synchronization
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport

/// A change source the test feeds by hand.
final class FakeChangeSource: ChangeSource, @unchecked Sendable {
    private let lock = NSLock()
    private var queued: [ChangeNotice] = []
    private var failure: (any Error)?
    private var waiter: CheckedContinuation<[ChangeNotice], any Error>?

    func push(_ notices: ChangeNotice...) { deliver { $0.queued += notices } }
    func fail(_ error: any Error) { deliver { $0.failure = error } }

    private func deliver(_ change: (FakeChangeSource) -> Void) {
        let ready: (CheckedContinuation<[ChangeNotice], any Error>, Result<[ChangeNotice], any Error>)? = lock.withLock {
            change(self)
            guard let waiter else { return nil }
            self.waiter = nil
            if let failure { return (waiter, .failure(failure)) }
            guard !queued.isEmpty else { self.waiter = waiter; return nil }
            defer { queued = [] }
            return (waiter, .success(queued))
        }
        if let (waiter, result) = ready { waiter.resume(with: result) }
    }

    func next() async throws -> [ChangeNotice] {
        try await withCheckedThrowingContinuation { c in
            let ready: Result<[ChangeNotice], any Error>? = lock.withLock {
                if let failure { return .failure(failure) }
                if !queued.isEmpty { defer { queued = [] }; return .success(queued) }
                waiter = c
                return nil
            }
            if let ready { c.resume(with: ready) }
        }
    }

    func stop() async { fail(WatchUnavailable("stopped")) }
}

/// A real local replica whose watch is a fake source the test controls (one per call, so a
/// reconnection gets a fresh one).
final class FakeWatchedReplica: ForwardingReplica, @unchecked Sendable {
    private let lock = NSLock()
    private var made: [FakeChangeSource] = []
    var sources: [FakeChangeSource] { lock.withLock { made } }
    var current: FakeChangeSource? { sources.last }

    override func watch(_ request: WatchRequest) async throws -> any ChangeSource {
        let source = FakeChangeSource()
        lock.withLock { made.append(source) }
        return source
    }
}

/// Records what the driver reports.
final class RecordingObserver: DriverObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var _cycles: [CycleReport] = []
    private var _states: [DriverState] = []
    private var _warnings: [String] = []
    var cycles: [CycleReport] { lock.withLock { _cycles } }
    var states: [DriverState] { lock.withLock { _states } }
    var warnings: [String] { lock.withLock { _warnings } }
    func stateChanged(_ state: DriverState) { lock.withLock { _states.append(state) } }
    func cycleFinished(_ report: CycleReport) { lock.withLock { _cycles.append(report) } }
    func pendingChanged(_ paths: [RelativePath], count: Int) {}
    func warning(_ message: String) { lock.withLock { _warnings.append(message) } }

    /// Waits (polling; tests only) until `count` cycles finished, or fails after `seconds`.
    func waitForCycles(_ count: Int, seconds: Double = 20) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while cycles.count < count {
            if Date() > deadline { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

@Suite("SyncDriver in watch mode, with fake change sources", .serialized)
struct SyncDriverTests {
    struct Setup {
        let f: Fixture
        let a: FakeWatchedReplica
        let b: FakeWatchedReplica
        let observer = RecordingObserver()
        let driver: SyncDriver
        let running: Task<Void, any Error>

        init(_ label: String, timing: WatchTiming = Setup.fastTiming) async throws {
            f = try Fixture(label)
            a = FakeWatchedReplica(try f.replica(f.a))
            b = FakeWatchedReplica(try f.replica(f.b))
            let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
            let options = SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "test")
            driver = SyncDriver(options: options, replicas: ReplicaPair(a: a, b: b), archive: archive,
                                interface: HookedInterface(), logger: Logger(label: "test"), observer: observer)
            let driver = self.driver
            running = Task { try await driver.watch(WatchRequest(cacheKey: "test"), timing: timing) }
        }

        static var fastTiming: WatchTiming {
            var timing = WatchTiming()
            timing.firstWindow = .milliseconds(50)
            timing.delay = .milliseconds(400)
            timing.maxDelay = .seconds(2)
            timing.reconnectFirst = .milliseconds(100)
            return timing
        }

        func stop() async throws {
            driver.stop()
            try await running.value
        }
    }

    @Test("watches start before the first full cycle; a lone change is a scoped cycle of its path")
    func loneChangeIsAScopedCycle() async throws {
        let s = try await Setup("driver-lone")
        try await s.observer.waitForCycles(1)
        #expect(s.observer.cycles[0].scope == .full)
        #expect(s.a.sources.count == 1 && s.b.sources.count == 1)

        try TestFiles.write(s.f.a + "/d/new", "hello")
        s.a.current!.push(.changed(try RelativePath(validating: "d")))
        try await s.observer.waitForCycles(2)
        #expect(s.observer.cycles[1].scope == .paths([try RelativePath(validating: "d")]))
        #expect(s.observer.cycles[1].summary?.exitCode == 0)
        #expect(TestFiles.read(s.f.b + "/d/new") == "hello")
        try await s.stop()
        #expect(s.observer.states.last == .stopped)
    }

    @Test("a burst is one cycle over the smallest covering subtrees, from both sides")
    func burstIsOneCycle() async throws {
        let s = try await Setup("driver-burst")
        try await s.observer.waitForCycles(1)
        try TestFiles.write(s.f.a + "/x/1", "1")
        try TestFiles.write(s.f.a + "/x/y/2", "2")
        try TestFiles.write(s.f.b + "/z", "3")
        s.a.current!.push(.changed(try RelativePath(validating: "x/y/2")))
        try await Task.sleep(for: .milliseconds(20))
        s.a.current!.push(.changed(try RelativePath(validating: "x")), .changed(try RelativePath(validating: "x/1")))
        s.b.current!.push(.changed(try RelativePath(validating: "z")))
        try await s.observer.waitForCycles(2)
        try await Task.sleep(for: .milliseconds(600))
        #expect(s.observer.cycles.count == 2)
        #expect(s.observer.cycles[1].scope == .paths([try RelativePath(validating: "x"), try RelativePath(validating: "z")]))
        #expect(TestFiles.read(s.f.b + "/x/y/2") == "2" && TestFiles.read(s.f.a + "/z") == "3")
        try await s.stop()
    }

    @Test("a root gone pauses every cycle (nothing is deleted); back, a full cycle")
    func rootMissingPauses() async throws {
        let s = try await Setup("driver-root")
        try TestFiles.write(s.f.a + "/keep", "k")
        try await s.observer.waitForCycles(1)
        #expect(TestFiles.read(s.f.b + "/keep") == "k")
        s.b.current!.push(.rootMissing("deleted"))
        try await Task.sleep(for: .milliseconds(100))
        try TestFiles.write(s.f.a + "/more", "m")
        s.a.current!.push(.changed(try RelativePath(validating: "more")))
        try await Task.sleep(for: .milliseconds(500))
        #expect(s.observer.cycles.count == 1)
        #expect(s.observer.states.contains(.rootMissing(.b, "deleted")))
        s.b.current!.push(.rootBack)
        try await s.observer.waitForCycles(2)
        #expect(s.observer.cycles[1].scope == .full)
        #expect(TestFiles.read(s.f.b + "/more") == "m" && TestFiles.read(s.f.a + "/keep") == "k")
        try await s.stop()
    }

    @Test("a watch that ends is started again (backoff), then a full cycle")
    func endedWatchReconnects() async throws {
        let s = try await Setup("driver-reconnect")
        try await s.observer.waitForCycles(1)
        s.b.current!.fail(ReplicaError.connection("link lost"))
        try await s.observer.waitForCycles(2)
        #expect(s.b.sources.count == 2)
        #expect(s.observer.cycles[1].scope == .full)
        #expect(s.observer.states.contains { if case .disconnected(.b, _) = $0 { true } else { false } })
        try await s.stop()
    }

    @Test("overflow: a full cycle; unwatched subtrees: a warning and periodic rescans of them")
    func overflowAndUnwatched() async throws {
        var timing = Setup.fastTiming
        timing.unwatchedRescanEvery = .milliseconds(300)
        let s = try await Setup("driver-overflow", timing: timing)
        try await s.observer.waitForCycles(1)
        s.a.current!.push(.overflow)
        try await s.observer.waitForCycles(2)
        #expect(s.observer.cycles[1].scope == .full)
        s.a.current!.push(.unwatched([try RelativePath(validating: "deep")], needed: 10, available: 4))
        try TestFiles.write(s.f.a + "/deep/f", "unheard")
        try await s.observer.waitForCycles(3)
        #expect(s.observer.warnings.contains { $0.contains("fs.inotify.max_user_watches") && $0.contains("10") })
        #expect(s.observer.cycles[2].scope == .paths([try RelativePath(validating: "deep")]))
        #expect(TestFiles.read(s.f.b + "/deep/f") == "unheard")
        try await s.stop()
    }

    @Test("no inotify instance for a side: a warning naming max_user_instances, and the root rescanned")
    func noInstanceMeansTheRootIsRescanned() async throws {
        var timing = Setup.fastTiming
        timing.unwatchedRescanEvery = .milliseconds(300)
        let s = try await Setup("driver-noinstance", timing: timing)
        try await s.observer.waitForCycles(1)
        s.b.current!.push(.unwatched([.root], needed: 0, available: 0))
        try TestFiles.write(s.f.b + "/unheard", "b")
        try await s.observer.waitForCycles(2)
        #expect(s.observer.warnings.contains { $0.contains("fs.inotify.max_user_instances") })
        #expect(!s.observer.warnings.contains { $0.contains("max_user_watches") })
        #expect(s.observer.cycles[1].scope == .paths([.root]) || s.observer.cycles[1].scope == .full)
        #expect(TestFiles.read(s.f.a + "/unheard") == "b")
        try await s.stop()
    }
}
