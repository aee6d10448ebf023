import SwunisonModel
import SwunisonReconcile
import Testing

/// One expected plan item: path, decision, and the paths of its descendants (subtree items).
struct Expected: Sendable {
    var path: RelativePath
    var decision: Decision
    var descendants: [RelativePath]

    func mirrored() -> Expected { Expected(path: path, decision: decision.mirrored(), descendants: descendants) }
}

func expect(_ text: String, _ decision: Decision, descendants: [String] = []) -> Expected {
    Expected(path: path(text), decision: decision, descendants: descendants.map(path))
}

/// A row of the reconciliation table: states in walk order, options, and the plan expected.
struct ReconcileCase: Sendable, CustomTestStringConvertible {
    var description: String
    var states: [PathState]
    var options: ReconcileOptions = ReconcileOptions()
    var expected: [Expected]

    var testDescription: String { description }

    /// The same row with A and B swapped: the plan must be the mirror image.
    func mirrored() -> ReconcileCase {
        ReconcileCase(description: description + " (mirrored)", states: states.map { $0.mirrored() },
                      options: options.mirrored(), expected: expected.map { $0.mirrored() })
    }
}

enum Orientation: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case asWritten, mirrored
    var testDescription: String { rawValue }
}

let none = ReconcileOptions()
let newer = ReconcileOptions(prefer: .newer)
let older = ReconcileOptions(prefer: .older)
let preferA = ReconcileOptions(prefer: .side(.a))
let preferB = ReconcileOptions(prefer: .side(.b))

