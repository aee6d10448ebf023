import Foundation
import Synchronization
import Testing
import SwunisonSSH
import SwunisonTestSupport

@Suite(.timeLimit(.minutes(2)))
struct SSHSessionTests {
    @Test func knownHostConnectsAndRunsACommand() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        #expect(session.hostKeyVerification == .known(fingerprint: server.hostKeyFingerprint))
        #expect(session.destination.port == server.port)
        let result = try session.runCommand("echo hello; echo oops >&2; exit 3")
        #expect(String(decoding: result.stdout, as: UTF8.self) == "hello\n")
        #expect(result.stderr == "oops\n")
        #expect(result.status == 3)
    }

    @Test func duplexEchoOf20MegabytesBothWaysAtOnce() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        let channel = try session.exec("cat")
        let sent = patternBytes(count: 20 * 1024 * 1024, seed: 42)
        // The writer never waits for the reader: with blocking libssh calls this deadlocks
        // once both windows are full (PLATFORM-NOTES §1).
        let writer = BackgroundJob {
            try channel.write(all: sent, chunk: 100_000)
            channel.closeWrite()
        }
        let received = try channel.readToEnd()
        #expect(writer.wait(seconds: 30))
        #expect(writer.error == nil)
        #expect(received.count == sent.count)
        #expect(received == sent)
        #expect(try channel.exitStatus() == 0)
    }

    @Test func largeOutputWithSlowReaderAndTwoChannelsAtOnce() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        let big = try session.exec("head -c 6000000 /dev/zero")
        let echo = try session.exec("cat")
        // The first channel's output exceeds its 1 MiB queue while nobody reads it; the second
        // channel must keep working meanwhile.
        try echo.write(all: Array("ping".utf8))
        echo.closeWrite()
        #expect(try echo.readToEnd() == Array("ping".utf8))
        big.closeWrite()
        let zeros = try big.readToEnd()
        #expect(zeros.count == 6_000_000)
        #expect(zeros.allSatisfy { $0 == 0 })
        #expect(try big.exitStatus() == 0)
    }

    @Test func keepalivesFlowWhileTheRemoteIsQuiet() throws {
        let server = try SSHServer(extraConfig: ["LogLevel DEBUG"])
        let options = clientOptions(for: server) { $0.keepaliveSeconds = 1 }
        let session = try SSHSession.connect(to: destination(for: server), options: options)
        // The I/O loop sends several keepalives (and consumes their replies) while waiting.
        let result = try session.runCommand("sleep 3.5; echo done")
        #expect(String(decoding: result.stdout, as: UTF8.self) == "done\n")
        #expect(try session.runCommand("echo again").stdout == Array("again\n".utf8))
        let keepalives = server.log.components(separatedBy: "keepalive@openssh.com").count - 1
        #expect(keepalives >= 2, "sshd saw \(keepalives) keepalive requests")
    }

    @Test func missingCommandExitsWith127() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        let result = try session.runCommand("/nonexistent/swunison-server --version")
        #expect(result.status == 127)
        #expect(result.stderr.contains("No such file") || result.stderr.contains("not found"))
        let plain = try session.runCommand("swunison-no-such-command-xyz")
        #expect(plain.status == 127)
    }

    @Test func unknownHostInBatchModeFailsWithFingerprintAndFix() throws {
        let server = try SSHServer()
        let emptyKnownHosts = server.directory.appending("empty_known_hosts")
        let options = clientOptions(for: server) { $0.knownHostsFile = emptyKnownHosts }
        #expect(throws: SSHError.hostKeyUnknown(host: "127.0.0.1", port: server.port,
                                                fingerprint: server.hostKeyFingerprint, knownHostsFile: emptyKnownHosts)) {
            try SSHSession.connect(to: destination(for: server), options: options)
        }
        let text = SSHError.hostKeyUnknown(host: "127.0.0.1", port: server.port,
                                           fingerprint: server.hostKeyFingerprint, knownHostsFile: emptyKnownHosts).description
        #expect(text.contains("ssh-keyscan -p \(server.port) 127.0.0.1 >> \(emptyKnownHosts)"))
        #expect(text.contains(server.hostKeyFingerprint))
        #expect(!FileManager.default.fileExists(atPath: emptyKnownHosts))
    }

    @Test func unknownHostConfirmedInteractivelyIsRecorded() throws {
        let server = try SSHServer()
        let knownHosts = server.directory.appending("new/known_hosts")
        let asked = NSLock()
        nonisolated(unsafe) var question: (String, String)?
        let prompts = SSHPrompts(confirmUnknownHost: { host, fingerprint in
            asked.withLock { question = (host, fingerprint) }
            return true
        })
        let options = clientOptions(for: server) { $0.knownHostsFile = knownHosts; $0.isInteractive = true }
        let first = try SSHSession.connect(to: destination(for: server), options: options, prompts: prompts)
        #expect(first.hostKeyVerification == .added(fingerprint: server.hostKeyFingerprint, knownHostsFile: knownHosts))
        let seen = asked.withLock { question }
        #expect(seen?.0 == "127.0.0.1:\(server.port)")
        #expect(seen?.1 == server.hostKeyFingerprint)
        let recorded = try String(contentsOfFile: knownHosts, encoding: .utf8)
        #expect(recorded.contains("[127.0.0.1]:\(server.port) ssh-ed25519 "))
        // Now known: batch mode accepts it.
        let batch = clientOptions(for: server) { $0.knownHostsFile = knownHosts }
        let second = try SSHSession.connect(to: destination(for: server), options: batch)
        #expect(second.hostKeyVerification == .known(fingerprint: server.hostKeyFingerprint))
    }

    @Test func unknownHostRejectedOrStrictIsRefused() throws {
        let server = try SSHServer()
        let knownHosts = server.directory.appending("kh")
        let no = SSHPrompts(confirmUnknownHost: { _, _ in false })
        let interactive = clientOptions(for: server) { $0.knownHostsFile = knownHosts; $0.isInteractive = true }
        #expect(throws: SSHError.hostKeyRejected(host: "127.0.0.1", port: server.port, fingerprint: server.hostKeyFingerprint)) {
            try SSHSession.connect(to: destination(for: server), options: interactive, prompts: no)
        }
        // StrictHostKeyChecking=yes never asks.
        let yes = SSHPrompts(confirmUnknownHost: { _, _ in Issue.record("asked despite StrictHostKeyChecking=yes"); return true })
        let strict = clientOptions(for: server) {
            $0.knownHostsFile = knownHosts; $0.isInteractive = true; $0.strictHostKeyChecking = .yes
        }
        #expect(throws: SSHError.self) { try SSHSession.connect(to: destination(for: server), options: strict, prompts: yes) }
        #expect(!FileManager.default.fileExists(atPath: knownHosts))
        // accept-new records it without asking.
        let acceptNew = clientOptions(for: server) { $0.knownHostsFile = knownHosts; $0.strictHostKeyChecking = .acceptNew }
        let session = try SSHSession.connect(to: destination(for: server), options: acceptNew)
        #expect(session.hostKeyVerification == .added(fingerprint: server.hostKeyFingerprint, knownHostsFile: knownHosts))
    }

    @Test func changedHostKeyIsAlwaysRefused() throws {
        let server = try SSHServer()
        let otherKey = server.directory.appending("other_host_key")
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey])
        let otherPublic = try String(contentsOfFile: otherKey + ".pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let knownHosts = server.directory.appending("changed_known_hosts")
        try writeFile(knownHosts, "[127.0.0.1]:\(server.port) \(otherPublic)\n")
        let expected = SSHError.hostKeyChanged(host: "127.0.0.1", port: server.port,
                                               fingerprint: server.hostKeyFingerprint, knownHostsFile: knownHosts)
        // Whatever the policy and prompts say.
        for policy in StrictHostKeyChecking.allCases {
            let options = clientOptions(for: server) {
                $0.knownHostsFile = knownHosts; $0.strictHostKeyChecking = policy; $0.isInteractive = true
            }
            let prompts = SSHPrompts(confirmUnknownHost: { _, _ in true })
            #expect(throws: expected) {
                try SSHSession.connect(to: destination(for: server), options: options, prompts: prompts)
            }
        }
        #expect(expected.description.contains("ssh-keygen -f \(knownHosts) -R '[127.0.0.1]:\(server.port)'"))
        #expect(expected.description.contains("CHANGED"))
        #expect(try String(contentsOfFile: knownHosts, encoding: .utf8) == "[127.0.0.1]:\(server.port) \(otherPublic)\n")
    }

    @Test func wrongUserKeyGivesAClearAuthenticationError() throws {
        let server = try SSHServer()
        let stranger = server.directory.appending("stranger")
        try FileManager.default.createDirectory(atPath: stranger, withIntermediateDirectories: false)
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger + "/id_ed25519"])
        let options = clientOptions(for: server) { $0.sshDirectory = stranger }
        #expect {
            try SSHSession.connect(to: destination(for: server), options: options)
        } throws: { error in
            guard case let .authenticationFailed(label, tried, hint) = error as? SSHError else { return false }
            return label == "\(server.user)@127.0.0.1:\(server.port)"
                && tried.contains { $0.contains(stranger) } && hint.contains("authorized_keys")
        }
        // The right key named explicitly works even though the defaults are wrong.
        let explicit = clientOptions(for: server) { $0.sshDirectory = stranger; $0.identityFiles = [server.userKeyPath] }
        let session = try SSHSession.connect(to: destination(for: server), options: explicit)
        #expect(try session.runCommand("true").status == 0)
    }

    @Test func passphraseProtectedKeyNeedsAPromptOrFailsClearlyInBatchMode() throws {
        let server = try SSHServer()
        let emptyDirectory = server.directory.appending("nokeys")
        try FileManager.default.createDirectory(atPath: emptyDirectory, withIntermediateDirectories: false)
        let locked = server.directory.appending("locked_key")
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "s3cret phrase", "-f", locked])
        let publicKey = try String(contentsOfFile: locked + ".pub", encoding: .utf8)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: server.directory.appending("authorized_keys")))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(publicKey.utf8))
        try handle.close()

        let batch = clientOptions(for: server) { $0.sshDirectory = emptyDirectory; $0.identityFiles = [locked] }
        #expect(throws: SSHError.passphraseRequired(destination: "\(server.user)@127.0.0.1:\(server.port)", keyFile: locked)) {
            try SSHSession.connect(to: destination(for: server), options: batch)
        }
        let interactive = clientOptions(for: server) {
            $0.sshDirectory = emptyDirectory; $0.identityFiles = [locked]; $0.isInteractive = true
        }
        let prompts = SSHPrompts(passphrase: { file in file == locked ? "s3cret phrase" : nil })
        let session = try SSHSession.connect(to: destination(for: server), options: interactive, prompts: prompts)
        #expect(try session.runCommand("true").status == 0)
    }

    @Test func aLockedDefaultKeyIsAskedForOrNamedInBatchMode() throws {
        let server = try SSHServer()
        let directory = server.directory.appending("lockeddefault")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: server.knownHostsFile, toPath: directory + "/known_hosts")
        let key = directory + "/id_ed25519"
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "s3cret phrase", "-f", key])
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: server.directory.appending("authorized_keys")))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(contentsOf: URL(fileURLWithPath: key + ".pub")))
        try handle.close()
        // No key named anywhere: the default one is found, and batch mode says it is locked.
        let batch = clientOptions(for: server) { $0.sshDirectory = directory; $0.knownHostsFile = directory + "/known_hosts" }
        #expect(throws: SSHError.passphraseRequired(destination: "\(server.user)@127.0.0.1:\(server.port)", keyFile: key)) {
            try SSHSession.connect(to: destination(for: server), options: batch)
        }
        var interactive = batch
        interactive.isInteractive = true
        let asked = Mutex<[String]>([])
        let prompts = SSHPrompts(passphrase: { file in asked.withLock { $0.append(file) }; return "s3cret phrase" })
        let session = try SSHSession.connect(to: destination(for: server), options: interactive, prompts: prompts)
        #expect(try session.runCommand("true").status == 0)
        #expect(asked.withLock { $0 } == [key])
    }

    @Test func configAliasResolvesThroughTheSSHDirectory() throws {
        let server = try SSHServer()
        let directory = server.directory.appending("aliasdir")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        // A key name libssh would not try by default: only IdentityFile can find it.
        try FileManager.default.copyItem(atPath: server.userKeyPath, toPath: directory + "/sync_key")
        try FileManager.default.copyItem(atPath: server.knownHostsFile, toPath: directory + "/known_hosts")
        try writeFile(directory + "/config", """
            Host syncbox
                HostName 127.0.0.1
                Port \(server.port)
                User \(server.user)
                IdentityFile \(directory)/sync_key
            Host otherport
                HostName 127.0.0.1
                Port 1
                IdentityFile \(directory)/sync_key
            """)
        let options = SSHOptions(sshDirectory: directory, connectTimeoutSeconds: 10)
        let session = try SSHSession.connect(to: SSHDestination(host: "syncbox"), options: options)
        #expect(session.resolvedHost == "127.0.0.1")
        #expect(session.destination == SSHDestination(user: server.user, host: "syncbox", port: server.port))
        #expect(try session.runCommand("true").status == 0)
        // An explicit port beats the config's.
        let explicit = try SSHSession.connect(to: SSHDestination(host: "otherport", port: server.port), options: options)
        #expect(explicit.destination.port == server.port)
    }

    @Test func killedConnectionMakesReadAndWriteThrowPromptly() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        let channel = try session.exec("cat")
        let chunk = patternBytes(count: 256 * 1024, seed: 7)
        let writer = BackgroundJob {
            while true { try channel.write(all: chunk) }
        }
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while received < 4 * 1024 * 1024 {
            let n = try buffer.withUnsafeMutableBytes { try channel.read(into: $0) }
            #expect(n > 0)
            if n == 0 { return }
            received += n
        }
        server.killSessionProcesses()
        let reader = BackgroundJob {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while try buffer.withUnsafeMutableBytes({ try channel.read(into: $0) }) > 0 {}
        }
        #expect(reader.wait(seconds: 10), "read did not return after the connection was killed")
        #expect(writer.wait(seconds: 10), "write did not throw after the connection was killed")
        #expect(reader.error is SSHError)
        #expect(writer.error is SSHError)
        if case .connectionLost? = writer.error as? SSHError {} else { Issue.record("writer: \(String(describing: writer.error))") }
        #expect(throws: SSHError.self) { try session.runCommand("true") }
    }

    @Test func uploadWritesTheFileAtomicallyWithItsMode() throws {
        let server = try SSHServer()
        let session = try SSHSession.connect(to: destination(for: server), options: clientOptions(for: server))
        let target = server.directory.appending("deploy/bin/swunison-9.9.9")
        let payload = patternBytes(count: 3_000_000, seed: 3)
        try session.upload(payload, toRemotePath: target, mode: 0o755)
        #expect(FileManager.default.contents(atPath: target) == Data(payload))
        let attributes = try FileManager.default.attributesOfItem(atPath: target)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o755)
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.directory.appending("deploy/bin")) == ["swunison-9.9.9"])

        let local = server.directory.appending("local-file")
        try Data("from a file\n".utf8).write(to: URL(fileURLWithPath: local))
        try session.upload(fileAt: local, toRemotePath: target, mode: 0o700)
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "from a file\n")

        #expect {
            try session.upload([1, 2, 3], toRemotePath: "/proc/swunison-cannot-write-here/x", mode: 0o644)
        } throws: { error in
            guard case let .uploadFailed(_, path, status, stderr) = error as? SSHError else { return false }
            return path == "/proc/swunison-cannot-write-here/x" && status != 0 && !stderr.isEmpty
        }
    }
}
