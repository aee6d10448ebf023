/// When to act on a burst of changes (watch mode).
///
/// A lone change is acted on after a short first window (0.2 s), not after a fixed delay: a
/// fixed delay is the latency floor of lsyncd and Syncthing (at least 1 s per change). Only
/// while changes keep coming does the window grow, doubling up to `delay`; and the burst is
/// acted on no later than `maxDelay` after its first change, however busy the tree stays.
struct Debouncer: Sendable {
    let firstWindow: Duration
    let delay: Duration
    let maxDelay: Duration

    /// When the current burst began (nil: no change waiting).
    private(set) var burstStart: ContinuousClock.Instant?
    private var window: Duration = .zero
    /// When to act on what is waiting (nil: nothing waits).
    private(set) var deadline: ContinuousClock.Instant?

    init(firstWindow: Duration, delay: Duration, maxDelay: Duration) {
        self.firstWindow = firstWindow
        self.delay = max(delay, firstWindow)
        self.maxDelay = max(maxDelay, firstWindow)
    }

    /// A change was seen at `now`.
    mutating func noted(at now: ContinuousClock.Instant) {
        guard let start = burstStart else {
            burstStart = now
            window = firstWindow
            deadline = now + firstWindow
            return
        }
        window = min(window * 2, delay)
        deadline = min(now + window, start + maxDelay)
    }

    /// What was waiting is being acted on: the next change starts a new burst.
    mutating func reset() {
        burstStart = nil
        deadline = nil
    }
}
