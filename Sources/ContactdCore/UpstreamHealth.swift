import ContactdProtocol

/// What the API has told the daemon lately, beyond single cache entries: its last failure, the
/// token's standing, the holds a 429 or a failed refresh put on keys, and since when answers have
/// been stale because of it. The circuit breaker is apart (`CircuitBreaker`).
///
/// A state machine without I/O: `ContactResolver` keeps it under a lock, feeds it events with the
/// time, and performs the `Action`s it returns. Only answers from the API (`learn`) move it; a
/// lookup refused because of a hold or the token state changes nothing but `staleSince`.
///
/// ```
///   token:  accepted ──401/403 (current token)──▶ rejected ──2xx/404/4xx answer or reload──▶ accepted
///   holds:  none ──429 (Retry-After)──▶ fetches held for the key (or every key)
///           none ──failed background refresh──▶ refreshes held for the key (`retryMaxDelay`)
///           held ──time passes, or the API answers for the key──▶ none
/// ```
package struct UpstreamHealth: Sendable {
    /// Whether the API accepts the current token.
    package enum TokenState: Sendable, Equatable {
        case accepted
        /// A 401/403 came back for the current token at `since`; `lastTry` is when the API was
        /// last asked with it (one call per cooldown tries it again).
        case rejected(since: Double, lastTry: Double)
    }

    /// What the caller must do after an event.
    package enum Action: Sendable, Equatable {
        case none
        /// Log once that the API rejects the token (the state was just entered).
        case announceTokenRejected
        /// The token changed: drop the not-found entries learned with the old one.
        case dropNotFoundEntries
    }

    /// What to do with an expired entry still within its stale window.
    package enum StaleVerdict: Sendable, Equatable {
        /// Do not answer from it: the token is rejected, and the caller should hear that.
        case refuse
        /// Answer it as stale with this reason, and do not refresh now (a hold is in force).
        case serveHeld(StaleReason)
        /// Answer it as stale and refresh it if the breaker allows.
        case serveAndRefresh
    }

    private struct Hold: Sendable {
        var until: Double
        var reason: StaleReason
        /// Whether foreground fetches wait too (429), or only background refreshes (a failure).
        var blocksFetches: Bool
    }

    /// Most keys with a remembered hold; past it, expired holds are dropped, then all of them.
    static let maximumHolds = 10_000

    package private(set) var token = TokenState.accepted
    /// The last API failure other than not-found; cleared by the next answer.
    package private(set) var lastFailure: LookupError?
    /// Bumped when the token changes; a fetch carries the generation it started with.
    package private(set) var generation = 0
    /// Since when answers have been stale because the API failed or held back; `nil` when not.
    package private(set) var staleSince: Double?
    private var holds: [ContactKey: Hold] = [:]
    /// After a 429 with `rateLimitAllKeys`: no fetch for any key before this.
    private var globalHoldUntil = 0.0

    package init() {}

    // MARK: Events from lookups

    /// An expired entry for `key` is about to be answered from.
    package mutating func staleVerdict(for key: ContactKey, now: Double) -> StaleVerdict {
        if case .rejected = token { return .refuse }
        if globalHoldUntil > now {
            servedStale(now: now)
            return .serveHeld(.rateLimited)
        }
        if let hold = holds[key], hold.until > now {
            servedStale(now: now)
            return .serveHeld(hold.reason)
        }
        return .serveAndRefresh
    }

    /// Whether a fresh entry for `key` may be refreshed ahead of its TTL now.
    package func mayRefreshAhead(_ key: ContactKey, now: Double) -> Bool {
        token == .accepted && globalHoldUntil <= now && (holds[key]?.until ?? 0) <= now
    }

    /// A stale answer was given because the API failed, was held back or its circuit is open.
    package mutating func servedStale(now: Double) {
        staleSince = staleSince ?? now
    }

    /// Why `key` must not be fetched now (a 429 hold, or a rejected token not yet due a retry);
    /// `nil` lets the fetch go on. A let-through while the token is rejected counts as its try.
    package mutating func fetchRefusal(for key: ContactKey, now: Double, tokenRetryAfter cooldown: Double)
        -> LookupError?
    {
        let held = holds[key].flatMap { $0.blocksFetches ? $0.until : nil } ?? 0
        let until = max(globalHoldUntil, held)
        if until > now { return .rateLimited(retryAfter: (until - now).rounded(.up)) }
        if case .rejected(let since, let lastTry) = token {
            guard now - lastTry >= cooldown else { return .unauthorized }
            token = .rejected(since: since, lastTry: now)
        }
        return nil
    }

    // MARK: Events from the API

    /// The API answered a fetch for `key` that started under `generation`.
    ///
    /// - Parameters:
    ///   - background: the fetch was a refresh nobody waited for; its failure holds the key's
    ///     refreshes back for `policy.retryMaxDelay.seconds`.
    package mutating func learn(
        _ answer: Result<APIContact, LookupError>,
        for key: ContactKey,
        generation fetchGeneration: Int,
        background: Bool,
        policy: UpstreamPolicy,
        now: Double
    ) -> Action {
        let current = fetchGeneration == generation
        switch answer {
        case .success, .failure(.notFound), .failure(.rejectedByAPI):
            lastFailure = nil
            staleSince = nil
            holds[key] = nil
            if current { token = .accepted }
        case .failure(.unauthorized):
            lastFailure = .unauthorized
            if current, token == .accepted {
                token = .rejected(since: now, lastTry: now)
                return .announceTokenRejected
            }
        case .failure(.rateLimited(let retryAfter)):
            lastFailure = .rateLimited(retryAfter: retryAfter)
            let until = now + (retryAfter ?? policy.defaultRetryAfter.seconds)
            if policy.rateLimitAllKeys {
                globalHoldUntil = max(globalHoldUntil, until)
            } else {
                hold(key, Hold(until: until, reason: .rateLimited, blocksFetches: true), now: now)
            }
        case .failure(let error) where error.isUnavailableOrBad:
            lastFailure = error
            if background {
                hold(
                    key,
                    Hold(until: now + policy.retryMaxDelay.seconds, reason: .upstreamUnavailable, blocksFetches: false),
                    now: now
                )
            }
        case .failure:
            break
        }
        return .none
    }

    /// The token was read again (SIGHUP); `changed` says whether it differs from the old one.
    package mutating func tokenReloaded(changed: Bool) -> Action {
        token = .accepted
        guard changed else { return .none }
        generation += 1
        if lastFailure == .unauthorized { lastFailure = nil }
        return .dropNotFoundEntries
    }

    private mutating func hold(_ key: ContactKey, _ hold: Hold, now: Double) {
        if holds.count >= Self.maximumHolds {
            holds = holds.filter { $0.value.until > now }
            if holds.count >= Self.maximumHolds { holds.removeAll(keepingCapacity: true) }
        }
        holds[key] = hold
    }
}

extension LookupError {
    /// Transport failures, 5xx and answers that are not contacts: what a failed refresh holds back.
    fileprivate var isUnavailableOrBad: Bool {
        switch self {
        case .unavailable, .badResponse: true
        default: false
        }
    }
}
