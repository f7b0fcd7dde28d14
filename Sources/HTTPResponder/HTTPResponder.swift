import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// One small HTTP/1.1 server, for the three the project runs: the daemon's metrics listener,
/// `--demo`'s stand-in API and the tests' fake API. Each request is collected whole and given to
/// `respond`, which answers at once or later (a future); replies go out in the order asked, with
/// `content-length`, without a body for `HEAD`, and with `connection: close` (then a close) when
/// the client did not keep the connection alive. A client that does not read its replies is not
/// read from, and requests it pipelines wait as requests, not as replies in memory.
///
/// SwiftNIO's HTTP codec underneath; hand-written only the part the three servers had each
/// written alike (hummingbird would replace it, but is not among the available packages).
package enum HTTPResponder {
    /// A request, collected whole.
    package struct Request: Sendable {
        package var head: HTTPRequestHead
        package var body: ByteBuffer

        /// The URI's path, without the query.
        package var path: String {
            head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        }
    }

    /// What to do with a request.
    package enum Answer: Sendable {
        /// A reply with this status, these headers (`content-length` is added) and body.
        case reply(HTTPResponseStatus, headers: [(String, String)] = [], body: ByteBuffer = ByteBuffer())
        /// Close the connection with a reset (SO_LINGER 0), as a failing server might.
        case reset

        /// A reply with a text body.
        package static func text(
            _ status: HTTPResponseStatus,
            _ text: String,
            headers: [(String, String)] = []
        ) -> Answer {
            .reply(status, headers: headers, body: ByteBuffer(string: text))
        }
    }

    /// Answers a request on the connection's event loop; a future for one answered later.
    package typealias Respond = @Sendable (Request, any EventLoop) -> EventLoopFuture<Answer>

    /// A server bootstrap whose connections are answered by `respond`; the caller binds it.
    ///
    /// - Parameters:
    ///   - maxConnections: connections beyond this many are closed at once; `nil`: no limit.
    ///   - idleTimeout: a connection that asks and reads nothing this long is closed.
    ///   - maxBodyBytes: a longer request body closes the connection.
    package static func bootstrap(
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        backlog: Int32 = 256,
        maxConnections: Int? = nil,
        idleTimeout: TimeAmount? = nil,
        maxBodyBytes: Int = 1 << 20,
        respond: @escaping Respond
    ) -> ServerBootstrap {
        let open = NIOLockedValueBox(0)
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                if let maxConnections {
                    let admitted = open.withLockedValue { count in
                        count += 1
                        return count <= maxConnections
                    }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                    if !admitted { return channel.close() }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let idleTimeout { try pipeline.addHandler(IdleStateHandler(allTimeout: idleTimeout)) }
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(NIOHTTPServerRequestAggregator(maxContentLength: maxBodyBytes))
                    try pipeline.addHandler(ResponderHandler(respond: respond))
                }
            }
    }
}

/// One connection: requests in a queue, answered one at a time in order.
private final class ResponderHandler: ChannelInboundHandler {
    typealias InboundIn = NIOHTTPServerRequestFull
    typealias OutboundOut = HTTPServerResponsePart

    private let respond: HTTPResponder.Respond
    /// Requests read and not answered yet.
    private var waiting: [HTTPResponder.Request] = []
    /// Whether an answer is being waited for (replies keep the requests' order).
    private var answering = false

    init(respond: @escaping HTTPResponder.Respond) {
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        waiting.append(HTTPResponder.Request(head: request.head, body: request.body ?? ByteBuffer()))
        answerNext(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A client that does not read its replies is not read from: what it pipelines waits in
        // the kernel.
        context.channel.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        answerNext(context: context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Nothing asked or read for the idle timeout: a client that went away, or one that never
        // reads what it asked for.
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A request the codec cannot read, or a body over the limit: nothing sensible to answer.
        context.close(promise: nil)
    }

    private func answerNext(context: ChannelHandlerContext) {
        guard !answering, !waiting.isEmpty, context.channel.isWritable else { return }
        let request = waiting.removeFirst()
        answering = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        respond(request, context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            handler.answering = false
            guard case .success(let answer) = result else {
                context.close(promise: nil)
                return
            }
            handler.write(answer, to: request.head, context: context)
            handler.answerNext(context: context)
        }
    }

    private func write(_ answer: HTTPResponder.Answer, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        switch answer {
        case .reset:
            let channel = context.channel
            if let provider = channel as? any SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                channel.close(promise: nil)
            }
        case .reply(let status, let extraHeaders, let body):
            var headers = HTTPHeaders(extraHeaders)
            headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes))
            if !head.isKeepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
            context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
            if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
            let channel = context.channel
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }
}
