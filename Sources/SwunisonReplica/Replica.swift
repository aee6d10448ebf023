import Glibc
import SwunisonFS
import SwunisonModel

/// The one interface to a copy of the tree.
///
/// `LocalReplica` implements it with system calls beneath a root directory; `RemoteReplica`
/// (SwunisonWire) sends the same requests to `swunison server`, which serves them with its own
/// `LocalReplica`. Reconcile and Propagate only ever see this protocol, so the engine is tested
/// on two local directories and behaves the same over SSH.
///
/// Contract:
/// - Paths are ``RelativePath``s, already validated; an implementation never touches anything
///   outside its root and never follows a symlink inside it (Invariant 5).
/// - Every mutating call names the entry it expects to find (`replacing:` / `expected:`). If the
///   disk no longer matches (kind, size, mtime, inode, digest where known) the call throws
///   ``ReplicaError/changedDuringSync(_:)`` and changes nothing (Invariant 2).
/// - Calls may be issued concurrently; an implementation serialises what it must. Calls for a
///   path are issued only after the calls for its parent directory have completed.
/// - After any error the replica stays usable for other paths.
public protocol Replica: AnyObject, Sendable {
    /// How to name this replica to a user: the root as written in the profile.
    var displayName: String { get }

    /// Scans the replica and reports what differs from its baseline.
    ///
    /// When the replica's stored snapshot id equals `request.expectedSnapshot`, the baseline is
    /// the replica's scan cache and only changed paths are reported (`result.isDelta == true`).
    /// Otherwise every entry present is reported with `old == nil` and the caller compares with
    /// its archive (`isDelta == false`). Batches arrive in walk order.
    /// - Parameter sink: called with each batch of changes, in order, on an arbitrary thread.
    func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult

    /// Opens a file for reading after checking it still matches `expected` (Invariant 2).
    func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader

    /// Writes a file atomically (Invariant 1): temp file in the destination directory, content
    /// checked against `entry.digest`, fsync, attributes, then rename over the target, which must
    /// still match `replacing` (nil = must be absent). A replaced file is backed up first when
    /// `backup` is true. Returns the entry now on disk, with its fingerprint.
    func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader,
                   replacing: Entry?, backup: Bool) async throws -> Entry

    /// Reads small files whole, each checked first against what the scan saw, as
    /// ``openFile(_:expected:)`` does (Invariant 2). One result per request, in order; one file's
    /// failure does not stop the others. Throws only when the replica cannot be reached at all.
    ///
    /// A first sync of many small files spends most of its time per file, not per byte: a
    /// batch costs one hop to an I/O thread (one round trip over the wire) instead of one per file.
    func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>]

    /// The content digests of files, each checked first against what the scan saw, as
    /// ``openFile(_:expected:)`` does, and unchanged while it was read. One result per request,
    /// in order. For a first sync whose scans deferred digests (``ScanRequest/deferDigests``):
    /// paths both replicas have are compared by content before reconciliation.
    func digestFiles(_ requests: [FileReadRequest]) async throws -> [Result<Digest, ReplicaError>]

    /// Writes small files whose content is already in memory, each exactly as ``writeFile(_:entry:from:replacing:backup:)``
    /// would (Invariant 1: temporary file, digest check, data durable before the rename;
    /// Invariant 2: `replacing` checked just before it). One result per write, in order; one
    /// file's failure does not stop the others. Throws only when the replica cannot be reached.
    func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>]

    /// Creates a directory (or keeps an existing one) with `entry`'s attributes.
    func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry

    /// Creates a symlink atomically (temp name, then rename), replacing `replacing`.
    func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry

    /// Removes a file, symlink or empty directory that must still match `expected`, backing a
    /// file up first when `backup` is true. Returns where the backup went, if one was made.
    @discardableResult
    func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String?

    /// Keeps a copy of the current version of a file in the backup location (conflict losers:
    /// Invariant 3) without changing it. Returns where the copy went.
    func backup(_ path: RelativePath, expected: Entry) async throws -> String

    /// Sets the selected attributes (mode, mtime, owner) without touching content.
    func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry

    /// Records the outcome of a run in the replica's scan cache: each path's new baseline entry
    /// (nil = gone), then the new snapshot id. Called once, after propagation.
    func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws

    /// Starts watching the replica for changes (watch mode). The watches are in place when this
    /// returns, so a scan started afterwards misses nothing that happens from then on. Changes
    /// this replica object makes itself are not reported to this watch (no ping-pong); changes
    /// anyone else makes are, even to a path it just wrote. Replicas that cannot watch throw
    /// ``WatchUnavailable``.
    func watch(_ request: WatchRequest) async throws -> any ChangeSource

    /// Ends the session with the replica (flushes, closes connections).
    func close() async
}

