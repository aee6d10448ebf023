import Foundation
@testable import SwunisonProfile

/// A fresh directory under /tmp (mkdtemp), removed when the value goes away.
final class TempDir {
    let path: String

    init() {
        var template = Array("/tmp/swunison-profile-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `text` to `name` (relative to the directory, parents created) and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        write(name, bytes: Array(text.utf8))
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) -> String {
        let full = path + "/" + name
        let parent = (full as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full, contents: Data(bytes))
        return full
    }

    /// A loader whose profile directory is `<dir>/prf`, home `<dir>/home`, cwd `<dir>/cwd`.
    var loader: ProfileLoader {
        ProfileLoader(profileDirectory: path + "/prf", homeDirectory: path + "/home", currentDirectory: path + "/cwd")
    }

    /// Writes `prf/<name>.prf` and loads it with extra command-line `arguments`.
    func load(_ text: String, name: String = "test", arguments: [String] = []) throws(ProfileError) -> Profile {
        write("prf/\(name).prf", text)
        return try loader.load(arguments: [name] + arguments)
    }

    /// Writes and loads a profile that is expected to fail; returns the error.
    func failure(_ text: String, name: String = "test", arguments: [String] = []) -> ProfileError? {
        do {
            _ = try load(text, name: name, arguments: arguments)
            return nil
        } catch {
            return error
        }
    }

    /// The profile file's path as the loader reports it.
    func profilePath(_ name: String = "test") -> String { path + "/prf/\(name).prf" }
}

/// Two local roots, for profiles that only test other preferences.
let twoRoots = "root = /srv/a\nroot = /srv/b\n"

/// The repository's `profiles/` directory.
let shippedProfiles: String = {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("profiles").path
}()
