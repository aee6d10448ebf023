import Synchronization
import SwunisonReplica
import SwunisonModel

/// A replica reached over a connection that may break (a distant host over SSH): when a call
/// fails with ``ReplicaError/connection(_:)``, the next call reconnects first, with backoff.
///
/// The failed call itself is not repeated here: Propagate reports its path as a retryable
/// failure, nothing half-done is visible (Invariant 1), and Session's next retry round rescans
/// and redoes it over the new connection.
public final class ReconnectingReplica: Replica, @unchecked Sendable {
    public let displayName: String
    private let connect: @Sendable () async throws -> any Replica
    private let maxAttempts: Int
    private let initialDelay: Duration
    private let notice: @Sendable (String) -> Void
    /// The live connection; nil after one broke, until the next call reconnects.
    private let current: Mutex<(any Replica)?>
    /// The first connection while it is being made (see ``init(displayName:connecting:maxAttempts:initialDelay:notice:connect:)``).
    private let firstConnection: Mutex<Task<any Replica, any Error>?>
    /// The reconnection under way, which every call that finds no live connection waits for:
    /// hundreds of operations are in flight when a link drops, and each would otherwise open a
    /// connection (and start a server) of its own.
    private let reconnection = Mutex<Task<any Replica, any Error>?>(nil)

    /// - Parameters:
    ///   - initial: the connection already made (so start-up errors surface before any work).
    ///   - connect: makes a new connection.
    ///   - maxAttempts: reconnection attempts before giving up on a call.
    ///   - initialDelay: first backoff delay; doubled after each failed attempt (at most 30 s).
    public convenience init(displayName: String, initial: any Replica, maxAttempts: Int = 4,
                            initialDelay: Duration = .seconds(1), notice: @escaping @Sendable (String) -> Void = { _ in },
                            connect: @escaping @Sendable () async throws -> any Replica) {
        self.init(displayName: displayName, live: initial, first: nil, maxAttempts: maxAttempts,
                  initialDelay: initialDelay, notice: notice, connect: connect)
    }

    /// Starts with the first connection still being made by `first`: calls wait for it. Why: a
    /// batch run connects while the other replica is scanned (the handshake and the server's
    /// start cost hundreds of milliseconds, more over a long round trip). A failure of `first` is
    /// not retried: every call throws it as ``FirstConnectionFailure``, as if it had happened up front.
    public convenience init(displayName: String, connecting first: Task<any Replica, any Error>, maxAttempts: Int = 4,
                            initialDelay: Duration = .seconds(1), notice: @escaping @Sendable (String) -> Void = { _ in },
                            connect: @escaping @Sendable () async throws -> any Replica) {
        self.init(displayName: displayName, live: nil, first: first, maxAttempts: maxAttempts,
                  initialDelay: initialDelay, notice: notice, connect: connect)
    }

    private init(displayName: String, live: (any Replica)?, first: Task<any Replica, any Error>?, maxAttempts: Int,
                 initialDelay: Duration, notice: @escaping @Sendable (String) -> Void,
                 connect: @escaping @Sendable () async throws -> any Replica) {
        self.displayName = displayName
        self.current = Mutex(live)
        self.firstConnection = Mutex(first)
        self.connect = connect
        self.maxAttempts = max(1, maxAttempts)
        self.initialDelay = initialDelay
        self.notice = notice
    }

    /// The live connection, reconnecting if the last one broke.
    private func replica() async throws -> any Replica {
        if let live = current.withLock({ $0 }) { return live }
        if let first = firstConnection.withLock({ $0 }) {
            let made: any Replica
            do {
                made = try await first.value
            } catch {
                throw FirstConnectionFailure(error)
            }
            // The first caller to get here installs it; the others find it installed.
            return current.withLock { live in
                if firstConnection.withLock({ $0 }) != nil {
                    firstConnection.withLock { $0 = nil }
                    live = made
                }
                return live ?? made
            }
        }
        let reconnecting = reconnection.withLock { pending in
            if let pending { return pending }
            let started = Task { [self] () async throws -> any Replica in
                defer { reconnection.withLock { $0 = nil } }
                return try await reconnect()
            }
            pending = started
            return started
        }
        return try await reconnecting.value
    }

