/// Where contacts come from on a miss: the API client in production, anything in tests.
package protocol ContactSource: Sendable {
    /// Fetches the contact for `key` within `timeout` seconds; throws `LookupError` (`.notFound`
    /// for a missing contact, `.unavailable(retryable: true)` for failures worth another try).
    func fetch(_ key: ContactKey, timeout: Double) async throws(LookupError) -> APIContact
}
