import Glibc

extension SSHSession {
    /// Copies `bytes` to `remotePath` on the remote host, atomically: they go to a temporary
    /// file in the same directory (created if missing, umask 077), get `mode`, and are renamed
    /// over the target only when complete (the same idea as invariant 1). A leading `~/` means
    /// the remote home. Used by `serverdeploy` for `~/.swunison/bin/swunison-<version>`.
    /// - Throws: `SSHError.uploadFailed` with the remote stderr, or a connection error.
    public func upload(_ bytes: [UInt8], toRemotePath remotePath: String, mode: mode_t = 0o644) throws(SSHError) {
        try upload(toRemotePath: remotePath, mode: mode) { (channel) throws(SSHError) in
            try bytes.withUnsafeBytes { raw in catching { () throws(SSHError) in try channel.write(raw) } }.get()
        }
    }

    /// Copies the local file at `localPath` to `remotePath` (see `upload(_:toRemotePath:mode:)`).
    public func upload(fileAt localPath: String, toRemotePath remotePath: String, mode: mode_t = 0o644) throws(SSHError) {
        let fd = open(localPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .localFileUnreadable(path: localPath, errno: errno) }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        try upload(toRemotePath: remotePath, mode: mode) { (channel) throws(SSHError) in
            while true {
                let n = Glibc.read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw .localFileUnreadable(path: localPath, errno: errno) }
                if n == 0 { return }
                try buffer.withUnsafeBytes { raw in
                    catching { () throws(SSHError) in try channel.write(UnsafeRawBufferPointer(rebasing: raw[0..<n])) }
                }.get()
            }
        }
    }

    private func upload(
        toRemotePath remotePath: String, mode: mode_t, send: (SSHExecChannel) throws(SSHError) -> Void
    ) throws(SSHError) {
        // POSIX sh whatever the login shell is; the path arrives as $1, never spliced into code.
        let script = """
            set -e; umask 077
            case "$1" in "~/"*) dest="$HOME/${1#??}" ;; *) dest="$1" ;; esac
            mkdir -p "$(dirname "$dest")"
            tmp="$dest.swunison-upload.$$"
            trap 'rm -f "$tmp"' EXIT
            cat > "$tmp"
            chmod \(String(mode & 0o7777, radix: 8)) "$tmp"
            mv -f "$tmp" "$dest"
            """
        let command = "sh -c \(shellQuoted(script)) swunison-upload \(shellQuoted(remotePath))"
        let channel = try exec(command)
        defer { channel.close() }
        try send(channel)
        channel.closeWrite()
        var sink = [UInt8](repeating: 0, count: 4096)
        while try sink.withUnsafeMutableBytes({ raw in catching { () throws(SSHError) in try channel.read(into: raw) } }).get() > 0 {}
        let status = try channel.exitStatus()
        guard status == 0 else {
            throw .uploadFailed(destination: label, remotePath: remotePath, status: status ?? -1,
                                stderr: channel.standardError.trimmingSuffixNewlines())
        }
    }
}

/// `text` as one single-quoted POSIX shell word.
public func shellQuoted(_ text: String) -> String {
    "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
}

/// Runs `body`, keeping its typed error (the `withUnsafe...` functions only rethrow `any Error`).
func catching<T>(_ body: () throws(SSHError) -> T) -> Result<T, SSHError> {
    do { return .success(try body()) } catch { return .failure(error) }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var result = self
        while result.last == "\n" || result.last == "\r" { result.removeLast() }
        return result
    }
}
