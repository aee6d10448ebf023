import Testing
@testable import SwunisonProfile

@Suite struct UnisonCompatibilityTests {
    /// A profile of the kind people run with Unison 2.53, exotic preferences included.
    let realWorld = """
        # Unison preferences file
        label = laptop <-> server
        root = /home/alice
        root = ssh://alice@server.example.org//home/alice

        path = Documents
        path = .config/nvim
        path = Projects

        ignore = Name {.DS_Store,Thumbs.db,*.swp,*~}
        ignore = Name {.git,node_modules,__pycache__}
        ignore = Path Projects/*/target
        ignore = Regex .*/\\.cache(/.*)?
        ignorenot = Name .gitignore
        follow = Path Documents/shared
        immutable = Name *.iso
        merge = Name *.txt -> diff3 -m CURRENT1 CURRENTARCH CURRENT2 > NEW

        auto = true
        batch = true
        prefer = newer
        times = true
        perms = 0
        owner = false
        group = false
        fastcheck = true
        confirmbigdel = true
        retry = 3
        maxerrors = 1
        log = true
        logfile = /home/alice/.unison/laptop.log

        backup = Name *
        backuplocation = central
        backupdir = /home/alice/.unison/backups
        maxbackups = 5
        copyonconflict = true

        sshargs = -C -o ServerAliveInterval=30
        servercmd = /usr/local/bin/unison
        addversionno = false
        contactquietly = true
        xferbycopying = true
        sortbysize = true
        sortnewfirst = true
        ignorecase = false
        rsync = true
        copythreshold = 1000
        maxthreads = 20
        dumbtty = false
        color = default
        links = true
        mountpoint = Documents
        rootalias = //laptop//home/alice -> /home/alice
        nodeletion = /home/alice
        xattrs = false
        acl = false
        watch = true
        height = 40
        key = s
        diff = diff -u CURRENT2 CURRENT1
        terse = true
        showarchive = false
        confirmmerge = false
        numericIds = false
        confirmbigdeletes = true
        killServer = false
        ignorelocks = false
        ignoreinodenumbers = false
        ignorearchives = false
        unicode = default
        stream = true
        halfduplex = false
        clientHostName = laptop
        debug = verbose
        sortfirst = Name *.md
        fat = false
        silent = false
        rshargs = -x
        """

    @Test func loadsWithWarningsOnly() throws {
        let dir = TempDir()
        let p = try dir.load(realWorld)
        #expect(p.label == "laptop <-> server")
        #expect(p.roots[0] == .local(path: "/home/alice"))
        #expect(p.roots[1] == .ssh(SSHRoot(user: "alice", host: "server.example.org", port: nil, path: "/home/alice",
                                            isAbsolute: true, written: "ssh://alice@server.example.org//home/alice")))
        #expect(p.paths.map(\.description) == ["Documents", ".config/nvim", "Projects"])
        #expect(p.ignorePatterns.count == 4 && p.ignoreNotPatterns == ["Name .gitignore"])
        #expect(p.attributes.permissionMask == 0)
        #expect(p.maxBackups == 5 && p.backupLocation == .central && p.copyOnConflict)
        #expect(p.prefer == .newer && p.batch && p.auto && p.terse)
        #expect(!p.watch)   // Unison's `watch` preference is not swunison's watch mode

        let warned = p.warnings.map(\.message)
        let expected = ["follow", "immutable", "merge", "contactquietly", "xferbycopying", "sortbysize", "sortnewfirst",
                        "ignorecase", "rsync", "copythreshold", "maxthreads", "dumbtty", "color", "mountpoint",
                        "rootalias", "nodeletion", "xattrs", "acl", "watch", "height", "key", "diff", "showarchive",
                        "confirmmerge", "killServer", "unicode", "stream", "halfduplex", "clientHostName", "debug",
                        "sortfirst", "fat", "rshargs"]
        // Plus one line for each setting swunison reads but handles its own way.
        let handledOtherwise = warned.filter { !$0.hasPrefix("'") }
        #expect(warned.count == expected.count + handledOtherwise.count)
        #expect(handledOtherwise.allSatisfy { $0.contains(" has no effect: swunison ") }, "\(handledOtherwise)")
        for name in expected {
            #expect(warned.contains { $0.hasPrefix("'\(name)' has no effect in swunison") }, "no warning for \(name)")
        }
        #expect(warned.contains("'rshargs' has no effect in swunison (it was removed from Unison)"))
        // Each warning is located, and the format is file:line: message.
        let follow = try #require(p.warnings.first { $0.message.hasPrefix("'follow'") })
        #expect(follow.description == "\(dir.profilePath()):15: 'follow' has no effect in swunison")
    }

    @Test func oneWarningPerPreference() throws {
        let p = try TempDir().load(twoRoots + "follow = Name a\nfollow = Name b\nrsync = true\n", arguments: ["-rsync=false"])
        #expect(p.warnings.map(\.message) == ["'follow' has no effect in swunison", "'rsync' has no effect in swunison"])
    }

    /// The user-visible preference names of Unison 2.53.8 (every `Prefs.create*` / `Pred.create`
    /// outside its internal "pseudo" category, plus aliases and removed names).
    static let unisonNames = """
        acl addprefsto addversionno atomic auto backup backupcurr backupcurrnot backupdir backuploc backupnot
        backupprefix backups backupsuffix batch clientHostName color confirmbigdel confirmmerge contactquietly
        copymax copyonconflict copyprog copyprogrest copythreshold debug debugtimes diff doc dontchmod dumbtty
        dumparchives expert fastcheck fastercheckUNSAFE fat follow force forcepartial group halfduplex height i
        ignore ignorearchives ignorecase ignoreinodenumbers ignorelocks ignorenot immutable immutablenot include
        keeptempfilesaftermerge key killserver label links listen log logfile maxbackups maxerrors maxsizethreshold
        maxthreads merge mountpoint moves-experimental nocreation nocreationpartial nodeletion nodeletionpartial
        noupdate noupdatepartial numericids owner path perms prefer preferpartial prefsdocs prefsman repeat retry
        root rootalias rsrc rsync selftest server servercmd showarchive showprev silent socket sortbysize sortfirst
        sortlast sortnewfirst source sshargs sshcmd stream terse testserver times timers ui unicode version watch
        xattrignore xattrignorenot xattrs xferbycopying
        confirmbigdeletes numericIds backuplocation mirrorversions backupversions pretendwin killServer testServer
        showArchiveName host rshcmd rshargs sshversion copyquoterem
        serverdeploy sshcompression sshkeepalive sshtimeout sshport sshuser delay
        """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)

    @Test func everyUnisonPreferenceNameIsKnown() {
        #expect(Self.unisonNames.count > 130)
        let unknown = Self.unisonNames.filter { PreferenceTable.lookup($0) == nil }
        #expect(unknown.isEmpty, "unknown: \(unknown)")
        #expect(PreferenceTable.lookup("frobnicate") == nil)
        #expect(PreferenceTable.lookup("Batch") == nil)  // names are case-sensitive, as in Unison
    }

    @Test func suggestions() {
        #expect(PreferenceTable.suggestion(for: "prefr") == "prefer")
        #expect(PreferenceTable.suggestion(for: "ignor") == "ignore")
        #expect(PreferenceTable.suggestion(for: "Batch") == "batch")
        #expect(PreferenceTable.suggestion(for: "confirmbigdelete") == "confirmbigdel")
        #expect(PreferenceTable.suggestion(for: "frobnicate") == nil)
        #expect(PreferenceTable.editDistance("kitten", "sitting") == 3)
    }
}
