import Foundation
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
@testable import SwunisonWire

/// Sample values used across the tests.
enum Sample {
    static let digest = Digest(w0: 0x0123456789ABCDEF, w1: .max)
    static let file = Entry(kind: .file, size: 12345, mtime: 1_700_000_000_123_456_789, mode: 0o644, uid: 1000,
                            gid: 1000, digest: digest,
                            fingerprint: Fingerprint(inode: 99, ctime: -5, mtime: 7, size: 12345))
    static let dir = Entry(kind: .directory, mtime: -1, mode: 0o755)
    static let link = Entry(kind: .symlink, linkTarget: [0x2E, 0x2E, 0x2F, 0xFF, 0x0A])
    static let untrusted = Entry(kind: .file, size: 0, fingerprint: .untrusted)

    static func path(_ s: String) -> RelativePath { try! RelativePath(validating: s) }

    static let oddPath = RelativePath(uncheckedBytes: [0x61, 0x2F, 0xFF, 0x0A, 0x62])

    static var scanRequest: ScanRequest {
        ScanRequest(paths: [path("a"), path("b/c")], ignore: ["Name *.tmp"], ignoreNot: ["Name keep.tmp"],
                    expectedSnapshot: 0xFEDC_BA98_7654_3210, fastcheck: false,
                    attributes: AttributeSelection(permissionMask: 0o777, owner: true, group: false, times: true),
                    cacheKey: "host:/root|other:/x")
    }

    /// One of every message type, with fields that exercise every encoding branch.
    static var messages: [Message] {
        let placement = Placement(path: oddPath, entry: file, replacing: nil, backup: true)
        let placement2 = Placement(path: path("d"), entry: dir, replacing: link, backup: false)
        return [
            .hello(Hello(versions: 1...3, features: ["notice", "watch"])),
            .fatal("bye"),
            .open(ReplicaSpec(root: "/srv/data", backupDirectory: "/srv/bak", maxBackups: 5)),
            .open(ReplicaSpec(root: "~/x", backupDirectory: nil, maxBackups: 0)),
            .scan(scanRequest),
            .scan(ScanRequest(cacheKey: "")),
            .scan({ var r = scanRequest; r.fastcheck = true; r.deferDigests = true; return r }()),
            .openFile(path: path("f"), expected: file, window: 4 << 20),
            .writeFile(placement, data: Array(0..<200).map { UInt8($0) }, isComplete: true),
            .writeFile(placement2, data: [], isComplete: false),
            .makeDirectory(placement2),
            .makeSymlink(Placement(path: path("l"), entry: link, replacing: untrusted, backup: false)),
            .remove(path: path("r"), expected: file, backup: true),
            .backup(path: path("b"), expected: file),
            .setAttributes(path: path("s"), expected: file, to: dir),
            .baselineBatch([BaselineUpdate(path: path("x"), entry: file), BaselineUpdate(path: oddPath, entry: nil)]),
            .commitBaseline(snapshot: .max),
            .shutdown,
            .readFiles([FileReadRequest(path: oddPath, expected: file), FileReadRequest(path: path("r/2"), expected: untrusted)]),
            .readFiles([]),
            .writeFiles([FileWrite(path: path("w"), entry: file, content: [9, 8, 7], replacing: nil, backup: false),
                         FileWrite(path: oddPath, entry: untrusted, content: [], replacing: link, backup: true)]),
            .fileContents([.success([1, 2, 3]), .success([]), .failure(.changedDuringSync(path("c"))),
                           .failure(.system(path: oddPath, operation: "read", errno: 5, message: "I/O error"))]),
            .writeResults([.success(file), .failure(.digestMismatch(path("m"))), .success(untrusted)]),
            .writeResults([]),
            .digestFiles([FileReadRequest(path: oddPath, expected: file), FileReadRequest(path: path("n"), expected: untrusted)]),
            .digests([.success(digest), .failure(.changedDuringSync(path("c"))), .success(Digest(w0: 0, w1: 1))]),
            .status,
            .statusReport([RequestStatus(requestID: 7, state: .working),
                           RequestStatus(requestID: .max, state: .waitingForData, bytes: 299_846),
                           RequestStatus(requestID: 1, state: .waitingForCredit, bytes: .max)]),
            .statusReport([]),
            .watch(WatchRequest(paths: [path("a"), oddPath], ignore: ["Name *.o"], ignoreNot: ["Name keep.o"],
                                watchLimit: 8192, holdWhileWritingNanoseconds: 30_000_000_000, cacheKey: "pair-b")),
            .watch(WatchRequest(cacheKey: "")),
            .changeNotices([.changed(path("d/e")), .changed(oddPath), .changed(.root), .overflow,
                            .unwatched([path("deep"), oddPath], needed: 11_201, available: 8_192),
                            .rootMissing("the root was deleted"), .rootBack]),
            .changeNotices([]),
            .writeChunk([1, 2, 3]),
            .writeEnd,
            .writeAbort("source failed"),
            .readCredit(.max),
            .cancel,
            .ok,
            .entry(link),
            .backupLocation("/srv/bak/f.1"),
            .backupLocation(nil),
            .failure(.changedDuringSync(path("c"))),
            .failure(.system(path: oddPath, operation: "openat", errno: 13, message: "Permission denied")),
            .failure(.digestMismatch(path("m"))),
            .failure(.badRoot(root: "/nope", message: "missing")),
            .failure(.connection("lost")),
            .failure(.other("other")),
            .scanBatch([ScanChange(path: path("a"), old: nil, new: file),
                        ScanChange(path: oddPath, old: dir, new: nil),
                        ScanChange(path: path("a/b"), old: link, new: untrusted)]),
            .scanBatch([]),
            .scanDone(ScanResult(isDelta: true, entryCount: 200_000,
                                 problems: [ScanProblem(path: path("p"), message: "Permission denied")])),
            .fileChunk(Array(repeating: 7, count: 70_000)),
            .fileEnd,
            .writeCredit(65536),
            .notice("watching 3 directories"),
        ]
    }

