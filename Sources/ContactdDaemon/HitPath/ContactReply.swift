import ContactdCore
import ContactdJSON
import ContactdProtocol

/// The reply to a `contact.get`: the cached contact's bytes copied into the envelope, never
/// re-encoded.
enum ContactReply {
    /// The success object for `found` (no newline).
    static func write(id: JSONValue, _ found: LookupResult, into out: inout some ReplySink) {
        RPCResponse.withIDToken(id) { idToken in
            found.contact.json.withUnsafeBytes { json in
                write(
                    idToken: idToken,
                    json: json,
                    status: found.status,
                    age: found.age,
                    staleReason: found.staleReason,
                    tier: found.tier,
                    into: &out
                )
            }
        }
    }

    /// The success object for a contact's `json` (no newline), with the id already written as
    /// JSON (`idToken`).
    static func write(
        idToken: UnsafeRawBufferPointer,
        json: UnsafeRawBufferPointer,
        status: CacheStatus,
        age: Double,
        staleReason: StaleReason?,
        tier: CacheTier?,
        into out: inout some ReplySink
    ) {
        // Static pieces and digits written directly, not one `String` per piece: the envelope
        // was once a larger share of a hit's CPU than copying the contact (docs/benchmarks.md).
        out.reserve(json.count + idToken.count + 128)
        out.append(RPCResponse.start)
        out.append(idToken)
        out.append(RPCResponse.resultMember)
        out.append(#"{"contact":"# as StaticString)
        out.append(json)
        switch status {
        case .hit: out.append(#","cache":{"status":"hit","age":"# as StaticString)
        case .miss: out.append(#","cache":{"status":"miss","age":"# as StaticString)
        case .stale: out.append(#","cache":{"status":"stale","age":"# as StaticString)
        // Core makes only the three above; a word for the type's readers, written as it is.
        case .unknown(let text):
            out.append(#","cache":{"status":""# as StaticString)
            out.append(text)
            out.append(#"","age":"# as StaticString)
        }
        appendDecimal(Int(age), to: &out)
        if let reason = staleReason {
            out.append(#","stale_reason":""# as StaticString)
            out.append(reason.description)
            out.append("\"" as StaticString)
        }
        switch tier {
        case nil: break
        case .local: out.append(#","tier":"local""# as StaticString)
        case .shared: out.append(#","tier":"shared""# as StaticString)
        case .api: out.append(#","tier":"api""# as StaticString)
        case .unknown(let text):
            out.append(#","tier":""# as StaticString)
            out.append(text)
            out.append("\"" as StaticString)
        }
        out.append("}}" as StaticString)
        out.append(RPCResponse.end)
    }

    /// Appends `value` in decimal (what `String(value)` would spell, without making the string).
    private static func appendDecimal(_ value: Int, to out: inout some ReplySink) {
        if value < 0 { out.append("-" as StaticString) }
        var rest = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            out.append(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[start...]))
        }
    }

    /// The reply object for a lookup's result (no newline).
    static func object(id: JSONValue, _ result: Result<LookupResult, LookupError>) -> [UInt8] {
        switch result {
        case .success(let found):
            var out: [UInt8] = []
            write(id: id, found, into: &out)
            return out
        case .failure(let error):
            return RPCResponse.failure(id: id, error: RPCError(error))
        }
    }
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
