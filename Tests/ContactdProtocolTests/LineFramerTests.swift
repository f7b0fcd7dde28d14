import ContactdProtocol
import NIOCore
import NIOEmbedded
import Testing

@Suite struct LineFramerTests {
    func makeChannel(limit: Int = 16) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFramer(maxLineBytes: limit)))
        return channel
    }

    func frames(_ channel: EmbeddedChannel) throws -> [LineFrame] {
        var out: [LineFrame] = []
        while let frame = try channel.readInbound(as: LineFrame.self) { out.append(frame) }
        return out
    }

    func line(_ text: String) -> LineFrame { .line(ByteBuffer(string: text)) }

    @Test func splitsLinesStripsCRAndSkipsBlankLines() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "one\ntwo\r\n\n  \r\nthr"))
        #expect(try frames(channel) == [line("one"), line("two")])
        try channel.writeInbound(ByteBuffer(string: "ee\n"))
        #expect(try frames(channel) == [line("three")])
        _ = try channel.finish()
    }

    @Test func lineAtTheLimitPassesAndOneByteMoreIsTooLong() throws {
        let channel = try makeChannel(limit: 4)
        try channel.writeInbound(ByteBuffer(string: "abcd\nabcde\nafter\n"))
        #expect(try frames(channel) == [line("abcd"), .tooLong])
        _ = try channel.finish()
    }

    @Test func longLineArrivingInPiecesIsCaughtBeforeItsNewline() throws {
        let channel = try makeChannel(limit: 8)
        try channel.writeInbound(ByteBuffer(string: "12345"))
        #expect(try frames(channel) == [])
        try channel.writeInbound(ByteBuffer(string: "6789"))
        #expect(try frames(channel) == [.tooLong])
        try channel.writeInbound(ByteBuffer(string: "\n{\"ok\":1}\n"))
        #expect(try frames(channel) == [])
        _ = try channel.finish()
    }

    @Test func partialLineAtEndOfInputIsDropped() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "done\nhalf"))
        #expect(try frames(channel) == [line("done")])
        _ = try channel.finish()
        #expect(try frames(channel) == [])
    }

    /// 2,000 reads that each finish one line and start the next (200 KB in all): every line comes
    /// out whole, and what is held for the unfinished line stays the size of a read or two.
    @Test func readsEndingMidLineDoNotAccumulate() {
        var reader = LineReader(maxLineBytes: 4096)
        var lines: [String] = []
        reader.append(ByteBuffer(string: #"{"id":0,"method":"daem"#))
        for id in 1...2_000 {
            reader.append(ByteBuffer(string: #"on.ping"}"# + "\n" + #"{"id":\#(id),"method":"daem"#))
            while case .line(let line)? = reader.next() { lines.append(String(buffer: line)) }
            #expect(reader.heldCapacity <= 4_096, "holds \(reader.heldCapacity) bytes after read \(id)")
        }
        #expect(lines.count == 2_000)
        #expect(lines.last == #"{"id":1999,"method":"daemon.ping"}"#)
        #expect(reader.hasPartialLine)
        #expect(reader.heldCapacity > 0)
    }
}
