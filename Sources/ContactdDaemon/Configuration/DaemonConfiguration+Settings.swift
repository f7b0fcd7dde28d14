import ContactdCore
import Logging
import RedisClient

extension DaemonConfiguration {
    /// The settings a reload (SIGHUP, `daemon.reload`) applies at once: those the table marks
    /// `.live` (freshness, the retry policy, the breaker, the API budget, the allow lists and the
    /// log level). The rest shape what is built at start and need a restart.
    package static var appliedLive: Set<String> { Set(settings.filter(\.reload.isLive).map(\.name)) }

    /// Every setting the daemon takes, in the order `--help` and the docs list them.
    package static let settings: [Setting] = [
        .optionalText(
            "config",
            \.configFile,
            placeholder: "path",
            unset: "/etc/contactd/contactd.yaml if it exists",
            help: "Config file of settings by name (YAML, or JSON for .json); flags and the environment win over it."
        ),
        .text("socket", \.socket.path, placeholder: "path", help: "Unix socket path."),
        Setting(
            "socket-mode",
            .value("octal"),
            help: "Permission bits of the socket file.",
            show: { "0" + String($0.socket.mode, radix: 8) },
            parse: { c, text in c.socket.mode = try parseMode(text) }
        ),
        .optionalText(
            "socket-group",
            \.socket.group,
            placeholder: "group",
            unset: "the daemon's group",
            help: "Group of the socket file."
        ),
        .ids(
            "allow-uid",
            \.socket.allowUIDs,
            unset: "anyone the socket's mode lets in",
            reload: .live(.allowLists),
            help: "Allow peers with this uid (SO_PEERCRED), and root; repeatable or comma-separated."
        ),
        .ids(
            "allow-gid",
            \.socket.allowGIDs,
            unset: "anyone the socket's mode lets in",
            reload: .live(.allowLists),
            help: "Allow peers with this primary gid (SO_PEERCRED), and root; repeatable or comma-separated."
        ),
        .text(
            "api-url",
            \.upstream.url,
            placeholder: "url",
            help: "Base URL of the get-contact API; calls go to {url}/get-contact.",
            parse: { try parseURL($0) }
        ),
        .optionalText(
            "token-file",
            \.upstream.tokenFile,
            placeholder: "path",
            unset: "none",
            help: "File holding the API token (see below for the other sources)."
        ),
        .duration(
            "connect-timeout",
            \.upstream.connectTimeout,
            allowZero: false,
            help:
                "Longest wait to connect to the API, per attempt; a failed connect is retried like any transient failure."
        ),
        .count(
            "cache-max-entries",
            \.cache.maxEntries,
            help: "Most cached contacts (one per contact, however many keys)."
        ),
        .size("cache-max-bytes", \.cache.maxBytes, help: "Most cached bytes (contact JSON plus per-entry overhead)."),
        .duration("ttl", \.cache.ttl, reload: .live(.lookup), help: "How long a contact is fresh."),
        .duration(
            "stale-ttl",
            \.policy.staleTTL,
            reload: .live(.lookup),
            help: "After --ttl, how long a contact is answered at once as stale while one refresh runs."
        ),
        .duration(
            "stale-if-error",
            \.policy.staleIfError,
            reload: .live(.lookup),
            help: "After --ttl, how long a contact is answered as stale when the API fails."
        ),
        .duration(
            "stale-if-error-wait",
            \.policy.staleIfErrorWait,
            reload: .live(.lookup),
            help: "How long a lookup waits for a slow API before a stale-if-error contact is answered."
        ),
        .fraction(
            "refresh-ahead",
            \.policy.refreshAhead,
            reload: .live(.lookup),
            help: "Refresh a hot contact once its age passes this fraction of --ttl; 0 = never."
        ),
        .count(
            "refresh-ahead-reads",
            \.policy.refreshAheadReads,
            minimum: 1,
            reload: .live(.lookup),
            help: "Reads while fresh that make a contact hot for --refresh-ahead."
        ),
        .duration(
            "negative-ttl",
            \.cache.negativeTTL,
            reload: .live(.lookup),
            help: "How long a not-found answer is cached."
        ),
        .duration(
            "upstream-timeout",
            \.policy.deadline,
            allowZero: false,
            reload: .live(.lookup),
            help: "One overall deadline per lookup, retries and queueing included."
        ),
        .count(
            "retry-attempts",
            \.policy.retryAttempts,
            minimum: 1,
            reload: .live(.lookup),
            help: "API calls per fetch, the first included (transient failures only); 1 = no retries."
        ),
        .duration(
            "retry-base-delay",
            \.policy.retryBaseDelay,
            reload: .live(.lookup),
            help: "Backoff before retry n: random in [0, min(max, base × 2^n)]."
        ),
        .duration(
            "retry-max-delay",
            \.policy.retryMaxDelay,
            reload: .live(.lookup),
            help: "Longest backoff, and the pause before a failed refresh is tried again."
        ),
        .count(
            "breaker-failures",
            \.policy.breakerFailures,
            minimum: 1,
            reload: .live(.lookup),
            help: "Failed API calls in a row that open the circuit."
        ),
        .duration(
            "breaker-cooldown",
            \.policy.breakerCooldown,
            allowZero: false,
            reload: .live(.lookup),
            help: "How long the circuit stays open before one probe; also the rejected token's retry interval."
        ),
        .count(
            "api-concurrency",
            \.policy.maxConcurrent,
            minimum: 1,
            reload: .live(.lookup),
            help: "Most API requests in flight (also the HTTP connection pool's size)."
        ),
        .rate(
            "api-rate",
            \.policy.ratePerSecond,
            reload: .live(.lookup),
            help: "Most API requests started per second; 0 = no limit."
        ),
        .count(
            "api-burst",
            \.policy.rateBurst,
            reload: .live(.lookup),
            help: "API requests the rate limit lets through at once; 0 = the rate."
        ),
        .count(
            "api-queue",
            \.policy.queueLimit,
            reload: .live(.lookup),
            help: "Most fetches waiting for an API slot; more get overloaded."
        ),
        .presence(
            "rate-limit-all-keys",
            \.policy.rateLimitAllKeys,
            reload: .live(.lookup),
            help: "A 429 holds back calls for every key until Retry-After passes, not only its own key."
        ),
        .count(
            "max-connections",
            \.limits.maxConnections,
            minimum: 1,
            help: "Most open client connections; the next gets overloaded and is closed."
        ),
        .size("max-line-bytes", \.limits.maxLineBytes, minimum: 256, help: "Longest request line (at least 256)."),
        .count("max-batch", \.limits.maxBatch, minimum: 1, help: "Most requests in one batch."),
        .count(
            "max-requests-per-connection",
            \.limits.maxInFlightPerConnection,
            minimum: 1,
            help: "Most requests waiting for the API on one connection; more get overloaded."
        ),
        .duration(
            "idle-timeout",
            \.limits.idleTimeout,
            help: "Close a connection silent this long with nothing in flight; 0 = never."
        ),
        .duration(
            "partial-line-timeout",
            \.limits.partialLineTimeout,
            help: "Close a connection whose started line is not finished this long after; 0 = never."
        ),
        .onOff(
            "fast-path",
            \.fastPath,
            help: "Serve plain cache hits on hand-written epoll loops; off serves everything through SwiftNIO."
        ),
        .duration("shutdown-timeout", \.shutdownTimeout, help: "Longest drain on SIGTERM."),
        .duration(
            "snapshot-interval",
            \.snapshots.interval,
            help: "How often the cache is handed to systemd's fd store (and --snapshot-file); 0 = only on stop."
        ),
        .optionalText(
            "snapshot-file",
            \.snapshots.file,
            placeholder: "path",
            unset: "none",
            help: "Also keep the cache snapshot in this file (mode 0600; personal data at rest)."
        ),
        Setting(
            "shared-cache",
            .value("url"),
            help:
                "Share the cache with other hosts through Redis: redis://host[:port][/db], rediss://… (TLS), unix:PATH, or sentinel://host:port[,host:port…]/NAME[?db=N] (sentinels:// for TLS) to follow the primary Redis Sentinel names.",
            unset: "off",
            show: { $0.sharedCache.address?.description },
            parse: { c, text in
                do {
                    c.sharedCache.address = try RedisTarget(parsing: text)
                } catch let error as RedisAddressError {
                    // RedisClient knows no contactd setting: where the password goes is said here.
                    let hint =
                        error.description.hasSuffix("never come from a URL")
                        ? " (give it in the shared-cache-password credential or --shared-cache-password-file)" : ""
                    throw ConfigurationError(error.description + hint)
                }
            }
        ),
        .text(
            "shared-cache-prefix",
            \.sharedCache.prefix,
            placeholder: "text",
            help: "Prefix of contactd's keys and channel in Redis.",
            parse: { text in
                // Empty, `invalidate all` would scan the whole database's p:* and i:* keys.
                guard !text.isEmpty else {
                    throw ConfigurationError(
                        "must not be empty: contactd's keys need a prefix of their own, e.g. contactd:"
                    )
                }
                return text
            }
        ),
        .duration(
            "shared-cache-timeout",
            \.sharedCache.timeout,
            allowZero: false,
            help: "Longest wait for Redis per lookup; past it the lookup goes on without Redis."
        ),
        .optionalText(
            "shared-cache-password-file",
            \.sharedCache.passwordFile,
            placeholder: "path",
            unset: "the shared-cache-password credential, if any",
            help: "File holding Redis's password (never a flag value)."
        ),
        .optionalText(
            "shared-cache-sentinel-password-file",
            \.sharedCache.sentinelPasswordFile,
            placeholder: "path",
            unset: "the shared-cache-sentinel-password credential, if any",
            help: "With sentinel://: file holding the sentinels' own password (never a flag value)."
        ),
        .optionalText(
            "shared-cache-ca-file",
            \.sharedCache.caFile,
            placeholder: "path",
            unset: "the system's trusted CAs",
            help: "For rediss:// and sentinels://: PEM file of the certificate authorities to trust."
        ),
        .optionalText(
            "shared-cache-key-file",
            \.sharedCache.keyFile,
            placeholder: "path",
            unset: "the shared-cache-key credential, if any; else contacts rest in Redis in clear",
            help: "File holding 32 random bytes (64 hex digits or base64) that encrypt what contactd stores in Redis."
        ),
        Setting(
            "metrics-listen",
            .value("address"),
            help: "Serve Prometheus metrics at /metrics on HOST:PORT (e.g. 127.0.0.1:9464) or unix:PATH.",
            unset: "off",
            show: { $0.metricsListen?.description },
            parse: { c, text in c.metricsListen = try MetricsAddress(parsing: text) }
        ),
        Setting(
            "otlp-endpoint",
            .value("url"),
            help:
                "Export traces of lookups that leave the cache (misses, the shared cache, each API attempt) to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318.",
            unset: "off",
            show: { $0.otlpEndpoint },
            parse: { c, text in c.otlpEndpoint = try parseURL(text) }
        ),
        Setting(
            "log-level",
            .value("level"),
            help: "trace, debug, info, notice, warning, error or critical.",
            reload: .live(.logLevel),
            show: { $0.logLevel.rawValue },
            parse: { c, text in
                guard let level = Logger.Level(rawValue: text.lowercased()) else {
                    throw ConfigurationError(
                        "'\(text)' is not one of trace, debug, info, notice, warning, error, critical"
                    )
                }
                c.logLevel = level
            },
            copy: { c, other in c.logLevel = other.logLevel }
        ),
        .presence("log-personal-data", \.logPersonalData, help: "Log phone numbers and contact ids in clear."),
        .presence(
            "demo",
            \.demo,
            help:
                "Serve bundled sample contacts through a loopback stand-in for the API: no token, no network, so not with --api-url or --token-file."
        ),
    ]
}
