import ContactdProtocol
import Synchronization

/// `contact.get` requests answered with an error, by the error's reason
/// (`contactd_lookup_failures_total`): a dashboard tells a caller's bad keys from the API's
/// outage from the daemon's own limits.
///
/// Counted where each error is written: the hit path (a cached not-found), a finished fetch, the
/// params check, and a refusal (overloaded, shutting down, forbidden). A relaxed atomic each, as
/// the hit path's other counters.
package final class LookupFailures: Sendable {
    /// The reasons a `contact.get` can fail with (SPEC §3).
    package enum Reason: String, CaseIterable, Sendable {
        case notFound = "not_found"
        case invalidParams = "invalid_params"
        case invalidPhoneNumber = "invalid_phone_number"
        case invalidContactID = "invalid_contact_id"
        case rejectedByAPI = "rejected_by_api"
        case upstreamUnavailable = "upstream_unavailable"
        case upstreamUnauthorized = "upstream_unauthorized"
        case rateLimited = "rate_limited"
        case upstreamBadResponse = "upstream_bad_response"
        case overloaded
        case shuttingDown = "shutting_down"
        case forbidden
        case internalError = "internal_error"
    }

    private final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    private let counts: [Reason: Count]

    package init() {
        counts = Dictionary(uniqueKeysWithValues: Reason.allCases.map { ($0, Count()) })
    }

    package func count(_ reason: Reason) {
        counts[reason]!.value.add(1, ordering: .relaxed)
    }

    /// Counts `error`; a reason no `contact.get` answers with counts as `internal_error`.
    package func count(error: RPCError) {
        count(Reason(rawValue: error.reason) ?? .internalError)
    }

    package func total(_ reason: Reason) -> Int {
        counts[reason]!.value.load(ordering: .relaxed)
    }
}
