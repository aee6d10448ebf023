import SwunisonCore
import SwunisonReplica
import SwunisonModel
import Testing
@testable import SwunisonWire

@Suite struct CodecTests {
    /// Decodes everything in `buffer`, expecting whole frames only.
    private func drain(_ buffer: inout InputBuffer) throws -> [Frame] {
        var out: [Frame] = []
        while let f = try FrameDecoder().decode(buffer: &buffer) { out.append(f) }
        return out
    }

    @Test func everyMessageTypeIsCovered() throws {
        // Every type byte the decoder knows (it does not answer "unknown") appears among the samples.
        var known: Set<UInt8> = []
        for t in 0...255 {
            var r = WireReader([])
            do {
                _ = try Message.decodeBody(type: UInt8(t), from: &r)
                known.insert(UInt8(t))
            } catch .unknownMessage {
            } catch {
                known.insert(UInt8(t))
            }
        }
        #expect(known == Set(Sample.messages.map(\.type)))
        #expect(known.count == 39)
    }

    @Test func watchRequestsAndChangeNoticesSurvive() throws {
        func roundTrip(_ m: Message) throws -> Message {
            var b = InputBuffer(try FrameEncoder().encode(Frame(3, m)))
            return try #require(try FrameDecoder().decode(buffer: &b)).message
        }
        let request = WatchRequest(paths: [Sample.path("a"), Sample.oddPath], ignore: ["Name *.o"], ignoreNot: ["Path x"],
                                   watchLimit: 100, holdWhileWritingNanoseconds: 5_000_000_000, cacheKey: "k-b")
        guard case .watch(let r) = try roundTrip(.watch(request)) else { Issue.record("watch"); return }
        #expect(r == request)
        let notices: [ChangeNotice] = [.changed(Sample.oddPath), .overflow, .unwatched([Sample.path("d")], needed: 9, available: 3),
                                       .rootMissing("gone"), .rootBack]
        guard case .changeNotices(let n) = try roundTrip(.changeNotices(notices)) else { Issue.record("notices"); return }
        #expect(n == notices)
        // A hostile path inside a notice is refused like anywhere else (Invariant 5).
        var w = WireWriter()
        w.u32(0); w.u8(0x4E); w.varint(3); w.count(1); w.u8(1); w.blob(Array("../x".utf8))
        w.setU32(UInt32(w.count - 4), at: 0)
        var bad = InputBuffer(w.bytes)
        #expect(throws: WireError.self) { _ = try FrameDecoder().decode(buffer: &bad) }
    }

