import NIOCore

/// One frame out of the byte stream.
public enum LineFrame: Sendable, Equatable {
    /// A non-empty line, without its `\n` (and without a trailing `\r`).
    case line(ByteBuffer)
    /// A line exceeded the limit; the framer drops everything after it.
    case tooLong
}

/// Splits a byte stream into lines of at most `maxLineBytes` bytes (newline excluded).
///
/// ```
///   {"id":1,…}\n{"id":2,…}\r\n\n{"id":3,…
///   └── line ──┘└── line ──┘  │ └─ partial: kept until its \n
///                             └ empty: skipped
/// ```
///
/// The length is checked on every frame, not only while a line is unfinished (NIO's
/// `ByteToMessageHandler(maximumBufferSize:)` misses a long line that arrives in one read). After
/// `.tooLong` the connection is to be closed, so the framer discards all further input. A partial
/// line at end of input is dropped: the peer hung up before finishing it.
public struct LineFramer: ByteToMessageDecoder {
    public typealias InboundOut = LineFrame

    /// Longest accepted line in bytes, excluding the newline.
    public let maxLineBytes: Int
    private var overflowed = false
    /// Bytes at the front of the buffer already searched for `\n`, so a long line arriving in
    /// many reads is scanned once, not once per read.
    private var scanned = 0

    public init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = nextFrame(&buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        while let frame = nextFrame(&buffer) {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    /// The next frame in `buffer`, or `nil` when more bytes are needed. Pure; used by tests too.
    public mutating func nextFrame(_ buffer: inout ByteBuffer) -> LineFrame? {
        while true {
            if overflowed {
                buffer.moveReaderIndex(to: buffer.writerIndex)
                return nil
            }
            let view = buffer.readableBytesView
            let searchFrom = view.startIndex + min(scanned, view.count)
            guard let newline = view[searchFrom...].firstIndex(of: UInt8(ascii: "\n")) else {
                scanned = view.count
                if view.count > maxLineBytes {
                    overflowed = true
                    buffer.moveReaderIndex(to: buffer.writerIndex)
                    return .tooLong
                }
                return nil
            }
            scanned = 0
            let length = newline - view.startIndex
            if length > maxLineBytes {
                overflowed = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
                return .tooLong
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.last == UInt8(ascii: "\r") {
                line.moveWriterIndex(to: line.writerIndex - 1)
            }
            let blank = line.readableBytesView.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
            if blank { continue }
            return .line(line)
        }
    }
}
