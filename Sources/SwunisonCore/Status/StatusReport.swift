import Dispatch
import Glibc
import Synchronization
import SwunisonFS
import SwunisonModel
import SwunisonReconcile

/// What a swunison process says about the synchronisation of one profile: its state, its last
/// cycle, what waits and what conflicts. The process rewrites it (``StatusFile/write(_:to:updated:)``)
/// whenever something in it changes; `swunison status` and monitoring read it
/// (``StatusFile/read(from:)``). It is csync2's `-T` and lsyncd's `statusFile` for swunison.
///
/// The file is JSON with a stable key order (see ``encoded()``); a reader skips keys it does not
/// know, so a file written by a newer swunison still reads.
public struct StatusReport: Sendable, Equatable {
    /// Where the writing process is in its work.
    public enum State: String, Sendable, CaseIterable {
        /// Loading the profile, taking the lock, opening the replicas, setting up watches.
        case starting
        /// Scanning (the whole of both replicas, or the paths that changed).
        case scanning
        /// Carrying a plan out.
        case propagating
        /// Waiting for changes (watch mode) or for the next run (`repeat = N`).
        case idle
        /// A remote root's connection is lost; reconnecting (see ``StatusReport/roots``).
        case disconnected
        /// A root went away (unmounted, deleted); nothing is propagated until it is back.
        case rootMissing
        /// The process ended: stopped by a signal, after a fatal error, or (``Mode/once``) done.
        case stopped
    }

    /// How the writer runs, which decides what ``State/stopped`` means.
    public enum Mode: String, Sendable, CaseIterable {
        /// `--watch` / `repeat = watch`: runs until stopped.
        case watch
        /// `repeat = N`: a full run every N seconds, until stopped.
        case `repeat`
        /// One run (`swunison PROFILE`, a timer's `-batch` run): it ends with ``State/stopped``.
        case once

        /// Whether the writer is meant to keep running, so that its end is something to report.
        public var isLongRunning: Bool { self != .once }
    }

    /// Which paths a cycle looked at.
    public enum CycleKind: String, Sendable, CaseIterable {
        /// Both replicas, in full.
        case full
        /// Only the paths that change notices named.
        case scoped
    }

    /// One scan-reconcile-propagate-commit cycle, once it has finished.
    public struct Cycle: Sendable, Equatable {
        public var kind: CycleKind
        public var started: Timestamp
        public var finished: Timestamp
        /// Paths looked at on both sides together.
        public var pathsScanned: Int
        /// Paths that differed (items of the plan).
        public var pathsChanged: Int
        /// File content copied, in bytes.
        public var bytesCopied: Int64
        /// Items propagated, as the summary line counts them.
        public var transferred: Int
        /// Items left alone: unresolved conflicts.
        public var skipped: Int
        /// Items that failed after every retry.
        public var failed: Int
        /// Unison's exit code for this cycle alone: 0 in step, 1 something skipped, 2 some paths
        /// failed, 3 fatal.
        public var exitCode: Int32

        public init(kind: CycleKind, started: Timestamp, finished: Timestamp, pathsScanned: Int, pathsChanged: Int,
                    bytesCopied: Int64, transferred: Int, skipped: Int, failed: Int, exitCode: Int32) {
            self.kind = kind; self.started = started; self.finished = finished
            self.pathsScanned = pathsScanned; self.pathsChanged = pathsChanged; self.bytesCopied = bytesCopied
            self.transferred = transferred; self.skipped = skipped; self.failed = failed; self.exitCode = exitCode
        }

        /// The cycle a session's summary describes.
        /// - Parameter pathsScanned: paths both scans looked at (the summary does not count them).
        public init(kind: CycleKind, started: Timestamp, finished: Timestamp, pathsScanned: Int, summary: RunSummary) {
            self.init(kind: kind, started: started, finished: finished, pathsScanned: pathsScanned,
                      pathsChanged: summary.items.count, bytesCopied: summary.bytesCopied,
                      transferred: summary.transferred, skipped: summary.skipped, failed: summary.failed,
                      exitCode: summary.exitCode)
        }

        /// Whether the cycle counts as a success: nothing failed (a conflict left alone does not
        /// make a cycle fail; it is reported on its own).
        public var succeeded: Bool { exitCode < 2 }
    }

    /// Totals since the writing process started.
    public struct Counts: Sendable, Equatable {
        public var cycles = 0
        public var transferred = 0
        public var failed = 0
        /// Unresolved conflicts met, summed over cycles (one left unresolved for three cycles
        /// counts three times).
        public var conflicts = 0

