/// How contactd treats the API: freshness beyond the TTL, retries, the circuit breaker and the
/// API budget. Every field has a flag (see `docs/caching.md`); the defaults are the documented ones.
package struct UpstreamPolicy: Sendable, Equatable {
    /// One overall deadline per lookup, retries and queueing included. Default 5 s.
    package var deadline: Duration = .seconds(5)

    /// How long after the TTL an entry is answered at once, as `stale`, while one background
    /// refresh runs (stale-while-revalidate). Default 1 hour.
    package var staleTTL: Duration = .seconds(3600)
    /// How long after the TTL an entry is answered, as `stale`, when fetching it fails with
    /// `upstream_unavailable` or `rate_limited` (stale-if-error). Default 1 day.
    package var staleIfError: Duration = .seconds(86_400)
    /// How long a caller whose entry may be served stale-if-error waits for the API before it
    /// gets that entry (`upstream_slow`); the fetch goes on behind it. Default 200 ms.
    package var staleIfErrorWait: Duration = .milliseconds(200)

    /// A fresh entry read at least `refreshAheadReads` times is refreshed in the background once
    /// its age passes this fraction of the TTL, so hot contacts never go stale. 0 turns it off.
    /// Default 0.8.
    package var refreshAhead: Double = 0.8
    /// Reads (while fresh) that make an entry hot enough for refresh-ahead. Default 2.
    package var refreshAheadReads = 2

    /// Attempts per fetch, the first included; 1 disables retries. Default 3.
    package var retryAttempts = 3
    /// Backoff before retry n is uniformly random in [0, min(max, base × 2ⁿ)] ("full jitter").
    /// Default 100 ms.
    package var retryBaseDelay: Duration = .milliseconds(100)
    /// Cap on one backoff delay, and the pause before a key whose refresh failed is refreshed
    /// again. Default 2 s.
    package var retryMaxDelay: Duration = .seconds(2)

    /// Consecutive failed API calls that open the circuit. Default 5.
    package var breakerFailures = 5
    /// How long the circuit stays open before one probe is let through. Default 10 s.
    package var breakerCooldown: Duration = .seconds(10)

    /// Most API requests in flight at once. Default 16.
    package var maxConcurrent = 16
    /// Most API requests started per second (token bucket); 0 = no limit. Default 0.
    package var ratePerSecond: Double = 0
    /// Requests the token bucket lets through at once; 0 = max(1, ratePerSecond). Default 0.
    package var rateBurst = 0
    /// Fetches waiting for an API slot at most; more get `overloaded`. Default 1024.
    package var queueLimit = 1024

    /// Whether a 429 stops calls for every key until its Retry-After passes, not only for the key
    /// that got it. Default off.
    package var rateLimitAllKeys = false
    /// How long to hold off after a 429 that did not say how long. Default 1 s.
    package var defaultRetryAfter: Duration = .seconds(1)

    package init() {}

    /// The backoff before retry `attempt` (0 for the first retry), drawn with full jitter.
    package func backoff(attempt: Int, random: Double) -> Double {
        let ceiling = min(retryMaxDelay.seconds, retryBaseDelay.seconds * Double(1 << min(attempt, 30)))
        return max(0, ceiling * min(max(random, 0), 1))
    }
}