    /// Encoded frames for `messages`, with request ids 0, 1, 2, ...
    static func frames() throws -> [[UInt8]] {
        try messages.enumerated().map { try FrameEncoder().encode(Frame(UInt64($0.offset) * 1000, $0.element)) }
    }
}

/// Re-encodes a decoded frame: equal bytes mean every field survived the round trip.
func reencode(_ frame: Frame) throws -> [UInt8] { try FrameEncoder().encode(frame) }

/// A small Replica over a temp dir, for protocol tests (the real LocalReplica is tested by
/// its own module): it reports every entry, checks `replacing`/`expected` by kind and size
/// only, and records calls.
final class DirectoryReplica: Replica, @unchecked Sendable {
    let root: String
    let displayName: String
    private let lock = NSLock()
    private var _committed: [BaselineUpdate] = []
    private var _snapshot: UInt64?
    private var _closed = false
    private var backups = 0
    /// When set, `setAttributes` waits forever (to test broken connections).
    var hangOnSetAttributes = false

    init(root: String) { self.root = root; displayName = root }

    var committed: [BaselineUpdate] { lock.withLock { _committed } }
    private var _batches: [String] = []
    /// The batch requests served, as "read N" / "write N".
    var batches: [String] { lock.withLock { _batches } }

    func readFiles(_ requests: [FileReadRequest]) async throws -> [Result<[UInt8], ReplicaError>] {
        lock.withLock { _batches.append("read \(requests.count)") }
        return await readFilesOneByOne(requests)
    }

    func writeFiles(_ writes: [FileWrite]) async throws -> [Result<Entry, ReplicaError>] {
        lock.withLock { _batches.append("write \(writes.count)") }
        return await writeFilesOneByOne(writes)
    }
    var snapshot: UInt64? { lock.withLock { _snapshot } }
    var isClosed: Bool { lock.withLock { _closed } }

    func full(_ p: RelativePath) -> String { p.isRoot ? root : root + "/" + String(decoding: p.bytes, as: UTF8.self) }