        public init(cycles: Int = 0, transferred: Int = 0, failed: Int = 0, conflicts: Int = 0) {
            self.cycles = cycles; self.transferred = transferred; self.failed = failed; self.conflicts = conflicts
        }
    }

    /// How one root is doing.
    public enum RootState: String, Sendable, CaseIterable {
        case ok
        /// The directory is not there (unmounted, deleted, replaced).
        case missing
        /// The connection to its host is lost.
        case disconnected
    }

    /// One root of the profile, as written there, and how it is doing.
    public struct RootStatus: Sendable, Equatable {
        public var root: String
        public var state: RootState
        /// What is wrong, in a few words (the connection error, why the root is missing).
        public var detail: String?

        public init(root: String, state: RootState = .ok, detail: String? = nil) {
            self.root = root; self.state = state; self.detail = detail
        }
    }

    /// At most this many paths of ``pending`` and of ``conflicts`` are written.
    public static let listLimit = 100

    /// The profile's name.
    public var profile: String
    public var mode: Mode
    /// The writing process.
    public var pid: Int32
    /// The writer's release (``SwunisonVersion/current``).
    public var version: String
    /// When the report was last written (``StatusFile/write(_:to:updated:)`` sets it).
    public var updated: Timestamp
    public var state: State
    /// When ``state`` was entered.
    public var stateSince: Timestamp
    /// When the last successful cycle finished (see ``Cycle/succeeded``); nil before the first.
    public var lastSuccess: Timestamp?
    public var lastCycle: Cycle?
    /// Paths waiting for a cycle (from change notices); the root, `.`, means "everything".
    /// The file holds the first ``listLimit``; ``pendingCount`` says how many there are.
    public var pending: [RelativePath]
    public var pendingCount: Int
    /// Conflicts left unresolved. The writer may keep them all; the file holds the first
    /// ``listLimit``, and ``conflictCount`` counts them all.
    public var conflicts: [RelativePath]
    public var conflictCount: Int
    /// What went wrong, while it is still wrong: a fatal error, a failed path, a lost
    /// connection. ``record(_:)`` clears it after a successful cycle.
    public var lastError: String?
    public var counts: Counts
    /// Both roots, in profile order.
    public var roots: [RootStatus]

    /// A report with every field given.
    public init(profile: String, mode: Mode, pid: Int32, version: String = SwunisonVersion.current,
                updated: Timestamp, state: State, stateSince: Timestamp, lastSuccess: Timestamp? = nil,
                lastCycle: Cycle? = nil, pending: [RelativePath] = [], pendingCount: Int = 0,
                conflicts: [RelativePath] = [], conflictCount: Int = 0, lastError: String? = nil,
                counts: Counts = Counts(), roots: [RootStatus]) {
        self.profile = profile; self.mode = mode; self.pid = pid; self.version = version
        self.updated = updated; self.state = state; self.stateSince = stateSince
        self.lastSuccess = lastSuccess; self.lastCycle = lastCycle
        self.pending = pending; self.pendingCount = pendingCount
        self.conflicts = conflicts; self.conflictCount = conflictCount
        self.lastError = lastError; self.counts = counts; self.roots = roots
    }

    /// The report of a process that is just starting: this process's pid, state
    /// ``State/starting``, both roots ``RootState/ok``, nothing counted yet.
    /// - Parameter roots: the profile's roots as written.
    public init(starting profile: String, mode: Mode, roots: [String], at time: Timestamp = .now()) {
        self.init(profile: profile, mode: mode, pid: getpid(), updated: time, state: .starting, stateSince: time,
                  roots: roots.map { RootStatus(root: $0) })
    }

    // MARK: Changes the writer makes

    /// Moves to `state`; ``stateSince`` changes only when the state does.
    public mutating func enter(_ state: State, at time: Timestamp = .now()) {
        guard state != self.state else { return }
        self.state = state
        stateSince = time
    }

    /// Records a finished cycle: ``lastCycle``, the totals, and after a successful one
    /// ``lastSuccess`` (its finish) with ``lastError`` cleared.
    public mutating func record(_ cycle: Cycle) {
        lastCycle = cycle
        counts.cycles += 1
        counts.transferred += cycle.transferred
        counts.failed += cycle.failed
        counts.conflicts += cycle.skipped
        if cycle.succeeded {
            lastSuccess = cycle.finished
            lastError = nil
        }
    }

    /// Sets the paths waiting for a cycle: the first of them (the file holds ``listLimit``),
    /// and how many there are in all (default: as many as given).
    public mutating func setPending(_ paths: [RelativePath], count: Int? = nil) {
        pending = paths
        pendingCount = max(count ?? paths.count, paths.count)
    }

