import Foundation
import SwunisonTestSupport

/// Two roots and a profile directory under one temp dir, and a way to run the built binary on them.
final class Sandbox {
    let dir: TemporaryDirectory
    let a: String
    let b: String
    let profiles: String

    init(_ label: String) throws {
        dir = try TemporaryDirectory(label)
        a = dir.appending("a"); b = dir.appending("b"); profiles = dir.appending("prf")
        for d in [a, b, profiles] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
    }

    /// Writes `NAME.prf` with the two roots first, then `lines`.
    func profile(_ name: String = "t", _ lines: [String] = ["batch = true", "prefer = newer"]) throws {
        let text = (["root = \(a)", "root = \(b)", "backupdir = \(dir.appending("backups"))"] + lines)
            .joined(separator: "\n") + "\n"
        try text.write(toFile: "\(profiles)/\(name).prf", atomically: true, encoding: .utf8)
    }

    @discardableResult
    func run(_ arguments: [String], input: String? = nil) throws -> SwunisonBinary.Outcome {
        try SwunisonBinary.run(arguments, environment: ["SWUNISON": profiles, "HOME": dir.path], input: input)
    }

    func write(_ side: String, _ relative: String, _ text: String, mtime: TimeInterval? = nil) throws {
        try TestFiles.write((side == "a" ? a : b) + "/" + relative, text, mtime: mtime)
    }

    func read(_ side: String, _ relative: String) -> String? { TestFiles.read((side == "a" ? a : b) + "/" + relative) }

    /// Everything under the backup directory, as (path, content).
    func backups() -> [(String, String)] {
        let root = dir.appending("backups")
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [(String, String)] = []
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                out.append((p, TestFiles.read(root + "/" + p) ?? ""))
            }
        }
        return out
    }

    /// A listing of a root: relative path -> kind + content/target + mode, for tree equality.
    func listing(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ dir: String, _ prefix: String) {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
            for name in names where !name.hasPrefix(".swunison") {
                let path = dir + "/" + name
                let rel = prefix.isEmpty ? name : prefix + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    out[rel] = "dir \(String(st.st_mode & 0o7777, radix: 8))"
                    walk(path, rel)
                case S_IFLNK:
                    out[rel] = "link " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?")
                default:
                    let data = FileManager.default.contents(atPath: path) ?? Data()
                    out[rel] = "file \(data.hashValue) \(String(st.st_mode & 0o7777, radix: 8)) \(st.st_mtim.tv_sec)"
                }
            }
        }
        walk(root, "")
        return out
    }

    var inStep: Bool { listing(a) == listing(b) }
}
