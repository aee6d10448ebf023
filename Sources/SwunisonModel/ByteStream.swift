/// A reliable, ordered, full-duplex byte stream: a libssh exec channel running `swunison server`
/// on the remote host, or a child process's pipes (tests, `-servercmd` debugging). The wire
/// protocol runs over either without knowing which.
///
/// Contract: `write` and `read` may be called concurrently from two different threads (one
/// writer, one reader); each blocks until it made progress. After `close()` both fail.
public protocol ByteStream: AnyObject, Sendable {
    /// Writes all of `bytes` (blocks while the peer's window is full).
    /// - Throws: when the stream is broken or closed.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Reads at least one byte into `buffer` and returns how many; returns 0 at end of stream.
    /// - Throws: when the stream is broken or closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Signals end of data to the peer (half-close), keeping the read side open.
    func closeWrite()
    /// Tears the stream down; pending and later calls fail.
    func close()
}
