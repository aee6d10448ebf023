import Testing
@testable import SwunisonProfile

/// Every error names the file and line (`path:LINE: message`) and says what is allowed.
@Suite struct ProfileErrorTests {
    @Test func unknownPreferenceWithSuggestion() {
        let dir = TempDir()
        let error = dir.failure(twoRoots + "batch = true\n\nprefr = newer\n")
        guard case .unknownPreference(let d)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(d.file == dir.profilePath() && d.line == 5)
        #expect(error?.description == "\(dir.profilePath()):5: unknown preference 'prefr' (did you mean 'prefer'?)")
    }

    @Test func unknownPreferenceWithoutSuggestion() {
        let dir = TempDir()
        let error = dir.failure(twoRoots + "frobnicate = 3\n")
        #expect(error?.description
            == "\(dir.profilePath()):3: unknown preference 'frobnicate' (not a Unison or swunison preference; see swunison.prf(5) for the list)")
    }

    @Test("bad values name the preference and what it accepts", arguments: [
        ("batch = yes", "bad value 'yes' for batch: expected true or false"),
        ("batch = True", "bad value 'True' for batch: expected true or false"),
        ("fastcheck = maybe", "bad value 'maybe' for fastcheck: expected true, false or default"),
        ("retry = three", "bad value 'three' for retry: expected an integer"),
        ("retry = -1", "bad value '-1' for retry: expected an integer of at least 0"),
        ("perms = 0o9", "bad value '0o9' for perms: expected an integer"),
        ("delay = soon", "bad value 'soon' for delay: expected seconds, e.g. 1, 0.5 or 250ms"),
        ("backuploc = nearby", "bad value 'nearby' for backuploc: expected central or local"),
        ("sshport = 70000", "bad value '70000' for sshport: expected a port number 1-65535"),
        ("stalltimeout = 0", "bad value '0' for stalltimeout: expected an integer of at least 1"),
        ("ignore = *.tmp", "bad pattern '*.tmp': a pattern must start with Name, Path, BelowPath or Regex in ignore (expected Name, Path, BelowPath or Regex followed by a pattern)"),
        ("ignore = Path /etc", "bad pattern 'Path /etc': 'Path' patterns may not begin with '/'; only relative paths are allowed in ignore (expected Name, Path, BelowPath or Regex followed by a pattern)"),
        ("prefer = gamma", "bad value 'gamma' for prefer: it matches neither root; expected newer, older, or one of the roots '/srv/a' and '/srv/b'"),
        ("sortbysize = yes", "bad value 'yes' for sortbysize: expected true or false"),
        ("ui = curses", "bad value 'curses' for ui: expected text or graphic"),
    ])
    func badValue(_ line: String, _ message: String) {
        let dir = TempDir()
        let error = dir.failure(twoRoots + line + "\n")
        guard case .badValue? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description == "\(dir.profilePath()):3: \(message)")
    }

    @Test func lineWithoutEquals() {
        let dir = TempDir()
        let error = dir.failure("root = /a\nbatch true\nroot = /b\n")
        guard case .garbledLine? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description
            == "\(dir.profilePath()):2: line without '=': 'batch true' (expected 'name = value', a '#' comment, or include/source NAME)")
    }

    @Test func missingPreferenceName() {
        let dir = TempDir()
        #expect(dir.failure(twoRoots + " = true\n")?.description == "\(dir.profilePath()):3: no preference name before '=' in '= true'")
    }

    @Test func thirdRoot() {
        let dir = TempDir()
        let error = dir.failure("root = /a\n# second\nroot = /b\nbatch = true\nroot = /c\n")
        guard case .wrongRootCount? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description
            == "\(dir.profilePath()):5: third root '/c': exactly two roots are allowed, and '/a' and '/b' are already given")
    }

    @Test func tooFewRoots() {
        let dir = TempDir()
        let error = dir.failure("root = /a\nbatch = true\n")
        guard case .wrongRootCount? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error?.description.hasPrefix("\(dir.profilePath()): only one root ('/a') given; exactly two are needed") == true)
    }

    @Test func badRoot() {
        let dir = TempDir()
        #expect(dir.failure("root = /a\nroot = ssh://host:99999/x\n")?.description
            == "\(dir.profilePath()):2: bad root: 'ssh://host:99999/x': bad port '99999' (expected 1-65535)")
        #expect(dir.failure("root = /a\nroot = socket://host:1234/x\n")?.description.hasPrefix("\(dir.profilePath()):2: bad root:") == true)
        #expect(dir.failure("root = /a\nroot = ssh:/host/x\n")?.description.hasPrefix("\(dir.profilePath()):2: bad root:") == true)
    }

    @Test func aPasswordInARootIsRefusedAndNeverRepeated() {
        let dir = TempDir()
        let message = dir.failure("root = /a\nroot = ssh://alice:hunter2@host:22//srv/x\n")?.description ?? ""
        #expect(message.hasPrefix("\(dir.profilePath()):2: bad root: 'ssh://alice:***@host:22//srv/x': a password in a root"),
                "\(message)")
        #expect(!message.contains("hunter2"))
    }

    @Test func dryRunIsCommandLineOnly() {
        let dir = TempDir()
        #expect(dir.failure(twoRoots + "dry-run = true\n")?.description
            == "\(dir.profilePath()):3: 'dry-run' is a command-line option (--dry-run); it cannot be set in a profile")
    }

    @Test func missingProfile() {
        let dir = TempDir()
        do {
            _ = try dir.loader.load(arguments: ["nope"])
            Issue.record("loaded a missing profile")
        } catch {
            guard case .missingFile = error else { Issue.record("got \(error)"); return }
            #expect(error.description.contains("profile 'nope' not found (looked for \(dir.path)/prf/nope.prf"))
        }
    }

    @Test func errorsInIncludedFilesNameThatFile() {
        let dir = TempDir()
        let common = dir.write("prf/common.prf", "batch = true\n\nbatch = sometimes\n")
        let error = dir.failure(twoRoots + "include common\n")
        #expect(error?.description == "\(common):3: bad value 'sometimes' for batch: expected true or false")
    }
}
