import SwunisonModel
import SwunisonReplica
import SwunisonReconcile

/// How a run talks to its user: the CLI implements it for a terminal (interactive), for batch
/// mode (plain lines, no questions) and for tests. Library code never prints.
public protocol SessionInterface: Sendable {
    /// Scanning of both replicas started / finished.
    func scanStarted()
    func scanFinished(a: ScanResult, b: ScanResult)
    /// The plan is ready. Returns the items to propagate (possibly with decisions changed by the
    /// user), or nil when the user quit.
    func review(_ items: [PlanItem]) async -> [PlanItem]?
    /// Progress while propagating: a path finished and how many bytes it copied.
    func propagated(_ path: RelativePath, bytes: Int64)
    /// A note for the user (warnings, retries).
    func notice(_ message: String)
}
