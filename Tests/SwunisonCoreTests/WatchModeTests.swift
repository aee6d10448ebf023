import Foundation
import Logging
import Testing
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile
import SwunisonStorage
import SwunisonTestSupport
import SwunisonFS

/// Watch mode between two real local roots: real inotify, real replicas, the real driver.
@Suite("watch mode between two local roots", .serialized)
struct WatchModeTests {
    final class Running: @unchecked Sendable {
        let f: Fixture
        let observer = RecordingObserver()
        let interface = HookedInterface()
        let driver: SyncDriver
        let task: Task<Void, any Error>

        /// `holdSeconds`: how long a file being written may be held (shorter than the tests'
        /// waits where a hold that never ends would show as an extra cycle).
        init(_ label: String, holdSeconds: Int64 = 5, prepare: (Fixture) throws -> Void = { _ in },
             interfaceSetup: (HookedInterface, Fixture) -> Void = { _, _ in }) async throws {
            f = try Fixture(label)
            try prepare(f)
            interfaceSetup(interface, f)
            let archive = try Archive.open(path: f.state + "/archive.db", roots: [f.a, f.b])
            let options = SessionOptions(reconcile: ReconcileOptions(prefer: .newer), cacheKey: "watch")
            driver = SyncDriver(options: options, replicas: ReplicaPair(a: try f.replica(f.a), b: try f.replica(f.b)),
                                archive: archive, interface: interface, logger: Logger(label: "test"), observer: observer)
            var timing = WatchTiming()
            timing.delay = .milliseconds(500)
            timing.maxDelay = .seconds(5)
            let driver = self.driver
            task = Task { try await driver.watch(WatchRequest(holdWhileWritingNanoseconds: holdSeconds * 1_000_000_000, cacheKey: "watch"),
                                                 timing: timing) }
            try await observer.waitForCycles(1)
        }

        func stop() async throws {
            driver.stop()
            try await task.value
        }

