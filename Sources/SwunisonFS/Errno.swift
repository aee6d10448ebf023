import Glibc

/// A failed system call: the call's name and the `errno` it left.
/// Its description is `strerror`'s text, e.g. "Permission denied".
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    public var call: String
    public var errno: Int32

    public init(_ call: String, errno: Int32) { self.call = call; self.errno = errno }

    public var message: String { String(cString: strerror(errno)) }
    public var description: String { "\(call): \(message)" }
}

/// Runs a system call that returns -1 on failure, retrying on EINTR; throws the errno otherwise.
/// Every syscall wrapper in this module goes through here (one seam, as swift-system does it).
@inline(__always)
public func retryingOnInterrupt<T: BinaryInteger>(_ call: String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SystemCallError(call, errno: e)
    }
}
