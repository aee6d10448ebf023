import Glibc
import SwunisonModel
import SwunisonProfile

/// libFuzzer target: arbitrary text as a profile file, and each of its lines as a path
/// specification (`Name`, `Path`, `BelowPath`, `Regex`).
///
/// Loading must end in a ``Profile`` or a `ProfileError`; every line must compile to a
/// ``PathPattern`` or fail with a `PatternError`, and a compiled pattern must answer for any
/// path. Include files beside the profile let `include` and `source` lines (and cycles) be
/// reached; an input that names a file elsewhere is skipped, so a run never reads the machine's
/// own files (`source /dev/...`, `/proc/...`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
    if lines.contains(where: namesFileElsewhere) { return -1 }

    Sandbox.shared.write("fuzz.prf", bytes)
    let loader = ProfileLoader(profileDirectory: Sandbox.shared.profiles, homeDirectory: Sandbox.shared.home,
                               currentDirectory: Sandbox.shared.home)
    do throws(ProfileError) {
        let profile = try loader.load(profileNamed: "fuzz")
        for path in samplePaths {
            _ = profile.ignore.isIgnored(path)
            _ = profile.backup.isIgnored(path)
            for partial in profile.preferPartial + profile.forcePartial { _ = partial.pattern.matches(path) }
        }
    } catch {
        _ = error.description
    }

    // Each line on its own as a pattern, the whole of it and after `ignore = `, as the loader
    // would see it (at most a few lines: patterns are the slow part).
    var patterns: [PathPattern] = []
    for line in lines.prefix(16) {
        let text = String(decoding: line, as: UTF8.self)
        let spec = text.firstIndex(of: "=").map { String(text[text.index(after: $0)...]) } ?? text
        for candidate in [text, spec] {
            do throws(PatternError) {
                let pattern = try PathPattern(candidate)
                for path in samplePaths { _ = pattern.matches(path) }
                patterns.append(pattern)
            } catch {
                _ = error.description
            }
        }
    }
    let rules = IgnoreRules(compiled: patterns, ignoreNot: Array(patterns.suffix(1)))
    for path in samplePaths { _ = rules.isIgnored(path) }
    return 0
}

/// Paths the patterns are tried on: a root-level name, a nested one, dot files, odd bytes, and
/// a long name (a matcher that backtracks without bound shows up there as a timeout).
let samplePaths: [RelativePath] = [
    "a", "a/b", "a/b/c.o", ".git", "src/.cache/x", "x y/{z}", "dir/x.tmp~", "d/[a]/*?", "\u{7F}\u{1}/é/\\",
    String(repeating: "a", count: 150) + "c",
].map { RelativePath(uncheckedBytes: Array($0.utf8)) }

/// Whether a line is an `include` / `source` directive (or could be) naming a path with a `/`:
/// such a name reaches outside the sandbox's profile directory.
func namesFileElsewhere(_ line: ArraySlice<UInt8>) -> Bool {
    let text = String(decoding: line, as: UTF8.self)
    return (text.contains("include") || text.contains("source")) && text.contains("/")
}

/// A private profile directory with a few files to include, made once per process under
/// `$TMPDIR` (Tests/fuzz points that at a directory it removes afterwards).
final class Sandbox: @unchecked Sendable {
    static let shared = Sandbox()

    let root: String
    var profiles: String { root + "/prf" }
    var home: String { root + "/home" }

    private init() {
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((tmp + "/swunison-fuzz-profile.XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            fatalError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        root = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        mkdir(profiles, 0o700)
        mkdir(home, 0o700)
        write("roots.prf", Array("root = /srv/a\nroot = ssh://h//srv/b\n".utf8))
        write("common", Array("ignore = Name *.o\nignorenot = Path a/b\nbackup = Regex .*\\.tmp~\ninclude? fuzz\n".utf8))
        write("extra.txt", Array("preferpartial = BelowPath src -> newer\nsource? missing\n".utf8))
    }

    /// Writes `bytes` to `name` in the profile directory, as a new file: ext4 flushes a file
    /// truncated and rewritten when it is closed, which made each run wait on the disk.
    func write(_ name: String, _ bytes: [UInt8]) {
        unlink(profiles + "/" + name)
        let fd = open(profiles + "/" + name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { fatalError("open \(name): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { fatalError("write \(name): \(String(cString: strerror(errno)))") }
            written += n
        }
    }
}
