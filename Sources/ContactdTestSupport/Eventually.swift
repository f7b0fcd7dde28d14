/// Asks `condition` every 20 ms until it holds, for something that has no event to wait for
/// (another process's state); throws naming `what`, and the last error met, after `limit`. An
/// error from `condition` counts as "not yet" (a server not listening yet refuses).
package func eventually(
    _ what: String,
    within limit: Duration = .seconds(10),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + limit
    var lastError: (any Error)?
    while true {
        do {
            if try await condition() { return }
        } catch {
            lastError = error
        }
        guard ContinuousClock.now < deadline else {
            throw TestSupportError("\(what): not so within \(limit)" + (lastError.map { " (last: \($0))" } ?? ""))
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
