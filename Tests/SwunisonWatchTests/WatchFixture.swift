import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import SwunisonReplica
import SwunisonTestSupport
@testable import SwunisonWatch
import Testing

/// A temporary root (`<tmp>/root`, with `<tmp>/outside` beside it) and file operations on it
/// made with plain system calls, so each makes the events a user's program would.
final class WatchTree: @unchecked Sendable {
    let temporary: TemporaryDirectory
    let root: String
    let outside: String

    init(_ label: String) throws {
        temporary = try TemporaryDirectory("watch-\(label)")
        root = temporary.appending("root")
        outside = temporary.appending("outside")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: false)
    }

    func absolute(_ relative: String) -> String { root + "/" + relative }

    func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: absolute(relative), withIntermediateDirectories: true)
    }

    /// Creates or replaces `relative` in one open-write-close.
    func write(_ relative: String, _ text: String = "x") throws {
        let fd = open(absolute(relative), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try check(fd >= 0, "open \(relative)")
        defer { close(fd) }
        try check(Glibc.write(fd, text, text.utf8.count) == text.utf8.count, "write \(relative)")
    }

    func append(_ relative: String, _ text: String = "more") throws {
        let fd = open(absolute(relative), O_WRONLY | O_APPEND | O_CLOEXEC)
        try check(fd >= 0, "open \(relative)")
        defer { close(fd) }
        try check(Glibc.write(fd, text, text.utf8.count) == text.utf8.count, "append \(relative)")
    }

    func chmod(_ relative: String, _ mode: mode_t) throws {
        try check(Glibc.chmod(absolute(relative), mode) == 0, "chmod \(relative)")
    }

    func remove(_ relative: String) throws {
        try FileManager.default.removeItem(atPath: absolute(relative))
    }

    /// `rename(2)`; either side may be an absolute path (outside the root).
    func rename(_ from: String, _ to: String) throws {
        let source = from.hasPrefix("/") ? from : absolute(from)
        let target = to.hasPrefix("/") ? to : absolute(to)
        try check(Glibc.rename(source, target) == 0, "rename \(from) \(to)")
    }

    func symlink(_ relative: String, to target: String) throws {
        try check(Glibc.symlink(target, absolute(relative)) == 0, "symlink \(relative)")
    }

    func link(_ relative: String, to existing: String) throws {
        try check(Glibc.link(absolute(existing), absolute(relative)) == 0, "link \(relative)")
    }

    /// The entry `relative` now is, as an own change leaves it (nil = absent).
    func entry(_ relative: String) throws -> Entry? {
        let path = try RelativePath(validating: relative)
        let directory = try DirectoryFD.openRoot(root).openDirectory(at: path.parent!)
        return try lstat(path.lastComponent!, in: directory)
    }

    private func check(_ ok: Bool, _ what: String) throws {
        if !ok { throw WatchTestError("\(what): \(String(cString: strerror(errno)))") }
    }
}

struct WatchTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func path(_ text: String) -> RelativePath {
    text.isEmpty ? .root : try! RelativePath(validating: text)
}

/// The paths of the `.changed` notices, as text.
func changed(_ notices: [ChangeNotice]) -> [String] {
    notices.compactMap { if case .changed(let p) = $0 { return p.description } else { return nil } }
}

/// Whether some notice covers `relative`: `.changed` of it or of a directory above it.
func covers(_ notices: [ChangeNotice], _ relative: String) -> Bool {
    let target = path(relative)
    return notices.contains { if case .changed(let p) = $0 { return target.isDescendant(orEqualTo: p) } else { return false } }
}

/// Gathers notices from `subscription` until `done` says enough, or `seconds` pass (the machine
/// may be slow and loaded: the timeout is only reached when a test fails).
func collect(_ subscription: TreeWatchSubscription, seconds: Double = 15,
             until done: ([ChangeNotice]) -> Bool) async throws -> [ChangeNotice] {
    var seen: [ChangeNotice] = []
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !done(seen) {
        guard let batch = try await nextBatch(subscription, before: deadline) else { break }
        seen += batch
    }
    return seen
}

/// Gathers notices until one covers `relative`.
func collect(_ subscription: TreeWatchSubscription, untilCovered relative: String) async throws -> [ChangeNotice] {
    try await collect(subscription) { covers($0, relative) }
}

/// The next batch, or nil when `deadline` passes first.
func nextBatch(_ subscription: TreeWatchSubscription, before deadline: ContinuousClock.Instant) async throws -> [ChangeNotice]? {
    try await withThrowingTaskGroup(of: [ChangeNotice]?.self) { group in
        group.addTask { try await subscription.next() }
        group.addTask {
            try? await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
}

/// Makes a change reported at once (a new symlink) and gathers notices up to it: inotify keeps
/// events in order, so whatever was to be reported before it has been by then.
func settle(_ tree: WatchTree, _ subscription: TreeWatchSubscription, marker: String = "marker") async throws -> [ChangeNotice] {
    let name = "\(marker).\(UInt32.random(in: 0...UInt32.max))"
    try tree.symlink(name, to: "nowhere")
    return try await collect(subscription) { changed($0).contains(name) }.filter { $0 != .changed(path(name)) }
}

/// How many watches the kernel holds for the watcher's inotify descriptor
/// (`/proc/self/fdinfo`: one `inotify wd:` line per watch).
func kernelWatchCount(_ watcher: TreeWatcher) throws -> Int {
    let info = try String(contentsOfFile: "/proc/self/fdinfo/\(watcher.loop.inotify.fd)", encoding: .utf8)
    return info.split(separator: "\n").filter { $0.hasPrefix("inotify wd:") }.count
}

/// Started watchers are stopped at the end of each test, so that none outlives its tree.
func startWatcher(_ tree: WatchTree, options: TreeWatcher.Options = .init()) throws -> (TreeWatcher, WatchSetupReport) {
    let watcher = try TreeWatcher(rootPath: tree.root, options: options)
    let report = try watcher.start()
    return (watcher, report)
}
