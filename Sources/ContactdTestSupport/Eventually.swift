/// Asks `attempt` every 20 ms until it gives a value, for something that has no event to wait for
/// (another process's state, a socket that appears); throws naming `what`, and the last error
/// met, after `limit`. An error from `attempt` counts as "not yet" (a server not listening yet
/// refuses).
package func eventually<T>(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ attempt: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + limit
    var lastError: (any Error)?
    while true {
        do {
            if let value = try await attempt() { return value }
        } catch {
            lastError = error
        }
        guard ContinuousClock.now < deadline else {
            throw TestSupportError("\(what): not so within \(limit)" + (lastError.map { " (last: \($0))" } ?? ""))
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// Asks `condition` every 20 ms until it holds; as above.
package func eventually(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ condition: () async throws -> Bool
) async throws {
    try await eventually(what, within: limit) { try await condition() ? () : nil }
}
