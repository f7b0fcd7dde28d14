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
        let open = Connections()
        let text = RenderedText(metrics: metrics)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { channel in
                guard open.count.add(1, ordering: .relaxed).newValue <= maxConnections else {
                    open.count.subtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.count.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(text: text, health: health))
                }
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

/// Connections open on the metrics listener.
private final class Connections: Sendable {
    let count = Atomic<Int>(0)
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

/// One HTTP connection to the metrics listener: `GET /metrics` (and `HEAD`) get the text,
/// `GET /health` the daemon's state; another path is 404, another method 405.
private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let text: RenderedText
    private let health: @Sendable () -> Health
    private var request: HTTPRequestHead?

    init(text: RenderedText, health: @escaping @Sendable () -> Health) {
        self.text = text
        self.health = health
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Nothing asked or read for the idle timeout: a scraper that went away, or one that
        // never reads what it asked for.
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A client that does not read its replies is not read from: requests it pipelines wait
        // in the kernel, not as replies in our memory.
        context.channel.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        answerWaiting(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            // One read can hold thousands of pipelined requests: past the high-water mark they
            // wait as request heads, not as whole replies (each the full text) in memory.
            waiting.append(head)
            answerWaiting(context: context)
        }
    }

    /// Requests read but not answered yet, while the client does not read its replies.
    private var waiting: [HTTPRequestHead] = []

    private func answerWaiting(context: ChannelHandlerContext) {
        while !waiting.isEmpty, context.channel.isWritable {
            respond(to: waiting.removeFirst(), context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let plain = "text/plain; charset=utf-8"
        let state = path == "/health" ? health().response : (.ok, "")
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8]) =
            if path != "/metrics" && path != "/health" {
                (.notFound, plain, Array("Not found: metrics are at /metrics, health at /health\n".utf8))
            } else if head.method != .GET && head.method != .HEAD {
                (.methodNotAllowed, plain, Array("Use GET\n".utf8))
            } else if path == "/health" {
                (state.status, plain, Array(state.body.utf8))
            } else {
                (.ok, DaemonMetrics.contentType, text.bytes)
            }
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.count))])
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        if path == "/health" { headers.add(name: "Cache-Control", value: "no-store") }
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil
        )
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
