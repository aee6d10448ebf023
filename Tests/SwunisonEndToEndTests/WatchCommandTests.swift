import Foundation
import Glibc
import Testing
import SwunisonTestSupport

/// `swunison PROFILE --watch` as a user (or systemd) runs it: the built binary in the
/// background, changes made on disk, signals.
@Suite("swunison --watch", .serialized)
struct WatchCommandTests {
    /// The binary in watch mode for `arguments`, with the sandbox's profiles and home.
    static func startWatch(_ sandbox: Sandbox, _ arguments: [String], environment: [String: String] = [:]) throws -> BackgroundProcess {
        var env = ["SWUNISON": sandbox.profiles, "HOME": sandbox.dir.path]
        for (k, v) in environment { env[k] = v }
        return try BackgroundProcess(SwunisonBinary.path, arguments, environment: env, directory: sandbox.dir.path)
    }

    @Test("two local roots: changes both ways; a second instance is refused; SIGTERM exits 0 with everything committed")
    func localRoots() throws {
        let s = try Sandbox("e2e-watch")
        try s.profile("t", ["batch = true", "prefer = newer", "repeat = watch"])
        try s.write("a", "start", "s")
        let watch = try Self.startWatch(s, ["t"])
        #expect(BackgroundProcess.eventually { s.read("b", "start") == "s" }, "\(watch.stderr)")
        try s.write("a", "dir/from-a", "A")
        #expect(BackgroundProcess.eventually { s.read("b", "dir/from-a") == "A" }, "\(watch.stdout)\(watch.stderr)")
        try s.write("b", "from-b", "B")
        #expect(BackgroundProcess.eventually { s.read("a", "from-b") == "B" }, "\(watch.stdout)\(watch.stderr)")

        // The archive's lock is held for the whole watch.
        let second = try s.run(["t", "-batch"])
        #expect(second.status == 3 && second.stderr.contains("\(watch.pid)"), "\(second)")

        watch.signal(SIGTERM)
        #expect(watch.wait(seconds: 30) == 0, "\(watch.stdout)\(watch.stderr)")
        let after = try s.run(["t", "-batch", "-repeat", ""])
        #expect(after.status == 0 && after.stdout.contains("Nothing to do"), "\(after)")
        let status = try s.run(["status", "t"])
        #expect(status.stdout.contains("stopped"), "\(status)")
    }

    @Test("READY=1 once the watches are up, STATUS= as it works, STOPPING=1 on SIGTERM (NOTIFY_SOCKET)")
    func systemdNotifications() throws {
        let s = try Sandbox("e2e-notify")
        try s.profile("t", ["batch = true", "prefer = newer"])
        let socketPath = s.dir.appending("notify.sock")
        let listener = try DatagramListener(path: socketPath)
        let watch = try Self.startWatch(s, ["t", "--watch", "-batch"], environment: ["NOTIFY_SOCKET": socketPath])
        #expect(listener.waitFor(seconds: 20) { $0.contains("READY=1") }, "\(listener.received)")
        #expect(listener.waitFor(seconds: 20) { $0.contains("STATUS=watching, in step") }, "\(listener.received)")
        watch.signal(SIGTERM)
        #expect(watch.wait(seconds: 30) == 0)
        #expect(listener.received.contains { $0.contains("STOPPING=1") }, "\(listener.received)")
    }

    @Test("watchlimit below the directory count: one warning naming the sysctl; unwatched subtrees still propagate")
    func watchLimit() throws {
        let s = try Sandbox("e2e-watchlimit")
        for i in 0..<6 { try s.write("a", "d\(i)/f", "\(i)") }
        try s.profile("t", ["batch = true", "prefer = newer", "repeat = watch+2", "watchlimit = 3"])
        let watch = try Self.startWatch(s, ["t"])
        #expect(BackgroundProcess.eventually { s.read("b", "d5/f") == "5" })
        #expect(BackgroundProcess.eventually { watch.stderr.contains("fs.inotify.max_user_watches") }, "\(watch.stderr)")
        #expect(watch.stderr.contains("needs 7") && watch.stderr.contains("can have 3"), "\(watch.stderr)")
        // A change in a subtree beyond the limit comes with the periodic rescan of those subtrees.
        try s.write("a", "d5/later", "late")
        #expect(BackgroundProcess.eventually(15) { s.read("b", "d5/later") == "late" }, "\(watch.stdout)\(watch.stderr)")
        watch.signal(SIGTERM)
        #expect(watch.wait(seconds: 30) == 0)
    }

