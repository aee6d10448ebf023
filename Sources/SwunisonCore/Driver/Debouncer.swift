/// When to act on a burst of changes (watch mode).
///
/// A lone change is acted on after a short first window (0.2 s), not after a fixed delay: a
/// fixed delay is the latency floor of lsyncd and Syncthing (at least 1 s per change). While
/// changes keep coming the quiet time asked for grows with the burst, half as long as the burst
/// has lasted, up to `delay`: a `tar x` of 10,000 files (half a second of events) is acted on a
/// quarter of a second after it ends, in one cycle, while a tree busy for minutes gets a cycle
/// whenever it pauses for `delay`. And a burst is acted on no later than `maxDelay` after its
/// first change, however busy the tree stays.
struct Debouncer: Sendable {
    let firstWindow: Duration
    let delay: Duration
    let maxDelay: Duration

    /// When the current burst began (nil: no change waiting).
    private(set) var burstStart: ContinuousClock.Instant?
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
            deadline = now + firstWindow
            return
        }
        let window = min(max(firstWindow, (now - start) / 2), delay)
        deadline = min(now + window, start + maxDelay)
    }

    /// What was waiting is being acted on: the next change starts a new burst.
    mutating func reset() {
        burstStart = nil
        deadline = nil
    }
}
