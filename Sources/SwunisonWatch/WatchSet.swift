import Glibc
import SwunisonFS
import SwunisonModel

/// The watches on one tree: adds them directory by directory beneath the root, within the
/// watch limit, and keeps ``WatchTable`` in step.
///
/// Directories are opened one name at a time from their parent with `O_NOFOLLOW`
/// (``DirectoryFD/openDirectory(_:)``) and watched through their open descriptor, so a symlink
/// in the tree is never followed (Invariant 5). Directories that `shouldWatch` rejects (ignored
/// subtrees) and swunison's own `.swunison.*` names get no watch and are not counted.
///
/// Thread safety: none; used by one thread at a time (``TreeWatcher/start()``, then the
/// watcher's thread).
final class WatchSet {
    let inotify: Inotify
    /// `watchlimit`: at most this many watches.
    let limit: Int?
    let shouldWatch: @Sendable (RelativePath) -> Bool
    private(set) var table = WatchTable()
    /// The topmost directories left unwatched, each with the number of directories in its
    /// subtree (itself included): what ``needed`` counts beyond the watches.
    private(set) var unwatched: [RelativePath: Int] = [:]
    /// Why the last directory was left unwatched; nil once nothing is.
    private(set) var limitReason: WatchLimitReason?

    init(inotify: Inotify, limit: Int?, shouldWatch: @escaping @Sendable (RelativePath) -> Bool) {
        self.inotify = inotify
        self.limit = limit
        self.shouldWatch = shouldWatch
    }

    /// Directories that wanted a watch: those watched and those in unwatched subtrees.
    var needed: Int { table.count + unwatched.values.reduce(0, +) }

    /// How many watches could be had: the `watchlimit`; when the kernel refused more, as many as
    /// this watcher holds; otherwise the limit in force, if any is known.
    var available: Int {
        switch limitReason {
        case .watchLimit(let limit): return limit
        case .kernel: return table.count
        case nil: return limit ?? KernelLimits.maxUserWatches ?? table.count
        }
    }

    /// The topmost unwatched directories, in walk order.
    var unwatchedPaths: [RelativePath] { unwatched.keys.sorted() }

    /// Watches the whole tree beneath `root`, keeping the watches it already has (adding a watch
    /// to a watched directory returns its descriptor) and dropping those of directories no longer
    /// there (events were lost).
    /// - Returns: the topmost directories left unwatched.
    /// - Throws: `SystemCallError` when the root itself cannot be watched.
    func watchTree(root: DirectoryFD) throws(SystemCallError) -> [RelativePath] {
        unwatched.removeAll()
        limitReason = nil
        var walk = Walk(set: self)
        let top = try walk.enterRoot(root)
        walk.run(from: top)
        finish(walk, at: table.rootWD)
        return walk.unwatchedTops
    }

    /// Watches the directory `path` and everything beneath it (a new or moved-in directory, or one
    /// moved within the tree, whose watches are kept and checked). Nothing happens when its
    /// parent is not watched, when it is ignored, gone, or not a directory.
    /// - Returns: the topmost directories newly left unwatched.
    func watchSubtree(at path: RelativePath, root: DirectoryFD) -> [RelativePath] {
        guard let parent = path.parent, let name = path.lastComponent,
              let parentWD = table.wd(at: parent) else { return [] }
        forgetUnwatched(atOrBeneath: path)
        guard wantsWatch(path, name: name.bytes) else {
            if let wd = table.child(named: name.bytes, of: parentWD) { forget(wd) }
            return []
        }
        let directory: DirectoryFD
        switch Result(catching: { () throws(SystemCallError) in try root.openDirectory(at: path) }) {
        case .success(let opened): directory = opened
        case .failure: return []  // gone again, or a symlink (Invariant 5): nothing to watch
        }
        var walk = Walk(set: self)
        guard let top = walk.enter(directory, path: path, parentWD: parentWD, name: name.bytes, unwatchedTop: nil) else {
            return []
        }
        walk.run(from: top)
        finish(walk, at: top.wd)
        return walk.unwatchedTops
    }

    /// Removes the watches of `wd`'s subtree (a directory moved out of the tree, or whose watch
    /// the kernel dropped).
    func forget(_ wd: Int32) {
        let removed = table.remove(wd)
        // The first one is `wd`; the kernel already dropped it when it said IN_IGNORED, and a
        // second removal is harmless.
        for member in removed { inotify.removeWatch(member) }
    }

