/// Where contacts come from on a miss: the API client in production, anything in tests.
package protocol ContactSource: Sendable {
    /// Fetches the contact for `key`; throws `LookupError` (`.notFound` for a missing contact).
    func fetch(_ key: ContactKey) async throws(LookupError) -> Contact
}
