import Glibc
import NIOConcurrencyHelpers

/// Monotonic seconds for cache ages; injectable so tests move time by hand.
package struct MonotonicClock: Sendable {
    /// Seconds since an arbitrary fixed start; never goes backwards.
    package let now: @Sendable () -> Double

    package init(now: @escaping @Sendable () -> Double) {
        self.now = now
    }

    /// The system's monotonic clock, `CLOCK_MONOTONIC`, read directly: every cache read asks it,
    /// and going through `ContinuousClock` and `Duration`'s 128-bit arithmetic cost about twice
    /// the `clock_gettime` itself (perf, 50 × 16).
    package static let system: MonotonicClock = {
        let start = monotonicSeconds()
        return MonotonicClock { monotonicSeconds() - start }
    }()

    private static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}

/// A clock that moves only when told; for tests.
package final class ManualClock: Sendable {
    private let current = NIOLockedValueBox<Double>(1000)

    package init() {}

    /// Moves time forward by `seconds`.
    package func advance(by seconds: Double) {
        current.withLockedValue { $0 += seconds }
    }

    /// This clock as a `MonotonicClock`.
    package var clock: MonotonicClock {
        MonotonicClock { [self] in current.withLockedValue { $0 } }
    }
}
