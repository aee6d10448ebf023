import SwunisonFS
import SwunisonModel

/// The changes one subscriber makes itself, so that their events are not reported back to it
/// (no ping-pong: a file copied in must not be copied back out).
///
/// A path is marked while the change is under way (``begin(_:now:)``), then with the state it
/// was left in (``end(_:state:now:)``). An event for a marked path is judged against that state
/// when the change is done: if the path is still exactly as the subscriber left it, the event
/// was its own; anything else (a user's change right after ours) is reported. An event that
/// arrives while the change is under way waits ("parked") for its end. Marks expire
/// ``lifetimeNanoseconds`` after the change ended (or began, if it never ends); events are then
/// reported as usual.
struct OwnChanges {
    enum Mark {
        /// Under way since `since`; `parked` are the event paths waiting for its end.
        case pending(since: Int64, parked: [RelativePath])
        /// Done at `at`, leaving the path in `state` (nil = absent).
        case done(state: Entry?, at: Int64)
    }

    /// What to do with an event's notice.
    enum Verdict: Equatable {
        case report
        /// Parked until the change ends.
        case parked
        /// Report unless `path` is now in `state`.
        case judge(path: RelativePath, state: Entry?)
    }

    static let lifetimeNanoseconds: Int64 = 60_000_000_000

    private(set) var marks: [RelativePath: Mark] = [:]
    /// The pending marks with parked notices: the only ones with a deadline, kept apart so that
    /// the watcher's thread need not look through every mark of a large sync each round.
    private var withParked: Set<RelativePath> = []
    private var pruneAt = 256

    var isEmpty: Bool { marks.isEmpty }

    mutating func begin(_ path: RelativePath, now: Int64) {
        if case .pending(_, let parked)? = marks[path] {
            marks[path] = .pending(since: now, parked: parked)
        } else {
            marks[path] = .pending(since: now, parked: [])
        }
        if marks.count >= pruneAt {
            prune(now: now)
            pruneAt = max(256, marks.count * 2)
        }
    }

    /// Marks the change of `path` done.
    /// - Returns: the notices parked for it, each with what to do now.
    mutating func end(_ path: RelativePath, state: Entry?, now: Int64) -> [(RelativePath, Verdict)] {
        var parked: [RelativePath] = []
        if case .pending(_, let waiting)? = marks[path] { parked = waiting }
        marks[path] = .done(state: state, at: now)
        withParked.remove(path)
        return parked.map { ($0, Self.verdict(for: $0, markedAt: path, state: state)) }
    }

    /// The change of `path` did not happen as planned (the operation failed, most often because
    /// somebody else changed the path first): its mark goes, and what was parked is reported.
    mutating func cancel(_ path: RelativePath) -> [RelativePath] {
        withParked.remove(path)
        guard case .pending(_, let parked)? = marks.removeValue(forKey: path) else { return [] }
        return parked
    }

    /// What to do with a notice for `path` at `now`: reported unless `path` (or, for a removal,
    /// a directory above it) is marked. A notice that must wait is parked here.
    mutating func verdict(for path: RelativePath, now: Int64) -> Verdict {
        guard !marks.isEmpty else { return .report }
        var candidate: RelativePath? = path
        while let marked = candidate {
            if let mark = marks[marked] {
                switch mark {
                case .pending(let since, var parked):
                    if now - since >= Self.lifetimeNanoseconds {
                        // Too old to wait for; parked notices go out with ``expireParked(now:)``.
                        if parked.isEmpty { marks.removeValue(forKey: marked) }
                    } else {
                        parked.append(path)
                        marks[marked] = .pending(since: since, parked: parked)
                        withParked.insert(marked)
                        return .parked
                    }
                case .done(let state, let at):
                    if now - at >= Self.lifetimeNanoseconds {
                        marks.removeValue(forKey: marked)
                    } else if marked == path || state == nil {
                        return Self.verdict(for: path, markedAt: marked, state: state)
                    }
                }
            }
            candidate = marked.parent
        }
        return .report
    }

    /// An event beneath a marked path is ours only if the subscriber removed that whole
    /// directory: everything beneath an absent path is absent. Below a directory it created or
    /// changed, a new event is somebody else's.
    private static func verdict(for path: RelativePath, markedAt marked: RelativePath, state: Entry?) -> Verdict {
        if path == marked || state == nil { return .judge(path: marked, state: state) }
        return .report
    }

    /// Notices parked under changes that have been under way too long: report them now.
    mutating func expireParked(now: Int64) -> [RelativePath] {
        var out: [RelativePath] = []
        for path in withParked {
            if case .pending(let since, let parked)? = marks[path], now - since >= Self.lifetimeNanoseconds {
                out.append(contentsOf: parked)
                marks.removeValue(forKey: path)
                withParked.remove(path)
            }
        }
        return out
    }

    /// When the earliest parked notice must be reported anyway; nil when none waits (no timer).
    var nextParkedDeadline: Int64? {
        var earliest: Int64?
        for path in withParked {
            if case .pending(let since, _)? = marks[path] {
                let deadline = since + Self.lifetimeNanoseconds
                earliest = min(earliest ?? deadline, deadline)
            }
        }
        return earliest
    }

    /// Drops expired marks that hold nothing.
    private mutating func prune(now: Int64) {
        for (path, mark) in marks {
            switch mark {
            case .pending(let since, let parked) where parked.isEmpty && now - since >= Self.lifetimeNanoseconds:
                marks.removeValue(forKey: path)
            case .done(_, let at) where now - at >= Self.lifetimeNanoseconds:
                marks.removeValue(forKey: path)
            default:
                break
            }
        }
    }

    /// Whether `status` (nil = absent) is the state a subscriber left a path in.
    ///
    /// Files and symlinks: inode, size, mtime, ctime and permission bits (any write changes
    /// mtime and ctime). Directories: inode and permission bits only, since a directory's times
    /// change with its children, which have marks (or notices) of their own. A state without a
    /// trusted fingerprint (inode, ctime) is compared on what it has.
    static func status(_ status: FileStatus?, matches state: Entry?) -> Bool {
        guard let status, let state else { return status == nil && state == nil }
        guard let kind = status.kind, kind == state.kind else { return false }
        let current = status.entry(kind: kind)
        guard current.mode == state.mode else { return false }
        if let fingerprint = state.fingerprint, fingerprint != .untrusted {
            guard fingerprint.inode == status.inode else { return false }
            if kind != .directory && fingerprint.ctime != status.ctime { return false }
        }
        if kind == .directory { return true }
        return current.size == state.size && current.mtime == state.mtime
    }
}