    @Test func statusReportLinesSurviveAndAnUnknownStateIsMalformed() throws {
        let lines = [RequestStatus(requestID: 3, state: .waitingForData, bytes: 299_846),
                     RequestStatus(requestID: 4, state: .working)]
        var buffer = InputBuffer(try FrameEncoder().encode(Frame(9, .statusReport(lines))))
        guard case .statusReport(let got) = try #require(try FrameDecoder().decode(buffer: &buffer)).message else {
            Issue.record("not a statusReport"); return
        }
        #expect(got == lines)
        // State 4 is not defined.
        var w = WireWriter()
        w.u32(0); w.u8(0x4D); w.varint(9); w.count(1); w.varint(3); w.u8(4); w.varint(0)
        w.setU32(UInt32(w.count - 4), at: 0)
        var bad = InputBuffer(w.bytes)
        #expect(throws: WireError.self) { _ = try FrameDecoder().decode(buffer: &bad) }
    }

    /// A frame whose list announces more items than honest batching ever puts in one frame is
    /// refused before any of them is decoded (a 16 MiB frame of tiny items would otherwise become
    /// about a gigabyte of values).
    @Test func aListOfTooManyItemsIsMalformed() throws {
        let items = WireReader.maxListItems + 1
        var w = WireWriter()
        w.u32(0); w.u8(Message.scanBatch([]).type); w.varint(7); w.count(items)
        for _ in 0..<(items * 3) { w.u8(0) }
        w.setU32(UInt32(w.count - 4), at: 0)
        var buffer = InputBuffer(w.bytes)
        #expect(throws: WireError.malformed("list of \(items) items (at most \(WireReader.maxListItems) in one frame)")) {
            _ = try FrameDecoder().decode(buffer: &buffer)
        }
    }

    /// Text a peer sends to be printed (notices, failures, reasons) arrives with its control
    /// characters escaped: no terminal escape sequence or forged log line reaches the user.
    @Test func peerTextArrivesWithControlCharactersEscaped() throws {
        func decoded(_ m: Message) throws -> Message {
            var b = InputBuffer(try FrameEncoder().encode(Frame(3, m)))
            return try #require(try FrameDecoder().decode(buffer: &b)).message
        }
        let hostile = "done\u{1B}]0;owned\u{07}\u{1B}[2J\nswunison: all files deleted\r"
        var texts: [String] = []
        if case .notice(let t) = try decoded(.notice(hostile)) { texts.append(t) }
        if case .fatal(let t) = try decoded(.fatal(hostile)) { texts.append(t) }
        if case .failure(.other(let t)) = try decoded(.failure(.other(hostile))) { texts.append(t) }
        if case .failure(.system(_, let op, _, let message)) = try decoded(.failure(.system(path: Sample.path("f"), operation: hostile,
                                                                                         errno: 5, message: hostile))) {
            texts += [op, message]
        }
        if case .changeNotices(let n) = try decoded(.changeNotices([.rootMissing(hostile)])), case .rootMissing(let t) = n.first {
            texts.append(t)
        }
        #expect(texts.count == 6)
        for text in texts {
            #expect(!text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "\(text.debugDescription)")
            #expect(text.hasPrefix("done\\x1b]0;owned"), "\(text.debugDescription)")
        }
    }

    @Test func roundTripAllAtOnce() throws {
        let frames = try Sample.frames()
        var buffer = InputBuffer(frames.flatMap { $0 })
        let decoded = try drain(&buffer)
        #expect(decoded.count == frames.count)
        #expect(try decoded.map(reencode) == frames)
        #expect(buffer.readableCount == 0)
    }

    @Test func roundTripByteByByte() throws {
        let frames = try Sample.frames()
        var buffer = InputBuffer()
        var decoded: [Frame] = []
        for b in frames.flatMap({ $0 }) {
            buffer.append([b])
            decoded += try drain(&buffer)
        }
        #expect(try decoded.map(reencode) == frames)
        #expect(decoded.map(\.requestID) == frames.indices.map { UInt64($0) * 1000 })
    }

    @Test func roundTripOneFrameAtATime() throws {
        let frames = try Sample.frames()
        var buffer = InputBuffer()
        for (i, f) in frames.enumerated() {
            buffer.append(f)
            let got = try drain(&buffer)
            #expect(got.count == 1, "frame \(i)")
            #expect(try got.map(reencode) == [f])
        }
    }

    @Test func fieldsSurvive() throws {
        func roundTrip(_ m: Message) throws -> Message {
            var b = InputBuffer(try FrameEncoder().encode(Frame(7, m)))
            return try #require(try FrameDecoder().decode(buffer: &b)).message
        }
        guard case .scan(let r) = try roundTrip(.scan(Sample.scanRequest)) else { Issue.record("scan"); return }
        #expect(r.paths == [Sample.path("a"), Sample.path("b/c")])
        #expect(r.expectedSnapshot == 0xFEDC_BA98_7654_3210 && r.fastcheck == false && r.cacheKey == "host:/root|other:/x")
        #expect(r.attributes == AttributeSelection(permissionMask: 0o777, owner: true, group: false, times: true))
        #expect(!r.deferDigests)
        var deferring = Sample.scanRequest
        deferring.deferDigests = true
        guard case .scan(let d) = try roundTrip(.scan(deferring)) else { Issue.record("scan"); return }
        #expect(d.deferDigests && !d.fastcheck)
        // Bits other than fastcheck (0) and deferDigests (1) are refused.
        var w = WireWriter()
        w.count(0); w.count(0); w.count(0); w.u8(0)  // no paths, ignores or snapshot
        w.u8(4)
        w.attributes(AttributeSelection()); w.string("")
        var reader = WireReader(w.bytes)
        #expect(throws: WireError.self) { _ = try reader.scanRequest() }
        guard case .scanBatch(let c) = try roundTrip(.scanBatch([ScanChange(path: Sample.oddPath, old: Sample.link, new: Sample.file)]))
        else { Issue.record("batch"); return }
        #expect(c == [ScanChange(path: Sample.oddPath, old: Sample.link, new: Sample.file)])
        guard case .failure(let e) = try roundTrip(.failure(.changedDuringSync(Sample.path("x")))) else { Issue.record("e"); return }
        #expect(e.isRetryable)
        guard case .failure(let s) = try roundTrip(.failure(.system(path: .root, operation: "x", errno: -3, message: "m"))),
              case let .system(_, _, errno, _) = s else { Issue.record("s"); return }
        #expect(errno == -3)
    }

    @Test func truncatedInputAtEndThrows() throws {
        for f in try Sample.frames() {
            for cut in [1, 3, 4, f.count / 2, f.count - 1] where cut < f.count && cut > 0 {
                var buffer = InputBuffer(Array(f[0..<cut]))
                #expect(try FrameDecoder().decode(buffer: &buffer) == nil)
                #expect(throws: WireError.self) { try FrameDecoder().decodeLast(buffer: &buffer) }
            }
        }
    }

    @Test func truncatedPayloadThrows() throws {
        // A frame whose length field is shortened so the body ends mid-field.
        var f = try FrameEncoder().encode(Frame(1, .entry(Sample.file)))
        f.removeLast(3)
        let n = f.count - 4
        f[0] = 0; f[1] = UInt8(n >> 16); f[2] = UInt8((n >> 8) & 255); f[3] = UInt8(n & 255)
        var buffer = InputBuffer(f)
        #expect(throws: WireError.self) { try FrameDecoder().decode(buffer: &buffer) }
    }

    @Test(arguments: [[0xFF, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0], [0x01, 0x00, 0x00, 0x01], [0, 0, 0, 0], [0, 0, 0, 1]])
    func badLengthsThrow(header: [UInt8]) {
        var buffer = InputBuffer(header + [0x40, 0x01])
        #expect(throws: WireError.self) { try FrameDecoder().decode(buffer: &buffer) }
    }

    @Test func oversizedFrameIsNotEncoded() {
        #expect(throws: WireError.self) {
            try FrameEncoder(maximumPayload: 1000).encode(Frame(1, .fileChunk([UInt8](repeating: 0, count: 2000))))
        }
    }

    @Test(arguments: ["..", ".", "a/../b", "a//b", "/a", "a/", "a/\u{0}b"])
    func hostilePathsAreRejected(raw: String) throws {
        var w = WireWriter()
        w.u32(0); w.u8(Message.remove(path: .root, expected: Sample.file, backup: false).type); w.varint(5)
        w.blob(Array(raw.utf8)); w.entry(Sample.file); w.bool(false)
        var bytes = w.bytes
        let n = bytes.count - 4
        bytes[2] = UInt8(n >> 8); bytes[3] = UInt8(n & 255)
        var buffer = InputBuffer(bytes)
        #expect {
            try FrameDecoder().decode(buffer: &buffer)
        } throws: { error in
            if case .hostilePath = error as? WireError { return true }
            return false
        }
    }

    @Test func hostilePathInsideScanBatchIsRejected() throws {
        let good = try FrameEncoder().encode(Frame(3, .scanBatch([ScanChange(path: Sample.path("ab"), old: nil, new: Sample.dir)])))
        // Turn "ab" into ".." in place (same length): the decoder must refuse it.
        var bad = good
        let i = try #require(bad.firstIndex(of: 0x61))
        bad[i] = 0x2E; bad[i + 1] = 0x2E
        var buffer = InputBuffer(bad)
        #expect(throws: WireError.hostilePath(.dotComponent(".."))) { try FrameDecoder().decode(buffer: &buffer) }
    }

    @Test func unknownTypeAndStrayBytesThrow() throws {
        var buffer = InputBuffer([0, 0, 0, 2, 0x7F, 0x01])
        #expect(throws: WireError.unknownMessage(type: 0x7F)) { try FrameDecoder().decode(buffer: &buffer) }
        var stray = try FrameEncoder().encode(Frame(1, .ok))
        stray.append(9); stray[3] += 1
        var b2 = InputBuffer(stray)
        #expect(throws: WireError.self) { try FrameDecoder().decode(buffer: &b2) }
    }

    @Test func helloWithWrongMagicSaysSo() throws {
        var f = try FrameEncoder().encode(Frame(0, .hello(Hello(versions: 1...1, features: []))))
        f[6] = 0x58  // "SWUNISON" -> "SXUNISON"
        var buffer = InputBuffer(f)
        #expect {
            try FrameDecoder().decode(buffer: &buffer)
        } throws: { error in
            if case .notSwunison = error as? WireError { return true }
            return false
        }
    }

    @Test func hugeListCountsDoNotAllocate() throws {
        var w = WireWriter()
        w.u32(0); w.u8(0x44); w.varint(1); w.varint(UInt64.max >> 1)
        var bytes = w.bytes
        bytes[3] = UInt8(bytes.count - 4)
        var buffer = InputBuffer(bytes)
        #expect(throws: WireError.self) { try FrameDecoder().decode(buffer: &buffer) }
    }

    @Test func varintAndZigzagEdges() throws {
        var w = WireWriter()
        let values: [UInt64] = [0, 1, 127, 128, 300, UInt64(UInt32.max), .max]
        let signed: [Int64] = [0, -1, 1, .min, .max, -1_000_000_007]
        for v in values { w.varint(v) }
        for v in signed { w.zigzag(v) }
        var r = WireReader(w.bytes)
        for v in values { #expect(try r.varint() == v) }
        for v in signed { #expect(try r.zigzag() == v) }
        #expect(r.isAtEnd)
        var overlong = WireReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: WireError.self) { try overlong.varint() }
    }

    @Test func batchesStayBelowTarget() throws {
        let changes = (0..<5000).map { ScanChange(path: Sample.path("dir/file-\($0)"), old: nil, new: Sample.file) }
        let frames = try FrameEncoder().batches(type: 0x44, requestID: 9, items: changes, targetPayload: 64 << 10) { $0.change($1) }
        #expect(frames.count > 1)
        var buffer = InputBuffer(frames.flatMap { $0 })
        var all: [ScanChange] = []
        while let f = try FrameDecoder().decode(buffer: &buffer) {
            #expect(f.requestID == 9)
            guard case .scanBatch(let c) = f.message else { Issue.record("type"); return }
            all += c
        }
        #expect(all == changes)
        #expect(frames.allSatisfy { $0.count < (64 << 10) + 1024 })
    }

    /// Random bytes, and valid frames with random bytes flipped, must decode or throw, never crash.
    @Test func fuzzDecoder() throws {
        var g = SeededGenerator(seed: 1)
        let frames = try Sample.frames()
        var decodedSome = 0, threw = 0
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                let n = Int.random(in: 0..<64, using: &g)
                bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
                if n >= 4 && round % 4 == 0 { bytes[0] = 0; bytes[1] = 0; bytes[2] = 0; bytes[3] = UInt8(n - 4) }
            } else {
                bytes = frames[Int.random(in: 0..<frames.count, using: &g)]
                for _ in 0..<Int.random(in: 1...4, using: &g) {
                    bytes[Int.random(in: 0..<bytes.count, using: &g)] = UInt8.random(in: 0...255, using: &g)
                }
            }
            var buffer = InputBuffer(bytes)
            do {
                while try FrameDecoder().decodeLast(buffer: &buffer) != nil { decodedSome += 1 }
            } catch {
                threw += 1
            }
        }
        #expect(decodedSome > 0 && threw > 0)
    }
}
