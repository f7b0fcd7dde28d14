import NIOConcurrencyHelpers
import Synchronization
import Systemd

/// Lookups counted by the systemd unit of the process that asked (`contactd_unit_lookups_total`):
/// which service costs the cache and the API the most.
///
/// A connection's unit is found once, when it is accepted: the peer's pid (`SO_PEERCRED`), then
/// `sd_pid_get_unit`. Every unit is counted on its own (up to `maxTracked`); which of them get a
/// label is decided when metrics are read (`labelledCounts`): the `maxUnits` busiest, so that a
/// host starting many short-lived units (`run-u123.service`) cannot push its long-running services
/// into `other`. A peer in no system unit, or gone before it was asked, counts as `none`.
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

    /// Units with a label of their own (besides `none`); the rest are `other`. Enough for the
    /// services of a host, few enough that Prometheus is not flooded with series.
    package static let maxUnits = 50
    /// Units counted apart at most; later ones share one tally under `other` (bounds memory on a
    /// host that starts a transient unit every second).
    package static let maxTracked = 4096
    /// How often the labels are chosen again (at a reading of the metrics, when this much time has
    /// passed since the last choice).
    package static let relabelInterval: Duration = .seconds(60)
    /// How long a pid's unit is remembered: a pool reconnecting does not read `/proc` each time,
    /// and a reused pid is rarely mislabelled.
    private static let remembered: Duration = .seconds(10)

    /// What one unit's share of the readings is.
    private struct Standing {
        let tally: Tally
        /// Lookups per interval, halved each interval: recent activity, not lifetime totals, so
        /// a unit that was busy once and then went quiet gives its label up.
        var score = 0.0
        var totalAtLastChoice = 0
        /// With a label: what `other` had shown of the unit when it got it (its whole count, or 0
        /// for a unit no reading had shown yet); `nil` without one.
        var labelledFrom: Int?
        /// Whether a reading has shown the unit's count under `other`.
        var shownInOther = false
    }

    private struct State {
        var units: [String: Standing] = [:]
        /// Units past `maxTracked`, counted together.
        var overflow = Tally(unit: "other")
        var recent: [Int32: (tally: Tally, at: ContinuousClock.Instant)] = [:]
        var lastChoice: ContinuousClock.Instant?
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
            if let standing = state.units[unit] { return standing.tally }
            guard state.units.count < Self.maxTracked || unit == "none" else { return state.overflow }
            let tally = Tally(unit: unit)
            state.units[unit] = Standing(tally: tally, labelledFrom: unit == "none" ? 0 : nil)
            return tally
        }
    }

    /// Lookups by label, as the metrics show them: each labelled unit's count since it got its
    /// label, and `other` for everything else. Each label's count only grows while the label
    /// exists, and the counts add up to every lookup counted (a test holds both under random
    /// interleavings). The labels are chosen again when `relabelInterval` has passed or a unit
    /// waits while a label is free: see `chooseLabels`.
    package func labelledCounts(at now: ContinuousClock.Instant = .now) -> [(unit: String, lookups: Int)] {
        state.withLockedValue { state in
            let due = state.lastChoice.map { now - $0 >= Self.relabelInterval } ?? true
            let labelled = state.units.values.count { $0.labelledFrom != nil && $0.tally.unit != "none" }
            let waiting = labelled < Self.maxUnits && state.units.values.contains { $0.labelledFrom == nil }
            if due || waiting { Self.chooseLabels(&state, scoring: due, now: now) }
            var counts: [(unit: String, lookups: Int)] = []
            var other = state.overflow.total
            for (unit, standing) in state.units {
                let total = standing.tally.total
                if let from = standing.labelledFrom {
                    counts.append((unit, total - from))
                    other += from
                } else {
                    other += total
                    state.units[unit]!.shownInOther = true
                }
            }
            if other > 0 || state.units.count > Self.maxUnits { counts.append(("other", other)) }
            return counts
        }
    }

    /// The rule: free labels go to the busiest unlabelled units; when none is free, an unlabelled
    /// unit takes the label of the least busy labelled one if it is more than twice as busy (the
    /// margin keeps two similar units from trading the label at every choice). Busy is the score:
    /// recent lookups per interval. A unit losing its label counts under `other` again, with all
    /// it had counted; one gaining a label starts its own series at 0 (what it counted before
    /// stays in `other`; one no reading has shown yet keeps what it counted), so no series ever goes
    /// down.
    private static func chooseLabels(_ state: inout State, scoring: Bool, now: ContinuousClock.Instant) {
        if scoring {
            for (unit, var standing) in state.units {
                let total = standing.tally.total
                standing.score = standing.score / 2 + Double(total - standing.totalAtLastChoice)
                standing.totalAtLastChoice = total
                state.units[unit] = standing
            }
            state.lastChoice = now
        }
        let scores = state.units.mapValues(\.score)
        let byScore: (String, String) -> Bool = { a, b in
            let (x, y) = (scores[a]!, scores[b]!)
            return x != y ? x > y : a < b
        }
        var labelled = state.units.filter { $0.value.labelledFrom != nil && $0.key != "none" }.keys.sorted(by: byScore)
        let waiting = state.units.filter { $0.value.labelledFrom == nil }.keys.sorted(by: byScore)
        for unit in waiting {
            if labelled.count < maxUnits {
                state.units[unit]!.labelledFrom = state.units[unit]!.shownInOther ? state.units[unit]!.tally.total : 0
                labelled.append(unit)
                continue
            }
            guard let weakest = labelled.last, scores[unit]! > 2 * scores[weakest]! else {
                break  // waiting is sorted: no later unit is busier
            }
            state.units[weakest]!.labelledFrom = nil
            state.units[unit]!.labelledFrom = state.units[unit]!.shownInOther ? state.units[unit]!.tally.total : 0
            labelled.removeLast()
            labelled.append(unit)
            labelled.sort(by: byScore)
        }
    }
}
