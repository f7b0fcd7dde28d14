import ContactdJSON
import ContactdProtocol

/// The daemon's methods, on anything that can make a call: one `ContactdConnection`, or a
/// `ContactdSession` that reconnects when the daemon restarts.
public protocol ContactdCalls: Sendable {
    /// Calls `method` with `params` and returns its `result`, waiting at most `timeout` (the
    /// caller's default when `nil`).
    func call(_ method: String, params: JSONValue?, timeout: Duration?) async throws -> JSONValue
}

extension ContactdCalls {
    /// Calls `method` with `params`, waiting as long as the caller's default allows.
    public func call(_ method: String, params: JSONValue? = nil) async throws -> JSONValue {
        try await call(method, params: params, timeout: nil)
    }

    /// A contact by phone number.
    ///
    /// - Parameters:
    ///   - phoneNumber: any common spelling; the daemon normalises it to E.164.
    ///   - maxAge: seconds; a cached entry older than this is fetched again (0 forces it).
    public func contact(phoneNumber: String, maxAge: Double? = nil) async throws -> ContactLookup {
        try await contact(params: ["phone_number": .string(phoneNumber)], maxAge: maxAge)
    }

    /// A contact by its API id.
    ///
    /// - Parameters:
    ///   - id: the contact's `id`.
    ///   - maxAge: seconds; a cached entry older than this is fetched again (0 forces it).
    public func contact(id: String, maxAge: Double? = nil) async throws -> ContactLookup {
        try await contact(params: ["contact_id": .string(id)], maxAge: maxAge)
    }

    /// A lookup made while the task is in a trace passes it on (`TraceContext`).
    fileprivate func contact(params: JSONObject, maxAge: Double?) async throws -> ContactLookup {
        var params = TraceContext.adding(to: params)
        if let maxAge { params["max_age"] = .double(maxAge) }
        let result = try await call(RPCMethod.contactGet.rawValue, params: .object(params))
        guard let lookup = ContactLookup(result: result) else {
            throw ContactdClientError.badResponse("contact.get result without a contact and its cache status")
        }
        return lookup
    }

    /// Drops the cached entry for a phone number; returns how many entries were removed.
    public func invalidate(phoneNumber: String) async throws -> Int {
        try await invalidation(["phone_number": .string(phoneNumber)]).removed
    }

    /// Drops the cached entry for a contact id; returns how many entries were removed.
    public func invalidate(id: String) async throws -> Int {
        try await invalidation(["contact_id": .string(id)]).removed
    }

    /// Empties the cache; returns how many entries were removed.
    public func invalidateAll() async throws -> Int {
        try await invalidation(["all": .bool(true)]).removed
    }

    /// `contact.invalidate` with `params` (a `phone_number`, a `contact_id`, or `all`): how many
    /// entries were removed here, and with `--shared-cache` whether the fleet was told.
    public func invalidation(_ params: JSONObject) async throws -> InvalidateResult {
        try await typed(params: .object(params))
    }

    /// The cache's and the API's counters (`cache.stats`).
    public func stats() async throws -> CacheStats { try await typed() }

    /// Zeroes the counters `cache.stats` reports; levels such as `entries` stay
    /// (`cache.reset_stats`).
    public func resetStats() async throws { _ = try await call(RPCMethod.cacheResetStats.rawValue) }

    /// The daemon's version, uptime and state (`daemon.status`).
    public func status() async throws -> DaemonStatus { try await typed() }

    /// Every setting's effective value and where it came from (`daemon.config`).
    public func config() async throws -> DaemonConfig {
        guard let config = DaemonConfig(result: try await call(DaemonConfig.method.rawValue)) else {
            throw ContactdClientError.badResponse("daemon.config result is not an object of settings")
        }
        return config
    }

    /// The Prometheus metrics, as `/metrics` serves them (`daemon.metrics`).
    public func metrics() async throws -> MetricsText { try await typed() }

    /// Asks the daemon to re-read its token and configuration, as `systemctl reload` does
    /// (`daemon.reload`; root and the daemon's own user only, else `forbidden`).
    public func reload() async throws -> ReloadResult { try await typed() }

    /// Calls the method that answers with `Result` (its type in ContactdProtocol) and decodes it.
    fileprivate func typed<Result: WireResult>(params: JSONValue? = nil) async throws -> Result {
        let method = Result.method.rawValue
        return try await call(method, params: params).decoded(as: Result.self, method: method)
    }

    /// Checks the daemon answers; throws if it does not say "pong".
    public func ping() async throws {
        guard try await call(RPCMethod.daemonPing.rawValue) == .string("pong") else {
            throw ContactdClientError.badResponse("daemon.ping did not answer pong")
        }
    }
}
