import SwunisonFS
import SwunisonProfile

/// Where a profile's own files live, derived from its roots. One place computes them, so that a
/// sync run, watch mode and `swunison status` find the same archive and the same status file.
extension Profile {
    /// The archive's file name without its extension: `ar` and a digest of the two roots as
    /// written, so that each pair of roots has its own.
    public var archiveName: String {
        let digest = SHA256Hasher.hexDigest(Array(roots.map(\.written).joined(separator: "\n").utf8))
        return "ar" + String(digest.prefix(24))
    }

    /// The archive: `<profile directory>/archives/<archive name>.db`.
    public var archivePath: String { profileDirectory + "/archives/" + archiveName + ".db" }

    /// `statusfile`, or its default beside the archive:
    /// `<profile directory>/archives/<archive name>.status`.
    public var effectiveStatusFile: String { statusFile ?? profileDirectory + "/archives/" + archiveName + ".status" }
}
