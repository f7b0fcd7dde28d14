import ContactdCore
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import ContactdDaemon

/// The connection handler alone, on an embedded channel.
@Suite struct ConnectionHandlerTests {
    func makeHandler() -> ConnectionHandler {
        let cache = ContactCache(configuration: CacheConfiguration())
        let dispatcher = RequestDispatcher(
            lookup: ContactResolver(cache: cache, source: FastPathAgreementTests.NoSource()),
            status: LiveStatus(),
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        return ConnectionHandler(
            dispatcher: dispatcher,
            rules: ConnectionRules(
                maxLineBytes: 4096,
                idleTimeout: .zero,
                partialLineTimeout: .zero,
                allowLists: AllowLists(uids: [], gids: [])
            ),
            maxBatch: 10,
            maxInFlight: 10
        )
    }

    /// 2,000 reads that each finish one request and start the next (200 KB in all): every ping
    /// is answered (what is held meanwhile: `LineFramerTests`).
    @Test func readsEndingMidLineDoNotAccumulate() throws {
        let handler = makeHandler()
        let channel = EmbeddedChannel(handler: handler)
        var received = 0
        try channel.writeInbound(ByteBuffer(string: #"{"jsonrpc":"2.0","id":0,"method":"daem"#))
        for id in 1...2_000 {
            let read = #"on.ping"}"# + "\n" + #"{"jsonrpc":"2.0","id":\#(id),"method":"daem"#
            try channel.writeInbound(ByteBuffer(string: read))
            while var reply = try channel.readOutbound(as: ByteBuffer.self) {
                received += reply.readString(length: reply.readableBytes)!.split(separator: "\n").count
            }
        }
        #expect(received == 2_000)
        _ = try channel.finish()
    }

    /// Fires `channelReadComplete` from inside the first flush, as NIO does when a write fails
    /// on a reset connection (it reads the EOF there and then).
    final class ReenteringFlush: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var fired = false

        func flush(context: ChannelHandlerContext) {
            if !fired {
                fired = true
                context.fireChannelReadComplete()
            }
            context.flush()
        }
    }

    /// A flush re-entered from inside itself sends each reply once and leaves the handler able to
    /// answer the next request (it once sent the bytes twice and then crashed on a missing buffer).
    @Test func aFlushReenteredFromItsOwnWriteSendsEachReplyOnce() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ReenteringFlush())
        try channel.pipeline.syncOperations.addHandler(makeHandler())
        var lines: [Substring] = []
        func collect() throws {
            while var reply = try channel.readOutbound(as: ByteBuffer.self) {
                lines += reply.readString(length: reply.readableBytes)!.split(separator: "\n")
            }
        }
        try channel.writeInbound(ByteBuffer(string: #"{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}"# + "\n"))
        channel.pipeline.fireChannelReadComplete()
        try collect()
        try channel.writeInbound(ByteBuffer(string: #"{"jsonrpc":"2.0","id":2,"method":"daemon.ping"}"# + "\n"))
        channel.pipeline.fireChannelReadComplete()
        try collect()
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.contains(#""id":1"#) == true)
        #expect(lines.last?.contains(#""id":2"#) == true)
        _ = try channel.finish()
    }
}