    /// Sets the unresolved conflicts, all of them (the file holds the first ``listLimit``).
    public mutating func setConflicts(_ paths: [RelativePath]) {
        conflicts = paths
        conflictCount = paths.count
    }
}

// MARK: - What the watch driver says

extension StatusReport {
    /// Takes the state a ``DriverObserver`` is told about: the state itself, and each root's
    /// (the side a disconnection or a missing root concerns, with its reason; every root ok
    /// again in the other states).
    public mutating func enter(driverState: DriverState, at time: Timestamp = .now()) {
        for index in roots.indices where driverState.isWorking {
            roots[index].state = .ok
            roots[index].detail = nil
        }
        switch driverState {
        case .starting: enter(.starting, at: time)
        case .scanning: enter(.scanning, at: time)
        case .propagating: enter(.propagating, at: time)
        case .idle: enter(.idle, at: time)
        case .stopped: enter(.stopped, at: time)
        case let .disconnected(side, why):
            setRoot(side, .disconnected, why)
            enter(.disconnected, at: time)
        case let .rootMissing(side, why):
            setRoot(side, .missing, why)
            enter(.rootMissing, at: time)
        }
    }

    private mutating func setRoot(_ side: Side, _ state: RootState, _ detail: String) {
        let index = side == .a ? 0 : 1
        guard roots.indices.contains(index) else { return }
        roots[index].state = state
        roots[index].detail = detail
    }

    /// Records a cycle a ``DriverObserver`` is told about (see ``record(_:)``), and the
    /// conflicts it left: a full cycle's replace the list, a scoped cycle's replace those beneath
    /// the paths it covered. A cycle that stopped with an error counts as exit 3 with that error
    /// as ``lastError``; one with failed paths sets ``lastError`` to the first failure.
    /// - Parameter pathsScanned: entries both scans saw (``CycleReport`` does not carry them).
    public mutating func record(_ report: CycleReport, pathsScanned: Int = 0) {
        let started = Timestamp(secondsSinceEpoch: report.started / 1_000_000_000)
        let finished = Timestamp(secondsSinceEpoch: (report.started / 1_000_000_000) + report.duration.components.seconds)
        let kind: CycleKind
        var covered: [RelativePath] = [.root]
        switch report.scope {
        case .full: kind = .full
        case .paths(let paths): kind = .scoped; covered = paths
        }
        guard let summary = report.summary else {
            record(Cycle(kind: kind, started: started, finished: finished, pathsScanned: pathsScanned, pathsChanged: 0,
                         bytesCopied: 0, transferred: 0, skipped: 0, failed: 0, exitCode: 3))
            lastError = report.error ?? "the cycle stopped"
            return
        }
        record(Cycle(kind: kind, started: started, finished: finished, pathsScanned: pathsScanned, summary: summary))
        if let failure = summary.failures.first, summary.exitCode >= 2 {
            lastError = "\(summary.failed) failed; first: \(failure.message)"
        }
        var remaining = conflicts.filter { path in !covered.contains { path.isDescendant(orEqualTo: $0) } }
        for item in summary.items {
            if case .conflict = item.decision { remaining.append(item.path) }
        }
        setConflicts(remaining.sorted())
    }
}

extension DriverState {
    /// Whether the state says both roots are usable.
    fileprivate var isWorking: Bool {
        switch self {
        case .disconnected, .rootMissing: return false
        default: return true
        }
    }
}

// MARK: - Time

extension StatusReport {
    /// A moment, to the second, as the status file writes it: ISO 8601 in UTC,
    /// `2026-12-03T08:15:02Z`.
    public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var secondsSinceEpoch: Int64

        public init(secondsSinceEpoch: Int64) { self.secondsSinceEpoch = secondsSinceEpoch }

        /// The wall clock now. The corresponding C function is `clock_gettime(CLOCK_REALTIME)`.
        public static func now() -> Timestamp {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            return Timestamp(secondsSinceEpoch: Int64(ts.tv_sec))
        }

        /// `YYYY-MM-DDTHH:MM:SSZ`. The corresponding C function is `gmtime_r`.
        public var iso8601: String {
            var seconds = time_t(secondsSinceEpoch)
            var parts = tm()
            guard gmtime_r(&seconds, &parts) != nil else { return "\(secondsSinceEpoch)" }
            func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
            let year = Int(parts.tm_year) + 1900
            var yearText = String(year)
            while yearText.count < 4 { yearText = "0" + yearText }
            return "\(yearText)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
        }

