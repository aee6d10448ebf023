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
            let profile: Profile
            do {
                profile = try ProfileLoader.fromEnvironment().load(arguments: arguments)
            } catch {
                throw ExitStatus.fatal(error, console: console)
            }
            for warning in profile.warnings where !profile.silent { console.err("warning: \(warning)") }
            if profile.watch {
                // Watch mode (inotify on both hosts) is not part of this release. Saying so beats
                // running once and exiting, which a systemd service would restart in a loop.
                console.err("swunison: watch mode (--watch, repeat = watch) is not available in swunison \(SwunisonVersion.current); "
                    + "use repeat = SECONDS (a run every SECONDS) or a systemd timer running '\(profile.name) -batch'")
                throw ExitCode(3)
            }
            while true {
                let summary: RunSummary
                do {
                    summary = try await SyncRun(profile: profile, console: console).run()
                } catch let exit as ExitCode {
                    throw exit
                } catch {
                    throw ExitStatus.fatal(error, console: console)
                }
                let code = summary.exitCode
                // `repeat = SECONDS` (Unison's): run again after that long, whatever this run's
                // outcome; a fatal error (exit 3) still stops.
                guard let interval = profile.repeatIntervalSeconds, code != 3 else {
                    if code != 0 { throw ExitCode(code) }
                    return
                }
                if !profile.silent { console.out("next run in \(interval) s (repeat = \(interval))") }
                try await Task.sleep(for: .seconds(interval))
            }
        }
    }
}

/// Sets up one run from a profile (lock, archive, replicas, log) and prints its summary.
struct SyncRun {
    let profile: Profile
    let console: Console

    func run() async throws -> RunSummary {
        guard profile.roots.count == 2 else {
            throw ProfileError.badCommandLine(Diagnostic(file: profile.sourceFile, line: nil,
                message: "exactly two roots are needed, found \(profile.roots.count)"))
        }
        let directory = profile.profileDirectory
        try makeDirectories(directory + "/archives")
        let archivePath = profile.archivePath

        // Invariant 7: one run per archive at a time; the lock dies with its process.
        let lock = try ArchiveLock.acquire(path: archivePath)
        defer { lock.release() }
        if profile.ignoreArchives { try Archive.removeFile(at: archivePath) }
        let archive = try Archive.open(path: archivePath, roots: profile.roots.map(\.written))

        let logger = makeLogger()
        logger.info("start: \(profile.name) (\(profile.roots[0]) <-> \(profile.roots[1]))\(profile.dryRun ? " dry run" : "")")

        let options = sessionOptions(archiveKey: profile.archiveName)
        let a = try await openReplica(profile.roots[0], cacheKey: options.cacheKey(for: .a))
        let b = try await openReplica(profile.roots[1], cacheKey: options.cacheKey(for: .b))
        let replicas = ReplicaPair(a: a, b: b)
        defer { Task { await a.close(); await b.close() } }

        let interface = TextInterface(console: console, mode: profile.batch ? .batch : .interactive,
                                      auto: profile.auto, silent: profile.silent, terse: profile.terse,
                                      dryRun: profile.dryRun)
        let session = Session(options: options, replicas: replicas, archive: archive, interface: interface, logger: logger)
        let summary = try await session.run()
        report(summary, logger: logger)
        return summary
    }

    private func openReplica(_ root: Root, cacheKey: String) async throws -> any Replica {
        switch root {
        case .local(let path):
            return try LocalReplica(root: path, displayName: root.written,
                                    cacheDirectory: profile.profileDirectory + "/caches",
                                    backupDirectory: profile.effectiveBackupDirectory,
                                    maxBackups: profile.maxBackups, attributes: profile.attributes, cacheKey: cacheKey)
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
        if let text = getenv("SWUNISON_IN_FLIGHT"), let n = Int(String(cString: text)), n > 0 { options.maxConcurrentOperations = n }
        return options
    }

    private func makeLogger() -> Logger {
        guard profile.log, let sink = LogSink(path: profile.effectiveLogFile) else {
            if profile.log && !profile.silent { console.err("warning: cannot open log file \(profile.effectiveLogFile); not logging") }
            return Logger(label: "swunison", factory: { _ in SwiftLogNoOpLogHandler() })
        }
        return Logger(label: "swunison", factory: { _ in FileLogHandler(sink: sink) })
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
        for failure in summary.failures where !profile.silent {
            console.err("[FAILED] \(failure.message)")
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