    /// Detaches the subdirectory `name` of `parent` (deleted, or moved away): its watch is
    /// forgotten when the kernel drops it (IN_IGNORED) or the move is settled.
    @discardableResult
    func detach(named name: [UInt8], from parent: Int32) -> Int32? {
        table.detach(named: name, from: parent)
    }

    /// Re-links a watched directory at its new place (moved within the tree). One the kernel
    /// already dropped, or that cannot go there, is forgotten: the walk that follows watches
    /// the new place afresh.
    func attach(_ wd: Int32, under parent: Int32, name: [UInt8]) {
        guard table.contains(wd) else { return }
        if !table.attach(wd, under: parent, name: name) { forget(wd) }
    }

    /// Forgets the watch the kernel dropped (IN_IGNORED): `wd`'s node and anything still below it.
    func dropped(_ wd: Int32) {
        guard table.contains(wd) else { return }
        forget(wd)
    }

    /// Removes every watch (the root went away).
    func forgetAll() {
        for wd in table.removeAll() { inotify.removeWatch(wd) }
        unwatched.removeAll()
        limitReason = nil
    }

    /// Forgets unwatched subtrees at or beneath `path` (deleted, moved, or about to be re-walked).
    func forgetUnwatched(atOrBeneath path: RelativePath) {
        guard !unwatched.isEmpty else { return }
        for key in unwatched.keys where key.isDescendant(orEqualTo: path) { unwatched.removeValue(forKey: key) }
        if unwatched.isEmpty { limitReason = nil }
    }

    /// Whether a directory gets a watch: not one of swunison's temporary names, not ignored.
    func wantsWatch(_ path: RelativePath, name: [UInt8]) -> Bool {
        !isSwunisonTemporary(name) && shouldWatch(path)
    }

    /// Records what a walk found, and drops watches beneath its start that it did not meet again
    /// (directories that went while events were lost).
    private func finish(_ walk: Walk, at start: Int32?) {
        for (path, count) in walk.unwatchedCounts { unwatched[path] = count }
        if let reason = walk.limitReason { limitReason = reason }
        guard let start, walk.visited.count > 0 else { return }
        for wd in table.subtree(of: start) where !walk.visited.contains(wd) && table.contains(wd) {
            forget(wd)
        }
    }

    /// One walk: a depth-first descent holding one open directory per level.
    private struct Walk {
        struct Frame {
            let directory: DirectoryFD
            let path: RelativePath
            /// Its watch; nil inside an unwatched subtree.
            let wd: Int32?
            /// The topmost unwatched directory it lies in, if any.
            let unwatchedTop: RelativePath?
            let subdirectories: [[UInt8]]
            var next = 0
        }

        let set: WatchSet
        var visited: Set<Int32> = []
        var unwatchedTops: [RelativePath] = []
        var unwatchedCounts: [RelativePath: Int] = [:]
        var limitReason: WatchLimitReason?

        init(set: WatchSet) { self.set = set }

        /// Watches the root itself.
        /// - Throws: why the root cannot be watched; a root is never left unwatched silently.
        mutating func enterRoot(_ root: DirectoryFD) throws(SystemCallError) -> Frame {
            let directory: DirectoryFD
            switch Result(catching: { () throws(SystemCallError) in try root.openDirectory(at: .root) }) {
            case .success(let opened): directory = opened
            case .failure(let error): throw error
            }
            switch set.inotify.addWatch(directory, mask: .tree) {
            case .success(let wd):
                // A different descriptor: another directory is the root now; the old one's go.
                if let old = set.table.rootWD, old != wd { set.forget(old) }
                set.table.setRoot(wd)
                visited.insert(wd)
                return Frame(directory: directory, path: .root, wd: wd, unwatchedTop: nil,
                             subdirectories: subdirectoryNames(directory))
            case .failure(let error):
                throw error
            }
        }

