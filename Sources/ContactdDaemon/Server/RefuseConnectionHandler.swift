import ContactdJSON
import ContactdProtocol
import NIOCore

/// Answers a connection over the limit with one `overloaded` line, then closes it.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let error: RPCError

    init(error: RPCError) {
        self.error = error
    }

    func channelActive(context: ChannelHandlerContext) {
        let line = RPCResponse.failureLine(id: .null, error: error)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: line))).whenComplete { _ in
            // Half-close rather than close: a peer that sends its request after the refusal was
            // written would otherwise hit a closed socket (EPIPE, or a reset for unread data) and
            // never read the refusal. It reads the line, then end-of-file; its hang-up (or one
            // second) closes the rest. Anything it sends meanwhile is discarded.
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
