import SwunisonWire

/// libFuzzer target: arbitrary bytes as a connection's input stream.
///
/// The input is decoded twice, once whole and once fed in small pieces (as reads from a socket
/// arrive), and both must agree frame for frame and end with the same error, if any: a frame
/// split across reads must not decode differently. Every failure must be a ``WireError`` (the
/// typed throws guarantee that); a trap, a hang or a large allocation is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The first byte picks the piece size (1-16 bytes) so the fuzzer can steer the splitting.
    let pieceSize = Int(bytes.first ?? 0) % 16 + 1

    let whole = decodeAll([bytes[...]])
    var pieces: [ArraySlice<UInt8>] = []
    var start = 0
    while start < bytes.count {
        pieces.append(bytes[start..<min(start + pieceSize, bytes.count)])
        start += pieceSize
    }
    let split = decodeAll(pieces)
    guard whole.frames == split.frames, whole.error == split.error else {
        fatalError("decoding in \(pieceSize)-byte pieces differs: \(whole) vs \(split)")
    }
    return 0
}

/// What a decoder made of a stream: each frame re-encoded (frames are not Equatable, their
/// encoding is), then the error that stopped it, if any.
struct Outcome: CustomStringConvertible {
    var frames: [[UInt8]] = []
    var error: WireError?

    var description: String { "\(frames.count) frames, error \(error.map { "\($0)" } ?? "none")" }
}

/// Decodes `pieces` appended one by one to one buffer, as the connection does, then calls
/// `decodeLast` for the end of input. Stops at the first error: the connection closes then.
func decodeAll(_ pieces: [ArraySlice<UInt8>]) -> Outcome {
    let decoder = FrameDecoder()
    let encoder = FrameEncoder()
    var buffer = InputBuffer()
    var outcome = Outcome()
    do throws(WireError) {
        for piece in pieces {
            buffer.append(piece)
            while let frame = try decoder.decode(buffer: &buffer) { outcome.frames.append(try encoder.encode(frame)) }
        }
        while let frame = try decoder.decodeLast(buffer: &buffer) { outcome.frames.append(try encoder.encode(frame)) }
    } catch {
        outcome.error = error
    }
    return outcome
}
