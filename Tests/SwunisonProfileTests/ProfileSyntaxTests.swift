import Testing
import SwunisonModel
@testable import SwunisonProfile

@Suite struct ProfileSyntaxTests {
    @Test func defaultsAreUnisonsExceptTimesAndMaxBackups() throws {
        let dir = TempDir()
        let p = try dir.load(twoRoots)
        #expect(p.roots == [.local(path: "/srv/a"), .local(path: "/srv/b")])
        #expect(p.sourceFile == dir.profilePath())
        #expect(p.name == "test")
        #expect(p.attributes == AttributeSelection(permissionMask: 0o1777, owner: false, group: false, times: true))
        #expect(p.maxBackups == 3)
        #expect(p.fastcheck && p.confirmBigDeletes && p.log && p.links)
        #expect(!p.batch && !p.auto && !p.dryRun && !p.watch && !p.ignoreArchives)
        #expect(p.prefer == nil && p.force == nil)
        #expect(p.retry == 0 && p.maxErrors == 1 && p.delay == 3 && p.maxDelaySeconds == 30 && p.statusFile == nil)
        #expect(p.paths.isEmpty && p.ignore.isEmpty && p.backup.isEmpty)
        #expect(p.backupLocation == .central && p.backupPrefix == ".bak.$VERSION." && p.backupSuffix == "")
        #expect(p.effectiveBackupDirectory == dir.path + "/prf/backup")
        #expect(p.effectiveLogFile == dir.path + "/prf/swunison.log")
        #expect(p.warnings.isEmpty)
    }

    @Test func bomCrlfCommentsAndBlankLinesAreTolerated() throws {
        let dir = TempDir()
        let text = "# comment\r\n\r\n   \r\nroot = /srv/a\r\n  # indented comment\r\nroot=/srv/b\r\n\tbatch   =   true\t\r\n"
        dir.write("prf/test.prf", bytes: [0xEF, 0xBB, 0xBF] + Array(text.utf8))
        let p = try dir.loader.load(arguments: ["test"])
        #expect(p.roots.count == 2)
        #expect(p.roots[1] == .local(path: "/srv/b"))
        #expect(p.batch)
    }

    @Test func valueMayContainEqualsSigns() throws {
        let p = try TempDir().load(twoRoots + "sshargs = -o ServerAliveInterval=5 -o A=B\n")
        #expect(p.ssh.arguments == "-o ServerAliveInterval=5 -o A=B")
    }

    @Test func listPreferencesAccumulateAndScalarsTakeTheLastValue() throws {
        let p = try TempDir().load(twoRoots + """
            path = a
            path = b/c/
            ignore = Name *.o
            ignore = Path tmp
            ignorenot = Name keep.o
            prefer = older
            prefer = newer
            retry = 1
            retry = 4
            """)
        #expect(p.paths == [try RelativePath(validating: "a"), try RelativePath(validating: "b/c")])
        #expect(p.ignorePatterns == ["Name *.o", "Path tmp"])
        #expect(p.ignoreNotPatterns == ["Name keep.o"])
        #expect(p.ignore.isIgnored(try RelativePath(validating: "x/y.o")))
        #expect(!p.ignore.isIgnored(try RelativePath(validating: "x/keep.o")))
        #expect(p.prefer == .newer)
        #expect(p.retry == 4)
    }

