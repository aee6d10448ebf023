import Foundation
import Testing
import SwunisonTestSupport

/// The built `swunison` binary with one root on a real sshd (127.0.0.1, its own keys), running the
/// built binary there as `servercmd server`. A missing /usr/sbin/sshd fails these tests (SSHServer
/// throws): CI must run them. Serialized: several tests touch the "remote" home (/root).
///
/// Not here: a hostile server sending `../escape` in a scan reply. That needs a fake server
/// speaking the wire protocol; the decoder's rejection of such paths (Invariant 5) is tested at
/// the codec level (SwunisonWireTests: CodecTests.hostilePathInsideScanBatchIsRejected, and
/// HostileClientTests for the server side).
@Suite("swunison with an ssh:// root", .serialized)
struct SSHRootTests {
    @Test("first sync copies both ways over ssh (files, dirs, symlink, 3 MB); a second run has nothing to do")
    func initialSync() throws {
        let s = try SSHSandbox("ssh-first")
        try s.write(s.local, "d1/f1", "one")
        try s.write(s.local, "d1/d2/deep", "deep")
        try FileManager.default.createDirectory(atPath: s.local + "/empty", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: s.local + "/link", withDestinationPath: "d1/f1")
        let big = randomData(3 << 20)
        try big.write(to: URL(fileURLWithPath: s.local + "/big"))
        chmod(s.local + "/d1/f1", 0o751)
        try s.write(s.remote, "r/x", "from remote")
        try FileManager.default.createSymbolicLink(atPath: s.remote + "/rlink", withDestinationPath: "r/x")
        try s.profile()

        let first = try s.run()
        #expect(first.status == 0, "\(first)")
        #expect(FileManager.default.contents(atPath: s.remote + "/big") == big)
        #expect(TestFiles.read(s.remote + "/d1/d2/deep") == "deep")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: s.remote + "/link")) == "d1/f1")
        #expect(TestFiles.read(s.local + "/r/x") == "from remote")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: s.local + "/rlink")) == "r/x")
        #expect(s.inStep, "\(s.listings)")

        let second = try s.run()
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout.contains("Nothing to do"), "\(second)")
    }

    @Test("two-sided changes over ssh; prefer = newer; each side's loser kept in its own backupdir")
    func twoSidedChangesAndConflicts() throws {
        let s = try SSHSandbox("ssh-newer")
        for i in 1...5 { try s.write(s.local, "d/f\(i)", "base \(i)") }
        try s.profile()
        let first = try s.run()
        #expect(first.status == 0, "\(first)")

        let now = Date().timeIntervalSince1970
        try s.write(s.local, "d/f1", "changed locally")
        try s.write(s.remote, "d/f2", "changed remotely")
        try FileManager.default.removeItem(atPath: s.remote + "/d/f3")
        try s.write(s.remote, "new/deep/n", "new remotely")
        // f4: the remote copy is newer, the local one loses (backup on this host).
        try s.write(s.local, "d/f4", "local-loser", mtime: now - 7200)
        try s.write(s.remote, "d/f4", "remote-winner", mtime: now - 3600)
        // f5: the local copy is newer, the remote one loses (backup on the remote host, which
        // with an absolute backupdir is the same path here).
        try s.write(s.local, "d/f5", "local-winner", mtime: now - 3600)
        try s.write(s.remote, "d/f5", "remote-loser", mtime: now - 7200)

        let run = try s.run()
        #expect(run.status == 0, "\(run)")
        #expect(TestFiles.read(s.remote + "/d/f1") == "changed locally")
        #expect(TestFiles.read(s.local + "/d/f2") == "changed remotely")
        #expect(!TestFiles.exists(s.local + "/d/f3"))
        #expect(TestFiles.read(s.local + "/new/deep/n") == "new remotely")
        #expect(TestFiles.read(s.local + "/d/f4") == "remote-winner")
        #expect(TestFiles.read(s.remote + "/d/f5") == "local-winner")
        let kept = s.sandbox.backups().map(\.1)
        #expect(kept.contains("local-loser"), "\(s.sandbox.backups())")
        #expect(kept.contains("remote-loser"), "\(s.sandbox.backups())")
        #expect(run.stdout.contains("losing version of d/f4") && run.stdout.contains("losing version of d/f5"), "\(run)")
        #expect(s.inStep, "\(s.listings)")

        let again = try s.run()
        #expect(again.status == 0 && again.stdout.contains("Nothing to do"), "\(again)")
    }

    @Test("a remote root relative to the remote home, and an absolute one (//abs)")
    func relativeAndAbsoluteRemotePaths() throws {
        let s = try SSHSandbox("ssh-relative")
        // The session's home is root's from the password database, not $HOME: make a unique dir there.
        let home = String(cString: getpwuid(getuid()).pointee.pw_dir)
        var template = Array("\(home)/swunison-sshe2e.XXXXXX".utf8CString)
        let made = try #require(mkdtemp(&template))
        let remoteDir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: remoteDir) }
        let relative = String(remoteDir.dropFirst(home.count + 1))
        #expect(!relative.hasPrefix("/"))

        try s.write(s.local, "sub/file", "to the relative root")
        try s.write(remoteDir, "there", "from the relative root")
        try s.profile("rel", remoteRoot: s.url(relative))
        let rel = try s.run(["rel"])
        #expect(rel.status == 0, "\(rel)")
        #expect(TestFiles.read(remoteDir + "/sub/file") == "to the relative root")
        #expect(TestFiles.read(s.local + "/there") == "from the relative root")

        // The same tree, named by its absolute path: `ssh://host//abs` (a new archive, equal trees).
        #expect(s.url(remoteDir).contains(":\(s.server.port)//"))
        try s.profile("abs", remoteRoot: s.url(remoteDir))
        try s.write(s.local, "second", "by absolute path")
        let abs = try s.run(["abs"])
        #expect(abs.status == 0, "\(abs)")
        #expect(TestFiles.read(remoteDir + "/second") == "by absolute path")
        #expect(s.sandbox.listing(s.local) == s.sandbox.listing(remoteDir))
    }

    @Test("unknown host key in batch mode: exit 3 with the fingerprint and how to add it; nothing touched")
    func unknownHostKey() throws {
        let s = try SSHSandbox("ssh-unknown")
        s.sshDirectory = try s.copyOfSSHDirectory("ssh-empty-kh")
        try Data().write(to: URL(fileURLWithPath: s.sshDirectory + "/known_hosts"))
        try s.write(s.local, "ghost", "must not arrive")
        try s.write(s.remote, "phantom", "must not arrive either")
        try s.profile()
        let run = try s.run()
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains(s.server.hostKeyFingerprint), "\(run)")
        #expect(run.stderr.contains("ssh-keyscan -p \(s.server.port) 127.0.0.1"), "\(run)")
        #expect(run.stderr.contains(s.sshDirectory + "/known_hosts"), "\(run)")
        #expect(!TestFiles.exists(s.remote + "/ghost"))
        #expect(!TestFiles.exists(s.local + "/phantom"))
        #expect(TestFiles.read(s.sshDirectory + "/known_hosts") == "", "batch mode must not record the key")
    }

    @Test("changed host key: exit 3, refused, nothing touched")
    func changedHostKey() throws {
        let s = try SSHSandbox("ssh-changed")
        try s.write(s.local, "f", "synced once")
        try s.profile()
        let first = try s.run()
        #expect(first.status == 0, "\(first)")

        // known_hosts now records another key for [127.0.0.1]:PORT.
        s.sshDirectory = try s.copyOfSSHDirectory("ssh-other-kh")
        let other = s.sandbox.dir.appending("otherkey")
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
        let otherPublic = try String(contentsOfFile: other + ".pub", encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let knownHosts = "[127.0.0.1]:\(s.server.port) \(otherPublic)\n"
        try knownHosts.write(toFile: s.sshDirectory + "/known_hosts", atomically: true, encoding: .utf8)

        try s.write(s.local, "f", "tampered")
        try s.write(s.local, "g", "new")
        let run = try s.run()
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("CHANGED"), "\(run)")
        #expect(run.stderr.contains(s.server.hostKeyFingerprint), "\(run)")
        #expect(TestFiles.read(s.remote + "/f") == "synced once")
        #expect(!TestFiles.exists(s.remote + "/g"))
        #expect(TestFiles.read(s.sshDirectory + "/known_hosts") == knownHosts, "the recorded key must stay")
    }

    @Test("a user key the server does not accept: exit 3 with an authentication error; nothing touched")
    func wrongUserKey() throws {
        let s = try SSHSandbox("ssh-wrongkey")
        s.sshDirectory = try s.copyOfSSHDirectory("ssh-otherkey")
        for suffix in ["", ".pub"] { try FileManager.default.removeItem(atPath: s.sshDirectory + "/id_ed25519" + suffix) }
        try runTool("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", s.sshDirectory + "/id_ed25519"])
        try s.write(s.local, "ghost", "must not arrive")
        try s.profile()
        let run = try s.run(environment: ["SSH_AUTH_SOCK": "/nonexistent/agent.sock"])
        #expect(run.status == 3, "\(run)")
        #expect(run.stderr.contains("Authentication to"), "\(run)")
        #expect(run.stderr.contains("failed"), "\(run)")
        #expect(run.stderr.contains("127.0.0.1"), "\(run)")
        #expect(!TestFiles.exists(s.remote + "/ghost"))
    }

    @Test("missing remote binary: exit 3 naming host and servercmd; serverdeploy = true copies this binary and syncs")
    func missingServerAndDeploy() throws {
        let s = try SSHSandbox("ssh-deploy")
        try s.write(s.local, "f", "deployed")
        try s.profile(serverCommand: "/nonexistent/swunison")
        let missing = try s.run()
        #expect(missing.status == 3, "\(missing)")
        #expect(missing.stderr.contains("127.0.0.1"), "\(missing)")
        #expect(missing.stderr.contains("/nonexistent/swunison"), "\(missing)")
        #expect(missing.stderr.contains("serverdeploy"), "\(missing)")
        #expect(!TestFiles.exists(s.remote + "/f"))

        // The deployed copy goes to ~/.swunison/bin on the "remote" (this host's /root): remove
        // what this test added, keep what was there before.
        let home = String(cString: getpwuid(getuid()).pointee.pw_dir)
        let bin = home + "/.swunison/bin"
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: bin)) ?? [])
        let swunisonDirExisted = TestFiles.exists(home + "/.swunison")
        defer {
            let after = Set((try? FileManager.default.contentsOfDirectory(atPath: bin)) ?? [])
            for name in after.subtracting(before) { try? FileManager.default.removeItem(atPath: bin + "/" + name) }
            if !swunisonDirExisted { try? FileManager.default.removeItem(atPath: home + "/.swunison") }
        }
        try s.profile(serverCommand: "/nonexistent/swunison", ["batch = true", "prefer = newer", "serverdeploy = true"])
        let deployed = try s.run()
        #expect(deployed.status == 0, "\(deployed)")
        #expect(TestFiles.read(s.remote + "/f") == "deployed")
        let copies = ((try? FileManager.default.contentsOfDirectory(atPath: bin)) ?? []).filter { $0.hasPrefix("swunison-") }
        #expect(!copies.isEmpty, "no swunison-<version> in \(bin)")
        for copy in copies {
            #expect(FileManager.default.contents(atPath: bin + "/" + copy) == FileManager.default.contents(atPath: SwunisonBinary.path))
        }
        // A second run finds the identical copy and syncs again.
        try s.write(s.local, "g", "again")
        let again = try s.run()
        #expect(again.status == 0, "\(again)")
        #expect(TestFiles.read(s.remote + "/g") == "again")

        // Somebody else could replace the binary once its directory is group-writable: refused.
        var st = stat()
        #expect(stat(bin, &st) == 0)
        let mode = st.st_mode & 0o7777
        #expect(chmod(bin, 0o775) == 0)
        defer { chmod(bin, mode) }
        try s.write(s.local, "h", "not with a writable bin")
        let refused = try s.run()
        #expect(refused.status == 3, "\(refused)")
        #expect(refused.stderr.contains("writable by other users") && refused.stderr.contains("chmod go-w"), "\(refused)")
        #expect(!TestFiles.exists(s.remote + "/h"))
    }

    @Test("protocol version mismatch (client claims another version): exit 3, one line naming both versions")
    func protocolMismatchClient() throws {
        let s = try SSHSandbox("ssh-proto-client")
        try s.write(s.local, "f", "must not arrive")
        try s.profile()
        let run = try s.run(environment: ["SWUNISON_TEST_PROTOCOL_VERSION": "77"])
        #expect(run.status == 3, "\(run)")
        let mismatch = lines(of: run.stderr, containing: "protocol version mismatch")
        #expect(mismatch.count == 1, "\(run)")
        #expect(mismatch.first.map { $0.contains("77") && $0.contains("version 2") } == true, "\(run)")
        #expect(!TestFiles.exists(s.remote + "/f"))
    }

    @Test("protocol version mismatch (server wrapper claims another version): exit 3, one line naming both versions")
    func protocolMismatchServer() throws {
        let s = try SSHSandbox("ssh-proto-server")
        let wrapper = s.sandbox.dir.appending("old-swunison")
        try "#!/bin/sh\nSWUNISON_TEST_PROTOCOL_VERSION=9 exec '\(SwunisonBinary.path)' \"$@\"\n"
            .write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        try s.write(s.local, "f", "must not arrive")
        try s.profile(serverCommand: wrapper)
        let run = try s.run()
        #expect(run.status == 3, "\(run)")
        let mismatch = lines(of: run.stderr, containing: "protocol version mismatch")
        #expect(mismatch.count == 1, "\(run)")
        #expect(mismatch.first.map { $0.contains("version 2") && $0.contains("9") } == true, "\(run)")
        #expect(!TestFiles.exists(s.remote + "/f"))
    }

    @Test("link killed mid-transfer: retry reconnects (or exit 2 and a rerun converges); no partial file, no temp file left")
    func linkKilledMidTransfer() throws {
        let s = try SSHSandbox("ssh-kill")
        let content = try s.writeLargeFiles()
        try s.profile("t", ["batch = true", "prefer = newer", "retry = 3"])

        // Kill the link once the transfer is under way.
        let (first, killedAt) = try s.run(timeout: 300) { s.server.killSessionProcesses() }
        #expect(killedAt != nil, "the run finished before the transfer could be interrupted: \(first)")
        #expect(first.status == 0 || first.status == 2, "\(first)")

        // Whatever arrived is complete: every file under its real name has its full content.
        for i in 0..<40 where TestFiles.exists(s.remote + "/d\(i % 4)/big\(i)") {
            #expect(FileManager.default.contents(atPath: s.remote + "/d\(i % 4)/big\(i)") == content(i), "big\(i) is partial")
        }
        // The killed server's temp files are removed by the next scan once their owner is gone; a
        // container whose pid 1 reaps orphans late keeps the owner as a zombie (alive to kill(pid, 0))
        // for a while: wait for it, as a real host's init would have reaped it at once.
        let deadline = Date().addingTimeInterval(15)
        while SSHSandbox.owners(of: SSHSandbox.temporaryFiles(under: s.remote)).contains(where: { !$0.hasSuffix("gone") }),
              Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        if first.status != 0 {
            // Also after an unexpected status: show whether a rerun converges.
            let rerun = try s.run()
            #expect(rerun.status == 0, "rerun after exit \(first.status): \(rerun)")
        } else {
            #expect(first.stderr.contains("reconnecting to"),
                    "a retried run should say it lost the link: \(first)")
        }
        for i in 0..<40 {
            #expect(FileManager.default.contents(atPath: s.remote + "/d\(i % 4)/big\(i)") == content(i), "big\(i)")
        }
        #expect(s.inStep, "\(s.listings)")
        #expect(SSHSandbox.temporaryFiles(under: s.local).isEmpty, "\(SSHSandbox.temporaryFiles(under: s.local))")
        let leftovers = SSHSandbox.temporaryFiles(under: s.remote)
        #expect(leftovers.isEmpty, "\(leftovers.count) left, owners: \(SSHSandbox.owners(of: leftovers)); \(leftovers)")
        let again = try s.run()
        #expect(again.status == 0 && again.stdout.contains("Nothing to do"), "\(again)")
    }
}

