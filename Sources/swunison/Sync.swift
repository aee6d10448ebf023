import ArgumentParser
import Glibc
import Logging
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel
import SwunisonProfile
import SwunisonReconcile
import SwunisonStorage

extension Swunison {
    /// A synchronisation run (the default subcommand): `swunison NAME` or `swunison ROOT1 ROOT2`,
    /// with preferences in Unison's command-line style.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract: "Synchronise the two roots of a profile (the default).")

        @Argument(parsing: .allUnrecognized,
                  help: "A profile name or two roots, then preferences (-batch, -prefer newer, --dry-run, ...).")
        var arguments: [String] = []

        func run() async throws {
            let console = Console()
            let profiles: [Profile]
            do {
                profiles = try ProfileLoader.fromEnvironment().loadAll(arguments: arguments)
            } catch {
                throw ExitStatus.fatal(error, console: console)
            }
            for profile in profiles {
                for warning in profile.warnings where !profile.silent { console.err("warning: \(warning)") }
            }
            if profiles.count > 1 || profiles[0].watch {
                if let once = profiles.first(where: { !$0.watch }), profiles.count > 1 {
                    console.err("swunison: several profiles run in one process only in watch mode: add --watch "
                        + "(or repeat = watch to \(once.name).prf)")
                    throw ExitCode(3)
                }
                let code = await WatchCommand(profiles: profiles, console: console).run()
                if code != 0 { throw ExitCode(code) }
                return
            }
            let summary: RunSummary
            do {
                summary = try await SyncRun(profile: profiles[0], console: console).run()
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw ExitStatus.fatal(error, console: console)
            }
            if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
        }
    }
}

/// One profile's runs: opens the lock, the archive, the replicas and the log once, and keeps
/// them for every run (`repeat`) or cycle (watch mode) of the process.
struct SyncRun {
    let profile: Profile
    let console: Console

    /// What a profile's runs keep open.
    private struct Opened {
        let lock: ArchiveLock
        let archive: Archive
        let logger: Logger
        let log: LogSink?
        let replicas: ReplicaPair
        let options: SessionOptions

        func close() {
            let replicas = self.replicas
            Task { await replicas.a.close(); await replicas.b.close() }
            lock.release()
        }
    }

    private func open() async throws -> Opened {
        guard profile.roots.count == 2 else {
            throw ProfileError.badCommandLine(Diagnostic(file: profile.sourceFile, line: nil,
                message: "exactly two roots are needed, found \(profile.roots.count)"))
        }
        let directory = profile.profileDirectory
        try makeDirectories(directory + "/archives")
        let archivePath = profile.archivePath

        // Invariant 7: one run per archive at a time; the lock dies with its process, and in
        // watch mode it is held for the whole watch.
        let lock = try ArchiveLock.acquire(path: archivePath)
        do {
            if profile.ignoreArchives { try Archive.removeFile(at: archivePath) }
            let archive = try Archive.open(path: archivePath, roots: profile.roots.map(\.written))
            let (logger, log) = makeLogger()
            logger.info("start: \(profile.name) (\(profile.roots[0]) <-> \(profile.roots[1]))\(profile.dryRun ? " dry run" : "")\(profile.watch ? " watch" : "")")
            var options = sessionOptions(archiveKey: profile.archiveName)
            let a = try await openReplica(profile.roots[0], cacheKey: options.cacheKey(for: .a))
            let b = try await openReplica(profile.roots[1], cacheKey: options.cacheKey(for: .b))
            // swunison's own files inside a local root are ignored on both sides (a server
            // leaves its own out by itself).
            for case let local as LocalReplica in [a, b] where !local.ownState.isEmpty {
                options.ignore += local.ownState.ignorePatterns
                logger.info("ignoring swunison's own files in \(local.displayName): \(local.ownState.paths.map(\.description).joined(separator: ", "))")
            }
            return Opened(lock: lock, archive: archive, logger: logger, log: log, replicas: ReplicaPair(a: a, b: b),
                          options: options)
        } catch {
            lock.release()
            throw error
        }
    }

