import ArgumentParser
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonModel
import SwunisonWire

extension Swunison {
    /// `swunison server`: serves a replica over stdin/stdout. A client starts it over SSH (the
    /// profile's `servercmd`); it writes nothing but protocol frames to stdout and logs to stderr.
    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "server",
            abstract: "Serve a replica over standard input and output (run by a client over SSH).")

        func run() async throws {
            // A vanished client must surface as a write error, not kill the process mid-write.
            signal(SIGPIPE, SIG_IGN)
            let console = Console()
            let home = ServerEnvironment.homeDirectory()
            let stateDirectory = ServerEnvironment.value("SWUNISON") ?? home + "/.swunison"
            let stream = FileDescriptorStream(readFD: 0, writeFD: 1, owning: false)
            let server = ReplicaServer(stream: stream, log: { console.err("swunison server: \($0)") }) { spec in
                // A relative root is relative to the home directory, as in Unison's ssh://host/path.
                let root = spec.root.hasPrefix("/") ? spec.root : home + "/" + spec.root
                let backups = spec.backupDirectory.map { $0.hasPrefix("/") ? $0 : home + "/" + $0 }
                return try LocalReplica(root: root, displayName: spec.root,
                                        cacheDirectory: stateDirectory + "/caches",
                                        backupDirectory: backups ?? stateDirectory + "/backup",
                                        maxBackups: spec.maxBackups, attributes: spec.attributes,
                                        cacheKey: spec.cacheKey, ownFiles: [stateDirectory])
            }
            do {
                try await server.run()
            } catch {
                console.err("swunison server: \(error)")
                throw ExitCode(ExitStatus.fatal)
            }
        }
    }
}

/// The server's view of its environment (no Foundation: the server binary stays small).
enum ServerEnvironment {
    static func value(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    static func homeDirectory() -> String {
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
        return value("HOME") ?? "/"
    }
}
