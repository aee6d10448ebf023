import Foundation
import Logging
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport
import Testing
@testable import SwunisonWire

/// Watch mode with one root local and the other served by the real `swunison server` over a
/// pipe (as over ssh, without the sshd): the server watches its side and pushes notices.
@Suite("watch mode with a remote root", .serialized)
struct WatchOverWireTests {
    @Test(.enabled(if: swunisonBinary() != nil), .timeLimit(.minutes(3)))
    func everyKindOfChangeBothWays() async throws {
        let server = try await ServerChild("wwatch")
        let local = try TemporaryDirectory("wwatch-local")
        let state = try TemporaryDirectory("wwatch-state")
        try TestFiles.write(local.appending("keep"), "k")
        let a = try LocalReplica(root: local.path, cacheDirectory: state.appending("caches"),
                                 backupDirectory: state.appending("backups"), maxBackups: 2, attributes: AttributeSelection())
        let archive = try Archive.open(path: state.appending("archive.db"), roots: [local.path, server.root.path])
        let observer = CycleCounter()
        let driver = SyncDriver(options: SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "wwatch"),
                                replicas: ReplicaPair(a: a, b: server.client), archive: archive,
                                interface: QuietInterface(), logger: Logger(label: "test"), observer: observer)
        var timing = WatchTiming()
        timing.delay = .milliseconds(500)
        let running = Task { try await driver.watch(WatchRequest(cacheKey: "wwatch"), timing: timing) }
        #expect(try await ChangeScenarios.everyKindOfChange(from: local.path, to: server.root.path, tag: "local") == [])
        #expect(try await ChangeScenarios.everyKindOfChange(from: server.root.path, to: local.path, tag: "remote") == [])
        driver.stop()
        try await running.value
        await server.client.close()
    }
}

/// Counts cycles.
final class CycleCounter: DriverObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var cycles: Int { lock.withLock { count } }
    func stateChanged(_ state: DriverState) {}
    func cycleFinished(_ report: CycleReport) { lock.withLock { count += 1 } }
    func pendingChanged(_ paths: [RelativePath], count: Int) {}
    func warning(_ message: String) {}
}

/// A batch interface that prints nothing.
struct QuietInterface: SessionInterface {
    func scanStarted() {}
    func scanFinished(a: ScanResult, b: ScanResult) {}
    func review(_ items: [PlanItem]) async -> [PlanItem]? { items }
    func propagated(_ path: RelativePath, bytes: Int64) {}
    func notice(_ message: String) {}
}