extension SSHRootTests {
    @Test("a server that stops answering mid-transfer: exit 3 within stalltimeout, naming what waited; a rerun converges")
    func stalledServer() throws {
        let s = try SSHSandbox("ssh-stall")
        let content = try s.writeLargeFiles()
        try s.profile("t", ["batch = true", "prefer = newer", "retry = 3", "stalltimeout = 3"])

        // Freeze the remote `swunison server` (SIGSTOP: alive, connected, silent) once the
        // transfer is under way, as a hung disk or a lost frame would.
        var stopped: [Int32] = []
        let (first, stoppedAt) = try s.run(timeout: 120) {
            stopped = s.server.sessionProcesses.filter { pid in
                let argv = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return argv.contains("swunison") && argv.contains("server")
            }
            for pid in stopped { kill(pid, SIGSTOP) }
        }
        for pid in stopped { kill(pid, SIGKILL) }
        #expect(!stopped.isEmpty && stoppedAt != nil, "the run finished before the server could be stopped: \(first)")
        #expect(first.status == 3, "\(first)")
        let waited = Date().timeIntervalSince(stoppedAt ?? Date())
        #expect(waited < 30, "the run went on for \(waited) s after the server stopped")
        #expect(first.stderr.contains("no progress with \(s.url(s.remote))"), "\(first)")
        #expect(first.stderr.contains("The server did not answer a status request"), "\(first)")
        #expect(first.stderr.contains("request"), "\(first)")
        // Not retried, not reconnected: a stall is reported, not hidden.
        #expect(!first.stderr.contains("reconnecting to"), "\(first)")

        // Whatever arrived is complete, and a rerun converges.
        for i in 0..<40 where TestFiles.exists(s.remote + "/d\(i % 4)/big\(i)") {
            #expect(FileManager.default.contents(atPath: s.remote + "/d\(i % 4)/big\(i)") == content(i), "big\(i) is partial")
        }
        let rerun = try s.run()
        #expect(rerun.status == 0, "\(rerun)")
        #expect(s.inStep, "\(s.listings)")
        let again = try s.run()
        #expect(again.status == 0 && again.stdout.contains("Nothing to do"), "\(again)")
    }
}

/// Runs a helper program to completion; throws on a non-zero exit.
private func runTool(_ path: String, _ arguments: [String]) throws { try SSHServer.run(path, arguments) }
