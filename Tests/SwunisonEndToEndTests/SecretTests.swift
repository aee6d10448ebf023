import Foundation
import Glibc
import Synchronization
import SwunisonTestSupport
import Testing

/// SSH trust (issue 13): no secret ever reaches what swunison prints or writes. A person types
/// the passphrase of their key at a real terminal (a pty from `script`); neither it nor the key's
/// private part appears in the output, the log file, the status file or anything else in the
/// state directory, whether the passphrase was right or wrong.
@Suite("secrets stay secret")
struct SecretTests {
    static let passphrase = "pass-9f3c-never-print"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script(1) for a pty"))
    func aPassphraseTypedAtTheTerminalIsNeverPrintedOrLogged() throws {
        let s = try SSHSandbox("secret")
        // A client ssh directory whose only key is locked with a passphrase the server accepts.
        let ssh = try s.copyOfSSHDirectory("locked-ssh")
        for name in ["id_ed25519", "id_ed25519.pub"] { try? FileManager.default.removeItem(atPath: ssh + "/" + name) }
        let key = ssh + "/id_ed25519"
        _ = try SSHServer.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", Self.passphrase, "-f", key])
        let authorized = try FileHandle(forWritingTo: URL(fileURLWithPath: s.server.directory.appending("authorized_keys")))
        try authorized.seekToEnd()
        try authorized.write(contentsOf: Data(contentsOf: URL(fileURLWithPath: key + ".pub")))
        try authorized.close()
        s.sshDirectory = ssh
        let privateBody = try String(contentsOfFile: key, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("-----") }.map(String.init)

        let log = s.sandbox.dir.appending("swunison.log")
        try s.profile("t", ["prefer = newer", "auto = true", "logfile = \(log)"])
        try s.write(s.local, "f", "hello")

        // The right passphrase: the run goes through (the remote file appears); then a wrong one.
        let right = try runAtTerminal(s, answer: Self.passphrase, then: "y\n")
        #expect(BackgroundProcess.eventually(5) { TestFiles.read(s.remote + "/f") == "hello" }, "\(right)")
        let wrong = try runAtTerminal(s, answer: "wrong-" + Self.passphrase, then: "")
        #expect(wrong.contains("Passphrase for"), "\(wrong)")

        var places = ["terminal (right passphrase)": right, "terminal (wrong passphrase)": wrong]
        let state = s.sandbox.dir.appending(".swunison")
        for file in (FileManager.default.enumerator(atPath: state)?.allObjects as? [String] ?? []) + [log] {
            let path = file.hasPrefix("/") ? file : state + "/" + file
            if let data = FileManager.default.contents(atPath: path) { places[path] = String(decoding: data, as: UTF8.self) }
        }
        #expect(places[log].map { !$0.isEmpty } == true, "the log file was not written")
        for (place, text) in places {
            #expect(!text.contains("pass-9f3c"), "the passphrase reached \(place)")
            for line in privateBody where line.count > 20 {
                #expect(!text.contains(line), "the private key reached \(place)")
            }
        }
    }

    /// Runs `swunison t` under a pty (`script`), answers the passphrase prompt once it shows
    /// (typed after the prompt, as a person would, so the terminal does not echo it), then sends
    /// `then`. Returns everything the terminal showed.
    func runAtTerminal(_ s: SSHSandbox, answer: String, then: String) throws -> String {
        let command = ["SWUNISON=\(s.sandbox.profiles)", "HOME=\(s.sandbox.dir.path)", "SWUNISON_SSH_DIR=\(s.sshDirectory)",
                       SwunisonBinary.path, "t"].map { "'\($0)'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qefc", "env " + command, "/dev/null"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let seen = Mutex<String>("")
        let reader = Thread {
            while true {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                seen.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        reader.start()
        defer { if process.isRunning { process.terminate() } }
        guard BackgroundProcess.eventually(30, { seen.withLock { $0.contains("Passphrase for") } }) else {
            Issue.record("no passphrase prompt: \(seen.withLock { $0 })")
            return seen.withLock { $0 }
        }
        input.fileHandleForWriting.write(Data((answer + "\n").utf8))
        if !then.isEmpty {
            _ = BackgroundProcess.eventually(20) { seen.withLock { $0.contains("?") && $0.hasSuffix(" ") } }
            input.fileHandleForWriting.write(Data(then.utf8))
        }
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { process.terminate(); Issue.record("the run did not end") }
        process.waitUntilExit()
        _ = BackgroundProcess.eventually(5) { reader.isFinished }
        return seen.withLock { $0 }
    }
}
