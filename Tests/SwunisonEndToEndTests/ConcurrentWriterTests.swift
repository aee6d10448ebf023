import Foundation
import Glibc
import SwunisonTestSupport
import Testing

/// A process that keeps appending to, truncating, rewriting, renaming and deleting files on both
/// sides while a run propagates hundreds of changes (issue 13). Nothing it wrote may be
/// overwritten or lost: whatever it left in a file last is, after two more runs, what both
/// sides hold (its writes are the newest, and `prefer = newer`).
@Suite("a concurrent writer")
struct ConcurrentWriterTests {
    @Test(.timeLimit(.minutes(3)))
    func nothingAConcurrentWriterWroteIsLost() throws {
        let s = try Sandbox("concurrent-writer")
        try s.profile("t", ["batch = true", "prefer = newer", "maxbackups = 2"])
        let old = Date().timeIntervalSince1970 - 1000
        let count = 300
        for i in 0..<count {
            let path = "d\(i % 10)/f\(i)"
            try s.write("a", path, "base \(i)", mtime: old)
            try s.write("b", path, "base \(i)", mtime: old)
        }
        #expect(try s.run(["t"]).status == 0)
        // The run's work: every file changed on A (older than anything the writer does).
        for i in 0..<count {
            try s.write("a", "d\(i % 10)/f\(i)", "from A \(i) " + String(repeating: "a", count: 2000), mtime: old + 10)
        }

        // The writer: on both sides, while the run goes on.
        let writer = ConcurrentWriter(roots: ["a": s.a, "b": s.b], files: count)
        let thread = Thread { writer.run() }
        thread.start()
        let run = try s.run(["t"])
        writer.stop()
        #expect([0, 1, 2].contains(run.status), "\(run)")
        // Two more runs with the writer gone: everything converges, the writer's last words win.
        _ = try s.run(["t"])
        let settled = try s.run(["t"])
        #expect(settled.status == 0 && settled.stdout.contains("Nothing to do"), "\(settled)")
        #expect(s.inStep)
        let last = writer.lastContents
        #expect(last.count > 20, "the writer did too little: \(last.count) files")
        for (path, content) in last {
            #expect(s.read("a", path) == content && s.read("b", path) == content,
                    "\(path): the writer left \(content.prefix(30))…, A has \(s.read("a", path)?.prefix(30) ?? "nothing"), B has \(s.read("b", path)?.prefix(30) ?? "nothing")")
        }
    }
}

/// Writes to random files of both roots until stopped, remembering what each file it touched
/// last held (nil: it removed or renamed the file away).
final class ConcurrentWriter: @unchecked Sendable {
    private let roots: [String: String]
    private let files: Int
    private let lock = NSLock()
    private var stopped = false
    private var last: [String: String?] = [:]
    private var serial = 0

    init(roots: [String: String], files: Int) { self.roots = roots; self.files = files }

    func stop() { lock.withLock { stopped = true } }

    /// Paths whose last action left known content.
    var lastContents: [String: String] {
        lock.withLock { last.compactMapValues { $0 } }
    }

    func run() {
        var random = SplitMix(seed: 42)
        while !lock.withLock({ stopped }) {
            let side = random.next() % 2 == 0 ? "a" : "b"
            let i = Int(random.next() % UInt64(files))
            let path = "d\(i % 10)/f\(i)"
            let full = roots[side]! + "/" + path
            serial += 1
            let mark = "writer \(serial) on \(side) "
            switch random.next() % 4 {
            case 0:  // append
                guard let fd = Optional(open(full, O_WRONLY | O_APPEND)), fd >= 0 else { break }
                _ = mark.withCString { write(fd, $0, strlen($0)) }
                close(fd)
                if let now = TestFiles.read(full) { record(path, now) }
            case 1:  // truncate and rewrite in place, slowly
                let fd = open(full, O_WRONLY | O_TRUNC | O_CREAT, 0o644)
                guard fd >= 0 else { break }
                _ = mark.withCString { write(fd, $0, strlen($0)) }
                usleep(2_000)
                _ = "rest".withCString { write(fd, $0, 4) }
                close(fd)
                record(path, mark + "rest")
            case 2:  // rename to a new name
                let moved = "d\(i % 10)/moved-\(serial)"
                if Glibc.rename(full, roots[side]! + "/" + moved) == 0 {
                    if let now = TestFiles.read(roots[side]! + "/" + moved) { record(moved, now) }
                    forget(path)
                }
            default:  // delete
                if unlink(full) == 0 { forget(path) }
            }
            usleep(500)
        }
    }

    private func record(_ path: String, _ content: String) { lock.withLock { last[path] = .some(content) } }
    private func forget(_ path: String) { lock.withLock { last[path] = .some(nil) } }
}
