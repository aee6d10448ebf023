import SwunisonModel

/// Which directory each watch descriptor stands for: a tree of names, each node knowing its
/// parent's descriptor and its own name, never a full path.
///
/// A tree of 11,201 watched directories costs one small node each, and moving a directory
/// within the tree is one re-link, however large its subtree: the paths beneath it are
/// rebuilt from the names whenever an event needs one.
struct WatchTable {
    struct Node {
        /// The parent's descriptor; ``WatchTable/noParent`` for the root,
        /// ``WatchTable/detached`` once the directory left its place (deleted or moved away).
        var parent: Int32
        /// The directory's name in its parent (empty for the root).
        var name: [UInt8]
        /// Watched subdirectories by name.
        var children: [[UInt8]: Int32] = [:]
    }

    static let noParent: Int32 = -1
    static let detached: Int32 = -2

    private(set) var nodes: [Int32: Node] = [:]
    private(set) var rootWD: Int32?

    /// Number of watches.
    var count: Int { nodes.count }

    func contains(_ wd: Int32) -> Bool { nodes[wd] != nil }

    /// The path of the directory watched by `wd`, or nil when `wd` is unknown or detached.
    func path(of wd: Int32) -> RelativePath? {
        var names: [[UInt8]] = []
        var current = wd
        // Bounded: a table built from events can never loop, but a bug must not hang the thread.
        for _ in 0..<4096 {
            guard let node = nodes[current] else { return nil }
            if node.parent == Self.noParent {
                var bytes: [UInt8] = []
                for name in names.reversed() {
                    if !bytes.isEmpty { bytes.append(0x2F) }
                    bytes.append(contentsOf: name)
                }
                return RelativePath(uncheckedBytes: bytes)
            }
            if node.parent == Self.detached { return nil }
            names.append(node.name)
            current = node.parent
        }
        return nil
    }

    /// The watched subdirectory `name` of the directory watched by `parent`.
    func child(named name: [UInt8], of parent: Int32) -> Int32? {
        nodes[parent]?.children[name]
    }

    /// The descriptor watching `path`, if that directory is watched.
    func wd(at path: RelativePath) -> Int32? {
        guard var current = rootWD else { return nil }
        for component in path.components {
            guard let next = child(named: component.bytes, of: current) else { return nil }
            current = next
        }
        return current
    }

    /// Records `wd` as the root's watch.
    mutating func setRoot(_ wd: Int32) {
        if let old = rootWD, old != wd { _ = remove(old) }
        rootWD = wd
        nodes[wd, default: Node(parent: Self.noParent, name: [])].parent = Self.noParent
    }

    /// Records `wd` as the subdirectory `name` of `parent`: a new watch, or one that moved there
    /// (its subtree moves with it). A directory that held the name before is detached.
    /// - Returns: false, changing nothing, when that would make `wd` its own ancestor (the same
    ///   directory reached again through a bind mount) or `parent` is unknown.
    mutating func attach(_ wd: Int32, under parent: Int32, name: [UInt8]) -> Bool {
        guard wd != rootWD, nodes[parent] != nil, !isAncestor(wd, of: parent) else { return false }
        if let node = nodes[wd] {
            if node.parent == parent && node.name == name { return true }
            unlink(wd)
        }
        if let previous = nodes[parent]?.children[name], previous != wd {
            nodes[previous]?.parent = Self.detached
        }
        nodes[parent]?.children[name] = wd
        nodes[wd, default: Node(parent: parent, name: name)].parent = parent
        nodes[wd]?.name = name
        return true
    }

    /// Detaches the subdirectory `name` of `parent` (deleted, or moved away): its node stays, with
    /// its subtree, until it is removed or attached elsewhere.
    /// - Returns: its descriptor, if it was watched.
    @discardableResult
    mutating func detach(named name: [UInt8], from parent: Int32) -> Int32? {
        guard let wd = nodes[parent]?.children.removeValue(forKey: name) else { return nil }
        nodes[wd]?.parent = Self.detached
        return wd
    }

    /// Removes `wd` and everything beneath it.
    /// - Returns: the removed descriptors, `wd` first.
    mutating func remove(_ wd: Int32) -> [Int32] {
        guard nodes[wd] != nil else { return [] }
        unlink(wd)
        let removed = subtree(of: wd)
        for member in removed { nodes.removeValue(forKey: member) }
        if wd == rootWD { rootWD = nil }
        return removed
    }

    /// Forgets every watch.
    /// - Returns: the descriptors that were in the table.
    mutating func removeAll() -> [Int32] {
        let all = Array(nodes.keys)
        nodes.removeAll()
        rootWD = nil
        return all
    }

    /// `wd` and every descriptor beneath it.
    func subtree(of wd: Int32) -> [Int32] {
        guard nodes[wd] != nil else { return [] }
        var out = [wd]
        var index = 0
        while index < out.count {
            if let children = nodes[out[index]]?.children { out.append(contentsOf: children.values) }
            index += 1
        }
        return out
    }

    /// Whether `ancestor` is `wd` or one of its parents.
    private func isAncestor(_ ancestor: Int32, of wd: Int32) -> Bool {
        var current = wd
        for _ in 0..<4096 {
            if current == ancestor { return true }
            guard let node = nodes[current], node.parent >= 0 else { return false }
            current = node.parent
        }
        return true
    }

    /// Takes `wd` out of its parent's children (if the parent still lists it under its name).
    private mutating func unlink(_ wd: Int32) {
        guard let node = nodes[wd], node.parent >= 0 else { return }
        if nodes[node.parent]?.children[node.name] == wd {
            nodes[node.parent]?.children.removeValue(forKey: node.name)
        }
    }
}
