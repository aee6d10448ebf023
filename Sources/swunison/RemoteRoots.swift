import SwunisonCore
import SwunisonProfile

/// Opens a replica for an `ssh://` root.
enum RemoteReplicaFactory {
    static func open(_ root: Root, profile: Profile, console: Console) throws -> any Replica {
        throw ReplicaError.connection("ssh roots: being wired up")
    }
}
