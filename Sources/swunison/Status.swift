import ArgumentParser
import SwunisonCore
import SwunisonModel
import SwunisonProfile

extension Swunison {
    /// `swunison status PROFILE [--json] [--max-age SECONDS]`: reads the status file a watching
    /// (or last) swunison wrote for the profile, prints it, and says in its exit code whether
    /// the synchronisation is healthy, so that a monitoring check can call it directly.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show how a profile's synchronisation is doing (for people and monitoring checks).",
            discussion: """
                Reads the status file that 'swunison PROFILE --watch' keeps up to date
                (and that a run of 'swunison PROFILE' leaves behind): preference
                statusfile, by default beside the archive. The first line printed is
                the verdict; --json prints the file as it is.

                Exit codes (those of a Nagios or Icinga check):
                  0  healthy
                  1  unresolved conflicts wait for a person; nothing else is wrong
                  2  not working: the last cycle failed or an error is set; no
                     success within --max-age (or none yet); a root is missing or
                     disconnected; the watcher stopped, or its process is gone
                  3  no status yet, an unreadable status file, or a bad profile
                """)

        @Argument(help: ArgumentHelp("A profile name, or two roots, as for a sync run (default: default).",
                                     valueName: "profile"))
        var profile: [String] = []

        @Flag(help: "Print the status file's JSON as it is.")
        var json = false

        @Option(name: .customLong("max-age"),
                help: ArgumentHelp("Exit 2 when the last successful cycle is older than this, or there was none.",
                                   valueName: "seconds"))
        var maxAge: Int?

        func validate() throws {
            if let maxAge, maxAge <= 0 { throw ValidationError("--max-age needs a number of seconds above 0") }
        }

        func run() throws {
            let console = Console()
            let loaded: Profile
            do {
                loaded = try ProfileLoader.fromEnvironment().load(arguments: profile)
            } catch {
                throw ExitStatus.fatal(error, console: console)
            }
            let file = loaded.effectiveStatusFile
            let bytes: [UInt8]
            let report: StatusReport
            do throws(StatusFileError) {
                bytes = try StatusFile.contents(of: file)
                report = try StatusFile.decode(bytes, file: file)
            } catch .missing {
                let invocation = "swunison " + (profile.isEmpty ? loaded.name : profile.joined(separator: " "))
                console.err("swunison: no status yet for profile \(loaded.name) (no file \(file)): "
                    + "start \(invocation) --watch or run \(invocation)")
                throw ExitCode(ExitStatus.fatal)
            } catch {
                console.err("swunison: \(error)")
                throw ExitCode(ExitStatus.fatal)
            }

            let now = StatusReport.Timestamp.now()
            let health = report.health(at: now, maxAgeSeconds: maxAge.map(Int64.init),
                                       writerIsRunning: report.writerIsRunning)
            if json {
                console.raw(String(decoding: bytes, as: UTF8.self))
            } else {
                console.out(StatusText(report: report, health: health, now: now).lines.joined(separator: "\n"))
            }
            if health.level != .ok { throw ExitCode(health.level.rawValue) }
        }
    }
}

/// A status report for a person: the verdict on the first line, then one aligned line per topic.
struct StatusText {
    let report: StatusReport
    let health: StatusHealth
    let now: StatusReport.Timestamp

    /// Paths of `pending` and `conflicts` shown before "and N more".
    static let pathsShown = 5

    var lines: [String] {
        var out = [verdict]
        func line(_ label: String, _ text: String) {
            out.append(label + String(repeating: " ", count: max(1, 14 - label.count)) + text)
        }
        line("state", "\(report.state.rawValue) since \(when(report.stateSince))")
        line("last success", report.lastSuccess.map(when) ?? "none yet")
        line("last cycle", report.lastCycle.map(describe) ?? "none yet")
        line("pending", list(report.pending, count: report.pendingCount))
        line("conflicts", list(report.conflicts, count: report.conflictCount))
        line("last error", report.lastError ?? "none")
        for (index, root) in report.roots.enumerated() {
            line("root \(index + 1)", "\(root.root): \(root.state.rawValue)" + (root.detail.map { " (\($0))" } ?? ""))
        }
        let counts = report.counts
        line("since start", "\(counts.cycles) cycle\(plural(counts.cycles)), \(counts.transferred) transferred, "
            + "\(counts.failed) failed, \(counts.conflicts) conflict\(plural(counts.conflicts))")
        let running = report.writerIsRunning ? "running" : "not running"
        line("process", "pid \(report.pid) (\(running)), swunison \(report.version), \(report.mode.rawValue) mode; "
            + "written \(when(report.updated))")
        return out
    }

    /// `swunison NAME: OK (...)`, `CONFLICTS: ...` or `FAILING: ...`.
    private var verdict: String {
        let head = "swunison \(report.profile): "
        switch health.level {
        case .ok:
            let success = report.lastSuccess.map { "last success \(ago($0))" } ?? "no successful cycle yet"
            return head + "OK (\(report.state.rawValue), \(success))"
        case .conflicts:
            return head + "CONFLICTS: " + health.reasons.joined(separator: "; ")
        case .failing:
            return head + "FAILING: " + health.reasons.joined(separator: "; ")
        }
    }

    private func describe(_ cycle: StatusReport.Cycle) -> String {
        let took = cycle.finished.secondsSinceEpoch - cycle.started.secondsSinceEpoch
        return "\(cycle.kind.rawValue), finished \(when(cycle.finished)) after \(duration(took)): "
            + "\(cycle.pathsScanned) scanned, \(cycle.pathsChanged) changed, "
            + "\(cycle.transferred) transferred (\(TextInterface.size(cycle.bytesCopied))), "
            + "\(cycle.skipped) skipped, \(cycle.failed) failed, exit \(cycle.exitCode)"
    }

    private func list(_ paths: [RelativePath], count: Int) -> String {
        guard count > 0 else { return "none" }
        let shown = paths.prefix(Self.pathsShown).map { $0.isRoot ? "." : $0.description }
        let more = count - shown.count
        return "\(count): " + shown.joined(separator: ", ") + (more > 0 ? ", and \(more) more" : "")
    }

    /// `2026-12-03T08:15:02Z (3 min ago)`.
    private func when(_ time: StatusReport.Timestamp) -> String { "\(time) (\(ago(time)))" }

    private func ago(_ time: StatusReport.Timestamp) -> String {
        let seconds = now.secondsSinceEpoch - time.secondsSinceEpoch
        return seconds < 0 ? "in \(duration(-seconds))" : "\(duration(seconds)) ago"
    }

    /// `42 s`, `3 min`, `2 h 5 min`, `3 d 4 h`.
    private func duration(_ seconds: Int64) -> String {
        switch seconds {
        case ..<60: return "\(seconds) s"
        case ..<3600: return "\(seconds / 60) min"
        case ..<86400: return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
        default: return "\(seconds / 86400) d \(seconds % 86400 / 3600) h"
        }
    }

    private func plural(_ n: Int) -> String { n == 1 ? "" : "s" }
}
