import SwunisonReplica
import SwunisonModel

/// The first message each way: who we are and which protocol versions we speak.
public struct Hello: Sendable, Equatable {
    /// The eight bytes every hello starts with.
    public static let magic: [UInt8] = Array("SWUNISON".utf8)

    public var versions: ClosedRange<UInt16>
    /// Optional capabilities, by name; a side uses one only when both list it.
    public var features: [String]

    public init(versions: ClosedRange<UInt16>, features: [String]) {
        self.versions = versions; self.features = features
    }
}

/// Which replica the server should serve: the first request after the hellos.
public struct ReplicaSpec: Sendable, Equatable {
    /// The root directory on the server's host, as written in the profile.
    public var root: String
    /// Where the server keeps backups; nil = its default location.
    public var backupDirectory: String?
    /// How many generations of backups to keep (`maxbackups`).
    public var maxBackups: Int
    /// Which attributes the server sets when it writes (perms, owner, group, times).
    public var attributes: AttributeSelection
    /// The scan cache this client uses on the server (one per root pair); lets a server started
    /// after a lost connection commit the run without scanning again.
    public var cacheKey: String?

    public init(root: String, backupDirectory: String? = nil, maxBackups: Int = 2,
                attributes: AttributeSelection = AttributeSelection(), cacheKey: String? = nil) {
        self.root = root; self.backupDirectory = backupDirectory; self.maxBackups = maxBackups
        self.attributes = attributes; self.cacheKey = cacheKey
    }
}

/// What a mutating request carries besides its kind: the path, the wanted entry, what it must
/// replace (Invariant 2) and whether to keep a backup of what it replaces.
public struct Placement: Sendable, Hashable {
    public var path: RelativePath
    public var entry: Entry
    public var replacing: Entry?
    public var backup: Bool

    public init(path: RelativePath, entry: Entry, replacing: Entry?, backup: Bool) {
        self.path = path; self.entry = entry; self.replacing = replacing; self.backup = backup
    }
}

/// What the server is doing with one request (a line of a ``Message/statusReport(_:)``).
public struct RequestStatus: Sendable, Equatable {
    public enum State: UInt8, Sendable {
        /// Its task runs: reading or writing files, hashing, scanning, committing.
        case working = 1
        /// A streamed write waits for more of its content from the client.
        case waitingForData = 2
        /// A streamed read waits for the client to take what was sent (read credit).
        case waitingForCredit = 3
    }

    public var requestID: UInt64
    public var state: State
    /// Content bytes received so far (a streamed write) or sent (a streamed read); else 0.
    public var bytes: UInt64

    public init(requestID: UInt64, state: State, bytes: UInt64 = 0) {
        self.requestID = requestID; self.state = state; self.bytes = bytes
    }
}

/// Every message of protocol version 2, in both directions. PROTOCOL.md gives each one's
/// type byte, direction and fields; the type byte is ``Message/type``.
public enum Message: Sendable {
    // Handshake and control (either direction).
    case hello(Hello)
    /// The sender is closing the connection because of `reason` (request id 0).
    case fatal(String)

    // Requests, client to server.
    case open(ReplicaSpec)
    case scan(ScanRequest)
    /// Opens a file and streams it back; `window` is how many bytes may be in flight unacknowledged.
    case openFile(path: RelativePath, expected: Entry, window: UInt32)
    /// Starts a file write; `data` is the first content, `isComplete` says it is all of it.
    case writeFile(Placement, data: [UInt8], isComplete: Bool)
    case makeDirectory(Placement)
    case makeSymlink(Placement)
    case remove(path: RelativePath, expected: Entry, backup: Bool)
    case backup(path: RelativePath, expected: Entry)
    case setAttributes(path: RelativePath, expected: Entry, to: Entry)
    /// Part of a commitBaseline request's updates; any number precede the ``commitBaseline(snapshot:)``.
    case baselineBatch([BaselineUpdate])
    case commitBaseline(snapshot: UInt64)
    case shutdown
    /// Feature `batch-files`: reads small files whole; the reply is ``fileContents(_:)``.
    case readFiles([FileReadRequest])
    /// Feature `batch-files`: writes small files given whole; the reply is ``writeResults(_:)``.
    case writeFiles([FileWrite])
    /// Feature `digest-files`: the digests of files (checked against what the scan saw); the
    /// reply is ``digests(_:)``.
    case digestFiles([FileReadRequest])
    /// Feature `status`: what the server is doing with each request it has in hand; the reply
    /// is ``statusReport(_:)``. The client's stall watchdog asks when nothing has moved for a while.
    case status
    /// Feature `watch`: start watching the replica; answered by `ok` once the watches are in
    /// place, then by ``changeNotices(_:)`` whenever something changed, until `cancel`.
    case watch(WatchRequest)

