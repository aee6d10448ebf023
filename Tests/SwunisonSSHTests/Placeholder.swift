import Testing
@Test func SwunisonSSHTestsPlaceholder() { #expect(Bool(true)) }
