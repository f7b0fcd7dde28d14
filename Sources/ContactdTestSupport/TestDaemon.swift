import ContactdCore
import ContactdDaemon
import FakeContactAPI
import Foundation
import Logging

/// A short temporary directory (Unix socket paths must fit in 108 bytes), removed afterwards.
package func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    var template = Array("/tmp/cdt-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestSupportError("mkdtemp failed") }
    let path = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Runs `body` with a fake get-contact API on loopback, shut down afterwards.
package func withFakeAPI<T>(
    contacts: [String] = DemoContacts.all,
    expectedToken: String? = "test-token",
    _ body: (FakeContactAPI) async throws -> T
) async throws -> T {
    let api = try await FakeContactAPI.start(contacts: contacts, expectedToken: expectedToken)
    do {
        let result = try await body(api)
        await api.shutdown()
        return result
    } catch {
        await api.shutdown()
        throw error
    }
}

/// A daemon running in this process, as `withDaemon` gives it to a test.
package struct TestDaemon: Sendable {
    /// The socket clients connect to.
    package let socketPath: String
    package let configuration: DaemonConfiguration
}

/// Runs the real `Daemon` in-process against `api`, with the socket in a fresh temporary directory.
///
/// Returns once `body` finishes; the daemon is then cancelled and awaited, so no test leaves a
/// daemon behind. `configure` changes the configuration before start.
package func withDaemon<T: Sendable>(
    api: FakeContactAPI,
    token: String = "test-token",
    logger: Logger = Logger(label: "contactd-test", factory: { _ in SwiftLogNoOpLogHandler() }),
    configure: (inout DaemonConfiguration) -> Void = { _ in },
    _ body: @Sendable (TestDaemon) async throws -> T
) async throws -> T {
    try await withTemporaryDirectory { directory in
        var configuration = DaemonConfiguration()
        configuration.socket.path = directory + "/contactd.sock"
        configuration.upstream.url = api.baseURL
        configure(&configuration)
        let environment = ["CONTACTD_API_TOKEN": token]
        let ready = AsyncStream.makeStream(of: Void.self)
        let frozen = configuration
        let daemon = Task {
            // A daemon that fails before it is ready ends the wait for READY too.
            defer { ready.continuation.finish() }
            try await Daemon.run(configuration: frozen, environment: environment, logger: logger) {
                ready.continuation.yield()
                ready.continuation.finish()
            }
        }
        // Wait for READY, or for the daemon to fail before it.
        var iterator = ready.stream.makeAsyncIterator()
        let started: Void? = await withTaskCancellationHandler {
            await iterator.next()
        } onCancel: {
            ready.continuation.finish()
        }
        if started == nil {
            try await daemon.value
            throw TestSupportError("daemon stopped before it was ready")
        }
        let handle = TestDaemon(socketPath: frozen.socket.path, configuration: frozen)
        do {
            let result = try await body(handle)
            daemon.cancel()
            _ = try? await daemon.value
            return result
        } catch {
            daemon.cancel()
            _ = try? await daemon.value
            throw error
        }
    }
}

/// A test-support failure with a message.
package struct TestSupportError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
