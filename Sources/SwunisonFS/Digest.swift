import CCrypto
import CSwunisonShims
import SwunisonModel

/// Incremental XXH3-128, the content digest of every file (scan, transfer check, backups).
/// Not thread-safe: one hasher per file being hashed.
///
/// Why not SHA-256: content digests are computed twice per copied byte (by the scan, and by the
/// receiver before its rename), and on CPUs without SHA extensions SHA-256 runs at ~375 MB/s,
/// which made hashing a fifth of an initial sync's CPU; XXH3 runs at several GB/s. The digest
/// detects change and damage; it is not a signature (the peer is authenticated by SSH), see
/// DESIGN-NOTES, "The content digest".
public final class XXH3Hasher {
    private let state: OpaquePointer

    public init() {
        // Allocation is the only way to fail; there is nothing sensible to do then.
        guard let s = swunison_xxh3_new() else { fatalError("swunison_xxh3_new: out of memory") }
        state = s
    }

    deinit { swunison_xxh3_free(state) }

    /// Feeds bytes into the digest.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        swunison_xxh3_update(state, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Finishes and returns the digest; the hasher is reset and can be reused.
    public func finalize() -> Digest {
        var out: (UInt64, UInt64) = (0, 0)
        let digest = withUnsafeMutableBytes(of: &out) { raw -> Digest in
            swunison_xxh3_digest(state, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            return Digest(uncheckedRaw: UnsafeRawBufferPointer(raw))
        }
        swunison_xxh3_reset(state)
        return digest
    }

    /// Digest of a whole buffer.
    public static func digest(_ bytes: [UInt8]) -> Digest {
        var out: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &out) { raw -> Digest in
            bytes.withUnsafeBytes { content in
                swunison_xxh3_oneshot(content.baseAddress, content.count, raw.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            return Digest(uncheckedRaw: UnsafeRawBufferPointer(raw))
        }
    }
}

/// Incremental SHA-256 over OpenSSL's libcrypto (already loaded by libssh), where a name or an
/// executable is identified rather than a file's content: archive file names, shortened backup
/// names, the binary `serverdeploy` copies (compared with the remote's `sha256sum`).
///
/// The corresponding C functions are `EVP_DigestInit_ex`, `EVP_DigestUpdate`, `EVP_DigestFinal_ex`.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        // EVP_MD_CTX_new only fails when out of memory; there is nothing sensible to do then.
        guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        context = ctx
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    /// Finishes and returns the digest as lower-case hex, as `sha256sum` prints it; the hasher
    /// is reset and can be reused.
    public func finalize() -> String {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &out, &length)
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
        let hex = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(64)
        for b in out.prefix(Int(length)) { s.append(hex[Int(b >> 4)]); s.append(hex[Int(b & 15)]) }
        return s
    }

    /// Hex SHA-256 of a whole buffer.
    public static func hexDigest(_ bytes: [UInt8]) -> String {
        let h = SHA256Hasher()
        bytes.withUnsafeBytes { h.update($0) }
        return h.finalize()
    }
}
