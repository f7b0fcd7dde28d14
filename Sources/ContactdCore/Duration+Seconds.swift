extension Duration {
    /// The duration in seconds, as the cache's clocks count (`MonotonicClock`).
    package var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// The duration in whole nanoseconds (rounded down).
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The duration as a setting is written: `5s`, `250ms`, `1.5s`, `5m`, `1h`, `0`.
    package var settingText: String {
        let nanos = nanoseconds
        if nanos == 0 { return "0" }
        if nanos % 3_600_000_000_000 == 0 { return "\(nanos / 3_600_000_000_000)h" }
        if nanos % 60_000_000_000 == 0 { return "\(nanos / 60_000_000_000)m" }
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos % 1_000_000 == 0, nanos < 1_000_000_000 { return "\(nanos / 1_000_000)ms" }
        return "\(seconds)s"
    }
}