        /// Watches (or counts, inside an unwatched subtree) one directory below the root.
        /// - Returns: its frame, or nil when it is to be skipped with its subtree.
        mutating func enter(_ directory: DirectoryFD, path: RelativePath, parentWD: Int32?, name: [UInt8],
                            unwatchedTop: RelativePath?) -> Frame? {
            var top = unwatchedTop
            var wd: Int32?
            if let unwatchedTop {
                unwatchedCounts[unwatchedTop, default: 0] += 1
            } else if let parentWD {
                let existing = set.table.child(named: name, of: parentWD)
                if existing == nil, let limit = set.limit, set.table.count >= limit {
                    top = markUnwatched(path, reason: .watchLimit(limit))
                } else {
                    switch set.inotify.addWatch(directory, mask: .tree) {
                    case .success(let added):
                        // Met twice in one walk (a bind mount looping back): do not descend again.
                        guard visited.insert(added).inserted, set.table.attach(added, under: parentWD, name: name) else {
                            return nil
                        }
                        wd = added
                    case .failure(let error) where error.errno == ENOSPC:
                        top = markUnwatched(path, reason: .kernel(maxUserWatches: KernelLimits.maxUserWatches))
                    case .failure:
                        return nil  // gone since it was listed: its parent's events tell the rest
                    }
                }
            } else {
                return nil
            }
            return Frame(directory: directory, path: path, wd: wd, unwatchedTop: top,
                         subdirectories: subdirectoryNames(directory))
        }

        /// Visits every directory beneath `top`.
        mutating func run(from top: Frame) {
            var frames = [top]
            while !frames.isEmpty {
                let index = frames.count - 1
                let frame = frames[index]
                guard frame.next < frame.subdirectories.count else {
                    frames.removeLast()
                    continue
                }
                frames[index].next += 1
                let name = frame.subdirectories[frame.next]
                let component = PathComponent(uncheckedBytes: name)
                let path = frame.path.appending(component)
                guard set.wantsWatch(path, name: name) else {
                    // Ignored now (the rules may differ at a new place): drop a watch it had.
                    if let parentWD = frame.wd, let old = set.table.child(named: name, of: parentWD) { set.forget(old) }
                    continue
                }
                guard let directory = try? frame.directory.openDirectory(component) else { continue }
                if let child = enter(directory, path: path, parentWD: frame.wd, name: name, unwatchedTop: frame.unwatchedTop) {
                    frames.append(child)
                }
            }
        }

        private mutating func markUnwatched(_ path: RelativePath, reason: WatchLimitReason) -> RelativePath {
            unwatchedTops.append(path)
            unwatchedCounts[path] = 1
            limitReason = reason
            return path
        }

        /// The names of `directory`'s subdirectories (never symlinks; `DT_UNKNOWN` is settled
        /// with `fstatat`), without swunison's temporary names, sorted by bytes: the walk then
        /// goes in walk order, so the limit always leaves the same subtrees unwatched. The
        /// corresponding C functions are `fdopendir` and `readdir`.
        private func subdirectoryNames(_ directory: DirectoryFD) -> [[UInt8]] {
            let fd = dup(directory.fd)
            guard fd >= 0 else { return [] }
            guard let stream = fdopendir(fd) else {
                close(fd)
                return []
            }
            defer { closedir(stream) }
            var names: [[UInt8]] = []
            while let entry = readdir(stream) {
                let type = entry.pointee.d_type
                guard type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) else { continue }
                let name: [UInt8] = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                    Array(raw.prefix { $0 != 0 })
                }
                if name == [0x2E] || name == [0x2E, 0x2E] || isSwunisonTemporary(name) { continue }
                if type == UInt8(DT_UNKNOWN) {
                    let status = try? fileStatus(PathComponent(uncheckedBytes: name), in: directory)
                    guard status?.kind == .directory else { continue }
                }
                names.append(name)
            }
            return names.sorted { $0.lexicographicallyPrecedes($1) }
        }
    }
}

/// Whether a name is one of swunison's temporary names (`.swunison.`, as the scanner's
/// `TemporaryFiles.swift`): never watched, never reported.
func isSwunisonTemporary(_ name: [UInt8]) -> Bool {
    name.starts(with: swunisonTemporaryPrefix)
}

/// Whether `name` has the form the kernel gives an `O_TMPFILE` file that has no name yet:
/// "#" and its inode number in decimal (a real file may be called that too: check it exists).
func isUnnamedFilePlaceholder(_ name: [UInt8]) -> Bool {
    name.count > 1 && name[0] == UInt8(ascii: "#") && name.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
}

