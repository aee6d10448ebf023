import ArgumentParser
import Glibc
import SwunisonCore
import SwunisonReplica
import SwunisonFS
import SwunisonModel

/// `swunison`: the command-line front end. Each subcommand's `run()` is a few lines that call
/// the library; all user-facing text for errors and summaries is rendered here.
@main
struct Swunison: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swunison",
        abstract: "Keep two copies of a file tree in step (Unison-style, over SSH or locally).",
        discussion: """
            swunison [PROFILE | ROOT1 ROOT2] [PREFERENCES...]
              PREFERENCES are profile preferences in Unison's style: -batch, -prefer newer,
              -retry=3 (or --batch, --prefer newer). See swunison(1) and swunison.prf(5).
            Exit codes: 0 in step, 1 something skipped, 2 non-fatal failures, 3 fatal error.
            """,
        version: SwunisonVersion.current,
        subcommands: [Sync.self, Server.self, Status.self],
        defaultSubcommand: Sync.self
    )

    /// Parses, runs, prints any error, and leaves with `_exit`: skipping C `atexit` handlers
    /// keeps libcrypto's global cleanup from racing a thread (libssh's I/O thread, a hashing
    /// thread) that is still using it as the process ends. Output is written unbuffered
    /// (`Console`), so nothing is lost.
    static func main() async {
        ProcessMemory.preferHeapForLargeBuffers()
        // A write past `ulimit -f` must fail that one file (EFBIG, reported; the temporary copy
        // removed), not kill the run mid-propagation as SIGXFSZ's default action would.
        signal(SIGXFSZ, SIG_IGN)
        let code: Int32
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            code = 0
        } catch {
            code = exitCode(for: error).rawValue
            let message = fullMessage(for: error)
            // Help and --version go to stdout with status 0, errors to stderr.
            if !message.isEmpty {
                if code == 0 { Console().out(message) } else { Console().err(message) }
            }
        }
        _exit(code)
    }
}
