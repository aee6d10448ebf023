import Testing
@Test func SwunisonEndToEndTestsPlaceholder() { #expect(Bool(true)) }
