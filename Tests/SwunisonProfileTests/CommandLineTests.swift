import Testing
@testable import SwunisonProfile

@Suite struct CommandLineTests {
    @Test func unisonAndGnuStyles() throws {
        let (positionals, settings) = try CommandLineOverrides.parse([
            "-batch", "prof", "-batch=false", "--prefer", "newer", "--prefer=older", "-retry=3", "-prefer", "b",
            "--dry-run", "-ignore", "Name *.o", "-fastcheck", "false", "-links", "/x", "--", "-literal",
        ])
        #expect(positionals == ["prof", "/x", "-literal"])
        #expect(settings.map { "\($0.name)=\($0.value)" } == [
            "batch=true", "batch=false", "prefer=newer", "prefer=older", "retry=3", "prefer=b", "dry-run=true",
            "ignore=Name *.o", "fastcheck=false", "links=true",
        ])
        #expect(settings.allSatisfy { $0.origin == .commandLine })
    }

    @Test func aBooleanNeverTakesTheNextArgument() throws {
        // As in Unison: `-batch false` is `-batch` and a positional `false`.
        let (positionals, settings) = try CommandLineOverrides.parse(["-batch", "false"])
        #expect(positionals == ["false"])
        #expect(settings.map(\.value) == ["true"])
    }

    @Test func unknownOptionsAndMissingValues() {
        #expect(throws: ProfileError.self) { try CommandLineOverrides.parse(["--prefr", "newer"]) }
        do {
            _ = try CommandLineOverrides.parse(["--prefr", "newer"])
        } catch {
            #expect(error.description == "command line: unknown option '--prefr' (did you mean '-prefer'?)")
        }
        do {
            _ = try CommandLineOverrides.parse(["prof", "-prefer"])
            Issue.record("accepted a missing value")
        } catch {
            guard case .badCommandLine(let d) = error else { Issue.record("got \(error)"); return }
            #expect(d.description == "command line: option '-prefer' needs a value")
        }
    }

    @Test func commandLineWinsOverTheProfile() throws {
        let dir = TempDir()
        let p = try dir.load(twoRoots + "batch = true\nprefer = older\nretry = 1\nignore = Name a\nfastcheck = true\n",
                             arguments: ["-batch=false", "--prefer", "newer", "-retry=3", "-ignore", "Name b",
                                         "--fastcheck=false"])
        #expect(!p.batch)
        #expect(p.prefer == .newer)
        #expect(p.retry == 3)
        #expect(p.ignorePatterns == ["Name a", "Name b"])
        #expect(!p.fastcheck)
    }

    @Test func commandLineOnlyFlags() throws {
        let dir = TempDir()
        var p = try dir.load(twoRoots, arguments: ["--dry-run", "--ignorearchives", "--watch"])
        #expect(p.dryRun && p.ignoreArchives && p.watch)
        #expect(p.warnings.isEmpty)
        p = try dir.load(twoRoots, arguments: ["-dry-run", "-ignorearchives", "-repeat", "watch"])
        #expect(p.dryRun && p.ignoreArchives && p.watch)
        p = try dir.load(twoRoots + "repeat = watch\n", arguments: ["-watch=false"])
        #expect(!p.watch)
    }

    @Test func badCommandLineValuesAreReportedAsCommandLine() {
        let dir = TempDir()
        #expect(dir.failure(twoRoots, arguments: ["-batch=yes"])?.description
            == "command line: bad value 'yes' for batch: expected true or false")
        #expect(dir.failure(twoRoots, arguments: ["-retry", "x"])?.description
            == "command line: bad value 'x' for retry: expected an integer")
    }

    @Test func twoRootsUseDefaultPrfWhenPresent() throws {
        let dir = TempDir()
        dir.write("cwd/.keep", "")
        // No default.prf: just the roots, relative ones resolved against the working directory.
        var p = try dir.loader.load(arguments: ["a", "/abs/b", "-batch"])
        #expect(p.sourceFile == nil && p.name == "default")
        #expect(p.roots == [.local(path: dir.path + "/cwd/a"), .local(path: "/abs/b")])
        #expect(p.batch)
        // With a default.prf (without roots) its preferences apply.
        dir.write("prf/default.prf", "prefer = newer\nretry = 2\n")
        p = try dir.loader.load(arguments: ["/x", "/y", "-retry=5"])
        #expect(p.sourceFile == dir.path + "/prf/default.prf")
        #expect(p.prefer == .newer && p.retry == 5)
        // A default.prf with roots plus two command-line roots is one root too many, as in Unison.
        dir.write("prf/default.prf", "root = /p\nroot = /q\n")
        do {
            _ = try dir.loader.load(arguments: ["/x", "/y"])
            Issue.record("accepted four roots")
        } catch {
            #expect(error.description
                == "command line: third root '/x': exactly two roots are allowed, and '/p' and '/q' are already given by the profile (command-line roots add to the profile's, as in Unison)")
        }
    }

    @Test func profileSelection() throws {
        let dir = TempDir()
        // No argument: default.prf.
        dir.write("prf/default.prf", twoRoots + "label = dflt\n")
        #expect(try dir.loader.load(arguments: []).label == "dflt")
        // NAME without extension in the profile directory.
        dir.write("prf/plain", twoRoots + "label = plain\n")
        #expect(try dir.loader.load(arguments: ["plain"]).label == "plain")
        // NAME.prf is preferred to NAME.
        dir.write("prf/plain.prf", twoRoots + "label = plain.prf\n")
        #expect(try dir.loader.load(arguments: ["plain"]).label == "plain.prf")
        // A path is read as given.
        let file = dir.write("elsewhere/my.prf", twoRoots + "label = mine\n")
        let p = try dir.loader.load(arguments: [file])
        #expect(p.label == "mine" && p.sourceFile == file)
        // Three positionals: neither a profile nor two roots.
        #expect(throws: ProfileError.self) { try dir.loader.load(arguments: ["a", "b", "c"]) }
    }

    @Test func noProfileAndNoRoots() {
        let dir = TempDir()
        do {
            _ = try dir.loader.load(arguments: [])
            Issue.record("loaded without a profile")
        } catch {
            #expect(error.description.hasSuffix("give a profile name or two roots"))
        }
    }

    @Test func includeOnTheCommandLine() throws {
        let dir = TempDir()
        dir.write("prf/extra.prf", "retry = 9\n")
        let p = try dir.load(twoRoots, arguments: ["-include", "extra"])
        #expect(p.retry == 9)
    }
}