let reconcileCases: [ReconcileCase] = [
    // MARK: A equals B
    ReconcileCase(description: "A equals B equals archive (a fingerprint moved): nothing",
                  states: [state("p", tF1, tF1Fingerprinted, tF1)], expected: []),
    ReconcileCase(description: "both deleted: archive only",
                  states: [state("p", tF1, nil, nil)], expected: [expect("p", .archiveOnly)]),
    ReconcileCase(description: "both made the same change: archive only",
                  states: [state("p", tF1, tF2, tF2)], expected: [expect("p", .archiveOnly)]),
    ReconcileCase(description: "both created the same file: archive only",
                  states: [state("p", nil, tF1, tF1)], expected: [expect("p", .archiveOnly)]),
    ReconcileCase(description: "mtime moved with times = false: archive only",
                  states: [state("p", tF1, tF1Touched, tF1)],
                  options: ReconcileOptions(attributes: AttributeSelection(times: false)),
                  expected: [expect("p", .archiveOnly)]),
    ReconcileCase(description: "mode moved outside the perms mask: archive only",
                  states: [state("p", tF1, tF1Private, tF1)],
                  options: ReconcileOptions(attributes: AttributeSelection(permissionMask: 0)),
                  expected: [expect("p", .archiveOnly)]),

    // MARK: only one side differs from the archive
    ReconcileCase(description: "only A modified: propagate A",
                  states: [state("p", tF1, tF2, tF1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "only A created: propagate A",
                  states: [state("p", nil, tF1, nil)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "only A deleted: propagate the deletion",
                  states: [state("p", tF1, nil, tF1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "only A changed the mode: propagate attributes",
                  states: [state("p", tF1, tF1Private, tF1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "only A touched the mtime (times = true): propagate attributes",
                  states: [state("p", tF1, tF1Touched, tF1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "only A changed a symlink target: propagate A",
                  states: [state("p", tL1, tL2, tL1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "A changed a file into a symlink: propagate A",
                  states: [state("p", tF1, tL1, tF1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "A changed a symlink into a file: propagate A",
                  states: [state("p", tL1, tF1, tL1)], expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "other replica's edits are untouched by a policy",
                  states: [state("p", tF1, tF2, tF1)], options: preferB, expected: [expect("p", .propagate(from: .a))]),

    // MARK: both differ, neither a directory: conflicts and policies
    ReconcileCase(description: "both changed, no preference: conflict",
                  states: [state("p", tF1, tF3, tF2)],
                  expected: [expect("p", .conflict(reason: "both changed; no preference set"))]),
    ReconcileCase(description: "both changed, newer: later mtime wins",
                  states: [state("p", tF1, tF3, tF2)], options: newer,
                  expected: [expect("p", .resolvedConflict(from: .a, reason: "both changed; newer kept"))]),
    ReconcileCase(description: "both changed, older: earlier mtime wins",
                  states: [state("p", tF1, tF3, tF2)], options: older,
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "both changed; older kept"))]),
    ReconcileCase(description: "both changed, newer, equal mtimes: unresolved",
                  states: [state("p", tF1, tF3SameTime, tF2)], options: newer,
                  expected: [expect("p", .conflict(reason: "both changed; same modification time"))]),
    ReconcileCase(description: "both changed, older, equal mtimes: unresolved",
                  states: [state("p", tF1, tF3SameTime, tF2)], options: older,
                  expected: [expect("p", .conflict(reason: "both changed; same modification time"))]),
    ReconcileCase(description: "both changed, prefer B: B wins",
                  states: [state("p", tF1, tF3, tF2)], options: preferB,
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "both changed; preferred side kept"))]),
    ReconcileCase(description: "modified (older mtime) vs deleted, newer: modification beats deletion",
                  states: [state("p", tF1, tF2Old, nil)], options: newer,
                  expected: [expect("p", .resolvedConflict(
                      from: .a, reason: "changed on one side, deleted on the other; modification kept over deletion"))]),
    ReconcileCase(description: "modified vs deleted, older: modification still beats deletion",
                  states: [state("p", tF1, tF3, nil)], options: older,
                  expected: [expect("p", .resolvedConflict(
                      from: .a, reason: "changed on one side, deleted on the other; modification kept over deletion"))]),
    ReconcileCase(description: "modified vs deleted, prefer the deleting side: deletion wins",
                  states: [state("p", tF1, tF2, nil)], options: preferB,
                  expected: [expect("p", .resolvedConflict(
                      from: .b, reason: "changed on one side, deleted on the other; preferred side kept"))]),
    ReconcileCase(description: "modified vs deleted, no preference: conflict",
                  states: [state("p", tF1, tF2, nil)],
                  expected: [expect("p", .conflict(reason: "changed on one side, deleted on the other; no preference set"))]),
    ReconcileCase(description: "both changed the mode differently: attribute conflict",
                  states: [state("p", tF1, tF1Private, tF1GroupReadable)],
                  expected: [expect("p", .conflict(reason: "both changed properties; no preference set"))]),
    ReconcileCase(description: "both retargeted a symlink, newer",
                  states: [state("p", tL1, tL3, tL2)], options: newer,
                  expected: [expect("p", .resolvedConflict(from: .a, reason: "both changed; newer kept"))]),
    ReconcileCase(description: "file vs symlink replacing a file: kind conflict",
                  states: [state("p", tF1, tL1, tF2)],
                  expected: [expect("p", .conflict(reason: "both changed; no preference set"))]),

    // MARK: kind changes to and from directories (subtree items)
    ReconcileCase(description: "A turned a file into a directory: one subtree item",
                  states: [state("p", tF1, tD, tF1), state("p/x", nil, tF2, nil), state("p/y", nil, tD, nil),
                           state("p/y/z", nil, tF3, nil), state("p-q", tF1, tF1, tF2)],
                  expected: [expect("p", .propagate(from: .a), descendants: ["p/x", "p/y", "p/y/z"]),
                             expect("p-q", .propagate(from: .b))]),
    ReconcileCase(description: "A turned a directory into a file, B untouched inside",
                  states: [state("p", tD, tF1, tD), state("p/x", tF1, nil, tF1)],
                  expected: [expect("p", .propagate(from: .a), descendants: ["p/x"])]),
    ReconcileCase(description: "A turned a directory into a symlink, B changed inside: conflict",
                  states: [state("p", tD, tL1, tD), state("p/x", tF1, nil, tF2)],
                  expected: [expect("p", .conflict(
                      reason: "directory replaced on one side, changed inside on the other; no preference set"),
                      descendants: ["p/x"])]),
    ReconcileCase(description: "directory replaced vs changed inside, newer: the latest change inside counts",
                  states: [state("p", tD, tL1, tD), state("p/x", tF1, nil, tF2)], options: newer,
                  expected: [expect("p", .resolvedConflict(
                      from: .b, reason: "directory replaced on one side, changed inside on the other; newer kept"),
                      descendants: ["p/x"])]),
    ReconcileCase(description: "directory replaced vs changed inside, older",
                  states: [state("p", tD, tL1, tD), state("p/x", tF1, nil, tF2)], options: older,
                  expected: [expect("p", .resolvedConflict(
                      from: .a, reason: "directory replaced on one side, changed inside on the other; older kept"),
                      descendants: ["p/x"])]),
    ReconcileCase(description: "file became a directory on A and a symlink on B, newer",
                  states: [state("p", tF1, tD, tL1), state("p/x", nil, tF2, nil)], options: newer,
                  expected: [expect("p", .resolvedConflict(from: .a, reason: "both changed; newer kept"),
                                    descendants: ["p/x"])]),
    ReconcileCase(description: "directory on A, file on B, no archive: subtree conflict",
                  states: [state("p", nil, tD, tF1), state("p/x", nil, tF2, nil)],
                  expected: [expect("p", .conflict(reason: "both created, contents differ; no preference set"),
                                    descendants: ["p/x"])]),

    // MARK: directories
    ReconcileCase(description: "new directory on A: one subtree item, sibling after it separate",
                  states: [state("d", nil, tD, nil), state("d/a", nil, tF1, nil), state("d/sub", nil, tD, nil),
                           state("d/sub/x", nil, tF2, nil), state("d-e", nil, nil, tF1)],
                  expected: [expect("d", .propagate(from: .a), descendants: ["d/a", "d/sub", "d/sub/x"]),
                             expect("d-e", .propagate(from: .b))]),
    ReconcileCase(description: "directory deleted on A, B untouched inside: propagate the deletion",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF1), state("d/y", tF2, nil, tF2)],
                  expected: [expect("d", .propagate(from: .a), descendants: ["d/x", "d/y"])]),
    ReconcileCase(description: "directory deleted on A, B also deleted a file inside: they agree",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, nil), state("d/y", tF2, nil, tF2)],
                  expected: [expect("d", .propagate(from: .a), descendants: ["d/x", "d/y"])]),
    ReconcileCase(description: "directory deleted on A, B changed inside, no preference: conflict",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF3), state("d/y", tF2, nil, tF2)],
                  expected: [expect("d", .conflict(
                      reason: "directory deleted on one side, changed inside on the other; no preference set"),
                      descendants: ["d/x", "d/y"])]),
    ReconcileCase(description: "directory deleted on A, B changed inside, newer: the changed side wins",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF2Old), state("d/y", tF2, nil, tF2)],
                  options: newer,
                  expected: [expect("d", .resolvedConflict(
                      from: .b,
                      reason: "directory deleted on one side, changed inside on the other; modification kept over deletion"),
                      descendants: ["d/x", "d/y"])]),
    ReconcileCase(description: "directory deleted on A, B changed inside, older: the changed side wins",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF3), state("d/y", tF2, nil, tF2)],
                  options: older,
                  expected: [expect("d", .resolvedConflict(
                      from: .b,
                      reason: "directory deleted on one side, changed inside on the other; modification kept over deletion"),
                      descendants: ["d/x", "d/y"])]),
    ReconcileCase(description: "directory deleted on A, B changed inside, prefer A: deletion wins",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF3)], options: preferA,
                  expected: [expect("d", .resolvedConflict(
                      from: .a, reason: "directory deleted on one side, changed inside on the other; preferred side kept"),
                      descendants: ["d/x"])]),
    ReconcileCase(description: "directory deleted on A, B created a file inside: conflict",
                  states: [state("d", tD, nil, tD), state("d/new", nil, nil, tF1), state("d/x", tF1, nil, tF1)],
                  expected: [expect("d", .conflict(
                      reason: "directory deleted on one side, changed inside on the other; no preference set"),
                      descendants: ["d/new", "d/x"])]),
    ReconcileCase(description: "directory deleted on A, B changed its mode: modification beats deletion",
                  states: [state("d", tD, nil, tDPrivate), state("d/x", tF1, nil, tF1)], options: newer,
                  expected: [expect("d", .resolvedConflict(
                      from: .b, reason: "changed on one side, deleted on the other; modification kept over deletion"),
                      descendants: ["d/x"])]),
    ReconcileCase(description: "directory deleted on both: archive only, path by path",
                  states: [state("d", tD, nil, nil), state("d/x", tF1, nil, nil)],
                  expected: [expect("d", .archiveOnly), expect("d/x", .archiveOnly)]),
    ReconcileCase(description: "both created the same directory: children reconciled on their own",
                  states: [state("d", nil, tD, tD), state("d/x", nil, tF1, nil), state("d/y", nil, nil, tF2),
                           state("d/z", nil, tF1, tF2)],
                  expected: [expect("d", .archiveOnly), expect("d/x", .propagate(from: .a)),
                             expect("d/y", .propagate(from: .b)),
                             expect("d/z", .conflict(reason: "both created, contents differ; no preference set"))]),
    ReconcileCase(description: "both directories, only A changed the mode: attributes alone, children apart",
                  states: [state("d", tD, tDPrivate, tD), state("d/x", nil, nil, tF1)],
                  expected: [expect("d", .propagate(from: .a)), expect("d/x", .propagate(from: .b))]),
    ReconcileCase(description: "both directories, modes clash: attribute conflict for the directory alone",
                  states: [state("d", tD, tDPrivate, tDGroup), state("d/x", tF1, tF2, tF1)],
                  expected: [expect("d", .conflict(reason: "directory properties differ; no preference set")),
                             expect("d/x", .propagate(from: .a))]),
    ReconcileCase(description: "both directories, modes clash, prefer B",
                  states: [state("d", tD, tDPrivate, tDGroup), state("d/x", tF1, tF2, tF1)], options: preferB,
                  expected: [expect("d", .resolvedConflict(from: .b, reason: "directory properties differ; preferred side kept")),
                             expect("d/x", .propagate(from: .a))]),

    // MARK: preferpartial, force, forcepartial
    ReconcileCase(description: "preferpartial overrides prefer for its paths only",
                  states: [state("p", tF1, tF3, tF2), state("q", tF1, tF3, tF2)],
                  options: ReconcileOptions(prefer: .newer, preferFor: { $0 == path("p") ? .side(.b) : nil }),
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "both changed; preferred side kept")),
                             expect("q", .resolvedConflict(from: .a, reason: "both changed; newer kept"))]),
    ReconcileCase(description: "force B reverts a change made on A (the reverted version is a loser)",
                  states: [state("p", tF1, tF2, tF1)], options: ReconcileOptions(force: .side(.b)),
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "forced; reverts the change on the other side"))]),
    ReconcileCase(description: "force A on a change made on A: plain propagation",
                  states: [state("p", tF1, tF2, tF1)], options: ReconcileOptions(force: .side(.a)),
                  expected: [expect("p", .propagate(from: .a))]),
    ReconcileCase(description: "force overrides prefer on a conflict",
                  states: [state("p", tF1, tF3, tF2)], options: ReconcileOptions(prefer: .side(.b), force: .side(.a)),
                  expected: [expect("p", .resolvedConflict(from: .a, reason: "both changed; forced"))]),
    ReconcileCase(description: "force older sends the unchanged, older version back",
                  states: [state("p", tF1, tF2, tF1)], options: ReconcileOptions(force: .older),
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "forced; reverts the change on the other side"))]),
    ReconcileCase(description: "force newer with equal mtimes gives no direction: the conflict stays",
                  states: [state("p", tF1, tF3SameTime, tF2)], options: ReconcileOptions(force: .newer),
                  expected: [expect("p", .conflict(reason: "both changed; no preference set"))]),
    ReconcileCase(description: "forcepartial overrides force for its paths only",
                  states: [state("p", tF1, tF3, tF2), state("q", tF1, tF3, tF2)],
                  options: ReconcileOptions(force: .side(.a), forceFor: { $0 == path("p") ? .side(.b) : nil }),
                  expected: [expect("p", .resolvedConflict(from: .b, reason: "both changed; forced")),
                             expect("q", .resolvedConflict(from: .a, reason: "both changed; forced"))]),
    ReconcileCase(description: "force newer on a deleted directory changed inside: the changed side",
                  states: [state("d", tD, nil, tD), state("d/x", tF1, nil, tF3)], options: ReconcileOptions(force: .newer),
                  expected: [expect("d", .resolvedConflict(
                      from: .b, reason: "directory deleted on one side, changed inside on the other; forced"),
                      descendants: ["d/x"])]),
    ReconcileCase(description: "force leaves agreeing replicas alone",
                  states: [state("p", tF1, tF2, tF2)], options: ReconcileOptions(force: .side(.a)),
                  expected: [expect("p", .archiveOnly)]),

    // MARK: no archive (first run, --ignorearchives)
    ReconcileCase(description: "no archive: one-sided paths are copied, differing ones conflict, nothing is deleted",
                  states: [state("a", nil, tF1, nil), state("b", nil, nil, tF2), state("c", nil, tF1, tF2),
                           state("d", nil, tD, nil), state("d/x", nil, tF1, nil), state("e", nil, tF1, tF1),
                           state("f", nil, tDPrivate, tD), state("f/y", nil, nil, tL1)],
                  expected: [expect("a", .propagate(from: .a)), expect("b", .propagate(from: .b)),
                             expect("c", .conflict(reason: "both created, contents differ; no preference set")),
                             expect("d", .propagate(from: .a), descendants: ["d/x"]),
                             expect("e", .archiveOnly),
                             expect("f", .conflict(reason: "directory properties differ; no preference set")),
                             expect("f/y", .propagate(from: .b))]),
    ReconcileCase(description: "no archive, newer: differing files settled by mtime",
                  states: [state("c", nil, tF1, tF2)], options: newer,
                  expected: [expect("c", .resolvedConflict(from: .b, reason: "both created, contents differ; newer kept"))]),
]

