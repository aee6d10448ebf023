import Glibc

/// The kernel's inotify limits, read from `/proc/sys/fs/inotify` for messages (each is per user,
/// shared by all of that user's processes).
enum KernelLimits {
    /// `fs.inotify.max_user_watches`.
    static var maxUserWatches: Int? { read("/proc/sys/fs/inotify/max_user_watches") }
    /// `fs.inotify.max_user_instances`.
    static var maxUserInstances: Int? { read("/proc/sys/fs/inotify/max_user_instances") }

    /// The decimal number in a `/proc` file, or nil.
    static func read(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = Glibc.read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))
    }
}
