import SwunisonReplica
import SwunisonModel

/// Appends protocol fields to a byte array: big-endian fixed integers, LEB128 varints,
/// length-prefixed byte strings, and the model types (see PROTOCOL.md, "Field encodings").
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    public mutating func u16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }

    public mutating func u32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    /// Appends what another writer holds.
    public mutating func append(_ other: WireWriter) { bytes.append(contentsOf: other.bytes) }

    /// Forgets what was written, keeping the storage for reuse.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Overwrites four bytes already written at `offset` with `v`, big-endian.
    public mutating func setU32(_ v: UInt32, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: v >> 24); bytes[offset + 1] = UInt8(truncatingIfNeeded: v >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: v >> 8); bytes[offset + 3] = UInt8(truncatingIfNeeded: v)
    }

    public mutating func u64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    /// Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last byte.
    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Signed values as zigzag varints (small magnitudes of either sign stay short).
    public mutating func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func count(_ n: Int) { varint(UInt64(n)) }

    /// A varint length, then the bytes.
    public mutating func blob(_ b: some Collection<UInt8>) {
        count(b.count)
        bytes.append(contentsOf: b)
    }

    public mutating func string(_ s: String) { blob(Array(s.utf8)) }

    public mutating func path(_ p: RelativePath) { blob(p.bytes) }

    public mutating func digest(_ d: Digest) { u64(d.w0); u64(d.w1) }

    /// Entry flags: bit 0 digest present, bit 1 link target present, bit 2 fingerprint present.
    public mutating func entry(_ e: Entry) {
        u8(e.kind.rawValue)
        u8((e.digest != nil ? 1 : 0) | (e.linkTarget != nil ? 2 : 0) | (e.fingerprint != nil ? 4 : 0))
        zigzag(e.size); zigzag(e.mtime)
        varint(UInt64(e.mode)); varint(UInt64(e.uid)); varint(UInt64(e.gid))
        if let d = e.digest { digest(d) }
        if let t = e.linkTarget { blob(t) }
        if let f = e.fingerprint { varint(f.inode); zigzag(f.ctime); zigzag(f.mtime); zigzag(f.size) }
    }

    public mutating func optionalEntry(_ e: Entry?) {
        if let e { u8(1); entry(e) } else { u8(0) }
    }

    public mutating func optionalString(_ s: String?) {
        if let s { u8(1); string(s) } else { u8(0) }
    }

    public mutating func change(_ c: ScanChange) {
        path(c.path); optionalEntry(c.old); optionalEntry(c.new)
    }

    public mutating func baselineUpdate(_ u: BaselineUpdate) {
        path(u.path); optionalEntry(u.entry)
    }

    /// Attribute selection: permission mask, then flags (bit 0 owner, bit 1 group, bit 2 times).
    public mutating func attributes(_ a: AttributeSelection) {
        varint(UInt64(a.permissionMask))
        u8((a.owner ? 1 : 0) | (a.group ? 2 : 0) | (a.times ? 4 : 0))
    }

    public mutating func scanRequest(_ r: ScanRequest) {
        count(r.paths.count); for p in r.paths { path(p) }
        count(r.ignore.count); for s in r.ignore { string(s) }
        count(r.ignoreNot.count); for s in r.ignoreNot { string(s) }
        if let s = r.expectedSnapshot { u8(1); u64(s) } else { u8(0) }
        // Scan flags: bit 0 fastcheck, bit 1 deferDigests (sent only with feature `digest-files`,
        // so a peer without it still sees the 0 or 1 it reads as a boolean).
        u8((r.fastcheck ? 1 : 0) | (r.deferDigests ? 2 : 0))
        attributes(r.attributes)
        string(r.cacheKey)
    }

    public mutating func scanResult(_ r: ScanResult) {
        bool(r.isDelta)
        count(r.entryCount)
        count(r.problems.count)
        for p in r.problems { path(p.path); string(p.message) }
    }

    /// A change notice: a tag byte, then the case's fields (PROTOCOL.md, `changeNotices`).
    public mutating func changeNotice(_ n: ChangeNotice) {
        switch n {
        case .changed(let p): u8(1); path(p)
        case .overflow: u8(2)
        case let .unwatched(paths, needed, available):
            u8(3); count(paths.count); for p in paths { path(p) }; count(max(0, needed)); count(max(0, available))
        case .rootMissing(let why): u8(4); string(why)
        case .rootBack: u8(5)
        }
    }

    /// A replica error: a tag byte, then the case's fields.
    public mutating func replicaError(_ e: ReplicaError) {
        switch e {
        case .changedDuringSync(let p): u8(1); path(p)
        case let .system(p, op, errno, message): u8(2); path(p); string(op); zigzag(Int64(errno)); string(message)
        case .digestMismatch(let p): u8(3); path(p)
        case let .badRoot(root, message): u8(4); string(root); string(message)
        case .connection(let m): u8(5); string(m)
        case .other(let m), .stalled(let m): u8(6); string(m)
        }
    }
}

