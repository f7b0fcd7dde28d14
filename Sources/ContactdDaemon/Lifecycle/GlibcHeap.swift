import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The two glibc malloc settings contactd uses. malloc.h is not in Swift's Glibc module, so the
/// functions are looked up by name; on a C library without them, nothing happens.
package enum GlibcHeap {
    /// Fixes glibc's mmap threshold at its default, 128 KiB. Left dynamic, glibc raises it to the
    /// size of each large block freed (up to 32 MiB), so the cache's node array and key index,
    /// which double as the cache fills, go on the heap once outgrown and their outgrown copies
    /// stay resident (docs/benchmarks.md, "Memory"). `MALLOC_MMAP_THRESHOLD_` in the environment
    /// still wins. Call once at start, before other threads allocate.
    package static func keepLargeAllocationsMapped() {
        guard ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil,
            let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt")
        else { return }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(-3, 128 << 10)  // M_MMAP_THRESHOLD
    }

    /// Returns the free pages of every malloc arena to the kernel (`malloc_trim(0)`).
    ///
    /// glibc gives heap memory back only from the top of each arena; what a large release frees
    /// in the middle stays resident. Called after the cache is emptied, which is rare and asked
    /// for: it walks every arena under its lock, a few milliseconds for tens of MiB.
    package static func releaseFreeMemory() {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        let trim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        _ = trim(0)
    }
}
