import SwunisonWire

/// libFuzzer target: the first byte is a message type, the rest that message's body.
///
/// Decoding must end in a message or a ``WireError``. A decoded message must survive the
/// round trip: encoded into a frame and decoded again, it keeps its type and still decodes
/// (what one side accepts, the other side's encoder must be able to send).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let type = data[0]
    let body = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var reader = WireReader(body)
    let message: Message
    do throws(WireError) {
        message = try Message.decodeBody(type: type, from: &reader)
    } catch {
        return 0
    }
    guard message.type == type else { fatalError("type \(type) decoded as \(message.name) (\(message.type))") }

    let requestID = UInt64(size) << 32 | UInt64(type)
    let encoded: [UInt8]
    do throws(WireError) {
        encoded = try FrameEncoder().encode(Frame(requestID, message))
    } catch {
        // Text escaped on decoding can grow past the frame limit; only that failure is allowed.
        guard case .oversizedFrame = error else { fatalError("\(message.name) does not encode: \(error)") }
        return 0
    }
    var buffer = InputBuffer(encoded)
    do throws(WireError) {
        guard let frame = try FrameDecoder().decodeLast(buffer: &buffer) else { fatalError("no frame in \(encoded)") }
        guard frame.requestID == requestID, frame.message.type == type, buffer.readableCount == 0 else {
            fatalError("\(message.name) came back as \(frame.message.name), request \(frame.requestID)")
        }
    } catch {
        fatalError("re-encoded \(message.name) does not decode: \(error)")
    }
    return 0
}