    /// Connects again, with backoff; installs the new connection.
    private func reconnect() async throws -> any Replica {
        var delay = initialDelay
        var lastError: Error = ReplicaError.connection("\(displayName): not connected")
        for attempt in 1...maxAttempts {
            if attempt > 1 {
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
            do {
                notice("reconnecting to \(displayName) (attempt \(attempt) of \(maxAttempts))")
                let fresh = try await connect()
                current.withLock { $0 = fresh }
                return fresh
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Runs `body` on the live connection; a connection failure drops it for the next call.
    private func using<T>(_ body: (any Replica) async throws -> T) async throws -> T {
        let live = try await replica()
        do {
            return try await body(live)
        } catch let error as ReplicaError {
            if case .connection = error {
                current.withLock { if $0 === live { $0 = nil } }
                await live.close()
            }
            throw error
        }
    }

    /// Per-file results of a batch: a lost connection among them ends the connection as a
    /// thrown one does (``using(_:)``), so the next call reconnects.
    private func droppingLostConnection<T>(_ live: any Replica, _ results: [Result<T, ReplicaError>]) async
        -> [Result<T, ReplicaError>] {
        let lost = results.contains { if case .failure(.connection) = $0 { true } else { false } }
        if lost {
            current.withLock { if $0 === live { $0 = nil } }
            await live.close()
        }
        return results
    }

    public func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        try await using { try await $0.scan(request, sink: sink) }
    }
    public func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        try await using { try await $0.openFile(path, expected: expected) }
    }
    public func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                          backup: Bool) async throws -> Entry {
        try await using { try await $0.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup) }
    }
    public func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        try await using { live in
            let results = try await live.readFiles(requests)
            return await droppingLostConnection(live, results)
        }
    }
    public func digestFiles(_ requests: [FileReadRequest]) async throws -> [Result<Digest, ReplicaError>] {
        try await using { live in
            let results = try await live.digestFiles(requests)
            return await droppingLostConnection(live, results)
        }
    }
    public func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        try await using { live in
            let results = try await live.writeFiles(writes)
            return await droppingLostConnection(live, results)
        }
    }
    public func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await using { try await $0.makeDirectory(path, entry: entry, replacing: replacing, backup: backup) }
    }
    public func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await using { try await $0.makeSymlink(path, entry: entry, replacing: replacing, backup: backup) }
    }
    public func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        try await using { try await $0.remove(path, expected: expected, backup: backup) }
    }
    public func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        try await using { try await $0.backup(path, expected: expected) }
    }
    public func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        try await using { try await $0.setAttributes(path, expected: expected, to: entry) }
    }
    public func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        try await using { try await $0.commitBaseline(updates, snapshot: snapshot) }
    }
    public func watch(_ request: WatchRequest) async throws -> any ChangeSource {
        try await using { try await $0.watch(request) }
    }

    /// Closes the live connection, if any, so that the next call connects anew: what watch mode
    /// does after a connection stalled (a batch run stops instead, and keeps it broken).
    public func dropConnection() async {
        let live = current.withLock { held -> (any Replica)? in defer { held = nil }; return held }
        await live?.close()
    }

    public func close() async {
        // A reconnection under way installs what it makes; it is closed below.
        if let pending = reconnection.withLock({ $0 }) { _ = try? await pending.value }
        if let first = firstConnection.withLock({ held in defer { held = nil }; return held }),
           let made = try? await first.value {
            await made.close()
        }
        let live = current.withLock { held -> (any Replica)? in defer { held = nil }; return held }
        await live?.close()
    }
}
