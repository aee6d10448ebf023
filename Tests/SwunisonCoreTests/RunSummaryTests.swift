import Testing
import SwunisonModel
@testable import SwunisonCore

@Suite struct RunSummaryTests {
    @Test func aMessageSharedByManyPathsIsSaidOnceWithACount() throws {
        var summary = RunSummary()
        func fail(_ path: String, _ message: String) throws {
            summary.failures.append(PathFailure(path: try RelativePath(validating: path), side: .b, message: message,
                                                isRetryable: true))
        }
        try fail("a", "a: write failed: No space left on device")
        for name in ["x", "y", "z", "w"] { try fail(name, "connection to ssh://far//srv lost: reset by peer") }
        try fail("b", "b: changed during sync, skipped (will be retried)")
        try fail("v", "connection to ssh://far//srv lost: reset by peer")
        #expect(summary.failureMessages == [
            "a: write failed: No space left on device",
            "5 paths (x, y, z, ...): connection to ssh://far//srv lost: reset by peer",
            "b: changed during sync, skipped (will be retried)",
        ])
    }
}
