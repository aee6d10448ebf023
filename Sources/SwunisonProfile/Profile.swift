import SwunisonModel


/// A `preferpartial` / `forcepartial` rule: paths matching `pattern` are settled by `prefer`.
public struct PartialPreference: Sendable, Hashable {
    public var pattern: PathPattern
    public var prefer: Prefer
    public init(pattern: PathPattern, prefer: Prefer) { self.pattern = pattern; self.prefer = prefer }
}

/// Where backups go (`backuploc`).
public enum BackupLocation: String, Sendable, Hashable {
    /// All backups in one directory, `backupdir` (Unison's default).
    case central
    /// Next to the file, named with `backupprefix` / `backupsuffix`.
    case local
}

/// How to reach the remote host and start `swunison server` there.
public struct SSHOptions: Sendable, Hashable {
    /// The ssh program Unison would run (`sshcmd`, default `ssh`); kept for display.
    public var command: String = "ssh"
    /// Extra ssh arguments, as written (`sshargs`); interpreting them is up to the SSH layer.
    public var arguments: String?
    /// The command that starts the server on the remote host (`servercmd`); nil = `swunison server`.
    public var serverCommand: String?
    /// Append the version number to the server command (`addversionno`).
    public var addVersionNumber: Bool = false
    /// Copy the local `swunison` binary to the remote host when it is missing or different (`serverdeploy`).
    public var deployServer: Bool = false
    /// Compress the ssh transport (`sshcompression`).
    public var compression: Bool = false
    /// Seconds between keepalive probes (`sshkeepalive`); nil = none.
    public var keepAliveSeconds: Int?
    /// Seconds to wait for the connection (`sshtimeout`); nil = library default.
    public var timeoutSeconds: Int?
    /// Seconds a remote replica's requests may make no progress before the run stops with a
    /// report of what was waiting (`stalltimeout`).
    public var stallTimeoutSeconds: Int = 120
    /// Port when the root names none (`sshport`).
    public var port: Int?
    /// User when the root names none (`sshuser`).
    public var user: String?

    public init() {}
}

/// A fully typed profile: what the profile file(s) and the command line say, with defaults as
/// Unison's unless swunison states otherwise (`times` defaults to true, `maxbackups` to 3).
///
/// Only ``ProfileLoader`` reads raw text; everything here is checked.
public struct Profile: Sendable {
    /// The profile name as given (`default` when none was given).
    public var name: String
    /// The top-level profile file read, nil when none was (two roots and no `default.prf`).
    public var sourceFile: String?
    /// The profile directory (`$SWUNISON` or `~/.swunison`): logs and archives live here.
    public var profileDirectory: String

    /// Exactly two roots, in order: the first is ``Side/a``, the second ``Side/b``.
    public var roots: [Root]
    /// Subtrees to synchronise (`path`); empty means everything.
    public var paths: [RelativePath] = []
    /// Compiled `ignore` / `ignorenot`.
    public var ignore: IgnoreRules = .none
    /// The raw `ignore` / `ignorenot` specifications, for `ScanRequest` (they cross the wire as text).
    public var ignorePatterns: [String] = []
    public var ignoreNotPatterns: [String] = []
    /// Which paths get a backup when overwritten or deleted (`backup` / `backupnot`;
    /// `backups = true` means `backup = Name *`). Conflict losers are kept regardless (Invariant 3).
    public var backup: IgnoreRules = .none

    /// No questions asked (`batch`).
    public var batch = false
    /// Accept non-conflicting default actions without asking (`auto`).
    public var auto = false
    /// Conflict policy (`prefer`); nil = ask, or skip in batch mode.
    public var prefer: Prefer?
    public var preferPartial: [PartialPreference] = []
    /// Settle every difference, not only conflicts, in this direction (`force`).
    public var force: Prefer?
    public var forcePartial: [PartialPreference] = []

