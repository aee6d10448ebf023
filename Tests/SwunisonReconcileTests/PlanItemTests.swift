import SwunisonModel
import SwunisonReconcile
import Testing

/// Reconciles one state list with default options and returns the single item for `text`.
private func item(_ states: [PathState], at text: String, options: ReconcileOptions = ReconcileOptions()) -> PlanItem? {
    reconcile(states, options: options).first { $0.path == path(text) }
}

@Test func changeKindsForNewEntriesNameTheKind() throws {
    let plan = reconcile([state("f", nil, tF1, nil), state("l", nil, nil, tL1), state("n", nil, tD, nil)],
                         options: ReconcileOptions())
    #expect(plan.map(\.changeA) == [.new(.file), .unchanged, .new(.directory)])
    #expect(plan.map(\.changeB) == [.unchanged, .new(.symlink), .unchanged])
    #expect(plan.map(\.changeA.description) == ["new file", "", "new dir"])
    #expect(plan[1].changeB.description == "new link")
}

@Test func changeKindsForEditsDeletionsAndAttributes() throws {
    let modified = try #require(item([state("p", tF1, tF2, tF1)], at: "p"))
    #expect(modified.changeA == .changed && modified.changeB == .unchanged)
    let kindChange = try #require(item([state("p", tF1, tL1, tF1)], at: "p"))
    #expect(kindChange.changeA == .changed)
    let props = try #require(item([state("p", tF1, tF1Private, tF1)], at: "p"))
    #expect(props.changeA == .props)
    let deleted = try #require(item([state("p", tF1, tF2, nil)], at: "p"))
    #expect(deleted.changeA == .changed && deleted.changeB == .deleted)
}

@Test func deletedDirectoryVersusEditInsideReadsAsDeletedAgainstChanged() throws {
    let conflict = try #require(item([state("d", tD, nil, tD), state("d/x", tF1, nil, tF2)], at: "d"))
    #expect(conflict.changeA == .deleted)
    #expect(conflict.changeB == .changed, "B's directory is unchanged itself but something inside changed")
    #expect(conflict.description == "deleted  <-?-> changed    d")
    #expect(conflict.mirrored().description == "changed  <-?-> deleted    d")
}

@Test func planLinesFollowUnisonLayout() throws {
    let newFile = try #require(item([state("a/b", nil, tF1, nil)], at: "a/b"))
    #expect(newFile.description == "new file ---->            a/b")
    let fromB = try #require(item([state("c", tF1, tF1, tF2)], at: "c"))
    #expect(fromB.description == "         <---- changed    c")
    let resolved = try #require(item([state("c", tF1, tF3, tF2)], at: "c", options: ReconcileOptions(prefer: .newer)))
    #expect(resolved.arrow == "--?->")
    #expect(resolved.mirrored().arrow == "<-?--")
}

@Test func decisionHelpers() {
    #expect(Decision.propagate(from: .a).source == .a)
    #expect(Decision.resolvedConflict(from: .b, reason: "r").source == .b)
    #expect(Decision.conflict(reason: "r").source == nil)
    #expect(Decision.archiveOnly.source == nil)
    #expect(Decision.conflict(reason: "r").isConflict && !Decision.propagate(from: .a).isConflict)
    #expect(Decision.resolvedConflict(from: .a, reason: "r").mirrored() == .resolvedConflict(from: .b, reason: "r"))
}

@Test func optionsMirrorSwapsEverySidePolicy() {
    let options = ReconcileOptions(prefer: .side(.a), preferFor: { _ in .side(.b) }, force: .newer,
                                   forceFor: { $0 == path("x") ? .side(.a) : nil })
    let mirror = options.mirrored()
    #expect(mirror.prefer == .side(.b))
    #expect(mirror.preference(for: path("y")) == .side(.a))
    #expect(mirror.force == .newer)
    #expect(mirror.forced(for: path("x")) == .side(.b))
    #expect(mirror.forced(for: path("y")) == .newer)
}
