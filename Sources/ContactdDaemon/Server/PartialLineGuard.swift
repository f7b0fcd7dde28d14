import ContactdJSON
import ContactdProtocol
import NIOCore

/// Closes a connection that leaves a line unfinished for too long (a slow-loris client).
///
/// Sits before the line framer and sees raw bytes. A read that completes a line restarts the
/// clock; a read that leaves a partial line behind starts it if it is not running. So a client
/// that pipelines steadily is never cut off, and one that trickles a single line is, after
/// `timeout`, with one `invalid_request` line (`id` null) before the close.
final class PartialLineGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data).readableBytesView
        if let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")) {
            timer?.cancel()
            timer = nil
            if lastNewline != bytes.index(before: bytes.endIndex) { startTimer(context: context) }
        } else if timer == nil, !bytes.isEmpty {
            startTimer(context: context)
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func startTimer(context: ChannelHandlerContext) {
        let channel = context.channel
        let seconds = Double(timeout.nanoseconds) / 1e9
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let error = RPCError.invalidRequest("line not finished within \(seconds)s; closing")
            channel.writeAndFlush(ByteBuffer(bytes: RPCResponse.failureLine(id: .null, error: error))).whenComplete {
                _ in channel.close(promise: nil)
            }
        }
    }
}