    private var interface: TextInterface {
        TextInterface(console: console, mode: profile.batch ? .batch : .interactive, auto: profile.auto,
                      silent: profile.silent, terse: profile.terse, dryRun: profile.dryRun)
    }

    /// One run, or `repeat = SECONDS` runs until a fatal error or a signal; prints each run's
    /// summary and returns the last.
    func run() async throws -> RunSummary {
        let opened = try await open()
        defer { opened.close() }
        let mode: StatusReport.Mode = profile.repeatIntervalSeconds == nil ? .once : .repeat
        let observer = RunObserver(profile: profile, mode: mode, console: console, logger: opened.logger)
        defer { observer.flush() }
        let driver = SyncDriver(options: opened.options, replicas: opened.replicas, archive: opened.archive,
                                interface: interface, logger: opened.logger, observer: observer)
        guard let interval = profile.repeatIntervalSeconds else {
            let summary = try await driver.runOnce()
            report(summary, logger: opened.logger)
            return summary
        }
        // `repeat = SECONDS` (Unison's): run again that long after each run ends, whatever its
        // outcome; a fatal error (exit 3) stops, and so does SIGTERM (after the run in flight).
        let log = opened.log
        let signals = SignalHandlers(stop: { driver.stop() }, reopenLog: { log?.reopen() })
        defer { withExtendedLifetime(signals) {} }
        return try await driver.repeatRuns(every: .seconds(interval)) { summary in
            report(summary, logger: opened.logger)
            if !profile.silent && !driver.isStopping { console.out("next run in \(interval) s (repeat = \(interval))") }
        }
    }

    /// Watch mode until the coordinator stops it. Throws when it cannot start.
    func watch(_ coordinator: WatchCoordinator) async throws {
        let opened = try await open()
        defer { opened.close() }
        let observer = RunObserver(profile: profile, mode: .watch, console: console, logger: opened.logger,
                                   onState: { coordinator.stateChanged($0, $1) })
        defer { observer.flush() }
        let driver = SyncDriver(options: opened.options, replicas: opened.replicas, archive: opened.archive,
                                interface: interface, logger: opened.logger, observer: observer)
        coordinator.add(driver, log: opened.log)
        var timing = WatchTiming()
        timing.delay = .milliseconds(Int64(profile.delay * 1000))
        timing.maxDelay = .milliseconds(Int64(profile.maxDelaySeconds * 1000))
        timing.fullRescanEvery = .seconds(profile.repeatIntervalSeconds ?? 3600)
        timing.unwatchedRescanEvery = min(.seconds(60), timing.fullRescanEvery)
        let request = WatchRequest(paths: profile.paths, ignore: opened.options.ignore, ignoreNot: opened.options.ignoreNot,
                                   watchLimit: profile.watchLimit,
                                   holdWhileWritingNanoseconds: Int64(profile.maxDelaySeconds * 1_000_000_000),
                                   cacheKey: opened.options.cacheKey)
        if !profile.silent { console.out("\(profile.name): watching \(profile.roots[0].written) and \(profile.roots[1].written)") }
        try await driver.watch(request, timing: timing)
        opened.logger.info("watch: stopped")
    }

    private func openReplica(_ root: Root, cacheKey: String) async throws -> any Replica {
        switch root {
        case .local(let path):
            return try LocalReplica(root: path, displayName: root.written,
                                    cacheDirectory: profile.profileDirectory + "/caches",
                                    backupDirectory: profile.effectiveBackupDirectory,
                                    maxBackups: profile.maxBackups, attributes: profile.attributes, cacheKey: cacheKey,
                                    ownFiles: [profile.profileDirectory, profile.effectiveLogFile, profile.effectiveStatusFile])
        case .ssh(let remote):
            return try await RemoteReplicaFactory.open(remote, written: root.written, cacheKey: cacheKey,
                                                       profile: profile, console: console)
        }
    }

