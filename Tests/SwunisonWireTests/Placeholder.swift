import Testing
@Test func SwunisonWireTestsPlaceholder() { #expect(Bool(true)) }
