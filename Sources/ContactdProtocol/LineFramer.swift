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
            if line.withUnsafeReadableBytes(Self.isBlank) { continue }
            return .line(line)
        }
    }

    /// Whether a line holds only spaces, tabs and carriage returns (skipped, not answered).
    @inlinable
    public static func isBlank(_ line: UnsafeRawBufferPointer) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}

/// A connection's input as lines: the framer, and the bytes of a line not finished yet, kept
/// across reads until its newline arrives.
public struct LineReader {
    private var framer: LineFramer
    /// Bytes read and not yet framed; `nil` when there are none.
    private var buffered: ByteBuffer?

    public init(maxLineBytes: Int) {
        framer = LineFramer(maxLineBytes: maxLineBytes)
    }

    /// Adds one read's bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        guard var held = buffered else {
            buffered = bytes
            return
        }
        buffered = nil
        // Drop the lines already handled first: a client whose reads keep ending mid-line would
        // otherwise grow this buffer by everything it ever sent.
        held.discardReadBytes()
        var bytes = bytes
        held.writeBuffer(&bytes)
        buffered = held
    }

    /// The next frame, or `nil` until more bytes are appended.
    public mutating func next() -> LineFrame? {
        guard var held = buffered else { return nil }
        buffered = nil
        let frame = framer.nextFrame(&held)
        if held.readableBytes > 0 { buffered = held }
        return frame
    }

    /// Whether part of a line has been read (its newline not yet).
    public var hasPartialLine: Bool { buffered != nil }

    /// Forgets the unfinished line (the peer will not finish it).
    public mutating func dropPartialLine() { buffered = nil }

    /// Bytes of storage held for the unfinished line: what a slow client costs.
    public var heldCapacity: Int { buffered?.capacity ?? 0 }
}
