import Glibc
import SwunisonFS
import SwunisonModel
import SwunisonReplica

/// What each inotify event means for the watches and the notices (run on the loop's thread).
extension WatchLoop {
    /// Handles one event: an event on name N in watched directory D is about `D/N`.
    func handle(_ event: InotifyEvent, now: Int64) {
        let mask = event.mask
        if mask.contains(.queueOverflow) {
            overflowed()
            return
        }
        guard let name = event.name else {
            handleSelfEvent(event)
            return
        }
        // A directory no longer in the tree (or an event left from before a removal): nothing.
        guard let directory = watches.table.path(of: event.wd) else { return }
        // swunison's own temporary names are never reported (the rename to the final name is).
        guard !isSwunisonTemporary(name), let component = try? PathComponent(validating: name) else { return }
        let path = directory.appending(component)
        // A file opened with O_TMPFILE has no name, but inotify reports its writes under the
        // kernel's placeholder "#<inode>", and no close ever ends that hold. Its link into place
        // is reported under the real name (IN_CREATE).
        if isUnnamedFilePlaceholder(name), !mask.contains(.isDirectory), !exists(path) { return }
        let isDirectory = mask.contains(.isDirectory)

        if isDirectory && !options.shouldWatch(path) {
            // An ignored directory gets no watch and no notice; one moved here loses its watches.
            if mask.contains(.movedTo), let wd = pendingMoves.removeValue(forKey: event.cookie) { watches.forget(wd) }
            return
        }
        if mask.contains(.movedFrom) {
            holds.release(path)
            outgoing.append(.changed(path))
            if isDirectory {
                watches.forgetUnwatched(atOrBeneath: path)
                if let wd = watches.detach(named: name, from: event.wd) { pendingMoves[event.cookie] = wd }
            }
        } else if mask.contains(.movedTo) {
            holds.release(path)
            outgoing.append(.changed(path))
            if isDirectory {
                // Moved within the tree: its watches move with it. Either way the subtree is walked
                // (watches kept, missing ones added, ignore rules checked at the new place).
                if let wd = pendingMoves.removeValue(forKey: event.cookie) { watches.attach(wd, under: event.wd, name: name) }
                watchNewDirectory(path)
            }
        } else if mask.contains(.create) {
            if isDirectory {
                outgoing.append(.changed(path))
                watchNewDirectory(path)
            } else if isBeingWritten(path) {
                holds.hold(path, now: now)
            } else {
                outgoing.append(.changed(path))
            }
        } else if mask.contains(.delete) {
            holds.release(path)
            outgoing.append(.changed(path))
            if isDirectory {
                watches.detach(named: name, from: event.wd)
                watches.forgetUnwatched(atOrBeneath: path)
            }
        } else if mask.contains(.modify) {
            holds.hold(path, now: now)
        } else if mask.contains(.closeWrite) {
            // Reported even when not held: the file may have been renamed while being written.
            holds.release(path)
            outgoing.append(.changed(path))
        } else if mask.contains(.attrib) {
            // A held file is reported when its hold ends, with whatever attributes it has then.
            if !holds.isHeld(path) { outgoing.append(.changed(path)) }
        }
    }

    /// An event about a watched directory itself. Its parent's watch reports what happened to it
    /// by name; only the root has no watched parent.
    private func handleSelfEvent(_ event: InotifyEvent) {
        let mask = event.mask
        if event.wd == watches.table.rootWD {
            if mask.contains(.unmount) {
                rootWentMissing("the file system holding \(rootPath) was unmounted")
            } else if mask.contains(.deleteSelf) {
                rootWentMissing("\(rootPath) was deleted")
            } else if mask.contains(.moveSelf) {
                rootWentMissing("\(rootPath) was moved or renamed")
            } else if mask.contains(.ignored) {
                rootWentMissing("\(rootPath) can no longer be watched")
            } else if mask.contains(.attrib) {
                outgoing.append(.changed(.root))
            }
            return
        }
        if mask.contains(.ignored) {
            // The kernel dropped the watch (the directory was deleted, or its file system unmounted).
            watches.dropped(event.wd)
        } else if mask.contains(.unmount), let path = watches.table.path(of: event.wd) {
            outgoing.append(.changed(path))
        }
    }

