import ContactdCore
import ContactdProtocol
import Logging
import RedisClient

/// Everything the daemon is told at start, validated into typed values.
///
/// Built from flags and `CONTACTD_*` variables by `DaemonConfiguration.load(arguments:environment:)`;
/// tests build it directly and change one field.
package struct DaemonConfiguration: Sendable {
    /// Where the socket is and how it is protected.
    package struct Socket: Sendable {
        /// Path of the Unix socket. Default `/run/contactd/contactd.sock`.
        package var path = "/run/contactd/contactd.sock"
        /// Permission bits the socket file gets when the daemon creates it. Default 0660.
        package var mode: UInt32 = 0o660
        /// Group the socket file gets when the daemon creates it; `nil` keeps the daemon's group.
        package var group: String?
        /// Peers allowed by user id (SO_PEERCRED); with both lists empty, anyone who can open the
        /// socket file may connect. Root (uid 0) is always allowed.
        package var allowUIDs: [UInt32] = []
        /// Peers allowed by primary group id (SO_PEERCRED).
        package var allowGIDs: [UInt32] = []
    }

    /// How the API is reached.
    package struct Upstream: Sendable {
        /// Base URL; requests go to `{url}/get-contact`.
        package var url = "https://mtxbiyilvgwhbdptysex.supabase.co/functions/v1"
        /// File holding the token, if given with `--token-file`.
        package var tokenFile: String?
        /// Longest wait for a connection to the API to be set up; each attempt has its own.
        /// Default 1 s: a connect on a working network takes milliseconds.
        package var connectTimeout: Duration = .seconds(1)
    }

    /// Per-daemon and per-connection limits.
    package struct Limits: Sendable {
        /// Open client connections at most; the next one gets `overloaded` and is closed. Default 1024.
        package var maxConnections = 1024
        /// Longest request line in bytes, newline excluded. Default 64 KiB.
        package var maxLineBytes = 64 << 10
        /// Most requests in one batch. Default 1000.
        package var maxBatch = 1000
        /// Requests waiting for the API on one connection at most; more get `overloaded`. Default 1024.
        package var maxInFlightPerConnection = 1024
        /// How long a connection may stay silent with nothing in flight before it is closed;
        /// zero = never. Default 1 hour: long enough for pooled client connections, short enough
        /// to shed leaks.
        package var idleTimeout: Duration = .seconds(3600)
        /// How long a started line may take to finish (slow-loris guard); zero = no limit.
        /// Default 10 s.
        package var partialLineTimeout: Duration = .seconds(10)
    }

    /// Where the cache is kept across restarts (docs/operations.md, "Warm restart").
    package struct Snapshots: Sendable {
        /// How often the cache is written out while running; zero = only on stop. Default 60 s.
        package var interval: Duration = .seconds(60)
        /// A file that holds the snapshot too (across reboots, and without systemd); `nil` = none.
        package var file: String?
    }

    /// The cache several hosts share (`--shared-cache`, docs/scale.md).
    package struct SharedCache: Sendable {
        /// Where Redis listens, or the sentinels that know; `nil` = no shared cache. Default none.
        package var address: RedisTarget?
        /// Prepended to every key and to the invalidation channel. Default `contactd:`.
        package var prefix = "contactd:"
        /// Longest wait for Redis per lookup. Default 20 ms.
        package var timeout: Duration = .milliseconds(20)
        /// A file holding Redis's password; else the `shared-cache-password` credential. Default none.
        package var passwordFile: String?
        /// With `sentinel://`: a file holding the sentinels' password; else the
        /// `shared-cache-sentinel-password` credential. Default none.
        package var sentinelPasswordFile: String?
        /// For `rediss://` and `sentinels://`: a PEM file of the CAs to trust instead of the system's. Default none.
        package var caFile: String?
        /// A file holding the key that encrypts what is stored in Redis; else the
        /// `shared-cache-key` credential; none: stored in clear. Default none.
        package var keyFile: String?
    }

    package var socket = Socket()
    package var sharedCache = SharedCache()
    package var upstream = Upstream()
    package var cache = CacheConfiguration()
    /// The overall deadline per lookup (`--upstream-timeout`), stale serving, retries, circuit
    /// breaker and API budget.
    package var policy = UpstreamPolicy()
    package var limits = Limits()
    package var snapshots = Snapshots()
    /// Where Prometheus metrics are served; `nil` = nowhere (`contactctl metrics` still reads them).
    package var metricsListen: MetricsAddress?
    /// Where spans go (OTLP over HTTP); `nil`: no tracing, and the lookups pay nothing for it.
    package var otlpEndpoint: String?
    /// Longest drain on SIGTERM. Default 10 s.
    package var shutdownTimeout: Duration = .seconds(10)
    /// Serve plain cache hits on hand-written epoll loops beside NIO (`FastLane`). Default on.
    package var fastPath = true
    /// Lowest level logged. Default `info`.
    package var logLevel: Logger.Level = .info
    /// Serve bundled sample contacts through an in-process fake API. Default off.
    package var demo = false
    /// Write phone numbers and contact ids in clear in logs. Default off (masked).
    package var logPersonalData = false
    /// The config file read at start (`--config`); `nil`: `/etc/contactd/contactd.yaml` if it
    /// exists, else none.
    package var configFile: String?
    /// Where each setting's value came from, by setting name; a setting not listed has its
    /// default. Filled by `load(arguments:environment:)`; `daemon.config` reports it.
    package var sources: [String: ValueSource] = [:]
    /// The clock behind cache ages, the breaker and the API budget; tests substitute a manual one.
    /// Default `MonotonicClock.coarse` (4 ms steps: these times are seconds long).
    package var clock: MonotonicClock = .coarse

    package init() {}
}

/// A configuration value that cannot be used; the message names the flag.
package struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    package let description: String

    package init(_ description: String) {
        self.description = description
    }
}
