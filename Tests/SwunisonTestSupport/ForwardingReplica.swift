import SwunisonReplica
import SwunisonModel

/// A replica that forwards every call to a real one; tests subclass it and override the calls
/// they watch or break.
open class ForwardingReplica: Replica, @unchecked Sendable {
    public let inner: any Replica

    public init(_ inner: any Replica) { self.inner = inner }

    open var displayName: String { inner.displayName }
    open func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        try await inner.scan(request, sink: sink)
    }
    open func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        try await inner.readFiles(requests)
    }
    open func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        try await inner.writeFiles(writes)
    }
    open func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        try await inner.openFile(path, expected: expected)
    }
    open func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                   backup: Bool) async throws -> Entry {
        try await inner.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
    }
    open func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await inner.makeDirectory(path, entry: entry, replacing: replacing, backup: backup)
    }
    open func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await inner.makeSymlink(path, entry: entry, replacing: replacing, backup: backup)
    }
    open func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        try await inner.remove(path, expected: expected, backup: backup)
    }
    open func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        try await inner.backup(path, expected: expected)
    }
    open func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        try await inner.setAttributes(path, expected: expected, to: entry)
    }
    open func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        try await inner.commitBaseline(updates, snapshot: snapshot)
    }
    open func watch(_ request: WatchRequest) async throws -> any ChangeSource { try await inner.watch(request) }
    open func close() async { await inner.close() }
}
