import Glibc

/// The prefix of every temp/partial file swunison creates: `.swunison.`.
public let swunisonTemporaryPrefix: [UInt8] = Array(".swunison.".utf8)

/// Whether a name is one of swunison's own temp/partial files (never reported by a scan).
func isSwunisonTemporary(_ name: UnsafePointer<UInt8>, _ length: Int) -> Bool {
    guard length >= swunisonTemporaryPrefix.count else { return false }
    for i in 0..<swunisonTemporaryPrefix.count where name[i] != swunisonTemporaryPrefix[i] { return false }
    return true
}

/// The pid in a name of the form `.swunison.<pid>.<anything>.tmp`, or nil for any other name.
func temporaryFileOwner(_ name: UnsafeBufferPointer<UInt8>) -> pid_t? {
    let suffix: [UInt8] = Array(".tmp".utf8)
    var i = swunisonTemporaryPrefix.count
    guard name.count > i + 1 + suffix.count, Array(name.suffix(suffix.count)) == suffix else { return nil }
    var pid: Int64 = 0
    let digitsStart = i
    while i < name.count, name[i] >= 0x30, name[i] <= 0x39 {
        pid = pid * 10 + Int64(name[i] - 0x30)
        if pid > Int64(Int32.max) { return nil }
        i += 1
    }
    guard i > digitsStart, i < name.count - suffix.count, name[i] == 0x2E, pid > 0 else { return nil }
    return pid_t(pid)
}

/// Removes `name` from `directory` if it is a `.swunison.<pid>.*.tmp` file left by a process
/// that no longer exists (a killed run). Returns whether it removed it.
/// A live pid's file is a transfer in progress and stays.
func removeIfStale(name: UnsafePointer<UInt8>, length: Int, in directory: DirectoryFD) -> Bool {
    guard let pid = temporaryFileOwner(UnsafeBufferPointer(start: name, count: length)) else { return false }
    guard !isLiveProcess(pid) else { return false }
    // Flags 0: only files and symlinks; a directory of that name is not ours and stays.
    return unlinkat(directory.fd, UnsafeRawPointer(name).assumingMemoryBound(to: CChar.self), 0) == 0
}

/// Whether `pid` names a running process. A zombie (killed, not yet reaped by its parent) writes
/// nothing any more, so it counts as dead.
func isLiveProcess(_ pid: pid_t) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return false }
    // /proc/PID/stat: "PID (comm) STATE ..."; the state follows the last ')'.
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return true }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0, let close = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")), close + 2 < n else { return true }
    return buffer[close + 2] != UInt8(ascii: "Z")
}
