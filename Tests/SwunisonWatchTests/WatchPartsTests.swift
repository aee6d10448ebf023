import SwunisonModel
import SwunisonReplica
@testable import SwunisonWatch
import Testing

/// The pure parts: records, the table of watches, holds, coalescing.
@Suite struct WatchPartsTests {
    @Test func recordsParseAsTheKernelWritesThem() {
        let events = [
            InotifyEvent(wd: 1, mask: [.create, .isDirectory], name: Array("dir".utf8)),
            InotifyEvent(wd: 2, mask: .movedFrom, cookie: 77, name: Array("a-name-longer-than-sixteen-bytes".utf8)),
            InotifyEvent(wd: 1, mask: .deleteSelf),
            InotifyEvent(wd: -1, mask: .queueOverflow),
        ]
        let bytes = events.flatMap(\.record)
        #expect(bytes.count % 16 == 0)
        var parsed: [InotifyEvent] = []
        let aligned = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { aligned.deallocate() }
        aligned.copyBytes(from: bytes)
        InotifyEvent.parse(UnsafeRawBufferPointer(aligned)) { parsed.append($0) }
        #expect(parsed == events)

        // A truncated record is not read past.
        parsed = []
        InotifyEvent.parse(UnsafeRawBufferPointer(rebasing: aligned[..<(bytes.count - 1)])) { parsed.append($0) }
        #expect(parsed == Array(events.prefix(3)))
    }

    @Test func tableRebuildsPathsAndMovesSubtreesByOneLink() {
        var table = WatchTable()
        func attach(_ wd: Int32, under parent: Int32, _ name: String) -> Bool {
            table.attach(wd, under: parent, name: Array(name.utf8))
        }
        table.setRoot(1)
        #expect(attach(2, under: 1, "a") && attach(3, under: 2, "b") && attach(4, under: 3, "c"))
        #expect(table.path(of: 4) == path("a/b/c"))
        #expect(table.wd(at: path("a/b")) == 3)

        // Moving `a/b` to `x/b2` moves `a/b/c` with it.
        #expect(attach(5, under: 1, "x") && attach(3, under: 5, "b2"))
        #expect(table.path(of: 4) == path("x/b2/c"))
        #expect(table.wd(at: path("a/b")) == nil)

        // A directory cannot go beneath itself (a bind mount seen twice).
        let loop = attach(5, under: 4, "loop")
        #expect(!loop)

        // Detached (deleted or moved away): no path until attached again.
        let detached = table.detach(named: Array("x".utf8), from: 1)
        #expect(detached == 5 && table.path(of: 4) == nil)
        let removed = table.remove(5)
        #expect(Set(removed) == [5, 3, 4] && table.count == 2)
    }

    @Test func holdsExpireInTheOrderTheyBegan() {
        var holds = WriteHolds(maxHoldNanoseconds: 100)
        let none = holds.nextDeadline()
        #expect(none == nil)
        holds.hold(path("a"), now: 0)
        holds.hold(path("b"), now: 10)
        holds.hold(path("a"), now: 20)  // keeps the older hold
        var deadline = holds.nextDeadline()
        #expect(deadline == 100)
        let released = holds.release(path("a"))
        deadline = holds.nextDeadline()
        #expect(released && deadline == 110)
        holds.hold(path("a"), now: 30)
        let early = holds.expire(now: 109)
        let due = holds.expire(now: 130)
        deadline = holds.nextDeadline()
        #expect(early.isEmpty && due == [path("b"), path("a")])
        #expect(holds.isEmpty && deadline == nil)
    }

    @Test func coalescingKeepsEachPlaceOnce() {
        let a = path("a"), ab = path("a/b"), ac = path("a-c"), d = path("d")
        #expect(coalesce([.changed(ab), .changed(d), .changed(a), .changed(d), .changed(ac)])
            == [.changed(d), .changed(a), .changed(ac)])
        #expect(coalesce([.changed(a), .overflow, .changed(d), .overflow]) == [.overflow])
        #expect(coalesce([.changed(a), .rootMissing("gone"), .rootBack, .changed(d)]) == [.rootMissing("gone"), .rootBack])
        #expect(coalesce([.unwatched([a], needed: 5, available: 3), .changed(d), .unwatched([d, a], needed: 6, available: 3)])
            == [.unwatched([a, d], needed: 6, available: 3), .changed(d)])
        #expect(coalesce([.changed(.root), .changed(a)]) == [.changed(.root)])
    }
}
