import Foundation
import Testing
@testable import SwunisonWire

/// The seed corpora of the wire fuzz targets (Tests/fuzz): written from ``Sample/messages`` by
/// `SWUNISON_FUZZ_SEEDS=1 swift test --filter FuzzSeedTests`, and otherwise checked, so that a
/// protocol change that leaves the seeds behind (the fuzzer would start from rejected inputs)
/// fails here.
@Suite struct FuzzSeedTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")
    static let frameCorpus = corpus.appendingPathComponent("FuzzFrameDecoder")
    static let messageCorpus = corpus.appendingPathComponent("FuzzMessageDecoder")

    /// Messages small enough to seed with (the fuzzer's inputs are at most 4 KiB).
    static var seedMessages: [Message] {
        Sample.messages.filter { (try? FrameEncoder().encode(Frame(0, $0)).count).map { $0 <= 400 } ?? false }
    }

    /// Message seeds: the type byte, then the body.
    static func messageSeeds() -> [(name: String, bytes: [UInt8])] {
        seedMessages.enumerated().map { index, message in
            var w = WireWriter()
            w.u8(message.type)
            message.encodeBody(into: &w)
            return (String(format: "seed-%02d-%@", index, message.name), w.bytes)
        }
    }

    /// Frame seeds: streams of six consecutive frames each, as a connection would carry them.
    static func frameSeeds() throws -> [(name: String, bytes: [UInt8])] {
        let frames = try seedMessages.enumerated().map { try FrameEncoder().encode(Frame(UInt64($0.offset), $0.element)) }
        return stride(from: 0, to: frames.count, by: 6).map { start in
            (String(format: "seed-stream-%02d", start / 6), Array(frames[start..<min(start + 6, frames.count)].joined()))
        }
    }

    @Test func seedsDecodeAndCoverEveryMessageType() throws {
        if ProcessInfo.processInfo.environment["SWUNISON_FUZZ_SEEDS"] == "1" {
            for (directory, seeds) in [(Self.messageCorpus, Self.messageSeeds()), (Self.frameCorpus, try Self.frameSeeds())] {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                for seed in seeds { try Data(seed.bytes).write(to: directory.appendingPathComponent(seed.name)) }
            }
        }
        var types = Set<UInt8>()
        for name in try seedNames(Self.messageCorpus) {
            let bytes = try [UInt8](Data(contentsOf: Self.messageCorpus.appendingPathComponent(name)))
            var reader = WireReader(Array(bytes.dropFirst()))
            #expect(throws: Never.self, "\(name)") { _ = try Message.decodeBody(type: bytes[0], from: &reader) }
            types.insert(bytes[0])
        }
        #expect(types == Set(Self.seedMessages.map(\.type)), "regenerate: SWUNISON_FUZZ_SEEDS=1 swift test --filter FuzzSeedTests")
        let streams = try seedNames(Self.frameCorpus)
        #expect(!streams.isEmpty)
        for name in streams {
            var buffer = InputBuffer(try [UInt8](Data(contentsOf: Self.frameCorpus.appendingPathComponent(name))))
            #expect(throws: Never.self, "\(name)") { while try FrameDecoder().decodeLast(buffer: &buffer) != nil {} }
        }
    }

    /// The generated seeds of a corpus (the others are inputs the fuzzer found).
    private func seedNames(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("seed-") }.sorted()
    }
}
