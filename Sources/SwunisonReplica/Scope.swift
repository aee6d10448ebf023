import SwunisonFS
import SwunisonModel

/// What a scan may report: paths at or beneath the scanned subtrees, none of them ignored (nor
/// beneath an ignored directory), none with a name of swunison's temporary files.
///
/// A replica applies these rules itself while it walks, so an honest one never reports such a
/// path. The session checks every reported path again on receipt: a hostile or broken server
/// must not be able to make the client create `.ssh/rc` under a root whose profile says
/// `ignore = Path .ssh`. A path outside is a protocol error that stops the run before anything
/// changes.
public struct ScanScope: Sendable {
    /// The scanned subtrees (empty: the whole root).
    public let paths: [RelativePath]
    public let rules: IgnoreRules

    public init(paths: [RelativePath], rules: IgnoreRules) {
        self.paths = paths.contains(where: \.isRoot) ? [] : paths
        self.rules = rules
    }

    /// Why `path` lies outside, or nil when it is inside. `checkedParent`: the caller knows the
    /// parent is inside (saves looking at every ancestor again).
    public func violation(_ path: RelativePath, checkedParent: Bool = false) -> String? {
        if path.isRoot { return paths.isEmpty ? nil : "the root, outside the scanned paths" }
        if !paths.isEmpty && !paths.contains(where: { path.isDescendant(orEqualTo: $0) }) {
            return "outside the scanned paths (\(paths.map(\.description).joined(separator: ", ")))"
        }
        if let name = path.lastComponent, name.bytes.starts(with: swunisonTemporaryPrefix) {
            return "a name of swunison's temporary files"
        }
        if rules.isIgnored(path) { return "ignored by the profile" }
        if checkedParent { return nil }
        var ancestor = path.parent
        while let current = ancestor, !current.isRoot {
            if let name = current.lastComponent, name.bytes.starts(with: swunisonTemporaryPrefix) {
                return "beneath a name of swunison's temporary files (\(current))"
            }
            if rules.isIgnored(current) { return "beneath \(current), which the profile ignores" }
            ancestor = current.parent
        }
        return nil
    }
}

/// Checks a stream of reported paths against a ``ScanScope``, remembering the directories found
/// inside so that each path costs one look at its own name (scans report in walk order).
public struct ScanScopeCheck: Sendable {
    public let scope: ScanScope
    private var insideDirectories: Set<RelativePath> = []

    public init(_ scope: ScanScope) { self.scope = scope }

    /// Why `change` lies outside the scope, or nil.
    public mutating func violation(_ change: ScanChange) -> String? {
        let parentInside = change.path.parent.map { insideDirectories.contains($0) } ?? false
        if let reason = scope.violation(change.path, checkedParent: parentInside) { return reason }
        if change.new?.kind == .directory { insideDirectories.insert(change.path) }
        return nil
    }
}
