import SwunisonModel
import SwunisonReplica

/// Folds a batch of notices into the fewest that still say where to rescan, in the order first
/// seen: each path once; a path beneath another changed path of the batch is dropped (that
/// directory is rescanned whole); after `.overflow` or `.rootBack` (rescan everything) no
/// `.changed` is needed at all; `.unwatched` notices merge into one, with the latest counts.
func coalesce(_ notices: [ChangeNotice]) -> [ChangeNotice] {
    guard notices.count > 1 else { return notices }
    let rescansAll = notices.contains { $0 == .overflow || $0 == .rootBack }
    var kept: Set<RelativePath> = []
    if !rescansAll {
        // In walk order a directory's descendants follow it at once (`/` sorts first), so each
        // path need only be compared with the last one kept.
        var paths: [RelativePath] = []
        for case .changed(let path) in notices { paths.append(path) }
        var last: RelativePath?
        for path in paths.sorted() {
            if let last, path.isDescendant(orEqualTo: last) { continue }
            kept.insert(path)
            last = path
        }
    }
    var unwatchedPaths: [RelativePath] = []
    var unwatchedCounts: (needed: Int, available: Int)?
    for case let .unwatched(paths, needed, available) in notices {
        for path in paths where !unwatchedPaths.contains(path) { unwatchedPaths.append(path) }
        unwatchedCounts = (needed, available)
    }

    var out: [ChangeNotice] = []
    var sawOverflow = false, sawUnwatched = false
    for notice in notices {
        switch notice {
        case .changed(let path):
            if kept.remove(path) != nil { out.append(notice) }
        case .overflow:
            if !sawOverflow { out.append(notice) }
            sawOverflow = true
        case .unwatched:
            if !sawUnwatched, let counts = unwatchedCounts {
                out.append(.unwatched(unwatchedPaths, needed: counts.needed, available: counts.available))
            }
            sawUnwatched = true
        case .rootMissing, .rootBack:
            if out.last != notice { out.append(notice) }
        }
    }
    return out
}
