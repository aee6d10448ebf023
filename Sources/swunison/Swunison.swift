import ArgumentParser
import SwunisonCore
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
        subcommands: [Sync.self, Server.self],
        defaultSubcommand: Sync.self
    )
}
