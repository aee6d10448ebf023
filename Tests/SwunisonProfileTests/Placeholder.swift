import Testing
@Test func SwunisonProfileTestsPlaceholder() { #expect(Bool(true)) }