/// A replica that can apply the first batches of a large ``Replica/commitBaseline(_:snapshot:)``
/// while the rest is still arriving (``LocalReplica``, which `swunison server` serves): the
/// server writes its cache during the transfer instead of after it. Nothing is committed
/// before `commitBaseline` itself.
public protocol StagesBaselineUpdates: Replica {
    /// Applies `updates`, in order, inside the coming commit's open transaction. Blocking.
    func stageBaseline(_ updates: [BaselineUpdate]) throws
}

/// A file to read whole in a batch (``Replica/readFiles(_:)``).
public struct FileReadRequest: Sendable, Hashable {
    public var path: RelativePath
    /// What the file must still be (kind, size, mtime, fingerprint when trusted).
    public var expected: Entry
    public init(path: RelativePath, expected: Entry) { self.path = path; self.expected = expected }
}

/// A small file to write in a batch (``Replica/writeFiles(_:)``): the arguments of
/// ``Replica/writeFile(_:entry:from:replacing:backup:)`` with the content itself as the source.
public struct FileWrite: Sendable {
    public var path: RelativePath
    /// The new file: its size and digest are checked, its attributes applied.
    public var entry: Entry
    public var content: [UInt8]
    /// What the target must still be; nil = it must be absent.
    public var replacing: Entry?
    /// Keep what is replaced in the backup location.
    public var backup: Bool

    public init(path: RelativePath, entry: Entry, content: [UInt8], replacing: Entry?, backup: Bool) {
        self.path = path; self.entry = entry; self.content = content; self.replacing = replacing; self.backup = backup
    }
}

extension Replica {
    public func watch(_ request: WatchRequest) async throws -> any ChangeSource {
        throw WatchUnavailable("\(displayName) cannot be watched")
    }

