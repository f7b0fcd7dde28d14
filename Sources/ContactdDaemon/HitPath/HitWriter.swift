import ContactdCore
import ContactdJSON
import ContactdProtocol

/// A `contact.get` the cache could not answer at once: what `RequestDispatcher.fetch` finishes.
package struct PendingLookup: Sendable, Equatable {
    /// The id to answer with; `nil` for a notification.
    package let id: JSONValue?
    package let key: ContactKey
    package let maxAge: Double?
    /// When the request was read (`MonotonicClock.system`): its deadline counts from here.
    package let receivedAt: Double
    /// The caller's W3C trace context (`params.traceparent`), for the lookup's span.
    package let traceparent: String?

    package init(id: JSONValue?, key: ContactKey, maxAge: Double?, traceparent: String? = nil) {
        self.id = id
        self.key = key
        self.maxAge = maxAge
        self.receivedAt = MonotonicClock.system.now()
        self.traceparent = traceparent
    }

    /// The same request, whenever it was read.
    package static func == (lhs: PendingLookup, rhs: PendingLookup) -> Bool {
        lhs.id == rhs.id && lhs.key == rhs.key && lhs.maxAge == rhs.maxAge
    }
}

/// The hit path: answers a `contact.get` from the cache at once when it can, or says why not.
///
/// Both connection paths call it — the fast lane and `ConnectionHandler` with request lines,
/// `RequestDispatcher` with requests the full JSON parser read — so a hit is written one way. A
/// fresh contact's bytes are copied from the cache into the reply under the cache's lock, with no
/// `APIContact` made; a canonical line's id and key are used as the line's own bytes.
final class HitWriter: Sendable {
    /// What became of one request.
    enum Decision {
        /// The reply object (no newline) is in the sink: a fresh contact or a cached not-found.
        case wrote
        /// Not answerable at once (absent, expired, stale, older than `max_age`): the lookup to
        /// finish with `RequestDispatcher.fetch`. The line is not to be read again.
        case lookUp(PendingLookup)
        /// Not a plain `contact.get` line (or one whose key the full path rejects): the full
        /// parser answers it.
        case parse
    }

    private let lookup: ContactResolver
    private let log: LookupLog
    private let failures: LookupFailures

    init(lookup: ContactResolver, log: LookupLog, failures: LookupFailures) {
        self.lookup = lookup
        self.log = log
        self.failures = failures
    }

    /// Answers one request line (no newline).
    func answer(line: UnsafeRawBufferPointer, into out: inout some ReplySink) -> Decision {
        guard let request = ContactGetLine.scan(line) else { return .parse }
        // A normalised number, or an id (the scanner let through only bytes an id may hold), is
        // looked up as the line's bytes; a number to normalise first takes a made key.
        if request.kind == .phone ? PhoneNumber.isNormalised(request.key) : !request.key.isEmpty {
            return answer(
                kind: request.kind,
                key: request.key,
                maxAge: request.maxAge,
                idToken: request.idToken,
                into: &out,
                id: { request.id },
                contactKey: { ContactKey(kind: request.kind, bytes: request.key) },
                traceparent: { request.traceparent.map { String(decoding: $0, as: UTF8.self) } }
            )
        }
        let text = String(decoding: request.key, as: UTF8.self)
        guard request.kind == .phone, let number = PhoneNumber(text) else { return .parse }
        return answer(
            key: .phone(number),
            maxAge: request.maxAge,
            id: request.id,
            traceparent: request.traceparent.map { String(decoding: $0, as: UTF8.self) },
            into: &out
        )
    }

    /// Answers a request the full parser read; `id` `nil` for a notification (whose reply the
    /// caller drops).
    func answer(
        key: ContactKey,
        maxAge: Double?,
        id: JSONValue?,
        traceparent: String? = nil,
        into out: inout some ReplySink
    ) -> Decision {
        RPCResponse.withIDToken(id ?? .null) { idToken in
            key.withBytes { kind, bytes in
                answer(
                    kind: kind,
                    key: bytes,
                    maxAge: maxAge,
                    idToken: idToken,
                    into: &out,
                    id: { id },
                    contactKey: { key },
                    traceparent: { traceparent }
                )
            }
        }
    }

    private func answer(
        kind: ContactKey.Kind,
        key: UnsafeRawBufferPointer,
        maxAge: Double?,
        idToken: UnsafeRawBufferPointer,
        into out: inout some ReplySink,
        id: () -> JSONValue?,
        contactKey: () -> ContactKey?,
        traceparent: () -> String?
    ) -> Decision {
        // The key as a value (and the id) is made only when needed: for a debug line, a
        // not-found reply or a lookup; a request the full parser read already has it.
        let found = lookup.writeHit(kind: kind, bytes: key, maxAge: maxAge) { json, age in
            ContactReply.write(
                idToken: idToken,
                json: json,
                status: .hit,
                age: age,
                staleReason: nil,
                tier: lookup.localTier,
                into: &out
            )
        }
        switch found {
        case .wrote:
            if log.enabled, let key = contactKey() { log.record(key, "hit") }
        case .notFound:
            if log.enabled, let key = contactKey() { log.record(key, "not_found") }
            failures.count(.notFound)
            RPCResponse.failure(id: id() ?? .null, error: .notFound, into: &out)
        case .none:
            guard let key = contactKey() else { return .parse }
            return .lookUp(PendingLookup(id: id(), key: key, maxAge: maxAge, traceparent: traceparent()))
        }
        return .wrote
    }
}
