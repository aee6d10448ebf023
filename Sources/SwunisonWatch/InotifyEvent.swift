import Glibc

/// One inotify record: `struct inotify_event` and the name after it.
struct InotifyEvent: Sendable, Equatable {
    /// The watch it came from; -1 for `IN_Q_OVERFLOW`.
    var wd: Int32
    var mask: EventMask
    /// Pairs `IN_MOVED_FROM` with its `IN_MOVED_TO`.
    var cookie: UInt32
    /// The name in the watched directory; nil for an event on the directory itself.
    var name: [UInt8]?

    init(wd: Int32, mask: EventMask, cookie: UInt32 = 0, name: [UInt8]? = nil) {
        self.wd = wd; self.mask = mask; self.cookie = cookie; self.name = name
    }

    /// The fixed part of a record: `MemoryLayout<inotify_event>.size` (the name follows it).
    static let headerSize = MemoryLayout<inotify_event>.size

    /// Calls `body` with each whole record in `bytes`, as `read(2)` returns them: a 16-byte header,
    /// then `len` bytes of NUL-padded name. Stops at a truncated or misaligned record.
    /// - Precondition: `bytes` starts at an address aligned for `inotify_event` (4).
    static func parse(_ bytes: UnsafeRawBufferPointer, _ body: (InotifyEvent) -> Void) {
        var offset = 0
        while offset + headerSize <= bytes.count, offset % MemoryLayout<inotify_event>.alignment == 0 {
            let header = bytes.load(fromByteOffset: offset, as: inotify_event.self)
            let nameStart = offset + headerSize
            let nameEnd = nameStart + Int(header.len)
            guard nameEnd <= bytes.count else { return }
            var name: [UInt8]?
            if header.len > 0 {
                let padded = UnsafeRawBufferPointer(rebasing: bytes[nameStart..<nameEnd])
                let length = padded.firstIndex(of: 0) ?? padded.count
                if length > 0 { name = Array(padded[..<length]) }
            }
            body(InotifyEvent(wd: header.wd, mask: EventMask(rawValue: header.mask), cookie: header.cookie, name: name))
            offset = nameEnd
        }
    }

    /// This event as the kernel would write it (the name NUL-padded to a multiple of the header
    /// size): for tests that inject records the kernel cannot be made to produce on demand.
    var record: [UInt8] {
        let padded = name.map { ($0.count / Self.headerSize + 1) * Self.headerSize } ?? 0
        var out = [UInt8](repeating: 0, count: Self.headerSize + padded)
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: wd, toByteOffset: 0, as: Int32.self)
            raw.storeBytes(of: mask.rawValue, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: cookie, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: UInt32(padded), toByteOffset: 12, as: UInt32.self)
        }
        if let name { out.replaceSubrange(Self.headerSize..<(Self.headerSize + name.count), with: name) }
        return out
    }
}
