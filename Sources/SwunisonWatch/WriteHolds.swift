import SwunisonModel

/// Files being written, held back until they are closed (or have been held too long).
///
/// An editor's save or a download writes a file in many `write` calls; reporting each
/// `IN_MODIFY` would have the engine scan (and hash, and maybe copy) a half-written file again
/// and again. A held file is reported once, at `IN_CLOSE_WRITE`, or when it has been held
/// `maxHoldNanoseconds` (`maxdelay`: a log file that is never closed is still synchronised).
///
/// Every hold lasts equally long, so holds expire in the order they began: a queue, not a heap.
struct WriteHolds {
    let maxHoldNanoseconds: Int64
    /// When each held path was first held.
    private var heldSince: [RelativePath: Int64] = [:]
    /// Holds in the order they began; an entry whose time no longer matches `heldSince` was
    /// released and is skipped.
    private var order: [(path: RelativePath, since: Int64)] = []
    private var head = 0

    init(maxHoldNanoseconds: Int64) {
        self.maxHoldNanoseconds = max(0, maxHoldNanoseconds)
    }

    var isEmpty: Bool { heldSince.isEmpty }
    var count: Int { heldSince.count }

    func isHeld(_ path: RelativePath) -> Bool { heldSince[path] != nil }

    /// Holds `path` from `now`, or keeps the older hold it has.
    mutating func hold(_ path: RelativePath, now: Int64) {
        guard heldSince[path] == nil else { return }
        heldSince[path] = now
        order.append((path, now))
    }

    /// Ends the hold on `path` (closed, deleted, moved away).
    /// - Returns: whether it was held.
    @discardableResult
    mutating func release(_ path: RelativePath) -> Bool {
        heldSince.removeValue(forKey: path) != nil
    }

    /// Ends the holds whose time is up at `now`.
    /// - Returns: their paths, oldest first.
    mutating func expire(now: Int64) -> [RelativePath] {
        var expired: [RelativePath] = []
        while head < order.count, deadline(order[head].since) <= now {
            let (path, since) = order[head]
            head += 1
            if heldSince[path] == since {
                heldSince.removeValue(forKey: path)
                expired.append(path)
            }
        }
        compact()
        return expired
    }

    /// When the oldest hold runs out; nil when nothing is held (the watcher then sleeps without
    /// a timeout).
    mutating func nextDeadline() -> Int64? {
        while head < order.count, heldSince[order[head].path] != order[head].since { head += 1 }
        compact()
        return head < order.count ? deadline(order[head].since) : nil
    }

    /// When a hold begun at `since` runs out (never past `Int64.max`, however long `maxdelay`).
    private func deadline(_ since: Int64) -> Int64 {
        since > Int64.max - maxHoldNanoseconds ? Int64.max : since + maxHoldNanoseconds
    }

    mutating func removeAll() {
        heldSince.removeAll()
        order.removeAll()
        head = 0
    }

    /// Drops the consumed front of the queue once it is most of it.
    private mutating func compact() {
        if head == order.count {
            order.removeAll(keepingCapacity: order.count < 1024)
            head = 0
        } else if head > 256 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