    // Stream control, client to server (request id of the stream).
    case writeChunk([UInt8])
    case writeEnd
    case writeAbort(String)
    case readCredit(UInt32)
    case cancel

    // Replies and server pushes.
    case ok
    case entry(Entry)
    case backupLocation(String?)
    case failure(ReplicaError)
    case scanBatch([ScanChange])
    case scanDone(ScanResult)
    case fileChunk([UInt8])
    case fileEnd
    case writeCredit(UInt32)
    /// One result per file of a ``readFiles(_:)`` request, in order.
    case fileContents([Result<[UInt8], ReplicaError>])
    /// One result per file of a ``writeFiles(_:)`` request, in order.
    case writeResults([Result<Entry, ReplicaError>])
    /// One result per file of a ``digestFiles(_:)`` request, in order.
    case digests([Result<Digest, ReplicaError>])
    /// Unsolicited, request id 0: a line for the client's log.
    case notice(String)
    /// Feature `status`: one line per request the server has in hand, in request order.
    case statusReport([RequestStatus])
    /// Feature `watch`: what the watch saw since its last notices (the watch request's id).
    case changeNotices([ChangeNotice])

    /// The type byte that starts the frame payload.
    public var type: UInt8 {
        switch self {
        case .hello: return 0x01
        case .fatal: return 0x02
        case .open: return 0x10
        case .scan: return 0x11
        case .openFile: return 0x12
        case .writeFile: return 0x13
        case .makeDirectory: return 0x14
        case .makeSymlink: return 0x15
        case .remove: return 0x16
        case .backup: return 0x17
        case .setAttributes: return 0x18
        case .baselineBatch: return 0x19
        case .commitBaseline: return 0x1A
        case .shutdown: return 0x1B
        case .readFiles: return 0x1C
        case .writeFiles: return 0x1D
        case .digestFiles: return 0x1E
        case .status: return 0x1F
        case .watch: return 0x30
        case .writeChunk: return 0x20
        case .writeEnd: return 0x21
        case .writeAbort: return 0x22
        case .readCredit: return 0x23
        case .cancel: return 0x24
        case .ok: return 0x40
        case .entry: return 0x41
        case .backupLocation: return 0x42
        case .failure: return 0x43
        case .scanBatch: return 0x44
        case .scanDone: return 0x45
        case .fileChunk: return 0x46
        case .fileEnd: return 0x47
        case .writeCredit: return 0x48
        case .notice: return 0x49
        case .fileContents: return 0x4A
        case .writeResults: return 0x4B
        case .digests: return 0x4C
        case .statusReport: return 0x4D
        case .changeNotices: return 0x4E
        }
    }

    /// The message's name as PROTOCOL.md spells it, for errors and logs.
    public var name: String {
        switch self {
        case .hello: return "hello"
        case .fatal: return "fatal"
        case .open: return "open"
        case .scan: return "scan"
        case .openFile: return "openFile"
        case .writeFile: return "writeFile"
        case .makeDirectory: return "makeDirectory"
        case .makeSymlink: return "makeSymlink"
        case .remove: return "remove"
        case .backup: return "backup"
        case .setAttributes: return "setAttributes"
        case .baselineBatch: return "baselineBatch"
        case .commitBaseline: return "commitBaseline"
        case .shutdown: return "shutdown"
        case .readFiles: return "readFiles"
        case .writeFiles: return "writeFiles"
        case .digestFiles: return "digestFiles"
        case .status: return "status"
        case .watch: return "watch"
        case .writeChunk: return "writeChunk"
        case .writeEnd: return "writeEnd"
        case .writeAbort: return "writeAbort"
        case .readCredit: return "readCredit"
        case .cancel: return "cancel"
        case .ok: return "ok"
        case .entry: return "entry"
        case .backupLocation: return "backupLocation"
        case .failure: return "failure"
        case .scanBatch: return "scanBatch"
        case .scanDone: return "scanDone"
        case .fileChunk: return "fileChunk"
        case .fileEnd: return "fileEnd"
        case .writeCredit: return "writeCredit"
        case .notice: return "notice"
        case .fileContents: return "fileContents"
        case .writeResults: return "writeResults"
        case .digests: return "digests"
        case .statusReport: return "statusReport"
        case .changeNotices: return "changeNotices"
        }
    }

