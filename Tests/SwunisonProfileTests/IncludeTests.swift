import Testing
@testable import SwunisonProfile

@Suite struct IncludeTests {
    @Test func includeReadsNameThenNameDotPrfAndSourceReadsTheExactFile() throws {
        let dir = TempDir()
        dir.write("prf/roots.prf", twoRoots)
        dir.write("prf/ignores", "ignore = Name *.o\n")
        dir.write("prf/extra.txt", "retry = 2\n")
        let p = try dir.load("include roots\ninclude ignores\nsource extra.txt\nbatch = true\n")
        #expect(p.roots.count == 2)
        #expect(p.ignorePatterns == ["Name *.o"])
        #expect(p.retry == 2)
        #expect(p.batch)
    }

    @Test func includedSettingsTakeEffectAtTheIncludeLine() throws {
        let dir = TempDir()
        dir.write("prf/common.prf", "prefer = older\nignore = Name b\n")
        let p = try dir.load(twoRoots + "ignore = Name a\nprefer = newer\ninclude common\nignore = Name c\n")
        #expect(p.prefer == .older)
        #expect(p.ignorePatterns == ["Name a", "Name b", "Name c"])
    }

    @Test func optionalIncludesSkipMissingFiles() throws {
        let dir = TempDir()
        let p = try dir.load(twoRoots + "include? nothere\nsource? nothere.txt\nbatch = true\n")
        #expect(p.batch)
    }

    @Test func missingIncludeIsAnErrorAtItsLine() {
        let dir = TempDir()
        let error = dir.failure(twoRoots + "include nothere\n")
        guard case .missingFile? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description == "\(dir.profilePath()):3: include 'nothere': file not found (looked for \(dir.path)/prf/nothere or \(dir.path)/prf/nothere.prf)")
        #expect(dir.failure(twoRoots + "source nothere.prf\n")?.description
            == "\(dir.profilePath()):3: source 'nothere.prf': file not found (looked for \(dir.path)/prf/nothere.prf)")
    }

    @Test func nestedIncludesAndAbsoluteNames() throws {
        let dir = TempDir()
        let elsewhere = dir.write("other/deep.prf", "retry = 7\n")
        dir.write("prf/mid.prf", "source \(elsewhere)\n")
        let p = try dir.load(twoRoots + "include mid\n")
        #expect(p.retry == 7)
    }

    @Test func includeCyclesAreErrors() {
        let dir = TempDir()
        dir.write("prf/a.prf", "batch = true\ninclude b\n")
        dir.write("prf/b.prf", "\ninclude? test\n")
        let error = dir.failure(twoRoots + "include a\n")
        guard case .includeCycle(let d)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(d.file == dir.path + "/prf/b.prf" && d.line == 2)
        #expect(d.message.hasPrefix("include? 'test' makes an include cycle: "))
        #expect(d.message.hasSuffix("/prf/test.prf -> \(dir.path)/prf/a.prf -> \(dir.path)/prf/b.prf -> \(dir.path)/prf/test.prf"))
    }

    @Test func selfIncludeIsACycle() {
        let dir = TempDir()
        let error = dir.failure(twoRoots + "include test\n")
        guard case .includeCycle? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description.hasPrefix("\(dir.profilePath()):3: include 'test' makes an include cycle") == true)
    }

    /// Forty includes of a file that includes another forty times, and so on: 64,000 reads. The
    /// load stops at the cap with a located error instead of reading (nearly) forever.
    @Test(.timeLimit(.minutes(1))) func includesThatFanOutAreCapped() {
        let dir = TempDir()
        let forty = { (name: String) in String(repeating: "include \(name)\n", count: 40) }
        dir.write("prf/l1.prf", forty("l2"))
        dir.write("prf/l2.prf", forty("l3"))
        dir.write("prf/l3.prf", "batch = true\n")
        let started = ContinuousClock.now
        let error = dir.failure(twoRoots + forty("l1"))
        guard case .includeCycle(let d)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(d.message.contains("more than 1000 files read"), "\(d.message)")
        #expect(d.line != nil)
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// A profile line that is not UTF-8 is an error at its line, never silently altered.
    @Test func invalidUTF8IsAnErrorAtItsLine() {
        let dir = TempDir()
        dir.write("prf/bad.prf", bytes: Array("batch = true\nignore = Name caf".utf8) + [0xE9] + Array("\n".utf8))
        let error = dir.failure(twoRoots + "include bad\n")
        guard case .garbledLine(let d)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(d.file == dir.path + "/prf/bad.prf" && d.line == 2)
        #expect(d.message.contains("not valid UTF-8 (at byte 18 of the line)"), "\(d.message)")
    }

    @Test func includingTheSameFileTwiceIsNotACycle() throws {
        let dir = TempDir()
        dir.write("prf/ign.prf", "ignore = Name x\n")
        let p = try dir.load(twoRoots + "include ign\ninclude ign\n")
        #expect(p.ignorePatterns == ["Name x", "Name x"])
    }

    @Test func garbledInclude() {
        let dir = TempDir()
        #expect(dir.failure(twoRoots + "include two words\n")?.description
            == "\(dir.profilePath()):3: garbled 'include' directive 'include two words': expected 'include NAME' (one name, no spaces)")
    }
}
