import Glibc

/// The few file-system questions the profile loader asks, answered with plain system calls
/// (no Foundation: the server binary stays small).
enum FileAccess {
    /// Whether `path` names a regular file (following symlinks).
    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Whether anything exists at `path` (following symlinks).
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// The whole content of a file.
    /// - Throws: the `strerror` text when it cannot be opened or read.
    static func contents(of path: String) throws(FileAccessError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileAccessError(errno: errno) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { throw FileAccessError(errno: EISDIR) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileAccessError(errno: errno)
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// The canonical absolute path (symlinks resolved), or nil if it does not exist.
    /// The corresponding C function is `realpath`.
    static func canonicalPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The process's current directory, or nil if it cannot be determined.
    static func currentDirectory() -> String? {
        guard let cwd = getcwd(nil, 0) else { return nil }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    /// An environment variable, or nil when unset or empty.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let s = String(cString: value)
        return s.isEmpty ? nil : s
    }

    /// The user's home directory: `$HOME`, else the password database entry.
    static func homeDirectory() -> String {
        if let home = environment("HOME") { return home }
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
        return "/"
    }
}

/// A failed system call while reading a profile.
struct FileAccessError: Error {
    let errno: Int32
    var message: String { String(cString: strerror(errno)) }
}
