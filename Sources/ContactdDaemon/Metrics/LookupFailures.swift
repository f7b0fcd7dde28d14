import ContactdProtocol
import Synchronization

/// `contact.get` requests answered with an error, by the error's reason
/// (`contactd_lookup_failures_total`): a dashboard tells a caller's bad keys from the API's
/// outage from the daemon's own limits.
///
/// Counted where each error is written: the hit path (a cached not-found), a finished fetch, the
/// params check, and a refusal (overloaded, shutting down, forbidden). A relaxed atomic each, as
/// the hit path's other counters. The reasons are `ErrorReason.lookupFailures`.
package final class LookupFailures: Sendable {
    private final class Count: Sendable {
        let value = Atomic<Int>(0)
    }

    private let counts: [ErrorReason: Count]

    package init() {
        counts = Dictionary(uniqueKeysWithValues: ErrorReason.lookupFailures.map { ($0, Count()) })
    }

    package func count(_ reason: ErrorReason) {
        (counts[reason] ?? counts[.internalError])?.value.add(1, ordering: .relaxed)
    }

    /// Counts `error`; a reason no `contact.get` answers with counts as `internal_error`.
    package func count(error: RPCError) {
        count(ErrorReason(rawValue: error.reason) ?? .internalError)
    }

    package func total(_ reason: ErrorReason) -> Int {
        counts[reason]?.value.load(ordering: .relaxed) ?? 0
    }
}
