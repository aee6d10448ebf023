import SwunisonModel
import SwunisonReconcile
import Testing

/// 2,000 directories of 100 files: 202,000 paths, all reported (A touched every file), merged and
/// reconciled in one pass. Quadratic merging or subtree handling would take hours at this size.
@Test func twoHundredThousandPathsReconcileInWalkOrder() throws {
    let directories = 2_000, filesPerDirectory = 100
    func name(_ i: Int, width: Int) -> String {
        let digits = String(i)
        return String(repeating: "0", count: width - digits.count) + digits
    }

    // Given: A deleted every 10th directory and touched every file elsewhere (new mtime, same
    // content); B rewrote file 00 of every 20th directory (inside some of A's deletions) and
    // file 50 of every other directory.
    var reportA: [ScanChange] = [], reportB: [ScanChange] = []
    reportA.reserveCapacity(directories * (filesPerDirectory + 1))
    for i in 0..<directories {
        let dir = "d" + name(i, width: 4)
        let deletedOnA = i % 10 == 0
        if deletedOnA { reportA.append(ScanChange(path: path(dir), old: tD, new: nil)) }
        for j in 0..<filesPerDirectory {
            let p = path(dir + "/f" + name(j, width: 2))
            let archived = file(UInt64(i * filesPerDirectory + j + 1), mtime: 100)
            var touched = archived
            touched.mtime = 200
            reportA.append(ScanChange(path: p, old: archived, new: deletedOnA ? nil : touched))
            let rewrittenOnB = (i % 20 == 0 && j == 0) || (i % 2 == 1 && j == 50)
            if rewrittenOnB { reportB.append(ScanChange(path: p, old: archived, new: file(0, mtime: 300))) }
        }
    }

    // When: fed in batches of 1,000, B's report first, then A's.
    var merger = ChangeMerger()
    var states: [PathState] = []
    for start in stride(from: 0, to: reportB.count, by: 1_000) {
        states += try merger.feed(side: .b, Array(reportB[start..<min(start + 1_000, reportB.count)]))
    }
    states += merger.finish(side: .b)
    for start in stride(from: 0, to: reportA.count, by: 1_000) {
        states += try merger.feed(side: .a, Array(reportA[start..<min(start + 1_000, reportA.count)]))
    }
    states += merger.finish()
    let plan = reconcile(states, options: ReconcileOptions(prefer: .newer))

    // Then
    #expect(states.count == 200 * (filesPerDirectory + 1) + 1_800 * filesPerDirectory)
    #expect(zip(plan, plan.dropFirst()).allSatisfy { $0.path < $1.path }, "plan in walk order")

    let subtrees = plan.filter { !$0.descendants.isEmpty }
    #expect(subtrees.count == 200, "one item per directory deleted on A")
    #expect(subtrees.allSatisfy { $0.descendants.count == filesPerDirectory })
    // Every 20th directory: B edited inside what A deleted; the modification wins under newer.
    #expect(subtrees.filter { $0.decision.isConflict }.count == 100)
    #expect(subtrees.filter { $0.decision.isConflict }.allSatisfy { $0.decision.source == .b })
    #expect(subtrees.filter { !$0.decision.isConflict }.allSatisfy { $0.decision == .propagate(from: .a) })

    // Outside deleted directories: 1,800 * 100 touched files, of which 1,000 also rewritten on B
    // (conflicts, B newer); the rest propagate A's new mtime.
    let single = plan.filter { $0.descendants.isEmpty }
    #expect(single.count == 1_800 * filesPerDirectory)
    #expect(single.filter { $0.decision == .propagate(from: .a) }.count == 1_800 * filesPerDirectory - 1_000)
    #expect(single.filter { $0.decision == .resolvedConflict(from: .b, reason: "both changed; newer kept") }.count == 1_000)
}