    func entry(at p: RelativePath) -> Entry? {
        var st = stat()
        guard lstat(full(p), &st) == 0 else { return nil }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return Entry(kind: .directory, mtime: mtime, mode: st.st_mode & 0o7777)
        case S_IFLNK:
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: full(p))) ?? ""
            return Entry(kind: .symlink, linkTarget: Array(target.utf8))
        default:
            let data = FileManager.default.contents(atPath: full(p)) ?? Data()
            return Entry(kind: .file, size: Int64(st.st_size), mtime: mtime, mode: st.st_mode & 0o7777,
                         digest: XXH3Hasher.digest([UInt8](data)))
        }
    }

    private func check(_ p: RelativePath, _ expected: Entry?) throws {
        let now = entry(at: p)
        if now?.kind != expected?.kind || (now?.kind == .file && now?.size != expected?.size) {
            throw ReplicaError.changedDuringSync(p)
        }
    }

    func scan(_ request: ScanRequest, sink: @escaping @Sendable ([ScanChange]) throws -> Void) async throws -> ScanResult {
        var all: [RelativePath] = []
        func walk(_ p: RelativePath) {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: full(p))) ?? []).sorted {
                Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8))
            }
            for n in names {
                let child = p.appending(try! PathComponent(validating: n))
                all.append(child)
                if entry(at: child)?.kind == .directory { walk(child) }
            }
        }
        walk(.root)
        var batch: [ScanChange] = []
        for p in all {
            batch.append(ScanChange(path: p, old: nil, new: entry(at: p)))
            if batch.count == 100 { try sink(batch); batch = [] }
        }
        if !batch.isEmpty { try sink(batch) }
        return ScanResult(isDelta: false, entryCount: all.count, problems: [])
    }

    func openFile(_ path: RelativePath, expected: Entry) async throws -> any FileReader {
        try check(path, expected)
        let data = [UInt8](FileManager.default.contents(atPath: full(path)) ?? Data())
        return ArrayReader(data, chunk: 1 << 20)
    }

    func writeFile(_ path: RelativePath, entry: Entry, from source: any FileReader, replacing: Entry?,
                   backup: Bool) async throws -> Entry {
        try check(path, replacing)
        var data: [UInt8] = []
        while let chunk = try await source.read() { data += chunk }
        if let d = entry.digest, XXH3Hasher.digest(data) != d { throw ReplicaError.digestMismatch(path) }
        guard SwunisonWireTests.writeFile(full(path), data) else {
            throw ReplicaError.system(path: path, operation: "create", errno: EIO, message: "create failed")
        }
        return self.entry(at: path)!
    }

    func makeDirectory(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try check(path, replacing)
        try FileManager.default.createDirectory(atPath: full(path), withIntermediateDirectories: false)
        return self.entry(at: path)!
    }

    func makeSymlink(_ path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) async throws -> Entry {
        try check(path, replacing)
        try FileManager.default.createSymbolicLink(atPath: full(path),
                                                   withDestinationPath: String(decoding: entry.linkTarget ?? [], as: UTF8.self))
        return self.entry(at: path)!
    }

    func remove(_ path: RelativePath, expected: Entry, backup: Bool) async throws -> String? {
        try check(path, expected)
        var where_: String?
        if backup { where_ = try await self.backup(path, expected: expected) }
        try FileManager.default.removeItem(atPath: full(path))
        return where_
    }

    func backup(_ path: RelativePath, expected: Entry) async throws -> String {
        try check(path, expected)
        let target = full(path) + ".bak" + String(lock.withLock { backups += 1; return backups })
        try FileManager.default.copyItem(atPath: full(path), toPath: target)
        return target
    }

    func setAttributes(_ path: RelativePath, expected: Entry, to entry: Entry) async throws -> Entry {
        if hangOnSetAttributes {
            try await Task.sleep(for: .seconds(3600))
        }
        try check(path, expected)
        chmod(full(path), mode_t(entry.mode))
        return self.entry(at: path)!
    }

    func commitBaseline(_ updates: [BaselineUpdate], snapshot: UInt64) async throws {
        lock.withLock { _committed = updates; _snapshot = snapshot }
    }

    func close() async { lock.withLock { _closed = true } }
}

/// A FileReader over an array, in chunks.
final class ArrayReader: FileReader, @unchecked Sendable {
    private let data: [UInt8]
    private let chunk: Int
    private var offset = 0
    private let lock = NSLock()
    /// When set, reading past this offset throws (a source failing mid-transfer).
    var failAt: Int?
    /// When set, every read after the first waits this long first (a slow disk).
    var pauseAfterFirstRead: Duration?

    init(_ data: [UInt8], chunk: Int = 100_000) { self.data = data; self.chunk = chunk }

    func read() async throws -> [UInt8]? {
        if let pause = pauseAfterFirstRead, lock.withLock({ offset > 0 }) { try await Task.sleep(for: pause) }
        return try lock.withLock {
            if let f = failAt, offset >= f { throw ReplicaError.other("source broke") }
            guard offset < data.count else { return nil }
            let end = min(offset + chunk, data.count)
            defer { offset = end }
            return Array(data[offset..<end])
        }
    }

    func close() async {}
}

/// Reads a whole FileReader.
func readAll(_ r: any FileReader) async throws -> [UInt8] {
    var out: [UInt8] = []
    while let c = try await r.read() { out += c }
    return out
}

/// Pseudo-random bytes (deterministic).
func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var g = SeededGenerator(seed: seed)
    var out = [UInt8](repeating: 0, count: n)
    out.withUnsafeMutableBytes { raw in
        var i = 0
        while i < n {
            var word = g.next()
            for _ in 0..<8 where i < n { raw[i] = UInt8(truncatingIfNeeded: word); word >>= 8; i += 1 }
        }
    }
    return out
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E3779B97F4A7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

/// Writes a file with plain system calls (FileManager's atomic write is slow here).
@discardableResult
func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}