        /// Parses `YYYY-MM-DDTHH:MM:SSZ`; a fraction of a second (`.250Z`) is accepted and
        /// dropped. Nil for anything else, an impossible date included.
        /// The corresponding C function is `timegm`.
        public init?(iso8601 text: String) {
            let b = Array(text.utf8)
            guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x74,
                  b[13] == 0x3A, b[16] == 0x3A, b.last == 0x5A || b.last == 0x7A else { return nil }
            if b.count > 20 {
                // A fraction: ".", at least one digit, nothing else before the Z.
                guard b[19] == 0x2E, b.count > 21, b[20..<(b.count - 1)].allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            }
            func number(_ range: Range<Int>) -> Int32? {
                var n: Int32 = 0
                for byte in b[range] {
                    guard (0x30...0x39).contains(byte) else { return nil }
                    n = n * 10 + Int32(byte - 0x30)
                }
                return n
            }
            guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
                  let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
                  (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { return nil }
            var parts = tm()
            parts.tm_year = year - 1900; parts.tm_mon = month - 1; parts.tm_mday = day
            parts.tm_hour = hour; parts.tm_min = minute; parts.tm_sec = second
            let seconds = timegm(&parts)
            // timegm normalises 31 February into March: refuse a date that moved.
            guard parts.tm_mon == month - 1, parts.tm_mday == day else { return nil }
            self.secondsSinceEpoch = Int64(seconds)
        }

        public var description: String { iso8601 }

        public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.secondsSinceEpoch < rhs.secondsSinceEpoch }
    }
}

// MARK: - Health

/// What a report means for monitoring: `swunison status`'s exit code and the reasons behind it.
public struct StatusHealth: Sendable, Equatable {
    /// Worst first is highest; the raw value is the exit code of `swunison status`.
    public enum Level: Int32, Sendable, Comparable {
        case ok = 0
        /// Unresolved conflicts wait for a person; everything else is in step.
        case conflicts = 1
        /// The synchronisation is not working: a failed cycle, an error, no recent success, a
        /// missing or unreachable root, a writer that stopped or died.
        case failing = 2

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var level: Level
    /// Why the level is not ``Level/ok``, one short phrase each, the failures first.
    public var reasons: [String]
}

extension StatusReport {
    /// Judges the report as a monitoring check does.
    ///
    /// Failing (2): the last cycle failed (exit 2 or 3); ``lastError`` is set; the last success
    /// is older than `maxAgeSeconds` or there was none (only when a maximum age is given); a
    /// root is missing or disconnected (or the state says so); a long-running writer
    /// (``Mode/isLongRunning``) has stopped; or the writer is gone while the state says it still
    /// works. Conflicts (1): unresolved conflicts, and nothing failing. Otherwise ok (0).
    /// - Parameters:
    ///   - now: the time to measure ages against.
    ///   - maxAgeSeconds: how old the last success may be; nil for no limit.
    ///   - writerIsRunning: whether process ``pid`` still exists (``writerIsRunning``).
    public func health(at now: Timestamp, maxAgeSeconds: Int64? = nil, writerIsRunning: Bool) -> StatusHealth {
        var failures: [String] = []
        for root in roots where root.state != .ok {
            let what = root.state == .missing ? "is missing" : "is disconnected"
            failures.append("root \(root.root) \(what)" + (root.detail.map { " (\($0))" } ?? ""))
        }
        if failures.isEmpty && (state == .disconnected || state == .rootMissing) {
            failures.append(state == .disconnected ? "a root is disconnected" : "a root is missing")
        }
        if state == .stopped && mode.isLongRunning {
            failures.append("swunison stopped at \(stateSince)")
        }
        if state != .stopped && !writerIsRunning {
            failures.append("the process that wrote this status (pid \(pid)) is gone, but the state is still \(state.rawValue)")
        }
        if let cycle = lastCycle, !cycle.succeeded {
            let detail = cycle.exitCode == 3 ? "fatal" : "\(cycle.failed) failed"
            failures.append("the last cycle failed (exit \(cycle.exitCode), \(detail))")
        }
        if let lastError { failures.append("error: \(lastError)") }
        if let maxAgeSeconds {
            if let lastSuccess {
                let age = now.secondsSinceEpoch - lastSuccess.secondsSinceEpoch
                if age > maxAgeSeconds {
                    failures.append("the last success (\(lastSuccess)) is \(age) s old, more than \(maxAgeSeconds) s")
                }
            } else {
                failures.append("no successful cycle yet")
            }
        }
        if !failures.isEmpty {
            return StatusHealth(level: .failing, reasons: failures + conflictReasons)
        }
        return StatusHealth(level: conflictReasons.isEmpty ? .ok : .conflicts, reasons: conflictReasons)
    }

