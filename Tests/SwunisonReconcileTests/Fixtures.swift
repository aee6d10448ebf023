import SwunisonModel
import SwunisonReconcile

// Named fixtures, defined once (Mutagen's testing_entries_test.go style).

/// A path from text; test literals are always valid.
func path(_ text: String) -> RelativePath {
    RelativePath(uncheckedBytes: Array(text.utf8))
}

/// A file whose content is identified by `content` (digest and size derive from it).
func file(_ content: UInt64, mtime: Nanoseconds = 100, mode: UInt32 = 0o644) -> Entry {
    Entry(kind: .file, size: Int64(content), mtime: mtime, mode: mode, digest: Digest(w0: content, w1: 0))
}

func directory(mode: UInt32 = 0o755, mtime: Nanoseconds = 10) -> Entry {
    Entry(kind: .directory, mtime: mtime, mode: mode)
}

func symlink(_ target: String, mtime: Nanoseconds = 100) -> Entry {
    Entry(kind: .symlink, mtime: mtime, mode: 0o777, linkTarget: Array(target.utf8))
}

/// Content 1 at mtime 100.
let tF1 = file(1, mtime: 100)
/// Content 2 at mtime 200.
let tF2 = file(2, mtime: 200)
/// Content 3 at mtime 300.
let tF3 = file(3, mtime: 300)
/// Content 2 at mtime 50 (a modification older than the archive's mtime).
let tF2Old = file(2, mtime: 50)
/// Content 3 at mtime 200: same mtime as tF2.
let tF3SameTime = file(3, mtime: 200)
/// tF1 with mode 0o600.
let tF1Private = file(1, mtime: 100, mode: 0o600)
/// tF1 with mode 0o640.
let tF1GroupReadable = file(1, mtime: 100, mode: 0o640)
/// tF1 with a later mtime, same content.
let tF1Touched = file(1, mtime: 150)
/// tF1 as a scanner reports it, with a fingerprint (never compared).
let tF1Fingerprinted: Entry = {
    var e = tF1
    e.fingerprint = Fingerprint(inode: 42, ctime: 7, mtime: 100, size: 1)
    return e
}()
let tD = directory()
let tDPrivate = directory(mode: 0o700)
let tDGroup = directory(mode: 0o750)
let tL1 = symlink("x")
let tL2 = symlink("y", mtime: 200)
let tL3 = symlink("z", mtime: 300)

/// A merged state at `text`.
func state(_ text: String, _ archive: Entry?, _ a: Entry?, _ b: Entry?) -> PathState {
    PathState(path: path(text), archive: archive, a: a, b: b)
}
