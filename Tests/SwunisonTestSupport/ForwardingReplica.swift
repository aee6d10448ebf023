import SwunisonCore
import SwunisonModel

/// A replica that forwards every call to a real one; tests subclass it and override the calls
/// they watch or break.
class ForwardingReplica: Replica, @unchecked Sendable {
    let inner: any Replica

    init(_ inner: any Replica) { self.inner = inner }

    var displayName: String { inner.displayName }
    func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        try await inner.scan(request, sink: sink)
    }
    func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        try await inner.readFiles(requests)
    }
    func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        try await inner.writeFiles(writes)
    }
    func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        try await inner.openFile(path, expected: expected)
    }
    func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                   backup: Bool) async throws -> Entry {
        try await inner.writeFile(path, entry: entry, from: source, replacing: replacing, backup: backup)
    }
    func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await inner.makeDirectory(path, entry: entry, replacing: replacing, backup: backup)
    }
    func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try await inner.makeSymlink(path, entry: entry, replacing: replacing, backup: backup)
    }
    func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        try await inner.remove(path, expected: expected, backup: backup)
    }
    func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        try await inner.backup(path, expected: expected)
    }
    func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        try await inner.setAttributes(path, expected: expected, to: entry)
    }
    func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        try await inner.commitBaseline(updates, snapshot: snapshot)
    }
    func close() async { await inner.close() }
}
