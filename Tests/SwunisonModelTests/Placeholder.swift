import Testing
@Test func SwunisonModelTestsPlaceholder() { #expect(Bool(true)) }