    public func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        await readFilesOneByOne(requests)
    }

    public func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        await writeFilesOneByOne(writes)
    }

    /// Reads each file through ``openFile(_:expected:)`` and hashes it: for replicas with no
    /// cheaper way (the content crosses to this process).
    public func digestFiles(_ requests: [FileReadRequest]) async throws -> [Result<Digest, ReplicaError>] {
        await digestFilesByReading(requests)
    }

    /// ``digestFiles(_:)`` through ``openFile(_:expected:)``, all at once. Only the size read is
    /// checked afterwards, not the file's status, so a file rewritten while it was read may get
    /// a digest of mixed bytes; what is then done with it still passes Invariant 2's checks
    /// before anything is overwritten. LocalReplica (and so `swunison server`) checks the status.
    public func digestFilesByReading(_ requests: [FileReadRequest]) async -> [Result<Digest, ReplicaError>] {
        await forEachConcurrently(requests.count) { index in
            let request = requests[index]
            let reader = try await self.openFile(request.path, expected: request.expected)
            let hasher = XXH3Hasher()
            var size: Int64 = 0
            do {
                while let chunk = try await reader.read() { hasher.update(chunk); size += Int64(chunk.count) }
            } catch {
                await reader.close()
                throw error
            }
            await reader.close()
            guard size == request.expected.size else { throw ReplicaError.changedDuringSync(request.path) }
            return hasher.finalize()
        }
    }

    /// Reads each file through ``openFile(_:expected:)``, all at once: for replicas with no
    /// cheaper way.
    public func readFilesOneByOne(_ requests: [FileReadRequest]) async -> [Result<[UInt8], ReplicaError>] {
        await forEachConcurrently(requests.count) { index in
            let request = requests[index]
            let reader = try await self.openFile(request.path, expected: request.expected)
            var content: [UInt8] = []
            do {
                while let chunk = try await reader.read() { content += chunk }
            } catch {
                await reader.close()
                throw error
            }
            await reader.close()
            return content
        }
    }

    /// Writes each file through ``writeFile(_:entry:from:replacing:backup:)``, all at once: for
    /// replicas with no cheaper way.
    public func writeFilesOneByOne(_ writes: [FileWrite]) async -> [Result<Entry, ReplicaError>] {
        await forEachConcurrently(writes.count) { index in
            let write = writes[index]
            let entry = try await self.writeFile(write.path, entry: write.entry, from: ContentReader(write.content),
                                            replacing: write.replacing, backup: write.backup)
            return entry
        }
    }
}

/// Runs `body` for `0..<count` concurrently; the results in index order, errors as ``ReplicaError``s.
func forEachConcurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) async throws -> T) async
    -> [Result<T, ReplicaError>] {
    await withTaskGroup(of: (Int, Result<T, ReplicaError>).self) { group in
        for index in 0..<count {
            group.addTask {
                do {
                    let value = try await body(index)
                    return (index, .success(value))
                } catch {
                    return (index, .failure(ReplicaError(error)))
                }
            }
        }
        var results = [Result<T, ReplicaError>?](repeating: nil, count: count)
        for await (index, result) in group { results[index] = result }
        return results.map { $0! }
    }
}

/// Content already in memory, as a ``FileReader``.
public final class ContentReader: FileReader, @unchecked Sendable {
    private var content: [UInt8]?
    public init(_ content: [UInt8]) { self.content = content }
    public func read() async throws -> [UInt8]? {
        defer { content = nil }
        return content?.isEmpty == true ? nil : content
    }
    public func close() async { content = nil }
}

/// A stream of file content, read in order.
public protocol FileReader: AnyObject, Sendable {
    /// The next chunk (at most about 1 MiB), or nil at the end of the file.
    func read() async throws -> [UInt8]?
    /// Releases the source (closes the file or cancels the transfer).
    func close() async
}

/// What a scan should cover and how.
public struct ScanRequest: Sendable {
    /// Subtrees to scan (the profile's `path`); empty means the whole root.
    public var paths: [RelativePath]
    /// Ignore rules, as data so they can cross the wire: `ignore` and `ignorenot` patterns.
    public var ignore: [String]
    public var ignoreNot: [String]
    /// The snapshot id the archive remembers for this replica; nil when there is none.
    public var expectedSnapshot: UInt64?
    /// Trust a cached digest when size, mtime, ctime and inode are unchanged.
    public var fastcheck: Bool
    /// Which attributes count as a change.
    public var attributes: AttributeSelection
    /// Identifies the root pair, so that one root synced with two peers keeps two caches.
    public var cacheKey: String
    /// Leave files the cache cannot vouch for unhashed (``ScanOptions/deferDigests``): only for a
    /// first sync, where no scanned file is compared with an archived digest.
    public var deferDigests: Bool = false

    public init(paths: [RelativePath] = [], ignore: [String] = [], ignoreNot: [String] = [],
                expectedSnapshot: UInt64? = nil, fastcheck: Bool = true,
                attributes: AttributeSelection = AttributeSelection(), cacheKey: String) {
        self.paths = paths; self.ignore = ignore; self.ignoreNot = ignoreNot
        self.expectedSnapshot = expectedSnapshot; self.fastcheck = fastcheck
        self.attributes = attributes; self.cacheKey = cacheKey
    }
}

