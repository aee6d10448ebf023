import Glibc

/// Writes to the terminal: the plan and summary to stdout, progress and errors to stderr.
/// Unbuffered `write(2)` calls, so nothing is lost when a run is killed.
struct Console: Sendable {
    var stdoutIsTerminal: Bool { isatty(1) == 1 }
    var stderrIsTerminal: Bool { isatty(2) == 1 }
    var stdinIsTerminal: Bool { isatty(0) == 1 }

    func out(_ text: String) { write(1, text + "\n") }
    func err(_ text: String) { write(2, text + "\n") }
    /// Writes without a newline (prompts, progress lines ending in `\r`).
    func raw(_ text: String, toErr: Bool = false) { write(toErr ? 2 : 1, text) }

    private func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    /// Reads one line from stdin (without the newline); nil at end of input.
    func readLine() -> String? { Swift.readLine(strippingNewline: true) }
}
