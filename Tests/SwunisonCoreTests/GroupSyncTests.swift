import Glibc
import Synchronization
import Testing
@testable import SwunisonCore
import SwunisonReplica

/// Group commit (Invariant 1: a file's data is durable before its rename): every waiter returns
/// only after a sync that *started* after it called, syncs are shared, and a failing sync fails
/// exactly the waiters it was meant to cover.
struct GroupSyncTests {
    /// A sync that counts how many have started and finished, taking a little while.
    final class CountingSync: Sendable {
        let started = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let failOnce = Atomic<Bool>(false)
        /// Writers about to wait; the first sync holds on until `gate` of them have come (at
        /// most 10 s), so that sharing does not depend on how fast a loaded host starts tasks.
        let arrived = Atomic<Int>(0)
        let gate: Int

        init(gate: Int = 0) { self.gate = gate }

        func run() throws {
            let number = started.add(1, ordering: .sequentiallyConsistent).newValue
            if number == 1 {
                var waited = 0
                while arrived.load(ordering: .sequentiallyConsistent) < gate && waited < 10_000 {
                    usleep(1_000)
                    waited += 1
                }
            }
            usleep(2_000)
            finished.add(1, ordering: .sequentiallyConsistent)
            if failOnce.exchange(false, ordering: .sequentiallyConsistent) { throw SyncFailure() }
        }
    }

    struct SyncFailure: Error {}

    @Test func everyWaiterIsCoveredByASyncThatStartedAfterIt() async throws {
        let counter = CountingSync(gate: 200)
        let group = GroupSync { try counter.run() }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for _ in 0..<200 {
                tasks.addTask {
                    // Syncs already started when this writer arrives cannot cover its data.
                    let startedBefore = counter.started.load(ordering: .sequentiallyConsistent)
                    counter.arrived.add(1, ordering: .sequentiallyConsistent)
                    try await group.waitUntilDurable()
                    #expect(counter.finished.load(ordering: .sequentiallyConsistent) > startedBefore)
                }
            }
            try await tasks.waitForAll()
        }
        // Shared: far fewer syncs than waiters.
        #expect(counter.started.load(ordering: .sequentiallyConsistent) < 200)
    }

    @Test func aSingleWriterIsNotDelayed() async throws {
        let counter = CountingSync()
        let group = GroupSync { try counter.run() }
        try await group.waitUntilDurable()
        try await group.waitUntilDurable()
        #expect(counter.started.load(ordering: .sequentiallyConsistent) == 2)
    }

    @Test func aFailedSyncFailsItsWaitersAndTheNextOneRecovers() async throws {
        let counter = CountingSync()
        counter.failOnce.store(true, ordering: .sequentiallyConsistent)
        let group = GroupSync { try counter.run() }
        await #expect(throws: SyncFailure.self) { try await group.waitUntilDurable() }
        try await group.waitUntilDurable()
    }
}
