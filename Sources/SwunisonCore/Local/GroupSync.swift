import Dispatch
import SwunisonReplica
import Synchronization

/// Group commit for file content: many writers share one `syncfs(2)` instead of an fdatasync
/// each.
///
/// Invariant 1 needs every new file's data on disk before the rename that makes it visible. An
/// fdatasync per file costs one journal commit per file (hundreds of microseconds to
/// milliseconds on the small VPSes this runs on); a writer that calls ``waitUntilDurable()``
/// after writing its temporary file instead joins the next `syncfs` of the replica's file
/// system, which writes back every writer's data and commits the journal once.
///
/// How the batching works: the first writer to arrive starts a sync at once. Writers arriving
/// while it runs cannot be covered by it (their data may have been written after it began), so
/// they wait for the next one, which starts as soon as the current one ends and covers all of
/// them. Under load every sync therefore serves everyone who finished writing during the
/// previous one, with no timer and no added latency when a single file is written.
final class GroupSync: Sendable {
    private struct State {
        var running = false
        var waiting: [CheckedContinuation<Void, Error>] = []
    }

    private let state = Mutex(State())
    private let sync: @Sendable () throws -> Void

    /// - Parameter sync: makes all data written so far durable (blocking; run on Dispatch).
    init(sync: @escaping @Sendable () throws -> Void) {
        self.sync = sync
    }

    /// Returns once everything written before the call is on disk; throws the sync's error.
    func waitUntilDurable() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let leads = state.withLock { state -> Bool in
                state.waiting.append(continuation)
                if state.running { return false }
                state.running = true
                return true
            }
            if leads { startRound() }
        }
    }

    /// Runs syncs on a Dispatch thread until nobody is waiting.
    private func startRound() {
        DispatchQueue.global().async { [self] in
            while true {
                // Everyone waiting now finished writing before this sync starts.
                let batch = state.withLock { state -> [CheckedContinuation<Void, Error>] in
                    defer { state.waiting = [] }
                    return state.waiting
                }
                let outcome = Result { try sync() }
                for continuation in batch { continuation.resume(with: outcome) }
                let more = state.withLock { state -> Bool in
                    if state.waiting.isEmpty { state.running = false; return false }
                    return true
                }
                if !more { return }
            }
        }
    }
}
