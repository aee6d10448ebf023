import Testing
@Test func SwunisonStorageTestsPlaceholder() { #expect(Bool(true)) }
