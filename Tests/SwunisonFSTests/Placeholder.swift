import Testing
@Test func SwunisonFSTestsPlaceholder() { #expect(Bool(true)) }
