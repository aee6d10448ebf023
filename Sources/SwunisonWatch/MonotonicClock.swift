import Glibc

/// Nanoseconds on `CLOCK_MONOTONIC`: deadlines that a change of the wall clock does not move.
/// The corresponding C function is `clock_gettime`.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) &* 1_000_000_000 &+ Int64(now.tv_nsec)
}