    @Test("a three-root star in one process: a change on either spoke reaches the other through the hub")
    func star() throws {
        let s = try Sandbox("e2e-star")
        let hub = s.a, spoke1 = s.b, spoke2 = s.dir.appending("c")
        try FileManager.default.createDirectory(atPath: spoke2, withIntermediateDirectories: true)
        try "batch = true\nprefer = newer\nbackupdir = \(s.dir.appending("backups"))\n"
            .write(toFile: s.profiles + "/common", atomically: true, encoding: .utf8)
        for (name, spoke) in [("hub-a", spoke1), ("hub-b", spoke2)] {
            try "root = \(hub)\nroot = \(spoke)\ninclude common\n".write(toFile: "\(s.profiles)/\(name).prf",
                                                                        atomically: true, encoding: .utf8)
        }
        for i in 0..<5 { try TestFiles.write(hub + "/d\(i)/f", "\(i)") }
        let watch = try Self.startWatch(s, ["--watch", "hub-a", "hub-b"])
        #expect(BackgroundProcess.eventually {
            TestFiles.read(spoke1 + "/d4/f") == "4" && TestFiles.read(spoke2 + "/d4/f") == "4"
        }, "\(watch.stdout)\(watch.stderr)")
        try TestFiles.write(spoke1 + "/d0/from-spoke-1", "one")
        #expect(BackgroundProcess.eventually { TestFiles.read(spoke2 + "/d0/from-spoke-1") == "one" },
                "\(watch.stdout)\(watch.stderr)")
        try TestFiles.write(spoke2 + "/from-spoke-2", "two")
        #expect(BackgroundProcess.eventually { TestFiles.read(spoke1 + "/from-spoke-2") == "two" },
                "\(watch.stdout)\(watch.stderr)")
        // One set of watches for the hub however many spokes: hub, spoke 1 and spoke 2 have 6
        // directories each, so 18 watches in all (24 if the hub were watched twice).
        #expect(Self.inotifyWatches(of: watch.pid) == 18, "watches: \(Self.inotifyWatches(of: watch.pid))")
        watch.signal(SIGTERM)
        #expect(watch.wait(seconds: 30) == 0, "\(watch.stdout)\(watch.stderr)")
    }

    @Test("a local and an ssh root: changes both ways (the server watches its side); a killed connection is reopened")
    func sshRoot() throws {
        let s = try SSHSandbox("e2e-watch-ssh")
        try s.write(s.local, "start", "s")
        try s.profile("t", ["batch = true", "prefer = newer", "repeat = watch"])
        let watch = try BackgroundProcess(SwunisonBinary.path, ["t"],
                                          environment: ["SWUNISON": s.sandbox.profiles, "HOME": s.sandbox.dir.path,
                                                        "SWUNISON_SSH_DIR": s.sshDirectory],
                                          directory: s.sandbox.dir.path)
        #expect(BackgroundProcess.eventually { TestFiles.read(s.remote + "/start") == "s" }, "\(watch.stderr)")
        try s.write(s.local, "d/from-local", "L")
        #expect(BackgroundProcess.eventually { TestFiles.read(s.remote + "/d/from-local") == "L" }, "\(watch.stdout)\(watch.stderr)")
        try s.write(s.remote, "from-remote", "R")
        #expect(BackgroundProcess.eventually { TestFiles.read(s.local + "/from-remote") == "R" }, "\(watch.stdout)\(watch.stderr)")

        // The link goes (the server and its sshd child are killed): watch mode reconnects and
        // rescans, and changes made meanwhile on either side arrive.
        s.server.killSessionProcesses()
        try s.write(s.remote, "while-down", "W")
        try s.write(s.local, "local-while-down", "V")
        #expect(BackgroundProcess.eventually(30) {
            TestFiles.read(s.local + "/while-down") == "W" && TestFiles.read(s.remote + "/local-while-down") == "V"
        }, "\(watch.stdout)\(watch.stderr)")
        try s.write(s.remote, "after", "A")
        #expect(BackgroundProcess.eventually { TestFiles.read(s.local + "/after") == "A" }, "\(watch.stdout)\(watch.stderr)")
        watch.signal(SIGTERM)
        #expect(watch.wait(seconds: 30) == 0, "\(watch.stdout)\(watch.stderr)")
        #expect(s.inStep, "\(s.listings)")
    }

    /// How many inotify watches a process holds (from /proc/PID/fdinfo).
    static func inotifyWatches(of pid: pid_t) -> Int {
        let dir = "/proc/\(pid)/fdinfo"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.reduce(0) { total, fd in
            let text = (try? String(contentsOfFile: dir + "/" + fd, encoding: .utf8)) ?? ""
            return total + text.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") }.count
        }
    }
}

/// A datagram socket the test listens on, as systemd's NOTIFY_SOCKET.
final class DatagramListener: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var messages: [String] = []

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        self.fd = fd
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        Thread.detachNewThread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                guard let self else { return }
                self.lock.withLock { self.messages.append(text) }
            }
        }
    }

    deinit { close(fd) }

    var received: [String] { lock.withLock { messages } }

    func waitFor(seconds: Double, _ matches: (String) -> Bool) -> Bool {
        BackgroundProcess.eventually(seconds) { received.contains(where: matches) }
    }
}
