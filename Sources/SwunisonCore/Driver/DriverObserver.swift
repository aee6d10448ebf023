import SwunisonModel

/// Watch mode's timing and limits, from the profile.
public struct WatchTiming: Sendable {
    /// How soon a lone change is acted on.
    public var firstWindow: Duration = .milliseconds(200)
    /// The longest window while changes keep coming (`delay`).
    public var delay: Duration = .seconds(3)
    /// A burst is acted on at the latest this long after its first change (`maxdelay`); also how
    /// long a file still being written is held back.
    public var maxDelay: Duration = .seconds(30)
    /// A full rescan of both sides this often, the safety net (`repeat = watch+SECONDS`).
    public var fullRescanEvery: Duration = .seconds(3600)
    /// Subtrees left without watches (the watch limit) are rescanned this often.
    public var unwatchedRescanEvery: Duration = .seconds(60)
    /// Reconnection after a lost connection: first wait, doubled up to `reconnectMax`, forever.
    public var reconnectFirst: Duration = .seconds(1)
    public var reconnectMax: Duration = .seconds(300)
    /// At most this many inotify watches per root (`watchlimit`).
    public var watchLimit: Int?

    public init() {}
}

/// What the watch driver is doing (the status file's `state`, systemd's STATUS=).
public enum DriverState: Sendable, Equatable {
    case starting
    case scanning
    case propagating
    case idle
    /// A side's connection is lost; reconnecting.
    case disconnected(Side, String)
    /// A side's root is gone; waiting for it to come back.
    case rootMissing(Side, String)
    case stopped
}

/// One cycle of watch mode (or one run of `repeat`): what it covered and how it went.
public struct CycleReport: Sendable {
    public enum Scope: Sendable, Equatable {
        /// Both replicas, everything the profile covers.
        case full
        /// Only these subtrees.
        case paths([RelativePath])
    }

    public var scope: Scope
    /// Wall-clock start, nanoseconds since the epoch.
    public var started: Int64
    public var duration: Duration
    /// The run's summary; nil when the cycle stopped with an error.
    public var summary: RunSummary?
    /// Why the cycle stopped, when it did.
    public var error: String?
    /// The error itself (a batch run rethrows it).
    var failure: (any Error)?

    public init(scope: Scope, started: Int64, duration: Duration, summary: RunSummary? = nil, error: String? = nil) {
        self.scope = scope; self.started = started; self.duration = duration; self.summary = summary; self.error = error
    }

    /// The summary, or the error the cycle stopped with.
    func summaryOrThrow() throws -> RunSummary {
        if let failure { throw failure }
        return summary ?? RunSummary()
    }
}

/// Told what the driver does; the command line turns it into the status file, systemd's
/// notifications and the log. Called from the driver's task; must not block for long.
public protocol DriverObserver: Sendable {
    func stateChanged(_ state: DriverState)
    func cycleFinished(_ report: CycleReport)
    /// Paths seen changed and waiting for a cycle (the first few), and how many in all.
    func pendingChanged(_ paths: [RelativePath], count: Int)
    /// Something a person should hear about once (the watch limit reached, a root gone).
    func warning(_ message: String)
}
