import Logging
import Synchronization
import SwunisonCore
import SwunisonModel
import SwunisonProfile

/// What the driver does, turned into the profile's status file, systemd's STATUS= (through the
/// watch coordinator), one log line per cycle, and in watch mode one line per cycle on stdout
/// (the journal) with any failures.
final class RunObserver: DriverObserver, Sendable {
    private let profile: Profile
    private let console: Console
    private let logger: Logger
    private let writer: StatusFileWriter
    private let report: Mutex<StatusReport>
    private let isWatching: Bool
    /// Told of every state (watch mode's READY=1 and STATUS=).
    private let onState: @Sendable (String, DriverState) -> Void

    init(profile: Profile, mode: StatusReport.Mode, console: Console, logger: Logger,
         onState: @escaping @Sendable (String, DriverState) -> Void = { _, _ in }) {
        self.profile = profile
        self.console = console
        self.logger = logger
        self.isWatching = mode == .watch
        self.onState = onState
        let silent = profile.silent
        writer = StatusFileWriter(path: profile.effectiveStatusFile) { [console, logger] error in
            logger.warning("status file: \(error)")
            if !silent { console.err("warning: \(error)") }
        }
        report = Mutex(StatusReport(starting: profile.name, mode: mode, roots: profile.roots.map(\.written)))
        writer.submit(report.withLock { $0 })
    }

    func stateChanged(_ state: DriverState) {
        let updated = report.withLock { r -> StatusReport in r.enter(driverState: state); return r }
        writer.submit(updated)
        onState(profile.name, state)
    }

    func cycleFinished(_ cycle: CycleReport) {
        let updated = report.withLock { r -> StatusReport in r.record(cycle); return r }
        writer.submit(updated)
        let line = Self.describe(cycle)
        logger.info("\(line)")
        guard isWatching, !profile.silent else { return }
        for message in cycle.summary?.failureMessages ?? [] { console.err("[FAILED] \(message)") }
        // A cycle that found nothing to do (a rescan) stays out of the journal; the log has it.
        let didSomething = cycle.error != nil || !(cycle.summary?.items.isEmpty ?? true) || !(cycle.summary?.failures.isEmpty ?? true)
        if didSomething { console.out(line) }
    }

    func pendingChanged(_ paths: [RelativePath], count: Int) {
        let updated = report.withLock { r -> StatusReport in r.setPending(paths, count: count); return r }
        writer.submit(updated)
    }

    func warning(_ message: String) {
        logger.warning("\(message)")
        if !profile.silent { console.err("warning: \(profile.name): \(message)") }
    }

    /// Writes what is still queued (before the process exits).
    func flush() { writer.flush() }

    /// One line for the log and the journal: scope, what moved, how long.
    static func describe(_ cycle: CycleReport) -> String {
        let scope: String
        switch cycle.scope {
        case .full: scope = "full"
        case .paths(let paths): scope = "\(paths.count) path\(paths.count == 1 ? "" : "s")"
        }
        let seconds = Double(cycle.duration.components.seconds) + Double(cycle.duration.components.attoseconds) / 1e18
        let time = seconds < 10 ? String(Int(seconds * 1000)) + " ms" : String(Int(seconds)) + " s"
        guard let summary = cycle.summary else {
            return "cycle (\(scope)) failed after \(time): \(cycle.error ?? "?")"
        }
        return "cycle (\(scope)): \(summary.transferred) transferred, \(summary.skipped) skipped, \(summary.failed) failed, "
            + "\(summary.bytesCopied) bytes in \(time)"
    }
}
