import SwunisonFS
import SwunisonModel
import Testing

@Suite("Content digest (XXH3-128)")
struct ContentDigestTests {
    // Expected values printed by `xxh128sum` (xxhash 0.8.1), an implementation independent of
    // this project's build of the header.
    @Test("known inputs give the digests xxh128sum prints")
    func knownVectors() {
        #expect(XXH3Hasher.digest([]).description == "99aa06d3014798d86001c324468d497f")
        #expect(XXH3Hasher.digest(Array("abc".utf8)).description == "06b05ab6733a618578af5f94892f3950")
        #expect(XXH3Hasher.digest([UInt8](repeating: UInt8(ascii: "x"), count: 300_000)).description
                == "2e523d36bd31644506fe7c0f19bb18bf")
    }

    @Test("fed in uneven pieces, the digest is the same; finalize resets the hasher")
    func streaming() {
        let data = [UInt8](repeating: UInt8(ascii: "x"), count: 300_000)
        let hasher = XXH3Hasher()
        var offset = 0
        for piece in [1, 15, 16, 17, 239, 240, 241, 1024, 65_536, 100_000] {
            data[offset..<offset + piece].withUnsafeBytes { hasher.update($0) }
            offset += piece
        }
        data[offset...].withUnsafeBytes { hasher.update($0) }
        #expect(hasher.finalize() == XXH3Hasher.digest(data))
        #expect(hasher.finalize() == XXH3Hasher.digest([]))
    }

    @Test("SHA-256 still names things as sha256sum does")
    func sha256Hex() {
        #expect(SHA256Hasher.hexDigest(Array("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
