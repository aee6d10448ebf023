import Dispatch
import Glibc
import Synchronization

/// Hashes groups of files on several threads, in the background of a full scan's walk.
///
/// Why: a full scan (first run, or after the scan cache was lost) reads every file, and SHA-256
/// is most of its CPU time. Hashed inline, one thread both walks and hashes, and during a first
/// sync (the other replica empty) a second core sits idle. Here the walk hands each batch's files
/// over as a group and walks on; the groups are hashed one after another (in order, so each
/// group's hashers are its own) by several threads that take the next file of the group until
/// none is left, each with its own ``ContentHasher`` (they are not thread-safe).
final class ParallelHasher: @unchecked Sendable {
    /// One file to hash: its directory (kept open until the group is done), its name with a
    /// terminating NUL, and the status the walk saw.
    struct Job: @unchecked Sendable {
        var directory: DirectoryFD
        var name: [UInt8]
        var status: FileStatus
    }

    /// A submitted group; ``wait()`` returns its outcomes in job order.
    final class Group: @unchecked Sendable {
        fileprivate var outcomes: [ContentHasher.Outcome] = []
        fileprivate let done = DispatchSemaphore(value: 0)

        /// Blocks until the group is hashed. Call once.
        func wait() -> [ContentHasher.Outcome] {
            done.wait()
            return outcomes
        }
    }

    private let hashers: [ContentHasher]
    /// Runs the groups one at a time, in submission order.
    private let queue = DispatchQueue(label: "swunison.scan.hash")

    /// - Parameter threads: how many files are read at once (at least 2; 1 would be the walk's
    ///   own inline hashing).
    init(threads: Int) {
        hashers = (0..<max(2, threads)).map { _ in ContentHasher() }
    }

    /// Bytes read so far by all threads (read it after the last group's ``Group/wait()``).
    var bytesRead: Int64 { hashers.reduce(0) { $0 + $1.bytesRead } }

    /// Starts hashing `jobs` after the groups submitted before; returns at once.
    func submit(_ jobs: [Job]) -> Group {
        let group = Group()
        queue.async {
            group.outcomes = self.hash(jobs)
            group.done.signal()
        }
        return group
    }

    /// What the threads share during one ``hash(_:)``: the jobs (read only), one result slot
    /// per job (each written by the one thread that took the job), one hasher per thread.
    private struct Shared: @unchecked Sendable {
        let hashers: [ContentHasher]
        let jobs: UnsafeBufferPointer<Job>
        let results: UnsafeMutablePointer<ContentHasher.Outcome>
    }

    /// Hashes every job and returns the outcomes in job order.
    private func hash(_ jobs: [Job]) -> [ContentHasher.Outcome] {
        let next = Atomic<Int>(0)
        let results = UnsafeMutablePointer<ContentHasher.Outcome>.allocate(capacity: jobs.count)
        defer { results.deallocate() }
        jobs.withUnsafeBufferPointer { jobs in
            let shared = Shared(hashers: hashers, jobs: jobs, results: results)
            // Each iteration is one thread working through the shared queue of jobs, so a
            // large file holds up one thread, not a fixed share of the group.
            DispatchQueue.concurrentPerform(iterations: min(shared.hashers.count, jobs.count)) { worker in
                let hasher = shared.hashers[worker]
                while true {
                    let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard i < shared.jobs.count else { return }
                    let job = shared.jobs[i]
                    let outcome = job.name.withUnsafeBufferPointer { name in
                        name.baseAddress!.withMemoryRebound(to: CChar.self, capacity: name.count) {
                            hasher.hash(name: $0, in: job.directory.fd, expected: job.status)
                        }
                    }
                    (shared.results + i).initialize(to: outcome)
                }
            }
        }
        // Every slot was initialized exactly once; move them out.
        return (0..<jobs.count).map { (results + $0).move() }
    }
}
