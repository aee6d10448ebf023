import SwunisonModel

/// A scan cache row's entry and fingerprint packed into one BLOB (scan cache schema 2; format 2,
/// with 16-byte XXH3 digests, since schema 3).
///
/// Why one BLOB: a no-change scan reads every row of the cache and matches almost all of them,
/// so the cost per row is what counts. With twelve columns SQLite decoded twelve fields and we
/// made twenty-odd `sqlite3_column_*` calls per row (about a fifth of the scan's CPU); one BLOB
/// is one column read and a few fixed-offset loads. The archive keeps its columns: it is read
/// by path far less often, and it is the file a user might inspect with `sqlite3`.
///
/// Layout (little-endian, fixed offsets, then optional parts in this order):
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 1 | format (2) |
/// | 1 | 1 | kind (``EntryKind`` raw value) |
/// | 2 | 1 | flags: 1 digest, 2 fingerprint, 4 link target |
/// | 3 | 1 | 0 |
/// | 4 | 4 | mode |
/// | 8 | 4 | uid |
/// | 12 | 4 | gid |
/// | 16 | 8 | size |
/// | 24 | 8 | mtime (ns) |
/// | 32 | 16 | digest, big-endian words (flag 1) |
/// | next | 32 | fingerprint: inode, ctime, mtime, size (flag 2) |
/// | next | rest | link target bytes (flag 4) |
///
/// Decoding validates format, kind, flags and length, so a damaged or foreign row becomes a
/// `StorageError` naming the file rather than a wrong decision.
enum PackedEntry {
    static let format: UInt8 = 2
    static let fixedLength = 32
    static let digestLength = Digest.byteCount
    static let fingerprintLength = 32

    static let hasDigest: UInt8 = 1
    static let hasFingerprint: UInt8 = 2
    static let hasLinkTarget: UInt8 = 4

    /// Bytes `entry` packs into.
    static func length(of entry: Entry) -> Int {
        fixedLength + (entry.digest == nil ? 0 : digestLength)
            + (entry.fingerprint == nil ? 0 : fingerprintLength) + (entry.linkTarget?.count ?? 0)
    }

    /// Packs `entry` into temporary memory and passes it to `body` (no heap allocation for
    /// rows up to a few kilobytes).
    static func withPacked<T>(_ entry: Entry, _ body: (UnsafeRawBufferPointer) throws(StorageError) -> T) throws(StorageError) -> T {
        let count = length(of: entry)
        return try withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { (out) throws(StorageError) -> T in
            pack(entry, into: out)
            return try body(UnsafeRawBufferPointer(out))
        }
    }

    /// Writes `entry` into `out`, which holds exactly `length(of: entry)` bytes.
    static func pack(_ entry: Entry, into out: UnsafeMutableRawBufferPointer) {
        var flags: UInt8 = 0
        if entry.digest != nil { flags |= hasDigest }
        if entry.fingerprint != nil { flags |= hasFingerprint }
        if entry.linkTarget != nil { flags |= hasLinkTarget }
        out[0] = format
        out[1] = entry.kind.rawValue
        out[2] = flags
        out[3] = 0
        out.storeBytes(of: entry.mode.littleEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: entry.uid.littleEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: entry.gid.littleEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: entry.size.littleEndian, toByteOffset: 16, as: Int64.self)
        out.storeBytes(of: entry.mtime.littleEndian, toByteOffset: 24, as: Int64.self)
        var offset = fixedLength
        if let d = entry.digest {
            for word in [d.w0, d.w1] {
                out.storeBytes(of: word.bigEndian, toByteOffset: offset, as: UInt64.self)
                offset += 8
            }
        }
        if let f = entry.fingerprint {
            out.storeBytes(of: f.inode.littleEndian, toByteOffset: offset, as: UInt64.self)
            out.storeBytes(of: f.ctime.littleEndian, toByteOffset: offset + 8, as: Int64.self)
            out.storeBytes(of: f.mtime.littleEndian, toByteOffset: offset + 16, as: Int64.self)
            out.storeBytes(of: f.size.littleEndian, toByteOffset: offset + 24, as: Int64.self)
            offset += fingerprintLength
        }
        if let target = entry.linkTarget, !target.isEmpty {
            target.withUnsafeBytes { out.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// Why a row did not decode, for the error message.
    enum Failure: Error, Equatable {
        case tooShort(Int)
        case unknownFormat(UInt8)
        case unknownKind(UInt8)
        case unknownFlags(UInt8)
        case wrongLength(Int, expected: Int)

        var message: String {
            switch self {
            case .tooShort(let n): return "packed row of \(n) bytes, shorter than \(PackedEntry.fixedLength)"
            case .unknownFormat(let f): return "packed row format \(f) (this swunison reads format \(PackedEntry.format))"
            case .unknownKind(let k): return "unknown kind \(k)"
            case .unknownFlags(let f): return "unknown flags \(f)"
            case .wrongLength(let n, let expected): return "packed row of \(n) bytes where its flags say \(expected)"
            }
        }
    }

    /// Decodes a packed row.
    static func unpack(_ raw: UnsafeRawBufferPointer) -> Result<Entry, Failure> {
        guard raw.count >= fixedLength else { return .failure(.tooShort(raw.count)) }
        guard raw[0] == format else { return .failure(.unknownFormat(raw[0])) }
        guard let kind = EntryKind(rawValue: raw[1]) else { return .failure(.unknownKind(raw[1])) }
        let flags = raw[2]
        guard flags & ~(hasDigest | hasFingerprint | hasLinkTarget) == 0, raw[3] == 0 else {
            return .failure(.unknownFlags(flags))
        }
        let optionalLength = (flags & hasDigest != 0 ? digestLength : 0) + (flags & hasFingerprint != 0 ? fingerprintLength : 0)
        let fixedAndOptional = fixedLength + optionalLength
        // Only a link target may make the row longer than its fixed parts.
        guard raw.count == fixedAndOptional || (flags & hasLinkTarget != 0 && raw.count > fixedAndOptional) else {
            return .failure(.wrongLength(raw.count, expected: fixedAndOptional))
        }
        func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        func i64(_ offset: Int) -> Int64 { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)) }
        var entry = Entry(kind: kind, size: i64(16), mtime: i64(24), mode: u32(4), uid: u32(8), gid: u32(12))
        var offset = fixedLength
        if flags & hasDigest != 0 {
            entry.digest = Digest(uncheckedRaw: UnsafeRawBufferPointer(rebasing: raw[offset...]))
            offset += digestLength
        }
        if flags & hasFingerprint != 0 {
            entry.fingerprint = Fingerprint(inode: UInt64(bitPattern: i64(offset)), ctime: i64(offset + 8),
                                            mtime: i64(offset + 16), size: i64(offset + 24))
            offset += fingerprintLength
        }
        if flags & hasLinkTarget != 0 {
            entry.linkTarget = Array(UnsafeRawBufferPointer(rebasing: raw[offset...]))
        }
        return .success(entry)
    }
}
