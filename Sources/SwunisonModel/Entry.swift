/// What a path is on a replica. Absence is `nil` (an `Entry?`), never a kind.
public enum EntryKind: UInt8, Sendable, Hashable, CustomStringConvertible {
    case file = 1
    case directory = 2
    case symlink = 3

    public var description: String {
        switch self {
        case .file: return "file"
        case .directory: return "dir"
        case .symlink: return "link"
        }
    }
}

/// A file's content digest: XXH3-128 of its bytes (see DESIGN-NOTES, "The content digest"),
/// held inline (no allocation per entry).
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    /// Bytes in a digest.
    public static let byteCount = 16

    /// The digest's two halves, as the canonical form's big-endian words.
    public var w0: UInt64, w1: UInt64

    public init(w0: UInt64, w1: UInt64) {
        self.w0 = w0; self.w1 = w1
    }

    /// Builds a digest from exactly 16 bytes (big-endian words); nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Digest.byteCount else { return nil }
        let array = Array(bytes)
        self = array.withUnsafeBytes { Digest(uncheckedRaw: $0) }
    }

    /// Builds a digest from 16 raw bytes (big-endian words) without allocating: the hot path of
    /// hashing and of reading stored rows. The caller guarantees `raw.count >= 16`.
    @inlinable
    public init(uncheckedRaw raw: UnsafeRawBufferPointer) {
        func word(_ offset: Int) -> UInt64 {
            UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        self.init(w0: word(0), w1: word(8))
    }

    /// The 16 digest bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Digest.byteCount)
        for w in [w0, w1] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
        }
        return out
    }

    /// Lower-case hex, as `xxh128sum` prints it.
    public var description: String {
        let hex = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(2 * Digest.byteCount)
        for b in bytes { s.append(hex[Int(b >> 4)]); s.append(hex[Int(b & 15)]) }
        return s
    }
}

/// Nanoseconds since the Unix epoch (the precision of `st_mtim`).
public typealias Nanoseconds = Int64

/// How a file looked to `stat` on one replica; used only to decide whether its digest can be
/// trusted without rereading it (`fastcheck`). Never compared across replicas.
public struct Fingerprint: Hashable, Sendable {
    public var inode: UInt64
    public var ctime: Nanoseconds
    public var mtime: Nanoseconds
    public var size: Int64

    public init(inode: UInt64, ctime: Nanoseconds, mtime: Nanoseconds, size: Int64) {
        self.inode = inode; self.ctime = ctime; self.mtime = mtime; self.size = size
    }

    /// A fingerprint that never matches: stored for files modified too recently to trust.
    public static let untrusted = Fingerprint(inode: 0, ctime: -1, mtime: -1, size: -1)
}

/// The state of one path on one replica, as the scanner saw it or as the archive remembers it.
///
/// Entries are values: comparisons between replicas use ``sameContent(as:)`` (kind and content:
/// digest or link target) and the attribute fields selected by the profile, never the fingerprint.
public struct Entry: Hashable, Sendable {
    public var kind: EntryKind
    /// File size in bytes (0 for directories and symlinks).
    public var size: Int64
    /// Modification time in nanoseconds.
    public var mtime: Nanoseconds
    /// Permission bits (`st_mode & 0o7777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Content digest of a file; nil for other kinds, or when not (yet) known.
    public var digest: Digest?
    /// Target of a symlink, raw bytes; nil for other kinds.
    public var linkTarget: [UInt8]?
    /// How the file looked to `stat` on the replica it came from (see ``Fingerprint``).
    public var fingerprint: Fingerprint?

    public init(kind: EntryKind, size: Int64 = 0, mtime: Nanoseconds = 0, mode: UInt32 = 0, uid: UInt32 = 0,
                gid: UInt32 = 0, digest: Digest? = nil, linkTarget: [UInt8]? = nil, fingerprint: Fingerprint? = nil) {
        self.kind = kind; self.size = size; self.mtime = mtime; self.mode = mode; self.uid = uid; self.gid = gid
        self.digest = digest; self.linkTarget = linkTarget; self.fingerprint = fingerprint
    }

    /// Same kind and same content: digest for files (and size), target for symlinks; any two
    /// directories have the same content (their children are compared separately).
    ///
    /// A file without a digest has the same content as a file of the same size and mtime, as
    /// `fastcheck` would judge. Such entries are archived files from before content digests
    /// became XXH3-128 (that migration had to forget the SHA-256 ones): otherwise every archived
    /// file would look changed on both replicas in the first run after the upgrade, a file edited
    /// on one side would become a conflict, and one deleted on one side would come back. They are
    /// also a first sync's scan entries and the cache rows it leaves, which stand for content
    /// checked by fingerprint; the session never lets two of those, or one whose fingerprint
    /// changed, be compared this way (DESIGN-NOTES, "A first sync reads each file once").
    public func sameContent(as other: Entry) -> Bool {
        guard kind == other.kind else { return false }
        switch kind {
        case .file:
            guard size == other.size else { return false }
            guard let digest, let theirs = other.digest else { return mtime == other.mtime }
            return digest == theirs
        case .symlink: return linkTarget == other.linkTarget
        case .directory: return true
        }
    }

    /// This entry without its fingerprint (what is compared and archived as shared state).
    public var withoutFingerprint: Entry {
        var e = self
        e.fingerprint = nil
        return e
    }
}

/// Which attributes take part in comparisons and are propagated, from the profile's
/// `perms`, `owner`, `group` and `times` preferences.
public struct AttributeSelection: Hashable, Sendable {
    /// Permission bits that are synchronised (Unison's `perms`, default 0o1777); 0 = none.
    public var permissionMask: UInt32
    public var owner: Bool
    public var group: Bool
    /// File modification times (`times`, default true). Directory times are never synchronised.
    public var times: Bool

    public init(permissionMask: UInt32 = 0o1777, owner: Bool = false, group: Bool = false, times: Bool = true) {
        self.permissionMask = permissionMask; self.owner = owner; self.group = group; self.times = times
    }

    /// Whether two entries of the same content agree on every selected attribute.
    /// Symlinks have no attributes of their own here.
    public func sameAttributes(_ a: Entry, _ b: Entry) -> Bool {
        if a.kind == .symlink || b.kind == .symlink { return true }
        if (a.mode & permissionMask) != (b.mode & permissionMask) { return false }
        if owner && a.uid != b.uid { return false }
        if group && a.gid != b.gid { return false }
        if times && a.kind == .file && b.kind == .file && a.mtime != b.mtime { return false }
        return true
    }

    /// Whether two entries are equal as far as synchronisation cares: content and selected attributes.
    public func equivalent(_ a: Entry?, _ b: Entry?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (x?, y?): return x.sameContent(as: y) && sameAttributes(x, y)
        default: return false
        }
    }
}
