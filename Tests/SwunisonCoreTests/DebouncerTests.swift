import Testing
@testable import SwunisonCore

/// When watch mode acts on a burst of changes.
@Suite struct DebouncerTests {
    let start = ContinuousClock.now
    func at(_ ms: Int) -> ContinuousClock.Instant { start + .milliseconds(ms) }

    @Test func aLoneChangeIsActedOnAfterTheFirstWindow() {
        var d = Debouncer(firstWindow: .milliseconds(200), delay: .seconds(3), maxDelay: .seconds(30))
        #expect(d.deadline == nil)
        d.noted(at: at(0))
        #expect(d.deadline == at(200))
        d.reset()
        #expect(d.deadline == nil && d.burstStart == nil)
    }

    @Test func theQuietAskedForGrowsWithTheBurstUpToDelay() {
        var d = Debouncer(firstWindow: .milliseconds(200), delay: .seconds(3), maxDelay: .seconds(30))
        d.noted(at: at(0))
        d.noted(at: at(100))
        #expect(d.deadline == at(300))          // still the first window
        d.noted(at: at(500))
        #expect(d.deadline == at(750))          // half the burst's age
        d.noted(at: at(4_000))
        #expect(d.deadline == at(6_000))
        d.noted(at: at(10_000))
        #expect(d.deadline == at(13_000))       // capped at delay
    }

    @Test func aBurstIsActedOnNoLaterThanMaxDelayAfterItsFirstChange() {
        var d = Debouncer(firstWindow: .milliseconds(200), delay: .seconds(3), maxDelay: .seconds(5))
        d.noted(at: at(0))
        d.noted(at: at(4_500))
        #expect(d.deadline == at(5_000))
    }
}
