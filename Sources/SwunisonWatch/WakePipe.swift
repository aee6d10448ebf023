import Glibc
import SwunisonFS

/// A self-pipe: other threads write a byte to wake the watcher's thread from `poll` (to stop,
/// or to take injected test records).
final class WakePipe: Sendable {
    let readFD: Int32
    let writeFD: Int32

    /// The corresponding C function is `pipe`; both ends are made non-blocking and close-on-exec.
    /// - Throws: `SystemCallError` (`EMFILE`, `ENFILE`).
    init() throws(SystemCallError) {
        var fds: [Int32] = [-1, -1]
        _ = try retryingOnInterrupt("pipe") { pipe(&fds) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Wakes the reader (a full pipe already will).
    func signal() {
        var byte: UInt8 = 1
        while write(writeFD, &byte, 1) < 0 && errno == EINTR {}
    }

    /// Empties the pipe after a wake-up.
    func drain() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while read(readFD, &bytes, bytes.count) > 0 {}
    }
}