    private func sessionOptions(archiveKey: String) -> SessionOptions {
        let profile = self.profile
        // Unison's precedence: a matching forcepartial, then preferpartial, then force, then prefer.
        var reconcile = ReconcileOptions(attributes: profile.attributes)
        reconcile.forceFor = { @Sendable path in
            profile.policy(for: path).flatMap { $0.isForced ? $0.prefer : nil }
        }
        reconcile.preferFor = { @Sendable path in
            profile.policy(for: path).flatMap { $0.isForced ? nil : $0.prefer }
        }
        var options = SessionOptions(reconcile: reconcile, cacheKey: archiveKey)
        options.paths = profile.paths
        options.ignore = profile.ignorePatterns
        options.ignoreNot = profile.ignoreNotPatterns
        options.fastcheck = profile.fastcheck
        options.attributes = profile.attributes
        options.confirmBigDeletes = profile.confirmBigDeletes
        options.retry = profile.retry
        options.dryRun = profile.dryRun
        options.links = profile.links
        let rules = profile.backup
        if rules.ignore.isEmpty {
            // No `backup` patterns: keep every replaced or deleted version except `backupnot` ones.
            options.shouldBackup = { @Sendable path in !rules.ignoreNot.contains { $0.matches(path) } }
        } else {
            options.shouldBackup = { @Sendable path in rules.isIgnored(path) }
        }
        // Many operations in flight: over ssh they hide the round trip; locally they let one
        // shared syncfs cover hundreds of new files instead of a few (see GroupSync). Only a few
        // I/O threads run them, so this costs memory, not contention.
        options.maxConcurrentOperations = 512
        if profile.roots.contains(where: { if case .ssh = $0 { true } else { false } }) {
            // One wave for a typical batch of small changes across a 100 ms link.
            options.maxConcurrentOperations = 1024
        }
        // (Never near the server's limit of requests in flight, ReplicaServer.maxRequestsInFlight.)
        if let text = getenv("SWUNISON_IN_FLIGHT"), let n = Int(String(cString: text)), n > 0 { options.maxConcurrentOperations = min(n, 2048) }
        return options
    }

    private func makeLogger() -> (Logger, LogSink?) {
        guard profile.log, let sink = LogSink(path: profile.effectiveLogFile) else {
            if profile.log && !profile.silent { console.err("warning: cannot open log file \(profile.effectiveLogFile); not logging") }
            return (Logger(label: "swunison", factory: { _ in SwiftLogNoOpLogHandler() }), nil)
        }
        return (Logger(label: "swunison", factory: { _ in FileLogHandler(sink: sink) }), sink)
    }

    /// The summary block, Unison-style.
    private func report(_ summary: RunSummary, logger: Logger) {
        if summary.quit {
            console.err("Terminated by user: nothing was changed.")
            logger.info("quit by user")
            return
        }
        if summary.dryRun {
            let count = summary.items.filter { $0.decision.source != nil || $0.decision == .archiveOnly }.count
            console.out("Dry run: nothing was changed (\(count) item\(count == 1 ? "" : "s") would be propagated).")
            logger.info("dry run: \(count) items")
            return
        }
        for message in summary.failureMessages where !profile.silent {
            console.err("[FAILED] \(message)")
        }
        for (side, problem) in summary.problems where !profile.silent {
            console.err("[FAILED] \(side == .a ? profile.roots[0].written : profile.roots[1].written): \(problem)")
        }
        if summary.items.isEmpty && summary.failures.isEmpty && summary.problems.isEmpty {
            logger.info("nothing to do")
            return
        }
        let line = "Synchronization complete (\(summary.transferred) item\(summary.transferred == 1 ? "" : "s") transferred, \(summary.skipped) skipped, \(summary.failed) failed)"
        if !profile.silent { console.out(line) }
        logger.info("\(line)")
        for record in summary.backups where record.isConflictLoser && !profile.silent {
            let root = record.side == .a ? profile.roots[0].written : profile.roots[1].written
            console.out("  conflict: losing version of \(record.path) in \(root) kept as \(record.location)")
        }
        let others = summary.backups.filter { !$0.isConflictLoser }.count
        if others > 0 && !profile.silent {
            console.out("  \(others) replaced or deleted version\(others == 1 ? "" : "s") kept under \(profile.effectiveBackupDirectory)")
        }
        for record in summary.backups { logger.info("backup: \(record.path) -> \(record.location)") }
    }
}