/// Reads protocol fields from a frame's payload; every read checks the bounds, and every path
/// is validated (Invariant 5: a hostile peer's path is rejected as ``WireError/hostilePath(_:)``).
public struct WireReader {
    private let storage: [UInt8]
    public private(set) var index: Int
    private let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        storage = bytes; index = start; self.end = end ?? bytes.count
    }

    public var remaining: Int { end - index }
    public var isAtEnd: Bool { index >= end }

    public mutating func u8() throws(WireError) -> UInt8 {
        guard index < end else { throw .truncated("field") }
        defer { index += 1 }
        return storage[index]
    }

    public mutating func bool() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let b: throw .malformed("boolean byte \(b)")
        }
    }

    private mutating func fixed(_ n: Int) throws(WireError) -> UInt64 {
        guard remaining >= n else { throw .truncated("field") }
        var v: UInt64 = 0
        for i in 0..<n { v = v << 8 | UInt64(storage[index + i]) }
        index += n
        return v
    }

    public mutating func u16() throws(WireError) -> UInt16 { UInt16(try fixed(2)) }
    public mutating func u32() throws(WireError) -> UInt32 { UInt32(try fixed(4)) }
    public mutating func u64() throws(WireError) -> UInt64 { try fixed(8) }

    public mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8()
            if shift == 63 && b > 1 { throw .malformed("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw .malformed("varint longer than 10 bytes") }
        }
    }

    public mutating func zigzag() throws(WireError) -> Int64 {
        let u = try varint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    public mutating func u32Varint(_ what: String) throws(WireError) -> UInt32 {
        let v = try varint()
        guard v <= UInt64(UInt32.max) else { throw .malformed("\(what) \(v) out of range") }
        return UInt32(v)
    }

    /// A count of following items, each at least `minimumItemSize` bytes: a count the rest of the
    /// frame cannot hold is rejected before anything is allocated for it, and so is one above
    /// ``maxListItems`` (a 16 MiB frame of tiny items would otherwise decode into about a
    /// gigabyte of values).
    public mutating func count(minimumItemSize: Int = 1) throws(WireError) -> Int {
        let v = try varint()
        guard v <= UInt64(remaining / max(minimumItemSize, 1)) else {
            throw .truncated("list (\(v) items announced, \(remaining) bytes left)")
        }
        guard v <= UInt64(Self.maxListItems) else {
            throw .malformed("list of \(v) items (at most \(Self.maxListItems) in one frame)")
        }
        return Int(v)
    }

    /// Items one list of one frame may hold. Honest senders batch lists into frames of about
    /// 512 KiB (``FrameEncoder/forEachBatch``), and no item is smaller than 2 bytes.
    public static let maxListItems = 300_000

    /// The length of a byte string that follows (any length the frame holds).
    private mutating func byteCount() throws(WireError) -> Int {
        let v = try varint()
        guard v <= UInt64(remaining) else { throw .truncated("bytes (\(v) announced, \(remaining) left)") }
        return Int(v)
    }

    public mutating func blob() throws(WireError) -> [UInt8] {
        let n = try byteCount()
        defer { index += n }
        return Array(storage[index..<(index + n)])
    }

    public mutating func string() throws(WireError) -> String {
        String(decoding: try blob(), as: UTF8.self)
    }

    /// Text from the peer that will be printed or logged (messages, reasons, notices): control
    /// characters, backslashes and bytes that are not UTF-8 escaped as in paths, so that a peer
    /// cannot send terminal escape sequences to the user's screen or forge log lines.
    public mutating func text() throws(WireError) -> String {
        PathComponent.display(try blob()[...])
    }

    public mutating func path() throws(WireError) -> RelativePath {
        let b = try blob()
        do { return try RelativePath(validating: b) } catch { throw .hostilePath(error) }
    }

    public mutating func digest() throws(WireError) -> Digest {
        Digest(w0: try u64(), w1: try u64())
    }

    public mutating func entry() throws(WireError) -> Entry {
        let k = try u8()
        guard let kind = EntryKind(rawValue: k) else { throw .malformed("entry kind \(k)") }
        let flags = try u8()
        guard flags & ~7 == 0 else { throw .malformed("entry flags \(flags)") }
        var e = Entry(kind: kind)
        e.size = try zigzag(); e.mtime = try zigzag()
        // A size is never negative: refused here, so that no sum or comparison downstream sees one.
        guard e.size >= 0 else { throw .malformed("negative entry size \(e.size)") }
        e.mode = try u32Varint("mode"); e.uid = try u32Varint("uid"); e.gid = try u32Varint("gid")
        if flags & 1 != 0 { e.digest = try digest() }
        if flags & 2 != 0 { e.linkTarget = try blob() }
        if flags & 4 != 0 {
            e.fingerprint = Fingerprint(inode: try varint(), ctime: try zigzag(), mtime: try zigzag(), size: try zigzag())
        }
        return e
    }

    private mutating func presence() throws(WireError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let b: throw .malformed("presence byte \(b)")
        }
    }

    public mutating func optionalEntry() throws(WireError) -> Entry? {
        try presence() ? try entry() : nil
    }

    public mutating func optionalString() throws(WireError) -> String? {
        try presence() ? try string() : nil
    }

    public mutating func change() throws(WireError) -> ScanChange {
        ScanChange(path: try path(), old: try optionalEntry(), new: try optionalEntry())
    }

    public mutating func baselineUpdate() throws(WireError) -> BaselineUpdate {
        BaselineUpdate(path: try path(), entry: try optionalEntry())
    }

    public mutating func attributes() throws(WireError) -> AttributeSelection {
        let mask = try u32Varint("permission mask")
        let flags = try u8()
        guard flags & ~7 == 0 else { throw .malformed("attribute flags \(flags)") }
        return AttributeSelection(permissionMask: mask, owner: flags & 1 != 0, group: flags & 2 != 0, times: flags & 4 != 0)
    }

    public mutating func scanRequest() throws(WireError) -> ScanRequest {
        var paths: [RelativePath] = []
        for _ in 0..<(try count()) { paths.append(try path()) }
        var ignore: [String] = []
        for _ in 0..<(try count()) { ignore.append(try string()) }
        var ignoreNot: [String] = []
        for _ in 0..<(try count()) { ignoreNot.append(try string()) }
        let snapshot: UInt64? = try presence() ? try u64() : nil
        let flags = try u8()
        guard flags & ~3 == 0 else { throw .malformed("scan flags \(flags)") }
        let attributes = try attributes()
        let cacheKey = try string()
        var request = ScanRequest(paths: paths, ignore: ignore, ignoreNot: ignoreNot, expectedSnapshot: snapshot,
                                  fastcheck: flags & 1 != 0, attributes: attributes, cacheKey: cacheKey)
        request.deferDigests = flags & 2 != 0
        return request
    }

    public mutating func scanResult() throws(WireError) -> ScanResult {
        let isDelta = try bool()
        let entries = try varint()
        guard entries <= UInt64(Int.max) else { throw .malformed("entry count \(entries)") }
        var problems: [ScanProblem] = []
        for _ in 0..<(try count(minimumItemSize: 2)) {
            problems.append(ScanProblem(path: try path(), message: try text()))
        }
        return ScanResult(isDelta: isDelta, entryCount: Int(entries), problems: problems)
    }

    public mutating func changeNotice() throws(WireError) -> ChangeNotice {
        switch try u8() {
        case 1: return .changed(try path())
        case 2: return .overflow
        case 3:
            var paths: [RelativePath] = []
            for _ in 0..<(try count()) { paths.append(try path()) }
            let needed = try varint(), available = try varint()
            guard needed <= UInt64(Int32.max), available <= UInt64(Int32.max) else { throw .malformed("watch counts") }
            return .unwatched(paths, needed: Int(needed), available: Int(available))
        case 4: return .rootMissing(try text())
        case 5: return .rootBack
        case let t: throw .malformed("change notice tag \(t)")
        }
    }

    public mutating func replicaError() throws(WireError) -> ReplicaError {
        switch try u8() {
        case 1: return .changedDuringSync(try path())
        case 2:
            let p = try path(), op = try text(), e = try zigzag(), message = try text()
            guard let errno = Int32(exactly: e) else { throw .malformed("errno \(e)") }
            return .system(path: p, operation: op, errno: errno, message: message)
        case 3: return .digestMismatch(try path())
        case 4: return .badRoot(root: try text(), message: try text())
        case 5: return .connection(try text())
        case 6: return .other(try text())
        case let t: throw .malformed("replica error tag \(t)")
        }
    }
}