    /// Appends the message body (everything after the type byte and request id).
    public func encodeBody(into w: inout WireWriter) {
        switch self {
        case .hello(let h):
            for b in Hello.magic { w.u8(b) }
            w.u16(h.versions.lowerBound); w.u16(h.versions.upperBound)
            w.count(h.features.count); for f in h.features { w.string(f) }
        case .fatal(let s), .writeAbort(let s), .notice(let s): w.string(s)
        case .open(let spec):
            w.string(spec.root); w.optionalString(spec.backupDirectory); w.count(max(spec.maxBackups, 0))
            w.attributes(spec.attributes); w.optionalString(spec.cacheKey)
        case .scan(let r): w.scanRequest(r)
        case let .openFile(path, expected, window): w.path(path); w.entry(expected); w.u32(window)
        case let .writeFile(p, data, isComplete): Self.placement(p, into: &w); w.bool(isComplete); w.blob(data)
        case .makeDirectory(let p), .makeSymlink(let p): Self.placement(p, into: &w)
        case let .remove(path, expected, backup): w.path(path); w.entry(expected); w.bool(backup)
        case let .backup(path, expected): w.path(path); w.entry(expected)
        case let .setAttributes(path, expected, to): w.path(path); w.entry(expected); w.entry(to)
        case .baselineBatch(let updates): w.count(updates.count); for u in updates { w.baselineUpdate(u) }
        case .commitBaseline(let s): w.u64(s)
        case .shutdown, .writeEnd, .cancel, .ok, .fileEnd, .status: break
        case .writeChunk(let d), .fileChunk(let d): w.blob(d)
        case .readCredit(let n), .writeCredit(let n): w.u32(n)
        case .entry(let e): w.entry(e)
        case .backupLocation(let s): w.optionalString(s)
        case .failure(let e): w.replicaError(e)
        case .scanBatch(let changes): w.count(changes.count); for c in changes { w.change(c) }
        case .scanDone(let r): w.scanResult(r)
        case .readFiles(let requests), .digestFiles(let requests):
            w.count(requests.count)
            for r in requests { w.path(r.path); w.entry(r.expected) }
        case .writeFiles(let writes):
            w.count(writes.count)
            for f in writes {
                w.path(f.path); w.entry(f.entry); w.optionalEntry(f.replacing); w.bool(f.backup); w.blob(f.content)
            }
        case .fileContents(let results): Self.results(results, into: &w) { $0.blob($1) }
        case .writeResults(let results): Self.results(results, into: &w) { $0.entry($1) }
        case .digests(let results): Self.results(results, into: &w) { $0.digest($1) }
        case .statusReport(let lines):
            w.count(lines.count)
            for line in lines { w.varint(line.requestID); w.u8(line.state.rawValue); w.varint(line.bytes) }
        case .watch(let r):
            w.count(r.paths.count); for p in r.paths { w.path(p) }
            w.count(r.ignore.count); for s in r.ignore { w.string(s) }
            w.count(r.ignoreNot.count); for s in r.ignoreNot { w.string(s) }
            if let limit = r.watchLimit { w.u8(1); w.count(max(0, limit)) } else { w.u8(0) }
            w.varint(UInt64(max(0, r.holdWhileWritingNanoseconds)))
            w.string(r.cacheKey)
        case .changeNotices(let notices):
            w.count(notices.count)
            for notice in notices { w.changeNotice(notice) }
        }
    }

