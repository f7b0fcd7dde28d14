import Foundation
import NIOCore
import NIOPosix

/// A client that sends arbitrary bytes and reads raw lines: for protocol and hostile-input tests.
package final class RawSocketClient: Sendable {
    private let channel: any Channel
    private let iterator: IteratorBox

    private final class IteratorBox: @unchecked Sendable {
        // Used by one test task at a time (readLine is not called concurrently).
        var iterator: AsyncStream<String>.AsyncIterator
        init(_ iterator: AsyncStream<String>.AsyncIterator) { self.iterator = iterator }
    }

    private init(channel: any Channel, lines: AsyncStream<String>) {
        self.channel = channel
        self.iterator = IteratorBox(lines.makeAsyncIterator())
    }

    /// Connects to the Unix socket at `path`.
    package static func connect(_ path: String) async throws -> RawSocketClient {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LineCollector(continuation: continuation))
                }
            }
            .connect(unixDomainSocketPath: path)
            .get()
        return RawSocketClient(channel: channel, lines: stream)
    }

    /// Sends bytes as they are.
    package func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Sends a string as UTF-8 bytes, as it is (add `\n` yourself).
    package func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    /// The next line from the server, or `nil` once it closed the connection.
    ///
    /// Fails after `timeout` seconds, so a daemon that never answers fails the test instead of hanging it.
    package func readLine(timeout: Double = 10) async throws -> String? {
        let box = iterator
        return try await withTimeout(seconds: timeout, "no line within \(timeout)s") {
            var it = box.iterator
            let line = await it.next()
            box.iterator = it
            return line
        }
    }

    /// Reads `count` lines (failing if the connection closes first).
    package func readLines(_ count: Int, timeout: Double = 10) async throws -> [String] {
        var result: [String] = []
        for _ in 0..<count {
            guard let line = try await readLine(timeout: timeout) else {
                throw TestSupportError("connection closed after \(result.count) of \(count) lines")
            }
            result.append(line)
        }
        return result
    }

    /// Closes the sending side (`shutdown(SHUT_WR)`); replies can still arrive.
    package func shutdownWrite() async throws {
        try await channel.close(mode: .output)
    }

    /// Closes the connection at once.
    package func close() async {
        try? await channel.close()
    }
}

/// Splits incoming bytes into lines and yields them; finishes the stream when the peer closes.
private final class LineCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let continuation: AsyncStream<String>.Continuation
    private var pending: [UInt8] = []
    /// How much of `pending` is known to hold no newline: a long line is scanned once, not once
    /// per read (a 16 MiB batch reply took minutes in a debug build).
    private var scanned = 0

    init(continuation: AsyncStream<String>.Continuation) {
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        pending.append(contentsOf: buffer.readableBytesView)
        while let newline = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
            continuation.yield(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
            scanned = 0
        }
        scanned = pending.count
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            continuation.finish()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        continuation.finish()
        context.close(promise: nil)
    }
}
