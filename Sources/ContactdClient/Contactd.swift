import ContactdJSON
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The client a service creates once and shares between its tasks.
///
/// It keeps a few connections to the daemon and spreads calls over them (calls on one connection
/// are pipelined, so a few suffice for thousands of concurrent lookups). Each connection rides
/// through daemon restarts like a ``ContactdSession``: it reconnects with backoff within the call's
/// timeout and makes a call that the restart cut off once more. Calls honour their timeout and
/// Task cancellation.
///
/// Run it in the service's `ServiceGroup`, which closes its connections on shutdown:
///
/// ```swift
/// let contacts = Contactd(logger: logger)
/// let group = ServiceGroup(services: [contacts, myService], logger: logger)
/// // in myService:
/// let found = try await contacts.contact(phoneNumber: "+14155551234")
/// print(found.contact.name ?? "?", found.cacheStatus)
/// ```
public final class Contactd: ContactdCalls, Service {
    /// Where the daemon is and how long calls may take.
    public struct Configuration: Sendable {
        /// The daemon's socket, `/run/contactd/contactd.sock` by default.
        public var socketPath: String
        /// How long a call may take, reconnecting included; `nil`: no limit. Default 10 s.
        public var timeout: Duration?
        /// Connections kept open; calls are spread over them. Default 2.
        public var connections: Int

        /// A configuration; every value has the default described on its property.
        public init(
            socketPath: String = ContactdConnection.defaultSocketPath,
            timeout: Duration? = .seconds(10),
            connections: Int = 2
        ) {
            self.socketPath = socketPath
            self.timeout = timeout
            self.connections = connections
        }
    }

    /// What the client was made with.
    public let configuration: Configuration
    private let sessions: [ContactdSession]
    private let next = NIOLockedValueBox(0)
    private let logger: Logger

    /// A client; it connects on first use.
    ///
    /// - Parameters:
    ///   - configuration: the socket, the timeout and how many connections to keep.
    ///   - eventLoopGroup: where the connections' I/O runs; SwiftNIO's shared group by default.
    ///   - logger: connects and reconnects at `debug`, a lost connection at `info`.
    public init(
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "contactd.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.logger = logger
        self.sessions = (0..<max(1, configuration.connections)).map { _ in
            ContactdSession(
                socketPath: configuration.socketPath,
                timeout: configuration.timeout,
                eventLoopGroup: eventLoopGroup,
                logger: logger
            )
        }
    }

    /// Calls `method` with `params` on the next connection and returns its `result`.
    ///
    /// - Throws: ``ContactdClientError`` (switch on its ``ContactdClientError/kind``);
    ///   `CancellationError` when the task is cancelled.
    public func call(_ method: String, params: JSONValue?, timeout: Duration?) async throws -> JSONValue {
        let session = next.withLockedValue { index in
            defer { index = (index + 1) % sessions.count }
            return sessions[index]
        }
        return try await session.call(method, params: params, timeout: timeout ?? configuration.timeout)
    }

    /// Runs until the service group shuts down (or the task is cancelled), then closes the
    /// connections.
    public func run() async throws {
        logger.debug("contactd client running", metadata: ["contactd.socket": "\(configuration.socketPath)"])
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Closes the connections; a later call opens new ones.
    public func shutdown() async {
        for session in sessions { await session.close() }
        logger.debug("contactd client closed its connections")
    }
}
