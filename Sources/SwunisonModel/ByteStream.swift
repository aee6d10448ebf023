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
    /// Writes the arrays in order, as one `write` each would; a stream that queues its output
    /// can keep the arrays themselves instead of copying them.
    func write(contentsOf chunks: [[UInt8]]) throws
    /// Reads at least one byte into `buffer` and returns how many; returns 0 at end of stream.
    /// - Throws: when the stream is broken or closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Signals end of data to the peer (half-close), keeping the read side open.
    func closeWrite()
    /// Tears the stream down; pending and later calls fail.
    func close()
}

extension ByteStream {
    /// One `write` of all the chunks together (pipes: one system call for many small frames).
    public func write(contentsOf chunks: [[UInt8]]) throws {
        if chunks.count == 1 { return try chunks[0].withUnsafeBytes { try write($0) } }
        var joined: [UInt8] = []
        joined.reserveCapacity(chunks.reduce(0) { $0 + $1.count })
        for chunk in chunks { joined.append(contentsOf: chunk) }
        try joined.withUnsafeBytes { try write($0) }
    }
}
