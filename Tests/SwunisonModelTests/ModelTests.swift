import Testing
import SwunisonModel

@Suite("RelativePath")
struct RelativePathTests {
    @Test("components are validated (Invariant 5)", arguments: ["", "a//b", "/a", "a/", ".", "..", "a/../b", "a/./b"])
    func rejects(_ text: String) {
        if text.isEmpty {
            #expect((try? RelativePath(validating: text))?.isRoot == true)
        } else {
            #expect(throws: PathError.self) { try RelativePath(validating: text) }
        }
    }

    @Test("NUL bytes and slashes in names are rejected")
    func rejectsBytes() {
        #expect(throws: PathError.self) { try RelativePath(validating: [0x61, 0x00, 0x62]) }
        #expect(throws: PathError.self) { try PathComponent(validating: "a/b") }
        #expect(throws: PathError.self) { try PathComponent(validating: "..") }
    }

    @Test("walk order: a directory comes right before its contents, then its siblings")
    func walkOrder() throws {
        let names = ["a-b", "a/x", "a", "a b", "a/x/y", "b", "a.c", "a/\u{1}"]
        let paths = try names.map { try RelativePath(validating: $0) }.sorted()
        #expect(paths.map(\.description) == ["a", "a/\\x01", "a/x", "a/x/y", "a b", "a-b", "a.c", "b"])
        // The stored sort key orders the same way under memcmp.
        let byKey = paths.sorted { $0.sortKey.lexicographicallyPrecedes($1.sortKey) }
        #expect(byKey == paths)
        for p in paths { #expect(try RelativePath(sortKey: p.sortKey) == p) }
    }

    @Test("parent, last component, depth, descendants")
    func navigation() throws {
        let p = try RelativePath(validating: "a/b/c")
        #expect(p.parent?.description == "a/b")
        #expect(p.lastComponent?.description == "c")
        #expect(p.depth == 3)
        #expect(p.isDescendant(orEqualTo: try RelativePath(validating: "a")))
        #expect(!p.isDescendant(orEqualTo: try RelativePath(validating: "a/b/c-d")))
        #expect(!(try RelativePath(validating: "ab")).isDescendant(orEqualTo: try RelativePath(validating: "a")))
        #expect(RelativePath.root.appending(try PathComponent(validating: "x")).description == "x")
    }

    @Test("non-UTF-8 bytes and newlines are escaped for display, one path per line")
    func display() throws {
        let p = try RelativePath(validating: [0x63, 0x61, 0x66, 0xE9, 0x2F, 0x61, 0x0A, 0x62])
        #expect(p.description == "caf\\xe9/a\\nb")
        #expect(p.bytes.count == 8)
    }
}

@Suite("Digest and Entry")
struct EntryTests {
    @Test("digest bytes round-trip and print as hex")
    func digest() throws {
        let bytes = (0..<16).map { UInt8($0) }
        let d = try #require(Digest(bytes: bytes))
        #expect(d.bytes == bytes)
        #expect(d.description == "000102030405060708090a0b0c0d0e0f")
        #expect(Digest(bytes: [1, 2, 3]) == nil)
        // A SHA-256-sized digest (from before XXH3) is refused, not truncated.
        #expect(Digest(bytes: [UInt8](repeating: 0, count: 32)) == nil)
        let raw = bytes.withUnsafeBytes { Digest(uncheckedRaw: $0) }
        #expect(raw == d)
    }

    @Test("a file without a digest (archives from before XXH3) has the same content as one of the same size and mtime")
    func undigestedFilesCompareBySizeAndMtime() throws {
        let d = try #require(Digest(bytes: [UInt8](repeating: 7, count: 16)))
        let archived = Entry(kind: .file, size: 3, mtime: 10, mode: 0o644)
        let scanned = Entry(kind: .file, size: 3, mtime: 10, mode: 0o644, digest: d)
        #expect(archived.sameContent(as: scanned) && scanned.sameContent(as: archived) && archived.sameContent(as: archived))
        var touched = scanned
        touched.mtime = 11
        #expect(!archived.sameContent(as: touched))
        var grown = scanned
        grown.size = 4
        #expect(!archived.sameContent(as: grown))
        // With both digests known, only they decide.
        var other = scanned
        other.digest = Digest(w0: 1, w1: 2)
        #expect(!scanned.sameContent(as: other))
    }

    @Test("same content ignores fingerprints; attribute selection decides the rest")
    func equivalence() throws {
        let d = try #require(Digest(bytes: [UInt8](repeating: 7, count: 16)))
        let a = Entry(kind: .file, size: 3, mtime: 10, mode: 0o644, digest: d,
                      fingerprint: Fingerprint(inode: 1, ctime: 1, mtime: 10, size: 3))
        var b = a
        b.fingerprint = Fingerprint(inode: 2, ctime: 5, mtime: 10, size: 3)
        #expect(a.sameContent(as: b))
        b.mode = 0o600
        #expect(!AttributeSelection().equivalent(a, b))
        #expect(AttributeSelection(permissionMask: 0).equivalent(a, b))
        b.mtime = 11
        #expect(!AttributeSelection(permissionMask: 0).equivalent(a, b))
        #expect(AttributeSelection(permissionMask: 0, times: false).equivalent(a, b))
        #expect(!Entry(kind: .file, size: 3).sameContent(as: Entry(kind: .file, size: 3, mtime: 1)),
                "an unknown digest matches only the same size and mtime")
    }
}