    @Test func typedPreferences() throws {
        let p = try TempDir().load(twoRoots + """
            batch = true
            auto = true
            confirmbigdel = false
            fastcheck = default
            links = false
            times = false
            owner = true
            group = true
            numericids = true
            perms = 0o755
            backup = Name *.doc
            backupnot = Name tmp.doc
            backuploc = local
            backupprefix = .old.
            backupsuffix = .bak
            backupdir = backups
            maxbackups = 5
            copyonconflict = true
            log = false
            logfile = logs/sync.log
            silent = true
            terse = true
            maxerrors = 10
            label = Pair one
            ignorearchives = true
            ignorelocks = true
            ignoreinodenumbers = true
            repeat = watch+3600
            delay = 250ms
            maxdelay = 45
            statusfile = status/pair.status
            sshcmd = /usr/bin/ssh
            sshargs = -C
            servercmd = /opt/swunison server
            addversionno = true
            serverdeploy = true
            sshcompression = true
            sshkeepalive = 30
            sshtimeout = 0
            stalltimeout = 30
            sshport = 2222
            sshuser = alice
            """)
        #expect(p.batch && p.auto && !p.confirmBigDeletes && p.fastcheck && !p.links)
        #expect(p.attributes == AttributeSelection(permissionMask: 0o755, owner: true, group: true, times: false))
        #expect(p.numericIds)
        #expect(p.backup.isIgnored(try RelativePath(validating: "a/x.doc")))
        #expect(!p.backup.isIgnored(try RelativePath(validating: "a/tmp.doc")))
        #expect(p.backupLocation == .local && p.backupPrefix == ".old." && p.backupSuffix == ".bak")
        #expect(p.backupDir == "\(p.profileDirectory.dropLast(4))/home/backups")
        #expect(p.maxBackups == 5 && p.copyOnConflict)
        #expect(!p.log && p.logFile == p.profileDirectory + "/logs/sync.log")
        #expect(p.silent && p.terse && p.maxErrors == 10 && p.label == "Pair one")
        #expect(p.ignoreArchives && p.ignoreLocks && p.ignoreInodeNumbers)
        #expect(p.watch && p.repeatIntervalSeconds == 3600)
        #expect(p.delay == 0.25 && p.maxDelaySeconds == 45)
        #expect(p.statusFile == p.profileDirectory + "/status/pair.status")
        #expect(p.ssh.command == "/usr/bin/ssh" && p.ssh.arguments == "-C" && p.ssh.serverCommand == "/opt/swunison server")
        #expect(p.ssh.addVersionNumber && p.ssh.deployServer && p.ssh.compression)
        #expect(p.ssh.keepAliveSeconds == 30 && p.ssh.timeoutSeconds == nil && p.ssh.stallTimeoutSeconds == 30)
        #expect(p.ssh.port == 2222 && p.ssh.user == "alice")
        // Accepted, typed, and each noted once with what swunison does instead.
        #expect(p.warnings.map { String($0.message.prefix { $0 != " " }) }.sorted() ==
                ["backuplocation", "backupprefix", "copyonconflict", "ignoreinodenumbers", "ignorelocks", "maxerrors"])
    }

    @Test("perms values as real profiles write them", arguments: [
        ("0", UInt32(0)), ("-1", 0o7777), ("0o1777", 0o1777), ("0o644", 0o644), ("511", 0o777), ("0x1ff", 0o777),
        ("0b111_000_000", 0o700),
    ])
    func perms(_ value: String, _ mask: UInt32) throws {
        let p = try TempDir().load(twoRoots + "perms = \(value)\n")
        #expect(p.attributes.permissionMask == mask)
        #expect(p.warnings.isEmpty)
    }

    @Test func permsWithALeadingZeroIsDecimalWithAWarning() throws {
        let dir = TempDir()
        let p = try dir.load(twoRoots + "perms = 0644\n")
        #expect(p.attributes.permissionMask == UInt32(644) & 0o7777)
        #expect(p.warnings.count == 1)
        #expect(p.warnings.first?.description.hasPrefix(dir.profilePath() + ":3: perms = 0644 is read as decimal 644") == true)
    }

    @Test func backupsTrueMeansBackupEverything() throws {
        let p = try TempDir().load(twoRoots + "backups = true\nbackupnot = Name *.iso\n")
        #expect(p.backup.isIgnored(try RelativePath(validating: "a/b")))
        #expect(!p.backup.isIgnored(try RelativePath(validating: "a/b.iso")))
    }

    @Test func maxdelayAndStatusfile() throws {
        let dir = TempDir()
        var p = try dir.load(twoRoots + "statusfile = /run/user/1000/swunison.status\nmaxdelay = 1.5s\ndelay = 250ms\n")
        #expect(p.statusFile == "/run/user/1000/swunison.status" && p.maxDelaySeconds == 1.5 && p.warnings.isEmpty)
        p = try dir.load(twoRoots + "statusfile = ~/state/s.status\n")
        #expect(p.statusFile == "\(p.profileDirectory.dropLast(4))/home/state/s.status")
        p = try dir.load(twoRoots + "statusfile = ~/state/s.status\nstatusfile =\n")
        #expect(p.statusFile == nil)
        p = try dir.load(twoRoots + "maxdelay = 2\n")
        #expect(p.warnings.map(\.description) == [
            "\(dir.profilePath()):3: maxdelay (2 s) is shorter than delay (3 s): in watch mode a change then waits maxdelay, not delay",
        ])
        #expect(dir.failure(twoRoots + "maxdelay = 0\n")?.description
            == "\(dir.profilePath()):3: bad value '0' for maxdelay: expected seconds above 0, e.g. 30")
        #expect(dir.failure(twoRoots + "maxdelay = soon\n")?.description
            == "\(dir.profilePath()):3: bad value 'soon' for maxdelay: expected seconds, e.g. 1, 0.5 or 250ms")
    }

    @Test func repeatForms() throws {
        let dir = TempDir()
        var p = try dir.load(twoRoots + "repeat = watch\n")
        #expect(p.watch && p.repeatIntervalSeconds == nil)
        p = try dir.load(twoRoots + "repeat = 600\n")
        #expect(!p.watch && p.repeatIntervalSeconds == 600)
        p = try dir.load(twoRoots + "repeat = watch\nrepeat =\n")
        #expect(!p.watch)
        #expect(dir.failure(twoRoots + "repeat = sometimes\n") != nil)
    }

    @Test func partialPreferencesAndPolicyOrder() throws {
        let p = try TempDir().load("""
            root = /data/alpha
            root = ssh://bob@beta.example.org//data/beta
            prefer = newer
            preferpartial = BelowPath shared -> older
            preferpartial = Path shared/x -> alpha
            forcepartial = Name *.lock -> beta
            """)
        #expect(p.prefer == .newer)
        #expect(p.preferPartial.map(\.prefer) == [.older, .side(.a)])
        #expect(p.forcePartial.map(\.prefer) == [.side(.b)])
        #expect(try policy(p, "other", is: (.newer, false)))
        #expect(try policy(p, "shared/y", is: (.older, false)))
        // The later matching preferpartial line wins.
        #expect(try policy(p, "shared/x", is: (.side(.a), false)))
        // forcepartial beats everything.
        #expect(try policy(p, "shared/x.lock", is: (.side(.b), true)))
    }

    @Test("prefer names a root as written or by an unambiguous part", arguments: [
        ("/data/alpha", Prefer.side(.a)),
        ("ssh://bob@beta.example.org//data/beta", .side(.b)),
        ("alpha", .side(.a)),                // suffix of the path
        ("/data/al", .side(.a)),             // prefix of the path
        ("beta.example", .side(.b)),         // prefix of the host name
        ("data/beta", .side(.b)),
        ("older", .older),
    ])
    func preferByRoot(_ value: String, _ expected: Prefer) throws {
        let p = try TempDir().load("root = /data/alpha\nroot = ssh://bob@beta.example.org//data/beta\nprefer = \(value)\nforce = \(value)\n")
        #expect(p.prefer == expected)
        #expect(p.force == expected)
    }

    @Test func preferMustNameExactlyOneRoot() {
        let dir = TempDir()
        let roots = "root = /data/alpha\nroot = /data/beta\n"
        let ambiguous = dir.failure(roots + "prefer = /data\n")
        #expect(ambiguous?.description
            == "\(dir.profilePath()):3: bad value '/data' for prefer: it matches both roots; expected newer, older, or one of the roots '/data/alpha' and '/data/beta'")
        let neither = dir.failure(roots + "\npreferpartial = Name x -> gamma\n")
        #expect(neither?.description.hasPrefix("\(dir.profilePath()):4: bad value 'gamma' for preferpartial: it matches neither root") == true)
        let noTarget = dir.failure(roots + "preferpartial = Name x\n")
        #expect(noTarget?.description.hasPrefix("\(dir.profilePath()):3: preferpartial 'Name x' needs a target") == true)
    }

    @Test func dontchmodNeedsPermsZero() throws {
        let dir = TempDir()
        let error = dir.failure(twoRoots + "dontchmod = true\n")
        #expect(error?.description.hasPrefix(dir.profilePath() + ":3: dontchmod = true needs perms = 0") == true)
        let p = try dir.load(twoRoots + "perms = 0\ndontchmod = true\n")
        #expect(p.dontChmod && p.attributes.permissionMask == 0)
    }

    @Test func pathsAreValidatedAsRelativePaths() {
        let dir = TempDir()
        for bad in ["/etc", "a//b", "a/../b", "./a", "a/*"] {
            let error = dir.failure(twoRoots + "path = \(bad)\n")
            #expect(error?.description.hasPrefix(dir.profilePath() + ":3: bad path '\(bad)'") == true, "\(bad)")
        }
    }
}

/// Whether `profile.policy(for: path)` is `expected`.
func policy(_ profile: Profile, _ path: String, is expected: (Prefer, Bool)) throws -> Bool {
    guard let got = profile.policy(for: try RelativePath(validating: path)) else { return false }
    return got.prefer == expected.0 && got.isForced == expected.1
}
