import SwunisonModel

/// One message on the wire with the request it belongs to (0 = none: hello, notices, fatal).
public struct Frame: Sendable {
    public var requestID: UInt64
    public var message: Message

    public init(_ requestID: UInt64, _ message: Message) {
        self.requestID = requestID; self.message = message
    }
}

/// Limits shared by the encoder and decoder.
public enum FrameLimits {
    /// The largest payload (type byte + request id + body) a frame may announce: 16 MiB.
    public static let maximumPayload = 16 << 20
}

/// Turns frames into bytes: a 4-byte big-endian payload length, then the payload (type byte,
/// varint request id, body). A plain value with no I/O.
public struct FrameEncoder: Sendable {
    public let maximumPayload: Int

    public init(maximumPayload: Int = FrameLimits.maximumPayload) { self.maximumPayload = maximumPayload }

    /// The frame's bytes.
    /// - Throws: ``WireError/oversizedFrame(length:limit:)`` when the payload exceeds the limit
    ///   (callers split batches and chunks well below it).
    public func encode(_ frame: Frame) throws(WireError) -> [UInt8] {
        // Room for the file data up front: a batch of small files is up to a megabyte, and
        // growing by doubling from 64 bytes would copy it about twice more.
        var w = WireWriter(capacity: 64 + frame.message.contentByteCount)
        w.u32(0)
        w.u8(frame.message.type)
        w.varint(frame.requestID)
        frame.message.encodeBody(into: &w)
        let length = w.count - 4
        guard length <= maximumPayload else { throw .oversizedFrame(length: UInt64(length), limit: maximumPayload) }
        // Patched in the writer's own storage: a copy taken first would be copied again on write.
        w.setU32(UInt32(length), at: 0)
        return w.bytes
    }
}

/// Bytes received but not yet decoded. Appending is amortised O(1); consumed bytes are dropped
/// in bulk once they make up half the storage.
public struct InputBuffer: Sendable {
    public private(set) var storage: [UInt8] = []
    public private(set) var readIndex = 0

    public init() {}

    public init(_ bytes: [UInt8]) { storage = bytes }

    /// Bytes not yet consumed.
    public var readableCount: Int { storage.count - readIndex }

    public mutating func append(_ bytes: some Sequence<UInt8>) { storage.append(contentsOf: bytes) }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) { storage.append(contentsOf: bytes) }

    mutating func consume(_ n: Int) {
        readIndex += n
        if readIndex == storage.count {
            storage.removeAll(keepingCapacity: true); readIndex = 0
        } else if readIndex > 65536 && readIndex * 2 > storage.count {
            storage.removeFirst(readIndex); readIndex = 0
        }
    }

    func byte(_ offset: Int) -> UInt8 { storage[readIndex + offset] }
}

/// Turns bytes into frames. `decode` returns nil while a frame is incomplete; `decodeLast`
/// is called at end of input and rejects a partial frame. A plain value with no I/O.
public struct FrameDecoder: Sendable {
    public let maximumPayload: Int

    public init(maximumPayload: Int = FrameLimits.maximumPayload) { self.maximumPayload = maximumPayload }

    /// The next whole frame in `buffer` (consuming its bytes), or nil when more bytes are needed.
    /// - Throws: ``WireError`` for an oversized or empty length, or a malformed or hostile payload.
    public func decode(buffer: inout InputBuffer) throws(WireError) -> Frame? {
        guard buffer.readableCount >= 4 else { return nil }
        var length: UInt64 = 0
        for i in 0..<4 { length = length << 8 | UInt64(buffer.byte(i)) }
        guard length <= UInt64(maximumPayload) else { throw .oversizedFrame(length: length, limit: maximumPayload) }
        guard length >= 2 else { throw .malformed("frame payload of \(length) bytes is shorter than a header") }
        guard buffer.readableCount >= 4 + Int(length) else { return nil }
        let start = buffer.readIndex + 4
        var r = WireReader(buffer.storage, from: start, to: start + Int(length))
        buffer.consume(4 + Int(length))
        let type = try r.u8()
        let id = try r.varint()
        return Frame(id, try Message.decodeBody(type: type, from: &r))
    }

    /// Called once the input has ended: decodes what is left, which must be whole frames.
    /// - Throws: ``WireError/truncated(_:)`` when a partial frame remains.
    public func decodeLast(buffer: inout InputBuffer) throws(WireError) -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableCount > 0 { throw .truncated("frame at end of input (\(buffer.readableCount) bytes left)") }
        return nil
    }
}

extension FrameEncoder {
    /// Encodes `items` as list messages (`scanBatch`, `baselineBatch`) of about `targetPayload`
    /// bytes each, so a list of any length crosses the wire in frames far below the limit.
    func batches<T>(type: UInt8, requestID: UInt64, items: some Collection<T>, targetPayload: Int = 512 << 10,
                    encode: (inout WireWriter, T) -> Void) throws(WireError) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        let outcome = Result { () throws in
            try forEachBatch(type: type, requestID: requestID, items: items, targetPayload: targetPayload,
                             encode: encode) { frames.append($0) }
        }
        if case .failure(let error) = outcome { throw error as? WireError ?? .unexpected("\(error)") }
        return frames
    }

    /// ``batches(type:requestID:items:targetPayload:encode:)``, handing each frame to `emit` as
    /// soon as it is complete (to send it while the next is encoded).
    /// - Throws: ``WireError/oversizedFrame(length:limit:)`` (one item alone over the limit), or
    ///   what `emit` throws.
    func forEachBatch<T>(type: UInt8, requestID: UInt64, items: some Collection<T>, targetPayload: Int = 512 << 10,
                         encode: (inout WireWriter, T) -> Void, _ emit: ([UInt8]) throws -> Void) throws {
        var list = WireWriter(capacity: targetPayload + 4096)
        var n = 0
        func flush() throws {
            var frame = WireWriter(capacity: list.count + 24)
            frame.u32(0); frame.u8(type); frame.varint(requestID); frame.count(n)
            frame.append(list)
            let length = frame.count - 4
            guard length <= maximumPayload else { throw WireError.oversizedFrame(length: UInt64(length), limit: maximumPayload) }
            frame.setU32(UInt32(length), at: 0)
            try emit(frame.bytes)
            list.removeAll(); n = 0
        }
        for item in items {
            encode(&list, item); n += 1
            if list.count >= targetPayload { try flush() }
        }
        if n > 0 { try flush() }
    }
}
