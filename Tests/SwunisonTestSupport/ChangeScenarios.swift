import Foundation
import Glibc

/// Changes a user makes to a tree, for watch-mode tests of any pair of replicas.
public enum ChangeScenarios {
    /// On `from`: create, modify, append to, chmod, rename a file; rename, empty and delete a
    /// directory; `mkdir -p` with files written at once. After each step, waits (up to `seconds`)
    /// for `to` to show it. Returns a description of each step that did not arrive; empty when
    /// all did. `tag` keeps two runs (one per direction) apart. Needs something else to stay in
    /// both roots (an emptied root is refused, as confirmbigdel says).
    public static func everyKindOfChange(from: String, to: String, tag: String, seconds: Double = 15) async throws -> [String] {
        var missed: [String] = []
        func arrives(_ step: String, _ condition: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while !condition() {
                if Date() > deadline { missed.append("\(step) (\(tag))"); return }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let d = "d-\(tag)"
        try TestFiles.write(from + "/\(d)/file", "one")
        try await arrives("create") { TestFiles.read(to + "/\(d)/file") == "one" }
        try TestFiles.write(from + "/\(d)/file", "two, longer")
        try await arrives("modify") { TestFiles.read(to + "/\(d)/file") == "two, longer" }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: from + "/\(d)/file"))
        handle.seekToEndOfFile(); handle.write(Data(" + more".utf8)); try handle.close()
        try await arrives("append") { TestFiles.read(to + "/\(d)/file") == "two, longer + more" }
        chmod(from + "/\(d)/file", 0o600)
        try await arrives("chmod") {
            ((try? FileManager.default.attributesOfItem(atPath: to + "/\(d)/file"))?[.posixPermissions] as? Int) == 0o600
        }
        try FileManager.default.moveItem(atPath: from + "/\(d)/file", toPath: from + "/\(d)/renamed")
        try await arrives("rename a file") {
            TestFiles.read(to + "/\(d)/renamed") == "two, longer + more" && !TestFiles.exists(to + "/\(d)/file")
        }
        try FileManager.default.moveItem(atPath: from + "/\(d)", toPath: from + "/\(d)-moved")
        try await arrives("rename a directory") {
            TestFiles.read(to + "/\(d)-moved/renamed") != nil && !TestFiles.exists(to + "/\(d)")
        }
        try FileManager.default.removeItem(atPath: from + "/\(d)-moved/renamed")
        try await arrives("delete a file") { !TestFiles.exists(to + "/\(d)-moved/renamed") }
        try FileManager.default.removeItem(atPath: from + "/\(d)-moved")
        try await arrives("delete a directory") { !TestFiles.exists(to + "/\(d)-moved") }
        try FileManager.default.createDirectory(atPath: from + "/p-\(tag)/q/r", withIntermediateDirectories: true)
        for i in 0..<5 { try TestFiles.write(from + "/p-\(tag)/q/r/f\(i)", "f\(i)") }
        try await arrives("mkdir -p with files") {
            (0..<5).allSatisfy { TestFiles.read(to + "/p-\(tag)/q/r/f\($0)") == "f\($0)" }
        }
        return missed
    }
}
