import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// Collects one HTTP request and answers it as `FakeAPICore` decides.
final class FakeAPIHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let core: FakeAPICore
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(core: FakeAPICore) {
        self.core = core
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            self.head = nil
            if head.method == .POST, head.uri == "/v1/traces" {
                // An OpenTelemetry collector's OTLP/HTTP traces endpoint: kept for the test to
                // decode (`traceExports`), answered with an empty ExportTraceServiceResponse.
                core.recordTraces(Array(body.readableBytesView))
                var headers = HTTPHeaders([("content-type", "application/x-protobuf"), ("content-length", "0")])
                if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))),
                    promise: nil
                )
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            let (answer, delay, _, key) = core.answer(head: head, body: body)
            let core = self.core
            let channel = context.channel
            let keepAlive = head.isKeepAlive
            let respond: @Sendable () -> Void = {
                channel.eventLoop.execute {
                    core.finished(key: key)
                    switch answer {
                    case .drop:
                        // SO_LINGER 0: the close sends a reset, not an orderly FIN.
                        if let provider = channel as? any SocketOptionProvider {
                            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                                .whenComplete { _ in channel.close(promise: nil) }
                        } else {
                            channel.close(promise: nil)
                        }
                    case .respond(let status, let extraHeaders, let text):
                        var headers = HTTPHeaders(extraHeaders)
                        headers.add(name: "content-length", value: String(text.utf8.count))
                        if !keepAlive { headers.add(name: "connection", value: "close") }
                        let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
                        channel.write(HTTPServerResponsePart.head(responseHead), promise: nil)
                        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text))), promise: nil)
                        let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
                        if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
                    }
                }
            }
            if core.park(respond) { return }
            if delay > .zero {
                context.eventLoop.scheduleTask(in: delay) { respond() }
            } else {
                respond()
            }
        }
    }
}
