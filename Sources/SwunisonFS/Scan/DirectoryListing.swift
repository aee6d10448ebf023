import CSwunisonShims
import Glibc

/// The names of one directory, sorted by raw bytes, read with `getdents64`.
///
/// Names live back to back in one byte arena, each followed by a NUL so it can be handed to
/// `fstatat` in place. The scanner keeps one listing per depth of its walk and reuses it for
/// every directory at that depth, so a walk allocates nothing per name once the arenas have
/// grown; only the listings of the directories on the current walk stack are held.
final class DirectoryListing {
    /// Where one name sits in the arena (its length excludes the NUL).
    struct Span {
        var start: Int
        var length: Int
        /// The name's first 8 bytes as a big-endian integer, zero-padded: comparing these orders
        /// most pairs of names without a `memcmp` (names hold no NUL, so padding sorts a name
        /// before any longer name it begins).
        var prefix: UInt64
    }

    private var arena: [UInt8] = []
    private var spans: [Span] = []

    /// Number of names (`.` and `..` excluded).
    var count: Int { spans.count }

    /// Replaces the contents with the names in the directory `fd`, sorted by raw bytes.
    /// The corresponding system call is `getdents64` (through the C shim).
    /// - Parameter buffer: scratch space for the raw records (reused across directories).
    /// - Throws: `SystemCallError` when reading the directory fails (EACCES, EIO, ...).
    func read(directory fd: Int32, buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) {
        arena.removeAll(keepingCapacity: true)
        spans.removeAll(keepingCapacity: true)
        // Start from the first entry even if this descriptor was read before (a root reused
        // for a second scan would otherwise look empty: everything "deleted", Invariant 6).
        if lseek(fd, 0, SEEK_SET) < 0 { throw SystemCallError("lseek", errno: errno) }
        while true {
            let n = swunison_getdents64(fd, buffer.baseAddress, buffer.count)
            if n == 0 { break }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw SystemCallError("getdents64", errno: e)
            }
            var offset = 0
            while offset < n {
                // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
                let record = buffer.baseAddress! + offset
                let recordLength = Int(record.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
                let name = (record + 19).assumingMemoryBound(to: UInt8.self)
                let length = strlen(UnsafeRawPointer(name).assumingMemoryBound(to: CChar.self))
                offset += recordLength
                if recordLength == 0 { break }
                if length == 1 && name[0] == 0x2E { continue }
                if length == 2 && name[0] == 0x2E && name[1] == 0x2E { continue }
                var prefix: UInt64 = 0
                for i in 0..<8 { prefix = prefix << 8 | UInt64(i < length ? name[i] : 0) }
                spans.append(Span(start: arena.count, length: length, prefix: prefix))
                arena.append(contentsOf: UnsafeBufferPointer(start: name, count: length))
                arena.append(0)
            }
        }
        arena.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress else { return }
            spans.sort { x, y in
                if x.prefix != y.prefix { return x.prefix < y.prefix }
                let c = memcmp(base + x.start, base + y.start, min(x.length, y.length))
                return c != 0 ? c < 0 : x.length < y.length
            }
        }
    }

    /// Calls `body` with the `index`th name (in sorted order): its bytes, NUL-terminated at
    /// `name[length]`, valid only during the call.
    func withName<R>(_ index: Int, _ body: (UnsafePointer<UInt8>, Int) throws -> R) rethrows -> R {
        let span = spans[index]
        return try arena.withUnsafeBufferPointer { bytes in
            try body(bytes.baseAddress! + span.start, span.length)
        }
    }
}
