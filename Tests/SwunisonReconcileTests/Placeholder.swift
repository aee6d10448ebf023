import Testing
@Test func SwunisonReconcileTestsPlaceholder() { #expect(Bool(true)) }