    private var conflictReasons: [String] {
        conflictCount > 0 ? ["\(conflictCount) unresolved conflict\(conflictCount == 1 ? "" : "s")"] : []
    }

    /// Whether the process ``pid`` exists on this host (a reused pid cannot be told apart).
    /// The corresponding C function is `kill(pid, 0)`.
    public var writerIsRunning: Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }
}

// MARK: - JSON

/// Why bytes are not a status report this swunison can read.
public struct StatusFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension StatusReport {
    /// The `format` key's value, which tells a status file from any other JSON.
    public static let formatName = "swunison-status"
    /// The `formatVersion` this swunison writes and reads. Adding keys does not change it
    /// (readers skip keys they do not know); changing the meaning of a key does.
    public static let formatVersion = 1

    /// The report as the status file holds it: UTF-8 JSON, keys in a fixed order, two-space
    /// indented, optional values as `null`.
    ///
    /// Paths are written as swunison prints them (`RelativePath.description`): a backslash as
    /// `\\`, a newline as `\n`, other control characters and bytes that are not UTF-8 as `\xNN`;
    /// the root as `.`. So each path is one line of readable text, and the reader gets the
    /// exact bytes back.
    public func encoded() -> [UInt8] {
        func time(_ t: Timestamp) -> JSONValue { .string(t.iso8601) }
        func paths(_ list: [RelativePath]) -> JSONValue {
            .array(list.prefix(Self.listLimit).map { .string(Self.text(of: $0)) })
        }
        var members: [JSONMember] = [
            JSONMember("format", .string(Self.formatName)),
            JSONMember("formatVersion", .int(Self.formatVersion)),
            JSONMember("profile", .string(profile)),
            JSONMember("mode", .string(mode.rawValue)),
            JSONMember("pid", .int(pid)),
            JSONMember("version", .string(version)),
            JSONMember("updated", time(updated)),
            JSONMember("state", .string(state.rawValue)),
            JSONMember("stateSince", time(stateSince)),
            JSONMember("lastSuccess", lastSuccess.map(time) ?? .null),
        ]
        if let cycle = lastCycle {
            members.append(JSONMember("lastCycle", .object([
                JSONMember("kind", .string(cycle.kind.rawValue)),
                JSONMember("started", time(cycle.started)),
                JSONMember("finished", time(cycle.finished)),
                JSONMember("pathsScanned", .int(cycle.pathsScanned)),
                JSONMember("pathsChanged", .int(cycle.pathsChanged)),
                JSONMember("bytesCopied", .int(cycle.bytesCopied)),
                JSONMember("transferred", .int(cycle.transferred)),
                JSONMember("skipped", .int(cycle.skipped)),
                JSONMember("failed", .int(cycle.failed)),
                JSONMember("exitCode", .int(cycle.exitCode)),
            ])))
        } else {
            members.append(JSONMember("lastCycle", .null))
        }
        members += [
            JSONMember("pendingCount", .int(pendingCount)),
            JSONMember("pending", paths(pending)),
            JSONMember("conflictCount", .int(conflictCount)),
            JSONMember("conflicts", paths(conflicts)),
            JSONMember("lastError", .optional(lastError)),
            JSONMember("counts", .object([
                JSONMember("cycles", .int(counts.cycles)),
                JSONMember("transferred", .int(counts.transferred)),
                JSONMember("failed", .int(counts.failed)),
                JSONMember("conflicts", .int(counts.conflicts)),
            ])),
            JSONMember("roots", .array(roots.map { root in
                .object([
                    JSONMember("root", .string(root.root)),
                    JSONMember("state", .string(root.state.rawValue)),
                    JSONMember("detail", .optional(root.detail)),
                ])
            })),
        ]
        return JSONValue.object(members).serialized()
    }

