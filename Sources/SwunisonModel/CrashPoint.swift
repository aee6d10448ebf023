#if DEBUG
import Glibc
import Synchronization
#endif

/// Crash injection for the crash-safety tests: in a debug build (what `swift build` and `swift
/// test` make) with `SWUNISON_CRASH_AT=N` in the environment, the process kills itself with
/// SIGKILL at the N-th crash point it reaches: just before each change to a replica's file system
/// (create, link, rename, remove, mkdir, symlink, attributes) and each archive or cache commit.
/// A release build compiles this to nothing and never reads the variable.
public enum CrashPoint {
    #if DEBUG
    private static let target: Int? = getenv("SWUNISON_CRASH_AT").flatMap { Int(String(cString: $0)) }
    private static let reachedSoFar = Atomic<Int>(0)
    #endif

    /// Counts one crash point; at the chosen one the process dies on the spot (no cleanup, as in
    /// a power cut of this process: the kernel still completes what was written).
    @inline(__always)
    public static func reached() {
        #if DEBUG
        guard let target else { return }
        if reachedSoFar.add(1, ordering: .relaxed).newValue == target { kill(getpid(), SIGKILL) }
        #endif
    }
}