    /// Bytes of file data the message carries, plus a little per file for its other fields: the
    /// encoder reserves this much so that the data is copied into the frame once.
    var contentByteCount: Int {
        switch self {
        case let .writeFile(_, data, _): return 64 + data.count
        case .writeChunk(let d), .fileChunk(let d): return d.count
        case .writeFiles(let writes): return writes.reduce(0) { $0 + 96 + $1.path.bytes.count + $1.content.count }
        case .fileContents(let results):
            return results.reduce(0) { total, result in
                if case .success(let bytes) = result { return total + 8 + bytes.count }
                return total + 64
            }
        default: return 0
        }
    }

    private static func placement(_ p: Placement, into w: inout WireWriter) {
        w.path(p.path); w.entry(p.entry); w.optionalEntry(p.replacing); w.bool(p.backup)
    }

    private static func placement(from r: inout WireReader) throws(WireError) -> Placement {
        Placement(path: try r.path(), entry: try r.entry(), replacing: try r.optionalEntry(), backup: try r.bool())
    }

    /// A batch reply's results: a count, then per result the tag 0 and the value, or 1 and the error.
    private static func results<T>(_ results: [Result<T, ReplicaError>], into w: inout WireWriter,
                                   _ value: (inout WireWriter, T) -> Void) {
        w.count(results.count)
        for r in results {
            switch r {
            case .success(let v): w.u8(0); value(&w, v)
            case .failure(let e): w.u8(1); w.replicaError(e)
            }
        }
    }

    /// The tag before each result of a batch reply: 0 = success, 1 = failure.
    private static func isSuccess(_ r: inout WireReader) throws(WireError) -> Bool {
        switch try r.u8() {
        case 0: return true
        case 1: return false
        case let tag: throw .malformed("result tag \(tag)")
        }
    }