    /// Reads a report from the bytes of a status file.
    ///
    /// Keys it does not know are skipped; every key ``encoded()`` writes must be there, except
    /// those whose value may be `null`, which may also be left out.
    /// - Throws: `StatusFormatError` saying what is wrong: not JSON, not a status file, a newer
    ///   format, or which key is missing or has a bad value.
    public init(decoding bytes: [UInt8]) throws(StatusFormatError) {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: bytes)
        } catch {
            throw StatusFormatError("not JSON (\(error))")
        }
        let top = StatusFields(document, context: "")
        guard case .object = document, document["format"] == .string(Self.formatName) else {
            throw StatusFormatError("not JSON with \"format\": \"\(Self.formatName)\"")
        }
        let format = try top.int("formatVersion")
        guard format <= Int64(Self.formatVersion) else {
            throw StatusFormatError("written by a newer swunison (status format \(format); this one reads \(Self.formatVersion))")
        }
        // In the order the file has them, so that the first problem reported is the first in the file.
        let profile = try top.string("profile")
        let mode: Mode = try top.choice("mode")
        let pid = Int32(try top.int("pid", in: 0...Int64(Int32.max)))
        let version = try top.string("version")
        let updated = try top.time("updated")
        let state: State = try top.choice("state")
        let stateSince = try top.time("stateSince")
        let lastSuccess = try top.optionalTime("lastSuccess")
        var cycle: Cycle?
        if let fields = try top.optionalObject("lastCycle") {
            cycle = Cycle(kind: try fields.choice("kind"), started: try fields.time("started"),
                          finished: try fields.time("finished"), pathsScanned: try fields.count("pathsScanned"),
                          pathsChanged: try fields.count("pathsChanged"), bytesCopied: try fields.int("bytesCopied"),
                          transferred: try fields.count("transferred"), skipped: try fields.count("skipped"),
                          failed: try fields.count("failed"), exitCode: Int32(try fields.int("exitCode", in: 0...3)))
        }
        let pendingCount = try top.count("pendingCount")
        let pending = try top.paths("pending")
        let conflictCount = try top.count("conflictCount")
        let conflicts = try top.paths("conflicts")
        let lastError = try top.optionalString("lastError")
        let countFields = try top.object("counts")
        let counts = Counts(cycles: try countFields.count("cycles"), transferred: try countFields.count("transferred"),
                            failed: try countFields.count("failed"), conflicts: try countFields.count("conflicts"))
        var roots: [RootStatus] = []
        for (index, element) in try top.array("roots").enumerated() {
            let fields = StatusFields(element, context: "roots[\(index)].")
            guard case .object = element else { throw fields.bad("", "an object") }
            roots.append(RootStatus(root: try fields.string("root"), state: try fields.choice("state"),
                                    detail: try fields.optionalString("detail")))
        }
        self.init(profile: profile, mode: mode, pid: pid, version: version, updated: updated, state: state,
                  stateSince: stateSince, lastSuccess: lastSuccess, lastCycle: cycle, pending: pending,
                  pendingCount: pendingCount, conflicts: conflicts, conflictCount: conflictCount, lastError: lastError,
                  counts: counts, roots: roots)
    }

    /// A path as the file writes it: its display form, `.` for the root.
    static func text(of path: RelativePath) -> String { path.isRoot ? "." : path.description }

    /// The path a display form stands for (the reverse of `RelativePath.description`: `\\`,
    /// `\n` and `\xNN` turned back into bytes); nil when the text is not such a form.
    static func path(fromText text: String) -> RelativePath? {
        if text == "." { return .root }
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            guard byte == 0x5C else { bytes.append(byte); continue }
            switch input.popFirst() {
            case 0x5C: bytes.append(0x5C)
            case 0x6E: bytes.append(0x0A)
            case 0x78:
                guard input.count >= 2, let value = UInt8(String(decoding: input.prefix(2), as: UTF8.self), radix: 16),
                      input.prefix(2).allSatisfy({ $0 != 0x2B && $0 != 0x2D }) else { return nil }
                bytes.append(value)
                input = input.dropFirst(2)
            default: return nil
            }
        }
        guard !bytes.isEmpty else { return nil }
        return try? RelativePath(validating: bytes)
    }
}

/// Typed access to the members of one JSON object of a status file, with errors that name the key.
private struct StatusFields {
    let value: JSONValue
    /// The path of this object in the document (`lastCycle.`), for messages.
    let context: String

    init(_ value: JSONValue, context: String) { self.value = value; self.context = context }

    func bad(_ key: String, _ expected: String) -> StatusFormatError {
        StatusFormatError("\"\(context)\(key)\" is missing or is not \(expected)")
    }

    /// The member, nil when it is absent or `null`.
    private func member(_ key: String) -> JSONValue? {
        guard let found = value[key], found != .null else { return nil }
        return found
    }

    func string(_ key: String) throws(StatusFormatError) -> String {
        guard case .string(let text)? = member(key) else { throw bad(key, "a string") }
        return text
    }

    func optionalString(_ key: String) throws(StatusFormatError) -> String? {
        guard let found = member(key) else { return nil }
        guard case .string(let text) = found else { throw bad(key, "a string or null") }
        return text
    }

