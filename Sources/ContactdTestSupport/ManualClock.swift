import ContactdCore
import NIOConcurrencyHelpers

/// A clock that moves only when told: TTLs, cooldowns and holds without waiting.
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
