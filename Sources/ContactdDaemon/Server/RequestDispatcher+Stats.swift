import ContactdCore
import ContactdProtocol

extension RequestDispatcher {
    /// `cache.stats` from Core's counters (the shared cache's member is added by the caller).
    static func statsReport(_ stats: LookupStats) -> CacheStats {
        var report = CacheStats()
        report.entries = stats.entries
        report.bytes = stats.bytes
        report.heldBytes = stats.heldBytes
        report.hits = stats.hits
        report.staleHits = stats.staleHits
        report.staleIfError = stats.staleIfError
        report.misses = stats.misses
        report.hitRatio = stats.hitRatio
        report.evictions = stats.evictions
        report.refreshes = stats.refreshes
        report.refreshAheads = stats.refreshAheads
        var causes = CacheStats.EvictionsByCause()
        causes.capacity = stats.policy?.evictedForCapacity ?? 0
        causes.expired = stats.policy?.evictedExpired ?? 0
        report.evictionsByCause = causes
        report.admissionsRefused = stats.policy?.refusedAdmissions ?? 0
        var policy = CacheStats.Policy()
        policy.window = stats.policy?.configuration.window ?? 0
        policy.frequencyFilter = stats.policy?.configuration.filters ?? false
        policy.nursery = stats.policy?.configuration.nursery ?? 0
        report.policy = policy

        var upstream = CacheStats.Upstream()
        upstream.requests = stats.upstreamRequests
        upstream.errors = stats.upstreamErrors
        upstream.inFlight = stats.upstreamInFlight
        upstream.retries = stats.retries
        upstream.queueDepth = stats.queueDepth
        upstream.overloaded = stats.overloaded
        upstream.tokenRejected = stats.tokenRejected
        upstream.circuit.state = stats.circuitState
        upstream.circuit.opened = stats.circuitOpened
        upstream.circuit.refusals = stats.circuitRefusals
        var latency = CacheStats.Latency()
        latency.p50 = stats.latencyMilliseconds.p50
        latency.p90 = stats.latencyMilliseconds.p90
        latency.p99 = stats.latencyMilliseconds.p99
        latency.max = stats.latencyMilliseconds.max
        upstream.latencyMs = latency
        report.upstream = upstream
        return report
    }
}
