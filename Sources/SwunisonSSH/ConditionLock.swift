import Glibc

/// A pthread mutex with one condition variable (timed waits use CLOCK_MONOTONIC).
///
/// Shared by a session's I/O thread and the threads calling the public channel API: every field
/// of a `ChannelState` and of the session's loop state is read and written with this lock held.
/// Waiters always re-check their predicate in a loop, so one broadcast condition serves them all.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a broadcast; the mutex must be held (it is released while waiting).
    func wait() {
        pthread_cond_wait(condition, mutex)
    }

    /// Waits for a broadcast or until `deadline` (a `MonotonicClock.now()` value) has passed.
    func wait(until deadline: UInt64) {
        var spec = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        pthread_cond_timedwait(condition, mutex, &spec)
    }

    /// Wakes every waiter.
    func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

/// Nanoseconds on CLOCK_MONOTONIC (not affected by wall-clock changes).
enum MonotonicClock {
    static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

/// A growable FIFO of bytes: appended at the tail, consumed from the head, compacted lazily
/// (what a channel received, until `read` takes it).
struct ByteQueue {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if head > 0 && head >= storage.count / 2 {
            storage.removeFirst(head)
            head = 0
        }
        storage.append(contentsOf: bytes)
    }

    /// Moves up to `buffer.count` bytes into `buffer`; returns how many.
    mutating func pop(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, count)
        guard n > 0, let base = buffer.baseAddress else { return 0 }
        storage.withUnsafeBytes { source in
            base.copyMemory(from: source.baseAddress! + head, byteCount: n)
        }
        head += n
        if head == storage.count { storage.removeAll(keepingCapacity: true); head = 0 }
        return n
    }

    mutating func removeAll() {
        storage = []
        head = 0
    }
}

/// Outgoing data as the writers handed it over: whole arrays, queued without copying (a frame
/// of file content is copied by libssh into its packet, and not again before). The I/O thread
/// takes one array at a time.
struct ChunkQueue {
    private var chunks: [[UInt8]] = []
    private var head = 0
    /// Bytes queued, over all chunks.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ chunk: [UInt8]) {
        guard !chunk.isEmpty else { return }
        if head > 0 && head >= chunks.count / 2 {
            chunks.removeFirst(head)
            head = 0
        }
        chunks.append(chunk)
        count += chunk.count
    }

    /// The size of the oldest chunk, nil when there is none.
    var firstCount: Int? { head < chunks.count ? chunks[head].count : nil }

    /// Removes and returns the oldest chunk (empty when there is none).
    mutating func takeChunk() -> [UInt8] {
        guard head < chunks.count else { return [] }
        let chunk = chunks[head]
        chunks[head] = []
        head += 1
        count -= chunk.count
        if head == chunks.count { chunks.removeAll(keepingCapacity: true); head = 0 }
        return chunk
    }

    mutating func removeAll() {
        chunks = []
        head = 0
        count = 0
    }
}
