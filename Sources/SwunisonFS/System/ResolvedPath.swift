import Glibc
import SwunisonModel

/// Where an absolute path really leads: symlinks and `..` resolved in its longest existing part,
/// the rest (not created yet) appended as written. Nil for a relative path.
///
/// Used to tell whether one of swunison's own places (state directory, backups, log) lies inside
/// a root when either was named through a symlink or with `..`.
public func resolvedPath(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return nil }
    var existing = path
    var rest: [Substring] = []
    while true {
        if let resolved = realpath(existing, nil) {
            defer { free(resolved) }
            let base = String(cString: resolved)
            return rest.reversed().reduce(base) { $0 == "/" ? "/" + $1 : $0 + "/" + $1 }
        }
        guard let slash = existing.lastIndex(of: "/"), existing != "/" else { return nil }
        let name = existing[existing.index(after: slash)...]
        if !name.isEmpty { rest.append(name) }
        existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
    }
}

/// `path` relative to `root` (both resolved, absolute), or nil when it is not strictly inside.
public func relativePath(of path: String, inside root: String) -> RelativePath? {
    let prefix = root == "/" ? "/" : root + "/"
    guard path.hasPrefix(prefix), path.count > prefix.count else { return nil }
    return try? RelativePath(validating: String(path.dropFirst(prefix.count)))
}

/// `path` with `.`, empty components and `..` taken out by text alone (no file system access),
/// or nil for a relative path. `/a/b/../c` is `/a/c`.
public func lexicallyNormalPath(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return nil }
    var parts: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." { continue }
        if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
        parts.append(part)
    }
    return "/" + parts.joined(separator: "/")
}
