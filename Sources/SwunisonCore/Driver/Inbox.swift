import Synchronization
import SwunisonModel
import SwunisonReplica

/// Where the watch driver's news arrives: notices from each side's watch, a watch that ended,
/// a request to stop. The driver takes everything at once, waiting until something comes or a
/// deadline passes; nothing wakes it otherwise (no polling while idle).
final class Inbox: Sendable {
    enum Item: Sendable {
        case notices(Side, [ChangeNotice])
        /// A side's watch ended with this error (a lost connection, a stopped watcher).
        case watchEnded(Side, String)
        case stop
    }

    private struct State {
        var items: [Item] = []
        var waiter: CheckedContinuation<[Item], Never>?
        /// Wakes the waiter at its deadline; cancelled when something arrives first.
        var timer: Task<Void, Never>?
        /// Tells a timer whether the wait it was started for is still the current one.
        var generation = 0
    }
    private let state = Mutex(State())

    func post(_ item: Item) {
        let wake = state.withLock { s -> (CheckedContinuation<[Item], Never>, [Item], Task<Void, Never>?)? in
            s.items.append(item)
            guard let waiter = s.waiter else { return nil }
            defer { s.waiter = nil; s.items = []; s.timer = nil }
            return (waiter, s.items, s.timer)
        }
        if let (waiter, items, timer) = wake {
            timer?.cancel()
            waiter.resume(returning: items)
        }
    }

    /// Everything posted so far; waits for something until `deadline` (nil: no deadline).
    /// Empty when the deadline passed first.
    func take(until deadline: ContinuousClock.Instant?) async -> [Item] {
        await withCheckedContinuation { (c: CheckedContinuation<[Item], Never>) in
            let ready = state.withLock { s -> [Item]? in
                if !s.items.isEmpty { defer { s.items = [] }; return s.items }
                if let deadline, deadline <= .now { return [] }
                s.generation += 1
                s.waiter = c
                if let deadline {
                    let generation = s.generation
                    s.timer = Task { [weak self] in
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        if !Task.isCancelled { self?.expire(generation) }
                    }
                }
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    private func expire(_ generation: Int) {
        let waiter = state.withLock { s -> CheckedContinuation<[Item], Never>? in
            guard s.generation == generation, let waiter = s.waiter else { return nil }
            s.waiter = nil
            s.timer = nil
            return waiter
        }
        waiter?.resume(returning: [])
    }
}
