import NIOConcurrencyHelpers

/// Monotonic seconds for cache ages; injectable so tests move time by hand.
package struct MonotonicClock: Sendable {
    /// Seconds since an arbitrary fixed start; never goes backwards.
    package let now: @Sendable () -> Double

    package init(now: @escaping @Sendable () -> Double) {
        self.now = now
    }

    /// The system's monotonic clock (`CLOCK_MONOTONIC` via `ContinuousClock`).
    package static let system: MonotonicClock = {
        let clock = ContinuousClock()
        let start = clock.now
        return MonotonicClock {
            let elapsed = start.duration(to: clock.now)
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        }
    }()
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