    func int(_ key: String, in range: ClosedRange<Int64> = Int64.min...Int64.max) throws(StatusFormatError) -> Int64 {
        guard let n = member(key)?.integer, range.contains(n) else {
            throw bad(key, range == Int64.min...Int64.max ? "an integer" : "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    /// A count: an integer, never negative.
    func count(_ key: String) throws(StatusFormatError) -> Int { Int(try int(key, in: 0...Int64(Int.max))) }

    func time(_ key: String) throws(StatusFormatError) -> StatusReport.Timestamp {
        guard case .string(let text)? = member(key), let t = StatusReport.Timestamp(iso8601: text) else {
            throw bad(key, "a time like 2026-12-03T08:15:02Z")
        }
        return t
    }

    func optionalTime(_ key: String) throws(StatusFormatError) -> StatusReport.Timestamp? {
        guard member(key) != nil else { return nil }
        return try time(key)
    }

    func choice<T: RawRepresentable & CaseIterable>(_ key: String) throws(StatusFormatError) -> T where T.RawValue == String {
        guard case .string(let text)? = member(key), let found = T(rawValue: text) else {
            throw bad(key, "one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return found
    }

    func object(_ key: String) throws(StatusFormatError) -> StatusFields {
        guard let found = member(key), case .object = found else { throw bad(key, "an object") }
        return StatusFields(found, context: context + key + ".")
    }

    func optionalObject(_ key: String) throws(StatusFormatError) -> StatusFields? {
        guard member(key) != nil else { return nil }
        return try object(key)
    }

    func array(_ key: String) throws(StatusFormatError) -> [JSONValue] {
        guard case .array(let elements)? = member(key) else { throw bad(key, "an array") }
        return elements
    }

    func paths(_ key: String) throws(StatusFormatError) -> [RelativePath] {
        var out: [RelativePath] = []
        for element in try array(key) {
            guard case .string(let text) = element, let path = StatusReport.path(fromText: text) else {
                throw bad(key, "a list of paths")
            }
            out.append(path)
        }
        return out
    }
}

// MARK: - The file

/// Why the status file cannot be read or written.
public enum StatusFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing at that path: no swunison has written a status for this profile yet.
    case missing(file: String)
    /// The file is there but cannot be read.
    case unreadable(file: String, SystemCallError)
    /// The file is not a status report this swunison can read (``StatusFormatError``'s reason).
    case notAStatusFile(file: String, reason: String)
    /// The report could not be written; the previous file, if any, is unchanged.
    case cannotWrite(file: String, SystemCallError)

    public var description: String {
        switch self {
        case .missing(let file):
            return "no status file at \(file)"
        case let .unreadable(file, error):
            return "cannot read the status file \(file): \(error.message)"
        case let .notAStatusFile(file, reason):
            return "\(file) is not a swunison status file (\(reason)); move it away, or set statusfile to another path"
        case let .cannotWrite(file, error):
            return "cannot write the status file \(file) (\(error)); check its directory, or set statusfile to another path"
        }
    }
}

/// Reads and writes the status file. A write replaces the whole file in one rename, so a reader
/// sees the old report or the new one, never a part.
public enum StatusFile {
    /// A status file is a few kilobytes; anything bigger than this is not one.
    public static let maximumSize = 4 << 20

    /// Writes `report` to `path`, with ``StatusReport/updated`` set to `updated`.
    ///
    /// The report goes to a temporary file in the same directory (created with missing parent
    /// directories, mode 0700 like the profile directory), is made durable (`fsync`), gets mode
    /// 0644 whatever the umask, and replaces `path` in one `rename`. On any failure the
    /// temporary file is removed and `path` keeps its previous content.
    /// - Throws: `StatusFileError.cannotWrite` with the system call that failed.
    public static func write(_ report: StatusReport, to path: String,
                             updated: StatusReport.Timestamp = .now()) throws(StatusFileError) {
        var stamped = report
        stamped.updated = updated
        let bytes = stamped.encoded()
        let (directory, name) = split(path)
        do throws(SystemCallError) {
            try makeDirectories(directory)
            let (fd, temporary) = try createTemporary(in: directory, for: name)
            do throws(SystemCallError) {
                defer { close(fd) }
                _ = try retryingOnInterrupt("fchmod") { fchmod(fd, 0o644) }
                try writeAll(fd, bytes)
                _ = try retryingOnInterrupt("fsync") { fsync(fd) }
                _ = try retryingOnInterrupt("rename") { rename(temporary, path) }
            } catch {
                unlink(temporary)
                throw error
            }
        } catch {
            throw .cannotWrite(file: path, error)
        }
        // The rename is durable once the directory is; a failure here loses nothing that was
        // there before, so it is not reported.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Reads the report at `path`.
    /// - Throws: `StatusFileError.missing`, `.unreadable` or `.notAStatusFile`.
    public static func read(from path: String) throws(StatusFileError) -> StatusReport {
        try decode(contents(of: path), file: path)
    }

    /// The report in `bytes` read from `file` (``contents(of:)``, then this, is ``read(from:)``).
    /// - Throws: `StatusFileError.notAStatusFile` naming `file`.
    public static func decode(_ bytes: [UInt8], file: String) throws(StatusFileError) -> StatusReport {
        do {
            return try StatusReport(decoding: bytes)
        } catch {
            throw .notAStatusFile(file: file, reason: error.reason)
        }
    }

    /// The bytes of the file at `path` (for `swunison status --json`, which prints them as they are).
    /// - Throws: `StatusFileError.missing`, `.unreadable`, or `.notAStatusFile` for a file
    ///   larger than ``maximumSize``.
    public static func contents(of path: String) throws(StatusFileError) -> [UInt8] {
        let fd: Int32
        do {
            fd = try retryingOnInterrupt("open") { open(path, O_RDONLY | O_CLOEXEC) }
        } catch {
            if error.errno == ENOENT { throw .missing(file: path) }
            throw .unreadable(file: path, error)
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG {
            throw .unreadable(file: path, SystemCallError("read", errno: (st.st_mode & S_IFMT) == S_IFDIR ? EISDIR : EINVAL))
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n: Int
            do {
                n = try retryingOnInterrupt("read") { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            } catch {
                throw .unreadable(file: path, error)
            }
            if n == 0 { return out }
            out += chunk[0..<n]
            if out.count > maximumSize {
                throw .notAStatusFile(file: path, reason: "larger than \(maximumSize) bytes")
            }
        }
    }

    /// Directory and name of `path` (`.` for a bare name).
    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }

    /// `mkdir -p`, mode 0700 for what it creates.
    private static func makeDirectories(_ path: String) throws(SystemCallError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            do {
                _ = try retryingOnInterrupt("mkdir") { mkdir(prefix, 0o700) }
            } catch where error.errno == EEXIST {
                continue
            }
        }
    }

    /// Creates `.NAME.PID.RANDOM.tmp` beside the file, exclusively, without following a link.
    private static func createTemporary(in directory: String, for name: String) throws(SystemCallError) -> (Int32, String) {
        var attempts = 0
        while true {
            let path = directory + "/." + name + ".\(getpid()).\(String(UInt32.random(in: .min ... .max), radix: 16)).tmp"
            do {
                let fd = try retryingOnInterrupt("open") {
                    open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                }
                return (fd, path)
            } catch where error.errno == EEXIST && attempts < 16 {
                attempts += 1
            }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let n = try retryingOnInterrupt("write") {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            }
            offset += n
        }
    }
}

/// Writes reports to one status file on a thread of its own, so that whoever reports (the watch
/// driver's observer, which must not block) never waits for the disk: a write ends with an
/// `fsync`, which on a busy disk can take a while.
///
/// Reports submitted while a write is in flight are coalesced: only the latest is written next.
/// Thread-safe; submit from anywhere.
public final class StatusFileWriter: Sendable {
    public let path: String
    private let queue = DispatchQueue(label: "swunison.status")
    /// The report waiting to be written, whether a write is scheduled, and whether the last
    /// write failed (so that a failure is reported once, not on every change).
    private let state = Mutex<(latest: StatusReport?, isScheduled: Bool, isFailing: Bool)>((nil, false, false))
    private let onError: @Sendable (StatusFileError) -> Void

    /// - Parameters:
    ///   - path: the status file (`Profile.effectiveStatusFile`).
    ///   - onError: told of a failed write, once until a write succeeds again (for the log).
    public init(path: String, onError: @escaping @Sendable (StatusFileError) -> Void = { _ in }) {
        self.path = path
        self.onError = onError
    }

    /// Queues `report` for writing and returns at once.
    public func submit(_ report: StatusReport) {
        let schedule = state.withLock { state -> Bool in
            state.latest = report
            guard !state.isScheduled else { return false }
            state.isScheduled = true
            return true
        }
        if schedule { queue.async { self.drain() } }
    }

    /// Waits until every report submitted before the call is written (before the process exits).
    public func flush() { queue.sync {} }

    private func drain() {
        while let report = state.withLock({ state -> StatusReport? in
            guard let latest = state.latest else {
                state.isScheduled = false
                return nil
            }
            state.latest = nil
            return latest
        }) {
            do {
                try StatusFile.write(report, to: path)
                state.withLock { $0.isFailing = false }
            } catch {
                let isNew = state.withLock { state -> Bool in
                    defer { state.isFailing = true }
                    return !state.isFailing
                }
                if isNew { onError(error) }
            }
        }
    }
}
