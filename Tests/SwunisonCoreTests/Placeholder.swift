import Testing
@Test func SwunisonCoreTestsPlaceholder() { #expect(Bool(true)) }