    /// Decodes a body of message type `type`; the reader must be exactly consumed.
    public static func decodeBody(type: UInt8, from r: inout WireReader) throws(WireError) -> Message {
        let m: Message
        switch type {
        case 0x01:
            var magic: [UInt8] = []
            for _ in 0..<Hello.magic.count { magic.append(try r.u8()) }
            guard magic == Hello.magic else { throw .notSwunison(received: PathComponent.display(magic[...])) }
            let lo = try r.u16(), hi = try r.u16()
            guard lo <= hi else { throw .malformed("hello version range \(lo)-\(hi)") }
            var features: [String] = []
            for _ in 0..<(try r.count()) { features.append(try r.string()) }
            m = .hello(Hello(versions: lo...hi, features: features))
        case 0x02: m = .fatal(try r.text())
        case 0x10:
            let root = try r.string(), dir = try r.optionalString(), n = try r.varint()
            guard n <= 1_000_000 else { throw .malformed("maxbackups \(n)") }
            m = .open(ReplicaSpec(root: root, backupDirectory: dir, maxBackups: Int(n), attributes: try r.attributes(),
                                  cacheKey: try r.optionalString()))
        case 0x11: m = .scan(try r.scanRequest())
        case 0x12: m = .openFile(path: try r.path(), expected: try r.entry(), window: try r.u32())
        case 0x13:
            let p = try placement(from: &r)
            let complete = try r.bool()
            m = .writeFile(p, data: try r.blob(), isComplete: complete)
        case 0x14: m = .makeDirectory(try placement(from: &r))
        case 0x15: m = .makeSymlink(try placement(from: &r))
        case 0x16: m = .remove(path: try r.path(), expected: try r.entry(), backup: try r.bool())
        case 0x17: m = .backup(path: try r.path(), expected: try r.entry())
        case 0x18: m = .setAttributes(path: try r.path(), expected: try r.entry(), to: try r.entry())
        case 0x19:
            var updates: [BaselineUpdate] = []
            for _ in 0..<(try r.count(minimumItemSize: 2)) { updates.append(try r.baselineUpdate()) }
            m = .baselineBatch(updates)
        case 0x1A: m = .commitBaseline(snapshot: try r.u64())
        case 0x1B: m = .shutdown
        case 0x1C, 0x1E:
            var requests: [FileReadRequest] = []
            for _ in 0..<(try r.count(minimumItemSize: 3)) {
                requests.append(FileReadRequest(path: try r.path(), expected: try r.entry()))
            }
            m = type == 0x1C ? .readFiles(requests) : .digestFiles(requests)
        case 0x1D:
            var writes: [FileWrite] = []
            for _ in 0..<(try r.count(minimumItemSize: 5)) {
                let path = try r.path(), entry = try r.entry(), replacing = try r.optionalEntry(), backup = try r.bool()
                writes.append(FileWrite(path: path, entry: entry, content: try r.blob(), replacing: replacing, backup: backup))
            }
            m = .writeFiles(writes)
        case 0x1F: m = .status
        case 0x30:
            var paths: [RelativePath] = [], ignore: [String] = [], ignoreNot: [String] = []
            for _ in 0..<(try r.count()) { paths.append(try r.path()) }
            for _ in 0..<(try r.count()) { ignore.append(try r.string()) }
            for _ in 0..<(try r.count()) { ignoreNot.append(try r.string()) }
            var limit: Int?
            switch try r.u8() {
            case 0: limit = nil
            case 1:
                let n = try r.varint()
                guard n <= UInt64(Int32.max) else { throw .malformed("watch limit \(n)") }
                limit = Int(n)
            case let tag: throw .malformed("watch limit tag \(tag)")
            }
            let hold = try r.varint()
            guard hold <= UInt64(Int64.max) else { throw .malformed("hold time \(hold)") }
            m = .watch(WatchRequest(paths: paths, ignore: ignore, ignoreNot: ignoreNot, watchLimit: limit,
                                    holdWhileWritingNanoseconds: Int64(hold), cacheKey: try r.string()))
        case 0x20: m = .writeChunk(try r.blob())
        case 0x21: m = .writeEnd
        case 0x22: m = .writeAbort(try r.text())
        case 0x23: m = .readCredit(try r.u32())
        case 0x24: m = .cancel
        case 0x40: m = .ok
        case 0x41: m = .entry(try r.entry())
        case 0x42: m = .backupLocation(try r.optionalString())
        case 0x43: m = .failure(try r.replicaError())
        case 0x44:
            var changes: [ScanChange] = []
            for _ in 0..<(try r.count(minimumItemSize: 3)) { changes.append(try r.change()) }
            m = .scanBatch(changes)
        case 0x45: m = .scanDone(try r.scanResult())
        case 0x46: m = .fileChunk(try r.blob())
        case 0x47: m = .fileEnd
        case 0x48: m = .writeCredit(try r.u32())
        case 0x49: m = .notice(try r.text())
        case 0x4A:
            var results: [Result<[UInt8], ReplicaError>] = []
            for _ in 0..<(try r.count(minimumItemSize: 2)) {
                results.append(try Self.isSuccess(&r) ? .success(try r.blob()) : .failure(try r.replicaError()))
            }
            m = .fileContents(results)
        case 0x4B:
            var results: [Result<Entry, ReplicaError>] = []
            for _ in 0..<(try r.count(minimumItemSize: 2)) {
                results.append(try Self.isSuccess(&r) ? .success(try r.entry()) : .failure(try r.replicaError()))
            }
            m = .writeResults(results)
        case 0x4C:
            var results: [Result<Digest, ReplicaError>] = []
            for _ in 0..<(try r.count(minimumItemSize: 2)) {
                results.append(try Self.isSuccess(&r) ? .success(try r.digest()) : .failure(try r.replicaError()))
            }
            m = .digests(results)
        case 0x4D:
            var lines: [RequestStatus] = []
            for _ in 0..<(try r.count(minimumItemSize: 3)) {
                let id = try r.varint(), raw = try r.u8()
                guard let state = RequestStatus.State(rawValue: raw) else { throw .malformed("request state \(raw)") }
                lines.append(RequestStatus(requestID: id, state: state, bytes: try r.varint()))
            }
            m = .statusReport(lines)
        case 0x4E:
            var notices: [ChangeNotice] = []
            for _ in 0..<(try r.count()) { notices.append(try r.changeNotice()) }
            m = .changeNotices(notices)
        default: throw .unknownMessage(type: type)
        }
        guard r.isAtEnd else { throw .malformed("\(r.remaining) stray bytes after a \(m.name) message") }
        return m
    }
}
