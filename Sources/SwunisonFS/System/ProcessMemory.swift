import CSwunisonShims

/// Process-wide memory settings.
public enum ProcessMemory {
    /// Serves buffers of up to 32 MiB from the heap. Frames and file batches are buffers of up
    /// to a few megabytes, made and freed by the thousand; glibc's default maps each one fresh
    /// (and the kernel zeroes its pages), then unmaps it, while from the heap they reuse the
    /// same memory. Call it once, first thing in `main`.
    public static func preferHeapForLargeBuffers() {
        _ = swunison_set_mmap_threshold(32 << 20)
    }
}
