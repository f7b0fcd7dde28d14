import HTTPResponder
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import PlainErrors
import ServiceLifecycle
import Synchronization

/// Where `/metrics` is served (`--metrics-listen`).
package enum MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// `HOST:PORT` (`[::1]:9464` for IPv6) or `unix:PATH`.
    package init(parsing text: String) throws(ConfigurationError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else {
                throw ConfigurationError("'\(text)' needs an absolute path after unix:")
            }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw ConfigurationError("'\(text)' is not HOST:PORT (e.g. 127.0.0.1:9464) or unix:PATH")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else {
            throw ConfigurationError("'\(text)' has no host; to listen on every address say 0.0.0.0:\(port)")
        }
        self = .tcp(host: host, port: port)
    }

    package var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// Serves the Prometheus text at `GET /metrics` over HTTP/1.1, on TCP or a Unix socket.
///
/// Bound before the daemon says it is ready, so a port already taken stops the start with a
/// clear message; closed on shutdown. What a scraper may cost is bounded (docs/security.md,
/// "The metrics listener"): `maxConnections` at once, each closed after `idleTimeout` without a
/// request, none read from while its reply is unsent, and the text made at most once per
/// `renderInterval` however many ask.
struct MetricsServer: Sendable {
    static let maxConnections = 16
    static let idleTimeout = TimeAmount.seconds(30)
    static let renderInterval = 0.5

    let channel: any Channel
    private let socketFile: (SocketFile, inode: UInt?)?

    static func start(
        at address: MetricsAddress,
        metrics: DaemonMetrics,
        health: @escaping @Sendable () -> Health
    ) async throws(ConfigurationError)
        -> MetricsServer
    {
        let text = RenderedText(metrics: metrics)
        let bootstrap = HTTPResponder.bootstrap(
            backlog: 64,
            maxConnections: maxConnections,
            idleTimeout: idleTimeout,
            maxBodyBytes: 64 << 10
        ) { request, eventLoop in
            eventLoop.makeSucceededFuture(Self.answer(request, text: text, health: health))
        }
        switch address {
        case .tcp(let host, let port):
            do {
                return MetricsServer(channel: try await bootstrap.bind(host: host, port: port).get(), socketFile: nil)
            } catch {
                throw ConfigurationError("--metrics-listen: cannot listen on \(address): \(Self.plain(error))")
            }
        case .unix(let path):
            let file = SocketFile(path: path, flag: "--metrics-listen")
            try file.prepare()
            let fd = try file.bindListener(backlog: 64)
            do {
                // Anyone who may reach the directory may read the counts: they hold no personal data.
                try file.applyPermissions(mode: 0o666, group: nil)
                let channel = try await bootstrap.withBoundSocket(fd).get()
                return MetricsServer(channel: channel, socketFile: (file, file.inode()))
            } catch {
                file.remove(ifInode: file.inode())
                throw ConfigurationError("--metrics-listen: cannot listen on \(address): \(Self.plain(error))")
            }
        }
    }

    /// `GET /metrics` (and `HEAD`) get the text, `GET /health` the daemon's state; another path is
    /// 404, another method 405.
    private static func answer(
        _ request: HTTPResponder.Request,
        text: RenderedText,
        health: @Sendable () -> Health
    ) -> HTTPResponder.Answer {
        let plain = ("Content-Type", "text/plain; charset=utf-8")
        let path = request.path
        guard path == "/metrics" || path == "/health" else {
            return .text(.notFound, "Not found: metrics are at /metrics, health at /health\n", headers: [plain])
        }
        guard request.head.method == .GET || request.head.method == .HEAD else {
            return .text(.methodNotAllowed, "Use GET\n", headers: [plain, ("Allow", "GET, HEAD")])
        }
        if path == "/health" {
            let state = health().response
            return .text(state.status, state.body, headers: [plain, ("Cache-Control", "no-store")])
        }
        return .reply(.ok, headers: [("Content-Type", DaemonMetrics.contentType)], body: ByteBuffer(bytes: text.bytes))
    }

    func close() async {
        try? await channel.close()
        if let socketFile { socketFile.0.remove(ifInode: socketFile.inode) }
    }

    private static func plain(_ error: any Error) -> String {
        if let error = error as? IOError { return ErrnoText.plain(error.errnoCode) }
        if let error = error as? ConfigurationError { return error.description }
        return "\(error)"
    }
}

/// Runs until shutdown, then closes the metrics listener.
struct MetricsService: Service, CustomStringConvertible {
    var description: String { "MetricsService" }
    let server: MetricsServer

    func run() async {
        try? await gracefulShutdown()
        await server.close()
    }
}

/// The exposition, made again only when the last one is older than `renderInterval`: a client
/// asking in a loop costs a copy, not a rendering, per request.
private final class RenderedText: Sendable {
    private let metrics: DaemonMetrics
    private let last = NIOLockedValueBox<(at: ContinuousClock.Instant, bytes: [UInt8])?>(nil)

    init(metrics: DaemonMetrics) { self.metrics = metrics }

    var bytes: [UInt8] {
        let now = ContinuousClock.now
        if let last = last.withLockedValue({ $0 }), now - last.at < .seconds(MetricsServer.renderInterval) {
            return last.bytes
        }
        let bytes = metrics.exposition()
        last.withLockedValue { $0 = (now, bytes) }
        return bytes
    }
}

/// What `GET /health` answers, for orchestrators and load balancers: 200 while the daemon is
/// ready and serving, 503 before it is ready and while it drains.
package enum Health: Sendable, Equatable {
    case starting
    case serving
    case draining

    package init(ready: Bool, draining: Bool) {
        self = draining ? .draining : ready ? .serving : .starting
    }

    var response: (status: HTTPResponseStatus, body: String) {
        switch self {
        case .serving: (.ok, "serving\n")
        case .starting: (.serviceUnavailable, "starting: not ready yet\n")
        case .draining: (.serviceUnavailable, "draining: shutting down\n")
        }
    }
}
