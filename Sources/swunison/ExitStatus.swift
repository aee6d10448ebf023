import ArgumentParser
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonProfile
import SwunisonStorage

/// The one place that maps what happened to an exit code and a message (swunison(1) lists
/// the codes: 0 in step, 1 skipped, 2 non-fatal failures, 3 fatal).
enum ExitStatus {
    static let inStep: Int32 = 0
    static let skipped: Int32 = 1
    static let failures: Int32 = 2
    static let fatal: Int32 = 3

    /// Prints a fatal error (one line naming what failed and what to do) and returns exit 3.
    static func fatal(_ error: Error, console: Console) -> ExitCode {
        console.err("swunison: " + message(for: error))
        return ExitCode(fatal)
    }

    static func message(for error: Error) -> String {
        switch error {
        case let error as ProfileError: return error.description
        case let error as StorageError: return error.description
        case let error as SessionError: return error.description
        case let error as ReplicaError: return error.description
        case let error as FirstConnectionFailure: return message(for: error.underlying)
        default: return "\(error)"
        }
    }
}
