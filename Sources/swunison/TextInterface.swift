import Synchronization
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonReconcile

/// The terminal front end of a run: prints the plan Unison-style, asks about each item in
/// interactive mode, shows progress on stderr when it is a terminal.
final class TextInterface: SessionInterface, @unchecked Sendable {
    enum Mode { case batch, interactive }

    private let console: Console
    private let mode: Mode
    /// `auto`: accept non-conflicting items without asking.
    private let auto: Bool
    private let silent: Bool
    private let terse: Bool
    private let dryRun: Bool
    private let showProgress: Bool
    /// Items and bytes done, and the byte count at the last redraw; operations finish on
    /// several threads.
    private let progress = Mutex<(files: Int, bytes: Int64, lastDrawn: Int64)>((0, 0, 0))

    init(console: Console, mode: Mode, auto: Bool, silent: Bool, terse: Bool, dryRun: Bool) {
        self.console = console; self.mode = mode; self.auto = auto
        self.silent = silent; self.terse = terse; self.dryRun = dryRun
        self.showProgress = console.stderrIsTerminal && !silent
    }

    func scanStarted() {
        if showProgress { console.raw("Looking for changes\r", toErr: true) }
    }

    func scanFinished(a: ScanResult, b: ScanResult) {
        if showProgress { console.raw("                         \r", toErr: true) }
        for (side, result) in [("A", a), ("B", b)] {
            for problem in result.problems where !silent {
                console.err("[ERROR] scanning \(side): \(problem)")
            }
        }
    }

    func review(_ items: [PlanItem]) async -> [PlanItem]? {
        if items.isEmpty {
            if !silent { console.out("Nothing to do: replicas have not changed since last sync.") }
            return items
        }
        switch mode {
        case .batch:
            if !silent && !terse { for item in items { console.out(Self.line(for: item)) } }
            for item in items {
                if case .conflict(let reason) = item.decision, !silent {
                    console.out("[CONFLICT] Skipping \(item.path)\n  \(reason)")
                }
            }
            return items
        case .interactive:
            return askAboutEach(items)
        }
    }

    func propagated(_ path: RelativePath, bytes: Int64) {
        guard showProgress else { return }
        progress.withLock { p in
            p.files += 1
            p.bytes += bytes
            // Redraw at most every 1,000 items or 8 MB so the terminal is not the bottleneck.
            if p.files % 1000 == 0 || p.bytes - p.lastDrawn > 8 << 20 {
                p.lastDrawn = p.bytes
                console.raw("  \(p.files) items, \(Self.size(p.bytes))\r", toErr: true)
            }
        }
    }

    func notice(_ message: String) {
        if !silent { console.err(message) }
    }

    // MARK: Rendering

    /// One plan line: `new file ---->            a/b`, with the conflict reason when settled by policy.
    static func line(for item: PlanItem) -> String {
        switch item.decision {
        case .resolvedConflict(_, let reason): return "\(item)  [conflict: \(reason)]"
        default: return item.description
        }
    }

    static func size(_ bytes: Int64) -> String {
        if bytes < 1 << 10 { return "\(bytes) B" }
        if bytes < 1 << 20 { return "\(bytes >> 10) KiB" }
        if bytes < 1 << 30 { return "\(bytes >> 20) MiB" }
        return "\(bytes >> 30) GiB"
    }

    // MARK: Interactive review

    private static let help = """
        Commands:
          f or Enter  follow the default action (shown by the arrow)
          >           propagate from A to B (left to right)
          <           propagate from B to A (right to left)
          /           skip this item
          ]           next item (without changing it)
          [           previous item
          g           proceed with all remaining items as shown
          q           quit without changing anything
          ?           this help
        """

    private func askAboutEach(_ original: [PlanItem]) -> [PlanItem]? {
        var items = original
        var index = 0
        while index < items.count {
            let item = items[index]
            let isConflict: Bool = if case .conflict = item.decision { true } else { false }
            if auto && !isConflict && !item.decision.isConflict {
                console.out(Self.line(for: item))
                index += 1
                continue
            }
            console.raw(Self.line(for: item) + "  ? ")
            guard let answer = console.readLine() else { return nil }
            switch answer.trimmingWhitespace() {
            case "", "f": index += 1
            case ">": items[index].decision = .propagate(from: .a); index += 1
            case "<": items[index].decision = .propagate(from: .b); index += 1
            case "/": items[index].decision = .conflict(reason: "skipped by user"); index += 1
            case "]": index += 1
            case "[": index = max(0, index - 1)
            case "g": index = items.count
            case "q": return nil
            case "?": console.out(Self.help)
            default: console.out("unknown command; type ? for help")
            }
        }
        if dryRun { return items }
        while true {
            console.raw("Proceed with propagating updates? [y/n/q] ")
            guard let answer = console.readLine() else { return nil }
            switch answer.trimmingWhitespace().lowercased() {
            case "y", "yes": return items
            case "n", "no": return askAboutEach(items)
            case "q": return nil
            default: continue
            }
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
