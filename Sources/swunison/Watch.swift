import ArgumentParser
import Synchronization
import SwunisonCore
import SwunisonModel
import SwunisonProfile

/// Watch mode for one profile or several (a star's hub: `swunison --watch hub-a hub-b`), in
/// one process: each profile has its own lock, archive, replicas and driver; profiles that
/// watch the same local root share its watches (`SharedTreeWatchers`). Runs until SIGTERM or
/// SIGINT; a profile that cannot start stops them all (exit 3, so that systemd restarts it).
struct WatchCommand {
    let profiles: [Profile]
    let console: Console

    /// Returns the exit status: 0 after a stop asked for by a signal, 3 when a profile could
    /// not start (its error printed).
    func run() async -> Int32 {
        let coordinator = WatchCoordinator(profiles: profiles.map(\.name))
        let signals = SignalHandlers(stop: { coordinator.stopAll() }, reopenLog: { coordinator.reopenLogs() })
        let failures = await withTaskGroup(of: String?.self) { group in
            for profile in profiles {
                group.addTask { [console] in
                    do {
                        try await SyncRun(profile: watchProfile(profile), console: console).watch(coordinator)
                        return nil
                    } catch {
                        // One profile that cannot start stops the others: a service half up is
                        // worse than one systemd restarts.
                        coordinator.stopAll()
                        return (profiles.count > 1 ? "\(profile.name): " : "") + ExitStatus.message(for: error)
                    }
                }
            }
            var failures: [String] = []
            for await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        withExtendedLifetime(signals) {}
        coordinator.stopped()
        for failure in failures { console.err("swunison: " + failure) }
        return failures.isEmpty ? 0 : 3
    }

    /// Watch mode's adjustments: no questions (nobody to answer them in a service), and ssh
    /// keepalives, so that an idle link that died is noticed (and reopened) within minutes.
    private func watchProfile(_ profile: Profile) -> Profile {
        var profile = profile
        profile.batch = true
        if profile.ssh.keepAliveSeconds == nil { profile.ssh.keepAliveSeconds = 30 }
        return profile
    }
}

/// What the profiles of one watch process share: stopping them all, reopening their logs, and
/// telling systemd when they are ready and what they are doing.
final class WatchCoordinator: Sendable {
    private struct State {
        var drivers: [SyncDriver] = []
        var logs: [LogSink] = []
        var stopping = false
        /// Each profile's state; READY=1 goes once every profile has its watches.
        var states: [String: DriverState] = [:]
        var toldReady = false
    }
    private let state = Mutex(State())
    private let names: [String]
    private let notifier = SystemdNotifier.fromEnvironment()

    init(profiles: [String]) { names = profiles }

    /// A profile's driver, to stop with the others (at once if a stop was already asked for).
    func add(_ driver: SyncDriver, log: LogSink?) {
        let stopNow = state.withLock { s -> Bool in
            s.drivers.append(driver)
            if let log { s.logs.append(log) }
            return s.stopping
        }
        if stopNow { driver.stop() }
    }

    func stopAll() {
        let drivers = state.withLock { s -> [SyncDriver] in
            s.stopping = true
            return s.drivers
        }
        notifier.send(.stopping)
        for driver in drivers { driver.stop() }
    }

    func reopenLogs() {
        for log in state.withLock({ $0.logs }) { log.reopen() }
    }

    /// A profile's driver changed state: READY=1 once all have left `starting` (their watches
    /// are in place), and STATUS= always.
    func stateChanged(_ profile: String, _ driverState: DriverState) {
        let (ready, status) = state.withLock { s -> (Bool, String) in
            s.states[profile] = driverState
            let allUp = names.allSatisfy { name in s.states[name].map { $0 != .starting } ?? false }
            let ready = allUp && !s.toldReady
            if ready { s.toldReady = true }
            let status = names.map { name in
                (names.count > 1 ? name + ": " : "") + Self.describe(s.states[name] ?? .starting)
            }.joined(separator: "; ")
            return (ready, status)
        }
        if ready { notifier.send(.ready, .status(status)) } else { notifier.send(.status(status)) }
    }

    /// Every profile has stopped.
    func stopped() {
        notifier.send(.status("stopped"))
    }

    private static func describe(_ state: DriverState) -> String {
        switch state {
        case .starting: return "starting"
        case .scanning: return "scanning"
        case .propagating: return "propagating"
        case .idle: return "watching, in step"
        case let .disconnected(side, why): return "\(side) side disconnected (\(why)), reconnecting"
        case let .rootMissing(side, why): return "\(side) root missing (\(why)), waiting"
        case .stopped: return "stopped"
        }
    }
}
