import NIOConcurrencyHelpers
import Synchronization
import Systemd

/// Lookups counted by the systemd unit of the process that asked (`contactd_unit_lookups_total`):
/// which service costs the cache and the API the most.
///
/// A connection's unit is found once, when it is accepted: the peer's pid (`SO_PEERCRED`), then
/// `sd_pid_get_unit`. Label values are bounded: the first `maxUnits` units seen get their own;
/// later ones count as `other`; a peer in no system unit, or gone before it was asked, as `none`.
package final class CallerUnits: Sendable {
    /// One unit's count, shared by its connections. The fast lane adds once per read, NIO once
    /// per request.
    package final class Tally: Sendable {
        package let unit: String
        private let lookups = Atomic<Int>(0)

        init(unit: String) { self.unit = unit }

        package func count(_ lookups: Int) { self.lookups.add(lookups, ordering: .relaxed) }
        package var total: Int { lookups.load(ordering: .relaxed) }
    }

    /// Units with a label of their own; the rest are `other`. Enough for the services of a host,
    /// few enough that a host starting transient units (`run-u123.service`) cannot flood
    /// Prometheus with series.
    package static let maxUnits = 50
    /// How long a pid's unit is remembered: a pool reconnecting does not read `/proc` each time,
    /// and a reused pid is rarely mislabelled.
    private static let remembered: Duration = .seconds(10)

    private struct State {
        var tallies: [String: Tally] = [:]
        var recent: [Int32: (tally: Tally, at: ContinuousClock.Instant)] = [:]
    }

    private let state = NIOLockedValueBox(State())
    /// Where a process's unit is looked up; tests give processes units of their choosing.
    private let unitOf: @Sendable (Int32) -> String?

    package init(unitOf: @escaping @Sendable (Int32) -> String? = SystemdUnit.of(pid:)) {
        self.unitOf = unitOf
    }

    /// The tally for process `pid`; `none` when `nil`.
    package func tally(pid: Int32?) -> Tally {
        guard let pid, pid > 0 else { return tally(unit: "none") }
        let now = ContinuousClock.now
        if let known = state.withLockedValue({ $0.recent[pid] }), now - known.at < Self.remembered {
            return known.tally
        }
        // Outside the lock: it reads /proc/<pid>/cgroup.
        let tally = tally(unit: unitOf(pid) ?? "none")
        state.withLockedValue { state in
            if state.recent.count >= 4096 { state.recent.removeAll(keepingCapacity: true) }
            state.recent[pid] = (tally, now)
        }
        return tally
    }

    private func tally(unit: String) -> Tally {
        state.withLockedValue { state in
            if let tally = state.tallies[unit] { return tally }
            let label = state.tallies.count < Self.maxUnits || unit == "none" ? unit : "other"
            if let tally = state.tallies[label] { return tally }
            let tally = Tally(unit: label)
            state.tallies[label] = tally
            return tally
        }
    }

    /// Lookups so far, by unit.
    package var counts: [(unit: String, lookups: Int)] {
        state.withLockedValue { Array($0.tallies.values) }.map { ($0.unit, $0.total) }
    }
}
