import ContactdCore
import ContactdJSON
import ContactdProtocol
import Foundation
import Logging
import NIOCore

/// Turns decoded requests into response bytes: hits synchronously, misses through one await.
///
/// Shared by all connections. The synchronous half (`respond(to:)`) runs on a connection's event
/// loop, so a cache hit costs no task, no actor hop and no re-encoding of the contact.
package final class RequestDispatcher: Sendable {
    /// What to do with one request.
    package enum Outcome: Sendable {
        /// Reply with this response object (no newline); `nil` for a notification.
        case reply([UInt8]?)
        /// The contact must be fetched; call `fetch(_:)` and reply with what it returns.
        case fetch(PendingLookup)
    }

    /// A lookup that needs the API.
    package struct PendingLookup: Sendable, Equatable {
        package let id: JSONValue?
        package let key: ContactKey
        package let maxAge: Double?
        /// When the request was read (`MonotonicClock.system`): its deadline counts from here.
        package let receivedAt: Double

        package init(id: JSONValue?, key: ContactKey, maxAge: Double?) {
            self.id = id
            self.key = key
            self.maxAge = maxAge
            self.receivedAt = MonotonicClock.system.now()
        }

        /// The same request, whenever it was read.
        package static func == (lhs: PendingLookup, rhs: PendingLookup) -> Bool {
            lhs.id == rhs.id && lhs.key == rhs.key && lhs.maxAge == rhs.maxAge
        }
    }

    let lookup: ContactLookup
    let status: DaemonStatus
    private let logger: Logger
    private let logPersonalData: Bool
    /// Whether each lookup gets a debug line; read once, so the hit path pays one branch.
    private let logsLookups: Bool
    private let discoverResult: [UInt8]

    package init(lookup: ContactLookup, status: DaemonStatus, logger: Logger, logPersonalData: Bool = false) {
        self.lookup = lookup
        self.status = status
        self.logger = logger
        self.logPersonalData = logPersonalData
        self.logsLookups = logger.logLevel <= .debug
        let document = OpenRPCDocument.json.replacingOccurrences(of: "VERSION", with: ContactdVersion.current)
        // The document is a constant checked by a test; compact it once here.
        self.discoverResult = (try? JSONParser.parse(Array(document.utf8)))?.jsonBytes ?? Array("{}".utf8)
    }

    /// Handles one request as far as it can without waiting.
    package func respond(to item: RPCItem) -> Outcome {
        switch item {
        case .invalid(let id, let error):
            return .reply(Self.errorObject(id: id, error))
        case .request(let request):
            do {
                return try handle(request)
            } catch {
                return .reply(request.id.map { Self.errorObject(id: $0, error) })
            }
        }
    }

    /// The key of a line `ContactGetScanner` recognised, or `nil` when it is not a valid one (the
    /// full path then gives the error).
    package static func key(for request: ContactGetScanner.Request) -> ContactKey? {
        switch request.key {
        case .phoneNumber(let text): PhoneNumber(text).map { .phone($0) }
        case .contactID(let text): ContactID(text).map { .id($0) }
        }
    }

    /// A hit for a line `ContactGetScanner` recognised, written straight into `out` (with its
    /// newline); `false` when it is not a hit and `respond(to:key:)` must handle it.
    package func writeHit(
        for request: ContactGetScanner.Request,
        key: ContactKey,
        appendingTo out: inout some ReplySink
    ) -> Bool {
        Self.withIDToken(request.id) { idToken in
            key.withBytes { kind, bytes in
                writeHit(kind: kind, key: bytes, maxAge: request.maxAge, idToken: idToken, appendingTo: &out) {
                    request.id
                }
            }
        }
    }

    /// What `writeHit(raw:appendingTo:)` did.
    package enum RawHit {
        /// The reply is in the sink.
        case wrote
        /// Not a plain hit (absent, expired): the lookup must go to NIO.
        case notAHit
        /// The key is not in normalised form: take `writeHit(for:key:appendingTo:)`'s path.
        case unusable
    }

    /// `writeHit(for:key:appendingTo:)` for a canonical line, from its slices: no string is made
    /// for the id or the key (the fast lane's hit path).
    package func writeHit(raw: ContactGetScanner.RawRequest, appendingTo out: inout some ReplySink) -> RawHit {
        let kind: ContactKey.Kind
        if raw.isPhoneNumber {
            // A number to normalise first takes the String path.
            guard PhoneNumber.isNormalised(raw.key) else { return .unusable }
            kind = .phone
        } else {
            // The scanner let through only bytes an id may hold, at most 128 of them.
            guard !raw.key.isEmpty else { return .unusable }
            kind = .id
        }
        let wrote = writeHit(kind: kind, key: raw.key, maxAge: nil, idToken: raw.id, appendingTo: &out) {
            raw.idValue
        }
        return wrote ? .wrote : .notAHit
    }

    /// Both `writeHit`s: the reply (with its newline) for a key given as bytes, the id given
    /// written as JSON (`idToken`) and, for the rare not-found reply, as a value (`id`).
    private func writeHit(
        kind: ContactKey.Kind,
        key: UnsafeRawBufferPointer,
        maxAge: Double?,
        idToken: UnsafeRawBufferPointer,
        appendingTo out: inout some ReplySink,
        id: () -> JSONValue
    ) -> Bool {
        let found = lookup.writeHit(kind: kind, bytes: key, maxAge: maxAge) { json, age in
            Self.writeContact(idToken: idToken, json: json, status: .hit, age: age, staleReason: nil, into: &out)
        }
        if logsLookups, found != .none, let key = ContactKey(kind: kind, bytes: key) {
            logLookup(key, found == .wrote ? "hit" : "not_found")
        }
        switch found {
        case .wrote: break
        case .notFound:
            var bytes: [UInt8] = []
            RPCResponse.failure(id: id(), error: RPCError(LookupError.notFound), into: &bytes)
            out.append(bytes)
        case .none: return false
        }
        out.append("\n" as StaticString)
        return true
    }

    /// Handles a line `ContactGetScanner` recognised, as `respond(to:)` would the parsed request.
    package func respond(to request: ContactGetScanner.Request, key: ContactKey) -> Outcome {
        if let answer = lookup.cached(key, maxAge: request.maxAge) {
            if logsLookups { logLookup(key, answer) }
            return .reply(Self.object(id: request.id, answer))
        }
        return .fetch(PendingLookup(id: request.id, key: key, maxAge: request.maxAge))
    }

    /// Finishes a lookup that needed the API.
    package func fetch(_ pending: PendingLookup) async -> [UInt8]? {
        let result = await lookup.get(pending.key, maxAge: pending.maxAge, since: pending.receivedAt)
        if logsLookups { logLookup(pending.key, result) }
        guard let id = pending.id else { return nil }
        return Self.object(id: id, result)
    }

    private func handle(_ request: RPCRequest) throws(RPCError) -> Outcome {
        guard let method = RPCMethod(rawValue: request.method) else {
            throw .methodNotFound(request.method)
        }
        switch method {
        case .contactGet:
            let params = try ContactGetParams(request.params)
            if let answer = lookup.cached(params.key, maxAge: params.maxAge) {
                if logsLookups { logLookup(params.key, answer) }
                return .reply(request.id.map { Self.object(id: $0, answer) })
            }
            return .fetch(PendingLookup(id: request.id, key: params.key, maxAge: params.maxAge))
        case .contactInvalidate:
            let removed: Int
            switch try InvalidateParams(request.params) {
            case .key(let key): removed = lookup.invalidate(key)
            case .all:
                removed = lookup.invalidateAll()
                // The cache's own pages are unmapped already; this returns what it freed on the heap.
                GlibcHeap.releaseFreeMemory()
            }
            return reply(request, .object(["removed": .int(removed)]))
        case .cacheStats:
            try Self.expectNoParams(request.params)
            return reply(request, Self.statsJSON(lookup.stats))
        case .daemonStatus:
            try Self.expectNoParams(request.params)
            return reply(request, status.json(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure))
        case .daemonPing:
            try Self.expectNoParams(request.params)
            return reply(request, .string("pong"))
        case .rpcDiscover:
            try Self.expectNoParams(request.params)
            guard let id = request.id else { return .reply(nil) }
            var out: [UInt8] = []
            RPCResponse.success(id: id, rawResult: discoverResult, into: &out)
            return .reply(out)
        }
    }

    /// The per-lookup debug line (docs/operations.md, "Logs"), on every path a lookup takes.
    private func logLookup(_ key: ContactKey, _ result: Result<LookupResult, LookupError>) {
        switch result {
        case .success(let found): logLookup(key, found.status.rawValue)
        case .failure(let error): logLookup(key, RPCError(error).reason, error: "\(error)")
        }
    }

    private func logLookup(_ key: ContactKey, _ outcome: String, error: String? = nil) {
        var metadata: Logger.Metadata = [
            "contact.key": "\(LogMasking.mask(key, clear: logPersonalData))", "lookup.outcome": "\(outcome)",
        ]
        if let error { metadata["error"] = "\(error)" }
        logger.debug("looked up", metadata: metadata)
    }

    private func reply(_ request: RPCRequest, _ result: JSONValue) -> Outcome {
        guard let id = request.id else { return .reply(nil) }
        var out: [UInt8] = []
        RPCResponse.success(id: id, result: result, into: &out)
        return .reply(out)
    }

    private static func expectNoParams(_ params: JSONValue?) throws(RPCError) {
        switch params {
        case nil: return
        case .object(let o) where o.members.isEmpty: return
        case .array(let a) where a.isEmpty: return
        default: throw .invalidParams("this method takes no params")
        }
    }

    /// The response object for a lookup: the cached bytes copied into the envelope, no re-encoding.
    static func object(id: JSONValue, _ result: Result<LookupResult, LookupError>) -> [UInt8] {
        switch result {
        case .success(let found):
            var out: [UInt8] = []
            writeContact(id: id, found, into: &out)
            return out
        case .failure(let error):
            return errorObject(id: id, RPCError(error))
        }
    }

    /// Appends the success object for `found` (no newline) to `out`: a `[UInt8]`, or a
    /// connection's output `ByteBuffer` directly, which saves a copy and an allocation per hit.
    static func writeContact(id: JSONValue, _ found: LookupResult, into out: inout some ReplySink) {
        found.contact.json.withUnsafeBytes { json in
            writeContact(
                id: id,
                json: json,
                status: found.status,
                age: found.age,
                staleReason: found.staleReason,
                into: &out
            )
        }
    }

    /// Appends the success object for a contact's `json` (no newline) to `out`.
    static func writeContact(
        id: JSONValue,
        json: UnsafeRawBufferPointer,
        status: CacheStatus,
        age: Double,
        staleReason: StaleReason?,
        into out: inout some ReplySink
    ) {
        withIDToken(id) {
            writeContact(idToken: $0, json: json, status: status, age: age, staleReason: staleReason, into: &out)
        }
    }

    /// Calls `body` with `id` written as JSON: a number's digits as the client spelled them
    /// (nothing to encode), anything else encoded.
    private static func withIDToken<Result>(_ id: JSONValue, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        if case .number(var digits) = id {
            return digits.withUTF8 { body(UnsafeRawBufferPointer($0)) }
        }
        var token: [UInt8] = []
        id.write(into: &token)
        return token.withUnsafeBytes(body)
    }

    /// `writeContact(id:…)` with the id already written as JSON (`idToken`).
    static func writeContact(
        idToken: UnsafeRawBufferPointer,
        json: UnsafeRawBufferPointer,
        status: CacheStatus,
        age: Double,
        staleReason: StaleReason?,
        into out: inout some ReplySink
    ) {
        // Static pieces and digits written directly: with one `String` per piece, the envelope
        // took 8.6% of the daemon's CPU at 50 connections × 16 (perf), more than copying the
        // contact's 470 bytes (6.3%).
        out.reserve(json.count + idToken.count + 128)
        out.append(#"{"jsonrpc":"2.0","id":"# as StaticString)
        out.append(idToken)
        out.append(#","result":{"contact":"# as StaticString)
        out.append(json)
        switch status {
        case .hit: out.append(#","cache":{"status":"hit","age":"# as StaticString)
        case .miss: out.append(#","cache":{"status":"miss","age":"# as StaticString)
        case .stale: out.append(#","cache":{"status":"stale","age":"# as StaticString)
        }
        out.appendDecimal(Int(age))
        if let reason = staleReason {
            out.append(#","stale_reason":""# as StaticString)
            out.append(reason.rawValue)
            out.append("\"" as StaticString)
        }
        out.append("}}}" as StaticString)
    }

    static func errorObject(id: JSONValue, _ error: RPCError) -> [UInt8] {
        var out: [UInt8] = []
        RPCResponse.failure(id: id, error: error, into: &out)
        return out
    }

    static func statsJSON(_ stats: LookupStats) -> JSONValue {
        .object([
            "entries": .int(stats.entries),
            "bytes": .int(stats.bytes),
            "hits": .int(stats.hits),
            "stale_hits": .int(stats.staleHits),
            "stale_if_error": .int(stats.staleIfError),
            "misses": .int(stats.misses),
            "hit_ratio": .double(stats.hitRatio),
            "evictions": .int(stats.evictions),
            "refreshes": .int(stats.refreshes),
            "refresh_aheads": .int(stats.refreshAheads),
            "upstream": .object([
                "requests": .int(stats.upstreamRequests),
                "errors": .int(stats.upstreamErrors),
                "in_flight": .int(stats.upstreamInFlight),
                "retries": .int(stats.retries),
                "queue_depth": .int(stats.queueDepth),
                "overloaded": .int(stats.overloaded),
                "token_rejected": .bool(stats.tokenRejected),
                "circuit": .object([
                    "state": .string(stats.circuitState),
                    "opened": .int(stats.circuitOpened),
                    "refusals": .int(stats.circuitRefusals),
                ]),
                "latency_ms": .object([
                    "p50": .double(stats.latencyMilliseconds.p50),
                    "p90": .double(stats.latencyMilliseconds.p90),
                    "p99": .double(stats.latencyMilliseconds.p99),
                    "max": .double(stats.latencyMilliseconds.max),
                ]),
            ]),
        ])
    }
}

/// Where a reply is assembled: a byte array or a NIO buffer.
package protocol ReplySink {
    mutating func append(_ text: String)
    mutating func append(_ text: StaticString)
    mutating func append(_ bytes: [UInt8])
    mutating func append(_ bytes: UnsafeRawBufferPointer)
    /// Makes room for `count` more bytes.
    mutating func reserve(_ count: Int)
}

extension ReplySink {
    /// Appends `value` in decimal (what `String(value)` would spell, without making the string).
    mutating func appendDecimal(_ value: Int) {
        if value < 0 { append("-" as StaticString) }
        var rest = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            append(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[start...]))
        }
    }
}

extension Array: ReplySink where Element == UInt8 {
    package mutating func append(_ text: String) { append(contentsOf: text.utf8) }
    package mutating func append(_ text: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
    package mutating func append(_ bytes: [UInt8]) { append(contentsOf: bytes) }
    package mutating func append(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
    package mutating func reserve(_ count: Int) { reserveCapacity(self.count + count) }
}

extension ByteBuffer: ReplySink {
    package mutating func append(_ text: String) { writeString(text) }
    package mutating func append(_ text: StaticString) { writeStaticString(text) }
    package mutating func append(_ bytes: [UInt8]) { writeBytes(bytes) }
    package mutating func append(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
    package mutating func reserve(_ count: Int) { reserveCapacity(minimumWritableBytes: count) }
}

extension RPCError {
    /// The wire error for a lookup failure: the one place that knows both `LookupError` and `RPCError`.
    init(_ error: LookupError) {
        switch error {
        case .notFound: self = .notFound
        case .unauthorized: self = .upstreamUnauthorized
        case .rateLimited(let retryAfter): self = .rateLimited(retryAfter: retryAfter)
        case .unavailable(let detail, let retryAfter, _): self = .upstreamUnavailable(detail, retryAfter: retryAfter)
        case .badResponse(let detail): self = .upstreamBadResponse(detail)
        case .rejectedByAPI: self = .rejectedByAPI
        case .overloaded(let detail): self = .overloaded(detail)
        }
    }
}