@Test("reconciliation table", arguments: reconcileCases, Orientation.allCases)
func reconcileTable(_ row: ReconcileCase, _ orientation: Orientation) {
    let c = orientation == .mirrored ? row.mirrored() : row
    let plan = reconcile(c.states, options: c.options)

    #expect(plan.map(\.path) == c.expected.map(\.path), "\(c.description)")
    for (item, expected) in zip(plan, c.expected) {
        #expect(item.decision == expected.decision, "\(c.description): \(item.path)")
        #expect(item.descendants.map(\.path) == expected.descendants, "\(c.description): \(item.path)")
        // A subtree item carries exactly the input states beneath it, unchanged.
        if !item.descendants.isEmpty {
            let beneath = c.states.filter { $0.path.isStrictDescendant(of: item.path) }
            #expect(item.descendants == beneath, "\(c.description): \(item.path)")
        }
        #expect(item.state == c.states.first { $0.path == item.path }, "\(c.description): \(item.path)")
    }
}

/// Every row must also go through the streaming form, fed one state at a time, with the same result.
@Test("streaming reconciler matches reconcile()", arguments: reconcileCases)
func streamingMatchesBatch(_ row: ReconcileCase) {
    var reconciler = Reconciler(options: row.options)
    var plan: [PlanItem] = []
    for s in row.states { reconciler.add(s, to: &plan) }
    reconciler.finish(to: &plan)
    #expect(plan == reconcile(row.states, options: row.options))
}

/// The mirror of a plan is the plan of the mirror, item by item (including change kinds).
@Test("plan of mirrored input is the mirrored plan", arguments: reconcileCases)
func mirroredPlan(_ row: ReconcileCase) {
    let plan = reconcile(row.states, options: row.options)
    let mirror = row.mirrored()
    #expect(reconcile(mirror.states, options: mirror.options) == plan.map { $0.mirrored() })
}