        /// Waits until `condition` holds (polling every 20 ms), at most `seconds`.
        func eventually(_ seconds: Double = 10, _ condition: () -> Bool) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while !condition() {
                if Date() > deadline { return false }
                try await Task.sleep(for: .milliseconds(20))
            }
            return true
        }
    }

    /// Writes a file in place with one open, write and close, as most programs do.
    static func writePlain(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    @Test("a change on either side appears on the other; the cycle's own writes start no other cycle")
    func changesPropagateWithoutPingPong() async throws {
        let r = try await Running("watch-basic", holdSeconds: 1)
        try Self.writePlain(r.f.a + "/from-a", "A")
        #expect(try await r.eventually { TestFiles.read(r.f.b + "/from-a") == "A" && r.observer.cycles.count >= 2 })
        try await Task.sleep(for: .seconds(1.5))  // past the hold time: a hold left by our write would show
        #expect(r.observer.cycles.count == 2, "cycles: \(r.observer.cycles.map(\.scope))")
        try Self.writePlain(r.f.b + "/from-b", "B")
        #expect(try await r.eventually { TestFiles.read(r.f.a + "/from-b") == "B" && r.observer.cycles.count >= 3 })
        try await Task.sleep(for: .seconds(1.5))
        #expect(r.observer.cycles.count == 3, "cycles: \(r.observer.cycles.map(\.scope))")
        try await r.stop()
    }

    @Test("a local replica's watch hears of other processes' changes, never of its own writes")
    func ownWritesAreNotHeard() async throws {
        let f = try Fixture("watch-own")
        try TestFiles.write(f.a + "/existing", "old")
        let replica = try f.replica(f.a)
        // A short hold: a write whose hold never ended would be reported within the wait below.
        let source = try await replica.watch(WatchRequest(holdWhileWritingNanoseconds: 300_000_000, cacheKey: "own"))
        func entry(_ text: String) -> Entry {
            let bytes = Array(text.utf8)
            return Entry(kind: .file, size: Int64(bytes.count), mtime: 1_600_000_000_000_000_000, mode: 0o640,
                         digest: XXH3Hasher.digest(bytes))
        }
        let path = { (s: String) in try RelativePath(validating: s) }
        // Every kind of change the replica makes itself.
        _ = try await replica.makeDirectory(try path("d"), entry: Entry(kind: .directory, mode: 0o750), replacing: nil, backup: false)
        let written = try await replica.writeFile(try path("d/new"), entry: entry("new"), from: ContentReader(Array("new".utf8)),
                                                  replacing: nil, backup: false)
        _ = try await replica.writeFiles([FileWrite(path: try path("d/batch"), entry: entry("batch"), content: Array("batch".utf8),
                                                    replacing: nil, backup: false)])
        var attributes = written
        attributes.mode = 0o600
        _ = try await replica.setAttributes(try path("d/new"), expected: written, to: attributes)
        let existing = try #require(try await Self.scanEntry(replica, "existing"))
        _ = try await replica.remove(try path("existing"), expected: existing, backup: false)
        _ = try await replica.makeSymlink(try path("link"), entry: Entry(kind: .symlink, linkTarget: Array("d/new".utf8)),
                                          replacing: nil, backup: false)
        // Then somebody else's change: the only one heard.
        try Self.writePlain(f.a + "/theirs", "x")
        var heard: [ChangeNotice] = []
        let deadline = ContinuousClock.now + .seconds(3)
        while !heard.contains(.changed(try path("theirs"))) && ContinuousClock.now < deadline {
            heard += try await source.next()
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(heard == [.changed(try path("theirs"))], "\(heard)")
        await source.stop()
    }

    /// What a full scan of `replica` reports for `path`.
    static func scanEntry(_ replica: LocalReplica, _ path: String) async throws -> Entry? {
        let found = FoundEntries()
        _ = try await replica.scan(ScanRequest(cacheKey: "own-scan")) { found.add($0) }
        return found.entry(path)
    }

    @Test("create, modify, append, chmod, delete, rename of a file and a directory, mkdir -p: each side to the other")
    func everyKindOfChange() async throws {
        // Something stays on both sides throughout: emptying a root is refused (confirmbigdel),
        // see rootEmptiedIsRefused.
        let r = try await Running("watch-kinds", prepare: { f in try TestFiles.write(f.a + "/keep", "k") })
        #expect(try await ChangeScenarios.everyKindOfChange(from: r.f.a, to: r.f.b, tag: "a") == [])
        #expect(try await ChangeScenarios.everyKindOfChange(from: r.f.b, to: r.f.a, tag: "b") == [])
        try await r.stop()
    }

    @Test("everything deleted on one side is refused in watch mode too (confirmbigdel), and nothing is deleted")
    func rootEmptiedIsRefused() async throws {
        let r = try await Running("watch-emptied", prepare: { f in
            for i in 0..<3 { try TestFiles.write(f.a + "/d\(i)/f", "\(i)") }
        })
        #expect(try await r.eventually { (0..<3).allSatisfy { TestFiles.read(r.f.b + "/d\($0)/f") != nil } })
        for i in 0..<3 { try FileManager.default.removeItem(atPath: r.f.a + "/d\(i)") }
        #expect(try await r.eventually { r.observer.cycles.last?.error?.contains("looks emptied") == true })
        try await Task.sleep(for: .seconds(1))
        #expect((0..<3).allSatisfy { TestFiles.read(r.f.b + "/d\($0)/f") == "\($0)" })
        try await r.stop()
    }

    @Test("a change made while the first full scan runs is not missed")
    func changeDuringStartupIsSeen() async throws {
        let r = try await Running("watch-startup", prepare: { f in
            try TestFiles.write(f.a + "/early", "before")
        }, interfaceSetup: { interface, f in
            let fired = FiredOnce()
            interface.onScanFinished = {
                // After the scans of the first cycle, before anything is propagated.
                if fired.fire() { try? TestFiles.write(f.a + "/during", "during") }
            }
        })
        #expect(try await r.eventually { TestFiles.read(r.f.b + "/during") == "during" && TestFiles.read(r.f.b + "/early") == "before" })
        try await r.stop()
    }

    @Test("a conflict within one window: prefer = newer settles it and the loser is kept")
    func conflictInOneWindow() async throws {
        let r = try await Running("watch-conflict", prepare: { f in
            try TestFiles.write(f.a + "/c", "base")
        })
        #expect(try await r.eventually { TestFiles.read(r.f.b + "/c") == "base" })
        try TestFiles.write(r.f.a + "/c", "older", mtime: Date().timeIntervalSince1970 - 100)
        try TestFiles.write(r.f.b + "/c", "newer")
        #expect(try await r.eventually { TestFiles.read(r.f.a + "/c") == "newer" && TestFiles.read(r.f.b + "/c") == "newer" })
        let backups = FileManager.default.enumerator(atPath: r.f.state + "/backup")?.allObjects as? [String] ?? []
        #expect(backups.contains { TestFiles.read(r.f.state + "/backup/" + $0) == "older" }, "\(backups)")
        try await r.stop()
    }

    @Test("a file held open and written for seconds is copied once, complete")
    func fileWrittenSlowlyIsCopiedOnceComplete() async throws {
        let r = try await Running("watch-slow-write")
        let cyclesBefore = r.observer.cycles.count
        // As a program writing a file does: one open that creates it, writes over seconds, close.
        let fd = open(r.f.a + "/slow", O_WRONLY | O_CREAT | O_EXCL, 0o644)
        try #require(fd >= 0)
        for i in 0..<10 {
            let bytes = Array("chunk \(i)\n".utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            try await Task.sleep(for: .milliseconds(250))
            #expect(!TestFiles.exists(r.f.b + "/slow"), "copied while still being written (after chunk \(i))")
        }
        close(fd)
        let whole = (0..<10).map { "chunk \($0)\n" }.joined()
        #expect(try await r.eventually { TestFiles.read(r.f.b + "/slow") == whole })
        try await Task.sleep(for: .seconds(1))
        #expect(r.observer.cycles.count == cyclesBefore + 1, "cycles: \(r.observer.cycles.map(\.scope))")
        try await r.stop()
    }
}

/// True the first time only.
final class FiredOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var fired = false
    func fire() -> Bool { lock.withLock { defer { fired = true }; return !fired } }
}

/// Entries a scan reported, by path.
final class FoundEntries: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    func add(_ changes: [ScanChange]) { lock.withLock { for c in changes { entries[c.path.description] = c.new } } }
    func entry(_ path: String) -> Entry? { lock.withLock { entries[path] } }
    var paths: [String] { lock.withLock { entries.keys.sorted() } }
}