/// How a scan went.
public struct ScanResult: Sendable {
    /// True when changes are relative to the matching snapshot; false when every entry was sent.
    public var isDelta: Bool
    /// Entries present on the replica (files, directories, symlinks) within the scanned paths.
    public var entryCount: Int
    /// Paths that could not be read; the scan went on without them. Their baseline stays as it was.
    public var problems: [ScanProblem]

    public init(isDelta: Bool, entryCount: Int, problems: [ScanProblem]) {
        self.isDelta = isDelta; self.entryCount = entryCount; self.problems = problems
    }
}


/// A new baseline row for one path after a run: the archived entry (nil = absent) with this
/// replica's fingerprint when known.
public struct BaselineUpdate: Sendable, Hashable {
    public var path: RelativePath
    public var entry: Entry?
    public init(path: RelativePath, entry: Entry?) { self.path = path; self.entry = entry }
}

/// A remote replica's first connection failed (host key, authentication, a missing server,
/// a protocol mismatch): the run stops with `underlying` as it is, whichever call met it first.
/// (Batch runs connect while the other replica is scanned, so the error may surface from a scan.)
public struct FirstConnectionFailure: Error, Sendable, CustomStringConvertible {
    public let underlying: any Error
    public init(_ underlying: any Error) { self.underlying = underlying }
    public var description: String { "\(underlying)" }
}

/// Why a replica operation failed. Per-path failures are reported in the run summary, not fatal.
public enum ReplicaError: Error, Sendable, CustomStringConvertible {
    /// The path no longer matches what the scan saw; nothing was changed (Invariant 2).
    case changedDuringSync(RelativePath)
    /// A system call failed on a path.
    case system(path: RelativePath, operation: String, errno: Int32, message: String)
    /// The copied content did not match the expected digest; the temp file was discarded.
    case digestMismatch(RelativePath)
    /// The root itself is missing, not a directory, or unreadable.
    case badRoot(root: String, message: String)
    /// The connection to a remote replica failed.
    case connection(String)
    /// Anything else, described.
    case other(String)
    /// A remote replica's connection made no progress for the stall timeout (`stalltimeout`):
    /// the message says which requests were waiting, and on which side. Not retried in the run,
    /// and the connection is not reopened: a stall is a bug or a host that stopped answering,
    /// and trying again would only wait as long again. (On the wire, if ever, it is `other`.)
    case stalled(String)

    public var description: String {
        switch self {
        case .changedDuringSync(let p): return "\(p): changed during sync, skipped (will be retried)"
        case let .system(p, op, _, msg): return "\(p.isRoot ? "." : p.description): \(op) failed: \(msg)"
        case .digestMismatch(let p): return "\(p): content changed while being copied, skipped"
        case let .badRoot(root, msg): return "root \(root): \(msg)"
        case .connection(let msg): return msg
        case .other(let msg), .stalled(let msg): return msg
        }
    }

    /// `error` as a ReplicaError (any other error is described).
    public init(_ error: any Error) {
        self = (error as? ReplicaError) ?? .other(String(describing: error))
    }

    /// Whether a file system ran out of space (or quota): worth one more try once concurrent
    /// copies, and the temporary files they held, are gone.
    public var isOutOfSpace: Bool {
        guard case .system(_, _, let errno, _) = self else { return false }
        return errno == ENOSPC || errno == EDQUOT
    }

    /// Whether a remote replica's connection broke (not a stall: that one is not reopened).
    public var isLostConnection: Bool {
        if case .connection = self { return true }
        return false
    }

    /// Whether the failure is transient and the path is worth retrying in this run.
    public var isRetryable: Bool {
        switch self {
        case .changedDuringSync, .digestMismatch, .connection: return true
        default: return false
        }
    }
}