    /// Whether `path` names something (the placeholder of an unnamed file names nothing).
    private func exists(_ path: RelativePath) -> Bool {
        guard let opened = root.open(), case .success(let found) = root.status(of: path, beneath: opened) else { return true }
        return found != nil
    }

    /// Whether a file just created is still being written, and so is held: a regular file with
    /// one link whose ctime equals its mtime. A hard link (more links), a symlink, or a file
    /// linked in whole from `O_TMPFILE` with its times already set (as swunison writes) is
    /// reported at once: no `IN_CLOSE_WRITE` would end its hold.
    private func isBeingWritten(_ path: RelativePath) -> Bool {
        guard let opened = root.open(), case .success(let found) = root.status(of: path, beneath: opened),
              let status = found else { return false }
        return status.kind == .file && status.raw.st_nlink == 1 && status.mtime == status.ctime
    }

    /// Watches a directory that appeared (created, or moved in or within the tree) with everything
    /// already beneath it; those that the limit leaves unwatched are reported.
    private func watchNewDirectory(_ path: RelativePath) {
        guard let opened = root.open() else { return }
        let unwatched = watches.watchSubtree(at: path, root: opened)
        if !unwatched.isEmpty {
            outgoing.append(.unwatched(unwatched, needed: watches.needed, available: watches.available))
        }
    }

    /// Directories moved away whose arrival was not seen moved out of the tree: their watches go.
    func settleMoves() {
        guard !pendingMoves.isEmpty else { return }
        for wd in pendingMoves.values { watches.forget(wd) }
        pendingMoves.removeAll()
    }

    /// The kernel's queue overflowed, so events were lost: everyone rescans, and the tree is
    /// walked again for directories that came without a watch (those watched keep theirs).
    private func overflowed() {
        outgoing.append(.overflow)
        settleMoves()
        guard let opened = root.open() else { return }  // the root's return walks the whole tree anyway
        switch Result(catching: { () throws(SystemCallError) in try watches.watchTree(root: opened) }) {
        case .success(let unwatched):
            if !unwatched.isEmpty {
                outgoing.append(.unwatched(unwatched, needed: watches.needed, available: watches.available))
            }
        case .failure(let error):
            rootWentMissing("\(rootPath) cannot be watched (\(error.message))")
        }
    }

    /// The root went away: every subscription hears it (never as "everything was deleted",
    /// Invariant 6), all watches go, and the root is looked for every 2 s.
    private func rootWentMissing(_ reason: String) {
        guard root.isPresent else { return }
        outgoing.append(.rootMissing(reason))
        watches.forgetAll()
        holds.removeAll()
        pendingMoves.removeAll()
        root.missing()
        rootRecheckAt = monotonicNanoseconds() + Self.rootRecheckNanoseconds
    }

    /// Looks for the missing root: once its path is a directory again, it is watched whole and
    /// every subscription hears `.rootBack`.
    func recheckRoot(now: Int64) {
        rootRecheckAt = now + Self.rootRecheckNanoseconds
        var status = stat()
        guard stat(rootPath, &status) == 0, status.st_mode & S_IFMT == S_IFDIR,
              let opened = try? DirectoryFD.openRoot(rootPath) else { return }
        switch Result(catching: { () throws(SystemCallError) in try watches.watchTree(root: opened) }) {
        case .success(let unwatched):
            rootRecheckAt = nil
            root.watching(opened)
            outgoing.append(.rootBack)
            if !unwatched.isEmpty {
                outgoing.append(.unwatched(unwatched, needed: watches.needed, available: watches.available))
            }
        case .failure:
            watches.forgetAll()  // half a tree is no watch: try again later
        }
    }
}