    /// Stop before propagating the deletion of a whole replica (`confirmbigdel`, Invariant 6).
    public var confirmBigDeletes = true
    /// Trust cached digests when the stat fingerprint is unchanged (`fastcheck`).
    public var fastcheck = true
    /// Leave inode numbers out of the fastcheck fingerprint (`ignoreinodenumbers`).
    public var ignoreInodeNumbers = false
    /// Times to retry failed paths in this run (`retry`).
    public var retry = 0
    /// Which attributes are compared and propagated (`perms`, `owner`, `group`, `times`).
    public var attributes = AttributeSelection()
    /// Never change permissions of existing files (`dontchmod`; requires `perms = 0`).
    public var dontChmod = false
    /// Owner and group by number, not name (`numericids`).
    public var numericIds = false
    /// Synchronise symlinks as links (`links`; `false` makes them errors, as in Unison).
    public var links = true

    /// Backup directory (`backupdir`), resolved; nil = `<profileDirectory>/backup`.
    public var backupDir: String?
    public var backupLocation: BackupLocation = .central
    public var backupPrefix = ".bak.$VERSION."
    public var backupSuffix = ""
    /// Generations kept per path (`maxbackups`).
    public var maxBackups = 3
    /// Keep a copy of the losing side of a conflict next to the file (`copyonconflict`).
    public var copyOnConflict = false

    /// Write a log (`log`) to `logFile` (nil = `<profileDirectory>/swunison.log`).
    public var log = true
    public var logFile: String?
    public var silent = false
    public var terse = false
    /// Failed paths tolerated before the run stops (`maxerrors`).
    public var maxErrors = 1
    /// A name for the profile in listings (`label`).
    public var label: String?

    /// Plan only, change nothing (`--dry-run`, command line only).
    public var dryRun = false
    /// Ignore the archive: treat every path as new (`ignorearchives`).
    public var ignoreArchives = false
    /// Break a stale lock (`ignorelocks`).
    public var ignoreLocks = false
    /// Keep running, reacting to changes (`--watch`, `repeat = watch`).
    public var watch = false
    /// Repeat a full run every so many seconds (`repeat = N`, or the `N` of `watch+N`).
    public var repeatIntervalSeconds: Int?
    /// Seconds of quiet to wait after a change before syncing in watch mode (`delay`).
    public var delay: Double = 3
    /// In watch mode, the longest a change waits for its cycle, counted from the first change of
    /// a burst, however busy the tree stays (`maxdelay`).
    public var maxDelaySeconds: Double = 30
    /// In watch mode, at most this many inotify watches per root (`watchlimit`); nil = as many
    /// as the kernel allows. Subtrees beyond it are rescanned now and then instead.
    public var watchLimit: Int?
    /// Where the status report goes (`statusfile`), resolved; nil = beside the archive
    /// (`effectiveStatusFile` in SwunisonCore, which knows the archive's name).
    public var statusFile: String?

    public var ssh = SSHOptions()

    /// One line per preference that was accepted without effect, and similar notices.
    public var warnings: [Diagnostic] = []

    public init(name: String, profileDirectory: String, roots: [Root] = []) {
        self.name = name; self.profileDirectory = profileDirectory; self.roots = roots
    }

    /// `backupDir` or its default.
    public var effectiveBackupDirectory: String { backupDir ?? profileDirectory + "/backup" }

    /// `logFile` or its default.
    public var effectiveLogFile: String { logFile ?? profileDirectory + "/swunison.log" }

    /// The policy for `path`, as Unison applies the four preferences: a matching `forcepartial`
    /// rule, else a matching `preferpartial` rule, else `force`, else `prefer`. Among matching
    /// partial rules the one written last wins. `isForced` says whether it also overrides
    /// non-conflicting changes.
    public func policy(for path: RelativePath) -> (prefer: Prefer, isForced: Bool)? {
        if let rule = forcePartial.last(where: { $0.pattern.matches(path) }) { return (rule.prefer, true) }
        if let rule = preferPartial.last(where: { $0.pattern.matches(path) }) { return (rule.prefer, false) }
        if let force { return (force, true) }
        if let prefer { return (prefer, false) }
        return nil
    }
}
