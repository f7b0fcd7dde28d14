import Glibc

/// Monotonic seconds for cache ages; injectable so tests move time by hand.
package struct MonotonicClock: Sendable {
    /// Seconds since an arbitrary fixed start; never goes backwards.
    package let now: @Sendable () -> Double

    package init(now: @escaping @Sendable () -> Double) {
        self.now = now
    }

    /// The system's monotonic clock, `CLOCK_MONOTONIC`, read directly: every cache read asks it,
    /// and going through `ContinuousClock` and `Duration`'s 128-bit arithmetic cost about twice
    /// the `clock_gettime` itself.
    package static let system: MonotonicClock = {
        let start = monotonicSeconds()
        return MonotonicClock { monotonicSeconds() - start }
    }()

    /// `CLOCK_MONOTONIC_COARSE`: the time of the last timer tick (4 ms steps here), read from
    /// memory without the TSC. The daemon's cache ages, TTLs and holds use it: they are seconds
    /// long, and every cache hit reads the clock, so the cheaper read shows on the hit path.
    package static let coarse: MonotonicClock = {
        let start = monotonicSeconds(CLOCK_MONOTONIC_COARSE)
        return MonotonicClock { monotonicSeconds(CLOCK_MONOTONIC_COARSE) - start }
    }()

    private static func monotonicSeconds(_ id: clockid_t = CLOCK_MONOTONIC) -> Double {
        var time = timespec()
        clock_gettime(id, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}
