import Testing
import SwunisonModel
@testable import SwunisonStorage

@Suite struct KeyCodingTests {
    @Test func sortKeyAndDigestCodingMatchTheModel() throws {
        for path in ScanCacheTests.trickyPaths + [.root] {
            let key = KeyCoding.sortKey(of: path)
            #expect(key == path.sortKey)
            let back = key.withUnsafeBytes { KeyCoding.path(fromSortKey: $0) }
            #expect(back == path)
            var reused: [UInt8] = Array(repeating: 0x7A, count: 300)  // a longer, stale path
            #expect(key.withUnsafeBytes { KeyCoding.decodePath(fromSortKey: $0, into: &reused) })
            #expect(reused == path.bytes)
        }
        let digest = file(0x0102_0304_0506_0708).digest!
        let bytes = try KeyCoding.withBytes(of: digest) { (raw) throws(StorageError) in Array(raw) }
        #expect(bytes == digest.bytes)
        #expect(bytes.withUnsafeBytes { KeyCoding.digest(from: $0) } == digest)
        #expect([UInt8](repeating: 1, count: 31).withUnsafeBytes { KeyCoding.digest(from: $0) } == nil)
    }

    @Test func invalidSortKeysAreRejectedLikeTheModelRejectsThem() throws {
        let invalid: [[UInt8]] = [
            [0x00], [0x61, 0x00], [0x00, 0x61], [0x61, 0x00, 0x00, 0x62],  // empty components
            [0x2E], [0x2E, 0x2E], [0x61, 0x00, 0x2E], [0x2E, 0x2E, 0x00, 0x61],  // "." and ".."
        ]
        for key in invalid {
            #expect(key.withUnsafeBytes { KeyCoding.path(fromSortKey: $0) } == nil, "\(key)")
            var reused: [UInt8] = []
            #expect(!key.withUnsafeBytes { KeyCoding.decodePath(fromSortKey: $0, into: &reused) }, "\(key)")
            #expect(throws: PathError.self) { _ = try RelativePath(sortKey: key) }
        }
        // A raw '/' in a stored key: the model would read it as a separator, but such a row
        // sits at the wrong place in the key order, so storage refuses it.
        #expect([0x61, 0x2F, 0x62].withUnsafeBytes { KeyCoding.path(fromSortKey: $0) } == nil)
        var reused: [UInt8] = []
        #expect(![0x61, 0x2F, 0x62].withUnsafeBytes { KeyCoding.decodePath(fromSortKey: $0, into: &reused) })
        let fine: [[UInt8]] = [[0x2E, 0x61], [0x2E, 0x2E, 0x2E], [0x61, 0x00, 0x2E, 0x62], [0xFF]]
        for key in fine {
            let model = try RelativePath(sortKey: key)
            #expect(key.withUnsafeBytes { KeyCoding.path(fromSortKey: $0) } == model)
            #expect(key.withUnsafeBytes { KeyCoding.decodePath(fromSortKey: $0, into: &reused) })
            #expect(reused == model.bytes)
        }
    }
}
