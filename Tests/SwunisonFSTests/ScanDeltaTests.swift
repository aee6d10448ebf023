import Foundation
import Glibc
import SwunisonFS
import SwunisonModel
import Testing

@Suite struct ScanDeltaTests {
    @Test func unchangedTreeReportsNothingAndRereadsNothing() throws {
        let tree = try ScanFixture()
        try tree.mkdir("d")
        try tree.write("d/x", "x")
        try tree.write("f", "f")
        try tree.symlink("l", to: "f")
        let baseline = try tree.baseline()

        let run = try tree.scan(baseline: baseline)

        #expect(run.changes.isEmpty)
        #expect(run.outcome.entryCount == 4)
        #expect(run.outcome.hashedFiles == 0)
        #expect(run.outcome.refreshed.isEmpty)
    }

    @Test func aRootDescriptorScannedTwiceIsReadFromTheStartAgain() throws {
        let tree = try ScanFixture()
        try tree.write("a", "a")
        try tree.mkdir("d")
        try tree.write("d/b", "b")
        let baseline = try tree.baseline()
        let root = try DirectoryFD.openRoot(tree.rootPath)
        for round in 1...2 {
            var cursor = ArrayBaselineCursor(baseline)
            var changes: [ScanChange] = []
            let outcome = try scan(root: root, baseline: &cursor, options: ScanOptions(now: scanClockNow())) { changes += $0 }
            // A descriptor left at the end of the directory must not make everything look deleted.
            #expect(changes.isEmpty, "round \(round): \(changes.map(\.path))")
            #expect(outcome.entryCount == 3)
        }
    }

    @Test func reportsNewModifiedDeletedKindChangeAndModeChange() throws {
        let tree = try ScanFixture()
        try tree.write("f1", "first")
        try tree.write("f2", "second")
        try tree.mkdir("d")
        try tree.write("d/x", "x")
        try tree.mkdir("d/sub")
        try tree.write("d/sub/z", "z")
        try tree.write("k", "kind")
        try tree.write("m", "mode")
        let baseline = try tree.baseline()

        try tree.write("f1", "first, longer")
        try tree.remove("d")
        try tree.remove("k")
        try tree.mkdir("k")
        try tree.chmod("m", 0o600)
        try tree.write("n", "new")

        let run = try tree.scan(baseline: baseline)

        #expect(run.paths == ["d", "d/sub", "d/sub/z", "d/x", "f1", "k", "m", "n"])
        for gone in ["d", "d/sub", "d/sub/z", "d/x"] {
            let change = try #require(run.change(gone))
            #expect(change.new == nil && change.old != nil, "\(gone) should be reported deleted")
        }
        #expect(run.change("d")?.old?.kind == .directory)
        #expect(run.change("f1")?.old?.digest == scanDigest("first"))
        #expect(run.change("f1")?.new?.digest == scanDigest("first, longer"))
        #expect(run.change("k")?.old?.kind == .file)
        #expect(run.change("k")?.new?.kind == .directory)
        #expect(run.change("m")?.old?.mode == 0o644)
        #expect(run.change("m")?.new?.mode == 0o600)
        #expect(run.change("m")?.new?.digest == scanDigest("mode"))
        #expect(run.change("n")?.old == nil)
        #expect(run.change("n")?.new?.digest == scanDigest("new"))
        #expect(run.outcome.entryCount == 5)
    }

    @Test func directoryReplacedByFileReportsItsOldChildrenGone() throws {
        let tree = try ScanFixture()
        try tree.mkdir("d")
        try tree.write("d/a", "a")
        try tree.write("d-after", "after")
        let baseline = try tree.baseline()
        try tree.remove("d")
        try tree.write("d", "now a file")

        let run = try tree.scan(baseline: baseline)

        #expect(run.paths == ["d", "d/a"])
        #expect(run.change("d")?.new?.kind == .file)
        #expect(run.change("d/a")?.new == nil)
    }

    @Test func attributeSelectionDecidesWhatCounts() throws {
        let tree = try ScanFixture()
        try tree.write("perm", "p")
        try tree.write("time", "t")
        try tree.write("owner", "o")
        let baseline = try tree.baseline()
        try tree.chmod("perm", 0o600)
        try tree.setMTime("time", ScanFixture.pastTime + 5_000_000_000)
        let owned = chown(tree.absolute(Array("owner".utf8)), 12345, getgid())
        let canChown = owned == 0

        let everything = try tree.scan(baseline: baseline, attributes: AttributeSelection(owner: true))
        #expect(everything.paths == (canChown ? ["owner", "perm", "time"] : ["perm", "time"]))

        let nothing = try tree.scan(baseline: baseline,
                                    attributes: AttributeSelection(permissionMask: 0, owner: false, times: false))
        #expect(nothing.changes.isEmpty)
        // chmod, chown and utimensat all move ctime, so each file was reread and its fingerprint
        // refreshed, though none counts as a change.
        #expect(nothing.outcome.refreshed.map(\.path.description) == (canChown ? ["owner", "perm", "time"] : ["perm", "time"]))
        #expect(nothing.outcome.hashedFiles == (canChown ? 3 : 2))
        let refreshed = try #require(nothing.outcome.refreshed.last)
        #expect(refreshed.entry.mtime == ScanFixture.pastTime)  // the baseline entry, new fingerprint only
        #expect(refreshed.entry.fingerprint?.mtime == ScanFixture.pastTime + 5_000_000_000)
    }

    @Test func fullModeReportsEveryEntryAndNoDeletionsButStillFastchecks() throws {
        let tree = try ScanFixture()
        try tree.write("a", "a")
        try tree.write("b", "b")
        let baseline = try tree.baseline()
        try tree.remove("a")

        let run = try tree.scan(baseline: baseline, delta: false)

        #expect(run.paths == ["b"])
        #expect(run.change("b")?.old == nil)
        #expect(run.outcome.hashedFiles == 0)
    }

    @Test func requestedPathsAreMergedAndMissingOnesReportedAbsent() throws {
        let tree = try ScanFixture()
        try tree.mkdir("d")
        try tree.mkdir("d/sub")
        try tree.write("d/sub/f", "f")
        try tree.write("d/g", "g")
        try tree.mkdir("x")
        try tree.write("x/gone", "soon gone")
        try tree.write("outside", "o")
        let full = try tree.baseline()
        try tree.remove("x/gone")
        try tree.write("d/new", "n")
        try tree.write("outside", "changed, but not requested")

        let paths = [try scanPath("d/sub"), try scanPath("x/gone"), try scanPath("d")]
        let restricted = full.filter { row in paths.contains { row.path.isDescendant(orEqualTo: $0) } }
        let run = try tree.scan(baseline: restricted, paths: paths)

        #expect(run.paths == ["d/new", "x/gone"])
        #expect(run.change("x/gone")?.new == nil)
        #expect(run.outcome.entryCount == 5)  // d, d/g, d/new, d/sub, d/sub/f

        // A requested path under a missing directory is absent too, never an error.
        let absent = try tree.scan(baseline: [], paths: [try scanPath("no/such/dir")])
        #expect(absent.changes.isEmpty && absent.outcome.problems.isEmpty)
    }
}
