import ContactdCore
import ContactdProtocol
import ContactdSharedCache
import ContactdSnapshot
import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus
import Synchronization

/// contactd's Prometheus metrics: every metric declared once in `MetricName`, written with
/// swift-metrics, kept and rendered by swift-prometheus (`PrometheusCollectorRegistry`).
///
/// Two kinds. API calls are counted and timed as they end (`APICallObserver`): that is the miss
/// path, and a histogram needs each value. Everything the hit path counts (lookups by status,
/// per unit) and every level (entries, connections, the circuit) is read when metrics are asked
/// for: the hit path keeps its own relaxed atomics (`ContactResolver`'s counters, `CallerUnits`) and
/// pays nothing more for metrics, and the figures are current at each scrape.
///
/// The registry belongs to this daemon, not swift-metrics' global `MetricsSystem`: nothing else in
/// the process can write into it, and tests run several daemons in one process.
package final class DaemonMetrics: APICallObserver, Sendable {
    /// What the figures are read from at each scrape.
    struct Sources: Sendable {
        let lookup: ContactResolver
        let status: LiveStatus
        let callers: CallerUnits
        let failures: LookupFailures
        let snapshots: WarmRestart?
        var shared: SharedCache? = nil
        /// The configured bounds, exported so that dashboards show headroom.
        var limits: (maxEntries: Int, maxBytes: Int, maxConnections: Int)? = nil
        /// `--snapshot-interval`, beside the snapshot's age: the stale-snapshot alert compares them.
        var snapshotInterval: Duration? = nil
    }

    private let registry = PrometheusCollectorRegistry()
    private let factory: HelpfulPrometheusFactory
    private let apiCalls: [APICallOutcome: CoreMetrics.Counter]
    private let apiDuration: CoreMetrics.Timer
    private let sources = NIOLockedValueBox<Sources?>(nil)
    /// Counts already added to the counters read at scrape time, by series; guarded so that two
    /// scrapes at once do not add a difference twice.
    private let exported = NIOLockedValueBox(Exported())

    private struct Exported {
        /// The swift-metrics counters fed from cumulative counts, by series key.
        var counters: [String: CoreMetrics.Counter] = [:]
        /// The cumulative count each of them was last brought up to.
        var totals: [String: Int] = [:]
        /// The process's CPU seconds as of the last scrape.
        var cpuSeconds = 0.0
    }

    init() {
        factory = HelpfulPrometheusFactory(registry: registry)
        var apiCalls: [APICallOutcome: CoreMetrics.Counter] = [:]
        for outcome in APICallOutcome.allCases {
            apiCalls[outcome] = CoreMetrics.Counter(
                label: MetricName.apiRequests.name,
                dimensions: [("outcome", outcome.rawValue)],
                factory: factory
            )
        }
        self.apiCalls = apiCalls
        apiDuration = CoreMetrics.Timer(label: MetricName.apiDuration.name, factory: factory)
        CoreMetrics.Gauge(
            label: MetricName.buildInfo.name,
            dimensions: [("version", ContactdVersion.current)],
            factory: factory
        )
        .record(1)
    }

    /// Connects the daemon's parts once they exist (the lookup needs this object first).
    func read(from sources: Sources) {
        self.sources.withLockedValue { $0 = sources }
    }

    package func apiCallFinished(_ outcome: APICallOutcome, after duration: Duration) {
        apiCalls[outcome]?.increment()
        apiDuration.recordNanoseconds(Int64(duration.seconds * 1e9))
    }

    /// The Prometheus text exposition (format 0.0.4), figures as of now.
    func exposition() -> [UInt8] {
        exported.withLockedValue { exported in bringUpToDate(&exported) }
        return registry.emitToBuffer()
    }

    /// Runs `reset` (`cache.reset_stats`) between two readings, so that the exported counters,
    /// which must never go back, lose nothing to it but what was counted in between.
    func resetStatistics(_ reset: () -> Void) {
        exported.withLockedValue { exported in
            bringUpToDate(&exported)
            reset()
            // What `reset` zeroed starts again from 0; the unit counts are not among it.
            exported.totals = exported.totals.filter { $0.key.hasPrefix(MetricName.unitLookups.name) }
        }
    }

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    // MARK: Scrape-time figures

    private func bringUpToDate(_ exported: inout Exported) {
        guard let sources = sources.withLockedValue({ $0 }) else { return }
        let stats = sources.lookup.stats
        /// Brings the series up to `total`; returns its key in `exported`.
        @discardableResult
        func count(_ metric: MetricName, _ labels: [(String, String)], _ total: Int) -> String {
            let key = metric.name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            let counter =
                exported.counters[key]
                ?? CoreMetrics.Counter(label: metric.name, dimensions: labels, factory: factory)
            exported.counters[key] = counter
            let delta = total - (exported.totals[key] ?? 0)
            if delta > 0 { counter.increment(by: Int64(delta)) }
            exported.totals[key] = total
            return key
        }
        count(.lookups, [("status", "hit")], stats.hits)
        count(.lookups, [("status", "stale")], stats.staleHits + stats.staleIfError)
        count(.lookups, [("status", "miss")], stats.misses)
        count(.evictions, [("cause", "capacity")], stats.policy?.evictedForCapacity ?? stats.evictions)
        count(.evictions, [("cause", "expired")], stats.policy?.evictedExpired ?? 0)
        count(.admissionsRefused, [], stats.policy?.refusedAdmissions ?? 0)
        count(.refreshes, [], stats.refreshes)
        count(.retries, [], stats.retries)
        count(.circuitOpened, [], stats.circuitOpened)
        count(.apiRefused, [("reason", "circuit_open")], stats.circuitRefusals)
        count(.apiRefused, [("reason", "overloaded")], stats.overloaded)
        // A unit that lost its label leaves the text; if it gets one again, its series restarts
        // at 0 (Prometheus reads that as a counter reset).
        var units: Set<String> = []
        for (unit, lookups) in sources.callers.labelledCounts() {
            units.insert(count(.unitLookups, [("unit", unit)], lookups))
        }
        for key in exported.counters.keys where key.hasPrefix(MetricName.unitLookups.name) && !units.contains(key) {
            exported.counters.removeValue(forKey: key)?.destroy()
            exported.totals.removeValue(forKey: key)
        }
        for reason in ErrorReason.lookupFailures {
            count(.lookupFailures, [("reason", reason.rawValue)], sources.failures.total(reason))
        }

        func level(_ metric: MetricName, _ labels: [(String, String)], _ value: Double) {
            CoreMetrics.Gauge(label: metric.name, dimensions: labels, factory: factory).record(value)
        }
        level(.cacheEntries, [], Double(stats.entries))
        level(.cacheBytes, [], Double(stats.bytes))
        level(.cacheMemory, [], Double(stats.heldBytes))
        level(.connections, [], Double(sources.status.connections.load(ordering: .relaxed)))
        level(.apiInFlight, [], Double(stats.upstreamInFlight))
        level(.queueDepth, [], Double(stats.queueDepth))
        level(.tokenRejected, [], stats.tokenRejected ? 1 : 0)
        for (state, name) in CircuitState.spellings {
            level(.circuitState, [("state", name)], stats.circuitState == state ? 1 : 0)
        }
        if let shared = sources.shared {
            level(.sharedUp, [], shared.state == .up ? 1 : 0)
            count(.sharedLookups, [("result", "hit")], shared.counts.hits.load(ordering: .relaxed))
            count(.sharedLookups, [("result", "miss")], shared.counts.misses.load(ordering: .relaxed))
            count(.sharedLookups, [("result", "skipped")], shared.counts.skipped.load(ordering: .relaxed))
            count(.sharedErrors, [], shared.counts.errors.load(ordering: .relaxed))
            count(.sharedFailovers, [], shared.failovers)
        }
        if let snapshots = sources.snapshots, snapshots.writes {
            level(.snapshotAge, [], snapshots.secondsSinceLastWrite ?? sources.status.uptime)
            if let interval = sources.snapshotInterval, interval > .zero {
                level(.snapshotInterval, [], interval.seconds)
            }
        }
        if let limits = sources.limits {
            level(.cacheMaxEntries, [], Double(limits.maxEntries))
            level(.cacheMaxBytes, [], Double(limits.maxBytes))
            level(.maxConnections, [], Double(limits.maxConnections))
        }
        if let process = ProcessStats.read() {
            level(.processResident, [], process.residentBytes)
            level(.processVirtual, [], process.virtualBytes)
            level(.processOpenFDs, [], process.openDescriptors)
            level(.processMaxFDs, [], process.maxDescriptors)
            level(.processStartTime, [], process.startTimeSeconds)
            // A counter that only goes up: add what was used since the last scrape.
            let cpu = CoreMetrics.FloatingPointCounter(
                label: MetricName.processCPU.name,
                dimensions: [],
                factory: factory
            )
            let delta = process.cpuSeconds - exported.cpuSeconds
            if delta > 0 {
                cpu.increment(by: delta)
                exported.cpuSeconds = process.cpuSeconds
            }
        }
    }
}

