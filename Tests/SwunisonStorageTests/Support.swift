import Foundation
import SwunisonModel
@testable import SwunisonStorage

/// A fresh directory under /tmp for one test, removed when released.
final class TempDir {
    let path: String

    init() throws {
        var template = Array("/tmp/swunison-storage.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func file(_ name: String) -> String { path + "/" + name }
}

/// A path from text (test inputs are valid).
func p(_ text: String) -> RelativePath { try! RelativePath(validating: text) }

/// A path from raw bytes (non-UTF-8 names).
func p(bytes: [UInt8]) -> RelativePath { try! RelativePath(validating: bytes) }

/// A file entry whose digest is derived from `seed`.
func file(_ seed: UInt64, size: Int64 = 10, mtime: Int64 = 1_700_000_000_000_000_000, mode: UInt32 = 0o644,
          fingerprint: Fingerprint? = nil) -> Entry {
    Entry(kind: .file, size: size, mtime: mtime, mode: mode, uid: 1000, gid: 1000,
          digest: Digest(w0: seed, w1: UInt64.max - seed), fingerprint: fingerprint)
}

func directory(mode: UInt32 = 0o755) -> Entry { Entry(kind: .directory, mtime: 5, mode: mode) }

func symlink(_ target: String) -> Entry { Entry(kind: .symlink, linkTarget: Array(target.utf8)) }

func fingerprint(_ n: UInt64) -> Fingerprint {
    Fingerprint(inode: n, ctime: Int64(n) * 7, mtime: Int64(n) * 11, size: Int64(n))
}

/// Drains a cursor.
func all(_ cursor: some BaselineCursor) throws -> [BaselineEntry] {
    var c = cursor
    var out: [BaselineEntry] = []
    while let e = try c.next() { out.append(e) }
    return out
}

/// Drains a cursor through the scanner's entry point, `next(into:)`, reusing one row.
func allInPlace(_ cursor: some BaselineCursor) throws -> [BaselineEntry] {
    var c = cursor
    var row = BaselineRow()
    var out: [BaselineEntry] = []
    while try c.next(into: &row) { out.append(row.baselineEntry) }
    return out
}

/// Runs `body` and returns the StorageError it throws, or nil if it threw nothing (or something else).
func storageError(_ body: () throws -> Void) -> StorageError? {
    do { try body() } catch let e as StorageError { return e } catch { return nil }
    return nil
}
