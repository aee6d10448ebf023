import Dispatch
import SwunisonReplica
import Glibc
import Synchronization

/// A fixed set of threads for blocking file system calls (open, write, rename, syncfs waits).
///
/// Swift's async executor has one thread per core and must not block. Dispatch's global queue
/// on Linux does not add threads while its workers sleep in system calls either, so on a
/// two-core VPS only two or three file operations would ever be in the kernel at once, and the
/// disk would sit idle while they wait. Each worker here is a serial queue (Dispatch gives each
/// its own thread when needed), so exactly `count` operations can be in the kernel at a time:
/// enough to overlap I/O waits, few enough that threads do not spin on the same directory's
/// lock. Work goes to the worker with the fewest jobs queued, so one long job (a large file
/// copied in one go) does not hold up the jobs queued behind it.
final class BlockingWorkers: Sendable {
    /// The process-wide workers shared by every local replica (both roots of a local pair, or
    /// the server's one root).
    static let shared = BlockingWorkers(count: defaultCount)

    private static var defaultCount: Int {
        if let text = getenv("SWUNISON_IO_THREADS"), let n = Int(String(cString: text)), n > 0 { return min(n, 64) }
        return 8
    }

    private let queues: [DispatchQueue]
    /// Jobs queued or running per worker.
    private let load: Mutex<[Int]>

    init(count: Int) {
        queues = (0..<max(1, count)).map { DispatchQueue(label: "swunison.io.\($0)") }
        load = Mutex(Array(repeating: 0, count: queues.count))
    }

    /// Runs `body` on the least busy worker.
    func run(_ body: @escaping @Sendable () -> Void) {
        let index = load.withLock { load in
            let index = load.indices.min { load[$0] < load[$1] }!
            load[index] += 1
            return index
        }
        queues[index].async { [self] in
            body()
            load.withLock { $0[index] -= 1 }
        }
    }
}
