import Glibc
import Synchronization
import Testing
@testable import SwunisonCore

/// Group commit (Invariant 1: a file's data is durable before its rename): every waiter returns
/// only after a sync that *started* after it called, syncs are shared, and a failing sync fails
/// exactly the waiters it was meant to cover.
struct GroupSyncTests {
    /// A sync that counts how many have started and finished, taking a little while.
    final class CountingSync: Sendable {
        let started = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let failOnce = Atomic<Bool>(false)

        func run() throws {
            started.add(1, ordering: .sequentiallyConsistent)
            usleep(2_000)
            finished.add(1, ordering: .sequentiallyConsistent)
            if failOnce.exchange(false, ordering: .sequentiallyConsistent) { throw SyncFailure() }
        }
    }

    struct SyncFailure: Error {}

    @Test func everyWaiterIsCoveredByASyncThatStartedAfterIt() async throws {
        let counter = CountingSync()
        let group = GroupSync { try counter.run() }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for _ in 0..<200 {
                tasks.addTask {
                    // Syncs already started when this writer arrives cannot cover its data.
                    let startedBefore = counter.started.load(ordering: .sequentiallyConsistent)
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
