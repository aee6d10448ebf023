import SwunisonModel
import SwunisonReplica
import SwunisonReconcile

/// What a run did, for the summary line, the log and the exit code.
public struct RunSummary: Sendable {
    /// The plan as finally reviewed (empty when everything was in step).
    public var items: [PlanItem] = []
    /// Items whose propagation completed (transfers and archive-only updates).
    public var transferred = 0
    /// Conflicts left unresolved, and items the user chose to skip.
    public var skipped = 0
    /// Items with at least one path that failed after all retries.
    public var failed = 0
    public var failures: [PathFailure] = []

    /// The failures as the lines a person reads, in order: one per failure, except that a
    /// message shared by several paths (a lost connection fails everything in flight with the
    /// same words) is said once, naming how many paths and the first few.
    public var failureMessages: [String] {
        var paths: [String: [RelativePath]] = [:]
        var order: [String] = []
        for failure in failures {
            if paths[failure.message] == nil { order.append(failure.message) }
            paths[failure.message, default: []].append(failure.path)
        }
        return order.map { message in
            let affected = paths[message]!
            guard affected.count > 1 else { return message }
            let named = affected.prefix(3).map { $0.isRoot ? "." : $0.description }.joined(separator: ", ")
            return "\(affected.count) paths (\(named)\(affected.count > 3 ? ", ..." : "")): \(message)"
        }
    }
    /// Where the losing versions of conflicts (and other replaced files) were kept.
    public var backups: [BackupRecord] = []
    /// Paths a scan could not read, per side.
    public var problems: [(Side, ScanProblem)] = []
    public var bytesCopied: Int64 = 0
    /// True when this was a dry run: nothing was changed.
    public var dryRun = false
    /// True when the user quit at the prompt (exit 3).
    public var quit = false
    /// Items left for the next run because the run was asked to stop (SIGTERM in watch mode):
    /// not a failure, nothing of them was recorded as done.
    public var notStarted = 0

    public init() {}

    /// Unison's exit codes: 0 all in step, 1 something skipped, 2 non-fatal failures
    /// (fatal errors, exit 3, are thrown, never summarised).
    public var exitCode: Int32 {
        if quit { return 3 }
        if failed > 0 || !failures.isEmpty || !problems.isEmpty { return 2 }
        if skipped > 0 { return 1 }
        return 0
    }
}
