import Foundation
import Testing
import SwunisonModel
@testable import SwunisonProfile

@Suite struct ShippedProfileTests {
    func loader(_ dir: String) -> ProfileLoader {
        ProfileLoader(profileDirectory: dir, homeDirectory: "/home/test", currentDirectory: "/")
    }

    @Test func defaultProfileIsTheUnattendedForm() throws {
        let p = try loader(shippedProfiles).load(arguments: ["default"])
        #expect(p.roots == [.local(path: "/path/to/local/folder"), .local(path: "/path/to/other/folder")])
        #expect(p.auto && p.batch && !p.confirmBigDeletes && p.fastcheck && p.prefer == .newer && p.retry == 3)
        #expect(p.warnings.isEmpty)
        // The commented-out ssh alternative is a valid root.
        let text = try String(contentsOfFile: shippedProfiles + "/default.prf", encoding: .utf8)
        let sshLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("#root = ssh://") })
        guard case .ssh = try Root.parse(String(sshLine.dropFirst("#root = ".count)), relativeTo: "/", home: "/") else {
            Issue.record("commented root is not ssh"); return
        }
    }

    @Test func demoProfile() throws {
        let p = try loader(shippedProfiles).load(arguments: ["demo"])
        #expect(p.roots == [.local(path: "/tmp/swunison-demo/a"), .local(path: "/tmp/swunison-demo/b")])
        #expect(p.batch && p.prefer == .newer)
        #expect(p.backupDir == "/tmp/swunison-demo/backups")
        #expect(p.warnings.isEmpty)
    }

    @Test func starProfilesShareTheirSettingsAndTheHubRoot() throws {
        let profiles = try loader(shippedProfiles).loadAll(arguments: ["hub-a", "hub-b", "--watch"])
        #expect(profiles.map(\.name) == ["hub-a", "hub-b"])
        for p in profiles {
            #expect(p.watch && p.batch && p.prefer == .newer && p.confirmBigDeletes && p.warnings.isEmpty)
            #expect(p.roots.first == .local(path: "/srv/data"))
        }
        #expect(profiles[0].roots[1] != profiles[1].roots[1])
    }

    @Test func exampleProfileLoadsAsShippedAndWithEveryExampleEnabled() throws {
        let p = try loader(shippedProfiles).load(arguments: ["example"])
        #expect(p.roots.count == 2 && p.warnings.isEmpty)

        // Uncomment every "#name = value" line: each example must be valid, in this order.
        let text = try String(contentsOfFile: shippedProfiles + "/example.prf", encoding: .utf8)
        var enabled: [String] = []
        var count = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#"), !line.hasPrefix("# "), line != "#" {
                enabled.append(String(line.dropFirst()))
                count += 1
            } else {
                enabled.append(String(line))
            }
        }
        #expect(count > 50)
        let dir = TempDir()
        dir.write("prf/example-all.prf", enabled.joined(separator: "\n"))
        let all = try dir.loader.load(arguments: ["example-all"])
        // Only the settings swunison accepts without acting on them, each saying what it does instead.
        #expect(all.warnings.map(\.message).sorted() == [
            "backupprefix has no effect: swunison names backups .bak.N.NAME, in backupdir",
            "copyonconflict has no effect: swunison always keeps the losing version of a conflict, in backupdir",
            "maxerrors has no effect: swunison propagates every path on its own and reports each failure, it never aborts a directory's transfer",
        ])
        #expect(all.batch == false && all.prefer == .newer && all.force == .side(.a) && !all.watch && all.repeatIntervalSeconds == 3600)
        #expect(all.dontChmod && all.attributes.permissionMask == 0)
        #expect(!all.paths.isEmpty && !all.ignore.isEmpty && !all.backup.isEmpty)

        // Every implemented preference is shown in the example profile.
        let shown = Set(enabled.compactMap { line -> String? in
            guard let eq = line.firstIndex(of: "="), !line.hasPrefix("#") else { return nil }
            return trimmed(line[line.startIndex..<eq])
        } + ["include"])
        let typed = PreferenceTable.all.values.filter { $0.support == .typed && $0.name != "source" }.map(\.name)
        #expect(Set(typed).subtracting(shown).isEmpty, "not in example.prf: \(Set(typed).subtracting(shown).sorted())")
    }

    @Test func everyShippedProfileLoads() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: shippedProfiles).filter { $0.hasSuffix(".prf") }
        #expect(names.count >= 3)
        for name in names {
            let p = try loader(shippedProfiles).load(arguments: [String(name.dropLast(4))])
            #expect(p.roots.count == 2, "\(name)")
        }
    }
}
