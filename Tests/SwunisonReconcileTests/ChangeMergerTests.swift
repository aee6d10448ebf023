import SwunisonModel
import SwunisonReconcile
import Testing

private func change(_ text: String, _ old: Entry?, _ new: Entry?) -> ScanChange {
    ScanChange(path: path(text), old: old, new: new)
}

@Test func interleavedReportsMergeInWalkOrder() throws {
    // Given: A and B each changed some paths; "c" on both, "a-b" sorts after "a/x".
    let a = [change("a", tF1, tF2), change("a/x", nil, tF1), change("c", tF1, tF3), change("e", tF2, nil)]
    let b = [change("a-b", nil, tL1), change("b", tD, nil), change("c", tF1, tF2), change("d", nil, tF1)]

    // When
    let states = try ChangeMerger.merge(a: a, b: b)

    // Then: one state per path, in walk order, unchanged sides holding the archive entry.
    #expect(states == [
        state("a", tF1, tF2, tF1),
        state("a/x", nil, tF1, nil),
        state("a-b", nil, nil, tL1),
        state("b", tD, tD, nil),
        state("c", tF1, tF3, tF2),
        state("d", nil, nil, tF1),
        state("e", tF2, nil, tF2),
    ])
}

@Test func oneSidedReports() throws {
    let onlyA = try ChangeMerger.merge(a: [change("x", tF1, tF2), change("y", nil, tD)], b: [])
    #expect(onlyA == [state("x", tF1, tF2, tF1), state("y", nil, tD, nil)])
    let onlyB = try ChangeMerger.merge(a: [], b: [change("x", tF1, nil)])
    #expect(onlyB == [state("x", tF1, tF1, nil)])
    #expect(try ChangeMerger.merge(a: [], b: []).isEmpty)
}

@Test func bothSidedReportsTakeBothNewEntries() throws {
    let states = try ChangeMerger.merge(a: [change("p", tF1, nil), change("q", nil, tF1)],
                                        b: [change("p", tF1, tF2), change("q", nil, tF3)])
    #expect(states == [state("p", tF1, nil, tF2), state("q", nil, tF1, tF3)])
}

@Test func batchesAreEmittedOnlyOnceSettled() throws {
    var merger = ChangeMerger()
    // A is ahead: nothing can be emitted until B says where it is.
    #expect(try merger.feed(side: .a, [change("a", tF1, tF2), change("c", tF1, tF2)]).isEmpty)
    #expect(merger.bufferedCount == 2)
    // B reports "b": "a" and "b" are settled; "c" waits (B may still report it).
    #expect(try merger.feed(side: .b, [change("b", nil, tF1)]) == [state("a", tF1, tF2, tF1), state("b", nil, nil, tF1)])
    #expect(merger.bufferedCount == 1)
    // B reports "c" too: both sides' changes combine.
    #expect(try merger.feed(side: .b, [change("c", tF1, tF3), change("d", nil, tF1)]) == [state("c", tF1, tF2, tF3)])
    // A is done: B's "d" is settled.
    #expect(merger.finish(side: .a) == [state("d", nil, nil, tF1)])
    #expect(try merger.feed(side: .b, [change("e", tF1, nil)]) == [state("e", tF1, tF1, nil)])
    #expect(merger.finish().isEmpty)
    #expect(merger.bufferedCount == 0)
}

@Test func outOfOrderReportsAreRejected() throws {
    var merger = ChangeMerger()
    #expect(throws: MergeError.outOfOrder(side: .a, path: path("a"), previous: path("b"))) {
        _ = try merger.feed(side: .a, [change("b", nil, tF1), change("a", nil, tF1)])
    }
    // The rejected batch left nothing behind; order is checked across batches too.
    #expect(merger.bufferedCount == 0)
    _ = try merger.feed(side: .b, [change("a/x", nil, tF1)])
    #expect(throws: MergeError.outOfOrder(side: .b, path: path("a"), previous: path("a/x"))) {
        _ = try merger.feed(side: .b, [change("a", nil, tD)])
    }
    #expect(throws: MergeError.outOfOrder(side: .b, path: path("a/x"), previous: path("a/x"))) {
        _ = try merger.feed(side: .b, [change("a/x", nil, tF1)])
    }
    _ = merger.finish(side: .b)
    #expect(throws: MergeError.fedAfterFinish(side: .b)) {
        _ = try merger.feed(side: .b, [change("z", nil, tF1)])
    }
}

@Test func mergeOfWholeReportsEqualsTheIncrementalMergeAndChecksOrder() throws {
    let a = [change("a", tF1, tF2), change("c", tF1, tF2), change("c/x", nil, tF1), change("e", tF1, nil)]
    let b = [change("b", nil, tF1), change("c", tF1, tF3), change("d", nil, tF1)]
    var merger = ChangeMerger()
    var incremental = try merger.feed(side: .b, Array(b.prefix(1)))
    incremental += try merger.feed(side: .a, a)
    incremental += try merger.feed(side: .b, Array(b.dropFirst()))
    incremental += merger.finish()
    #expect(try ChangeMerger.merge(a: a, b: b) == incremental)
    #expect(incremental.map(\.path.description) == ["a", "b", "c", "c/x", "d", "e"])
    #expect(throws: MergeError.outOfOrder(side: .b, path: path("b"), previous: path("d"))) {
        _ = try ChangeMerger.merge(a: a, b: [change("d", nil, tF1), change("b", nil, tF1)])
    }
    #expect(throws: MergeError.outOfOrder(side: .a, path: path("a"), previous: path("a"))) {
        _ = try ChangeMerger.merge(a: [change("a", nil, tF1), change("a", nil, tF1)], b: [])
    }
}

@Test func mergedReportsOfADeletedDirectoryReconcileAsOneSubtree() throws {
    // Given: A deleted directory d (its report lists every archived path beneath it); B edited d/y.
    let a = [change("d", tD, nil), change("d/x", tF1, nil), change("d/y", tF1, nil), change("d/z", tD, nil),
             change("d/z/w", tF2, nil)]
    let b = [change("d/y", tF1, tF3)]

    // When
    let plan = reconcile(try ChangeMerger.merge(a: a, b: b), options: ReconcileOptions(prefer: .newer))

    // Then: one item for the subtree, kept for B, which changed something inside.
    #expect(plan.count == 1)
    #expect(plan.first?.path == path("d"))
    #expect(plan.first?.decision.source == .b)
    #expect(plan.first?.descendants.map(\.path) == [path("d/x"), path("d/y"), path("d/z"), path("d/z/w")])
    #expect(plan.first?.descendants[1] == state("d/y", tF1, nil, tF3))
}