/// A metric's name and help text, each written once here (docs/operations.md lists them).
struct MetricName: Sendable {
    let name: String
    let help: String

    static let lookups = MetricName(
        name: "contactd_lookups_total",
        help: "contact.get lookups answered, by cache status: hit (fresh, or a cached not-found), stale, miss."
    )
    static let unitLookups = MetricName(
        name: "contactd_unit_lookups_total",
        help: "contact.get lookups by the systemd unit of the calling process (the 50 busiest; other: the rest)."
    )
    static let lookupFailures = MetricName(
        name: "contactd_lookup_failures_total",
        help: "contact.get requests answered with an error, by the error's reason."
    )
    static let apiRequests = MetricName(
        name: "contactd_api_requests_total",
        help: "Calls to the contacts API, by outcome."
    )
    static let apiDuration = MetricName(
        name: "contactd_api_request_duration_seconds",
        help: "How long calls to the contacts API took."
    )
    static let apiRefused = MetricName(
        name: "contactd_api_refused_total",
        help: "Fetches not sent to the API: circuit_open, or overloaded (no API slot in time)."
    )
    static let retries = MetricName(
        name: "contactd_api_retries_total",
        help: "API calls repeated after a transient failure."
    )
    static let apiInFlight = MetricName(name: "contactd_api_in_flight", help: "API calls in progress.")
    static let queueDepth = MetricName(name: "contactd_api_queue_depth", help: "Fetches waiting for an API slot.")
    static let circuitState = MetricName(
        name: "contactd_circuit_state",
        help: "1 for the circuit breaker's current state (closed, open, half_open), 0 for the others."
    )
    static let circuitOpened = MetricName(
        name: "contactd_circuit_opened_total",
        help: "Times the circuit breaker opened."
    )
    static let tokenRejected = MetricName(
        name: "contactd_token_rejected",
        help: "1 while the API rejects the token, else 0."
    )
    static let cacheEntries = MetricName(name: "contactd_cache_entries", help: "Contacts and not-founds cached.")
    static let cacheBytes = MetricName(
        name: "contactd_cache_bytes",
        help: "What the cached entries cost, the figure --cache-max-bytes bounds."
    )
    static let cacheMemory = MetricName(
        name: "contactd_cache_memory_bytes",
        help: "Memory the cache's record pages hold, used or free."
    )
    static let evictions = MetricName(
        name: "contactd_cache_evictions_total",
        help:
            "Entries evicted to stay within the cache's limits, by cause (capacity: still fresh; expired: past its TTL)."
    )
    static let admissionsRefused = MetricName(
        name: "contactd_cache_admissions_refused_total",
        help:
            "New entries that left without the cache's main part admitting them (asked for less often than what they would evict)."
    )
    static let refreshes = MetricName(
        name: "contactd_cache_refreshes_total",
        help: "Background refreshes started (stale-while-revalidate and refresh-ahead)."
    )
    static let connections = MetricName(name: "contactd_connections", help: "Open client connections.")
    static let cacheMaxEntries = MetricName(
        name: "contactd_cache_max_entries",
        help: "The most entries the cache keeps (--cache-max-entries)."
    )
    static let cacheMaxBytes = MetricName(
        name: "contactd_cache_max_bytes",
        help: "The most bytes the cache's entries may cost (--cache-max-bytes), the bound of contactd_cache_bytes."
    )
    static let maxConnections = MetricName(
        name: "contactd_max_connections",
        help: "The most client connections served at once (--max-connections, after the descriptor limit)."
    )
    static let processResident = MetricName(
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes."
    )
    static let processVirtual = MetricName(name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes.")
    static let processOpenFDs = MetricName(name: "process_open_fds", help: "Number of open file descriptors.")
    static let processMaxFDs = MetricName(name: "process_max_fds", help: "Maximum number of open file descriptors.")
    static let processStartTime = MetricName(
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds."
    )
    static let processCPU = MetricName(
        name: "process_cpu_seconds_total",
        help: "Total user and system CPU time spent in seconds."
    )
    static let snapshotAge = MetricName(
        name: "contactd_snapshot_age_seconds",
        help: "Seconds since the cache snapshot was last written (since start before the first)."
    )
    static let snapshotInterval = MetricName(
        name: "contactd_snapshot_interval_seconds",
        help: "How often the cache snapshot is written (--snapshot-interval)."
    )
    static let sharedUp = MetricName(
        name: "contactd_shared_cache_up",
        help: "1 while the shared cache (Redis) is connected, else 0."
    )
    static let sharedLookups = MetricName(
        name: "contactd_shared_cache_lookups_total",
        help: "Misses of this host asked of the shared cache: hit, miss, or skipped while it was down."
    )
    static let sharedFailovers = MetricName(
        name: "contactd_shared_cache_failovers_total",
        help: "Times the shared cache came up on another primary than before (a Redis failover followed)."
    )
    static let sharedErrors = MetricName(
        name: "contactd_shared_cache_errors_total",
        help: "Calls to the shared cache that failed or timed out."
    )
    static let buildInfo = MetricName(name: "contactd_build_info", help: "Always 1; the version is the label.")

    static let all: [MetricName] = [
        lookups, unitLookups, lookupFailures, apiRequests, apiDuration, apiRefused, retries, apiInFlight, queueDepth,
        circuitState, circuitOpened, tokenRejected, cacheEntries, cacheBytes, cacheMemory, evictions, admissionsRefused,
        refreshes, connections, snapshotAge, snapshotInterval, sharedUp, sharedLookups, sharedErrors, sharedFailovers,
        buildInfo,
        cacheMaxEntries,
        cacheMaxBytes, maxConnections, processResident, processVirtual, processOpenFDs, processMaxFDs,
        processStartTime, processCPU,
    ]
}
