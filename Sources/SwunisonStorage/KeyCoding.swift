import SwunisonModel

/// Byte-level conversions on the per-row hot path (200,000 rows per scan), written over raw
/// buffers so they cost one pass and one allocation per row even in debug builds. They follow
/// the model's definitions exactly: ``RelativePath/sortKey`` and its validation rules, and
/// ``Digest``'s big-endian words.
enum KeyCoding {
    /// `path.sortKey`: the path's bytes with every `/` turned into NUL.
    static func sortKey(of path: RelativePath) -> [UInt8] {
        path.bytes.withUnsafeBufferPointer { source in
            [UInt8](unsafeUninitializedCapacity: source.count) { out, initialized in
                var i = 0
                while i < source.count {
                    let b = source[i]
                    out[i] = b == 0x2F ? 0 : b
                    i += 1
                }
                initialized = source.count
            }
        }
    }

    /// ``path(fromSortKey:)`` into a reused buffer: `out` receives the path's `/`-joined bytes
    /// (its capacity is kept, so a scan allocates nothing per row). Returns false for an invalid
    /// key, leaving `out` unspecified.
    static func decodePath(fromSortKey key: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        let count = key.count
        out.removeAll(keepingCapacity: true)
        if count == 0 { return true }
        out.append(contentsOf: key)
        return out.withUnsafeMutableBufferPointer { bytes in
            var componentStart = 0
            var i = 0
            while i <= count {
                if i == count || bytes[i] == 0 {
                    let length = i - componentStart
                    // Empty, "." or "..".
                    if length == 0
                        || (length == 1 && bytes[componentStart] == 0x2E)
                        || (length == 2 && bytes[componentStart] == 0x2E && bytes[componentStart + 1] == 0x2E) {
                        return false
                    }
                    if i < count { bytes[i] = 0x2F }
                    componentStart = i + 1
                } else if bytes[i] == 0x2F {
                    return false  // a '/' inside a name
                }
                i += 1
            }
            return true
        }
    }

    /// Rebuilds a path from a stored sort key, applying the model's component rules (Invariant 5:
    /// a damaged or planted row never becomes a path with `..`, `/` inside a name, or an empty
    /// component). Returns nil for an invalid key.
    static func path(fromSortKey key: UnsafeRawBufferPointer) -> RelativePath? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(key.count)
        return decodePath(fromSortKey: key, into: &bytes) ? RelativePath(uncheckedBytes: bytes) : nil
    }

    /// The digest's 16 bytes, big-endian words in order, passed to `body` without allocating.
    static func withBytes<T>(of digest: Digest, _ body: (UnsafeRawBufferPointer) throws(StorageError) -> T) throws(StorageError) -> T {
        var words = (digest.w0.bigEndian, digest.w1.bigEndian)
        return try withUnsafeBytes(of: &words) { (raw) throws(StorageError) -> T in try body(raw) }
    }

    /// A digest from exactly 16 stored bytes; nil for any other length (a SHA-256 digest from
    /// before schema 2 never reaches here: that migration cleared them).
    static func digest(from raw: UnsafeRawBufferPointer) -> Digest? {
        guard raw.count == Digest.byteCount else { return nil }
        return Digest(uncheckedRaw: raw)
    }
}
