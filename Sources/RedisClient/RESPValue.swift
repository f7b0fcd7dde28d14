import NIOCore

/// A value of the Redis serialization protocol, version 3 (RESP3), as the server sends it.
///
/// Only what contactd's commands get back is given a shape of its own; the rest of RESP3
/// (big numbers, verbatim strings, attributes) is read as text or skipped, so a reply is never
/// misread.
package enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// `-ERR …`: the server refused the command.
    case error(String)
    case integer(Int64)
    case bulkString(ByteBuffer)
    case double(Double)
    case boolean(Bool)
    case null
    case array([RESPValue])
    case map([RESPValue: RESPValue])
    /// Out of band (`>`): a published message or an invalidation, not a reply.
    case push([RESPValue])

    /// The text of a simple or bulk string.
    package var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes): String(buffer: bytes)
        default: nil
        }
    }
}

extension RESPValue: Hashable {
    package func hash(into hasher: inout Hasher) {
        switch self {
        case .simpleString(let s), .error(let s): hasher.combine(s)
        case .integer(let i): hasher.combine(i)
        case .bulkString(let b): hasher.combine(b.readableBytesView.count)
        case .double(let d): hasher.combine(d)
        case .boolean(let b): hasher.combine(b)
        case .null: hasher.combine(0)
        case .array(let a), .push(let a): hasher.combine(a.count)
        case .map(let m): hasher.combine(m.count)
        }
    }
}

/// A reply that is not RESP: the connection cannot be trusted any more.
package struct RESPParseError: Error, CustomStringConvertible {
    package let description: String
}

/// Reads RESP3 values from bytes as they arrive; `nil` until a whole value is there.
package enum RESPParser {
    /// Nesting deeper than this is not a reply to contactd's commands.
    static let maxDepth = 16
    /// The longest string taken: a contact is at most 1 MiB, sealed a little more.
    package static let maxStringBytes = 4 << 20
    /// The most elements of one array, set or map (a SCAN batch is a thousand names).
    static let maxElements = 100_000

    /// The first whole value in `buffer`, consumed; `nil` (and nothing consumed) until it is all
    /// there. Then `needed` is how many bytes `buffer` must hold at least before a value can be
    /// whole: a caller that waits for them parses a large value once, not once per read.
    package static func parse(_ buffer: inout ByteBuffer, needed: inout Int) throws(RESPParseError) -> RESPValue? {
        var copy = buffer
        let start = copy.readerIndex
        var wanted = 0
        guard let value = try parse(&copy, depth: 0, start: start, needed: &wanted) else {
            needed = max(wanted, buffer.readableBytes + 1)
            return nil
        }
        buffer = copy
        return value
    }

    /// `parse(_:needed:)` for a caller that does not keep the hint.
    package static func parse(_ buffer: inout ByteBuffer) throws(RESPParseError) -> RESPValue? {
        var needed = 0
        return try parse(&buffer, needed: &needed)
    }

    private static func parse(_ buffer: inout ByteBuffer, depth: Int) throws(RESPParseError) -> RESPValue? {
        var needed = 0
        return try parse(&buffer, depth: depth, start: buffer.readerIndex, needed: &needed)
    }

    private static func parse(
        _ buffer: inout ByteBuffer,
        depth: Int,
        start: Int,
        needed: inout Int
    ) throws(RESPParseError) -> RESPValue? {
        guard depth < maxDepth else { throw RESPParseError(description: "a reply nested too deep") }
        guard let marker = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let line = readLine(&buffer) else { return nil }
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"), UInt8(ascii: "!"):
            if marker == UInt8(ascii: "!") {
                guard let bytes = try blob(&buffer, length: line, start: start, needed: &needed) else { return nil }
                return .error(String(buffer: bytes))
            }
            return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw RESPParseError(description: "an integer reply that is not one") }
            return .integer(value)
        case UInt8(ascii: "$"), UInt8(ascii: "="):
            if line == "-1" { return .null }
            guard let bytes = try blob(&buffer, length: line, start: start, needed: &needed) else { return nil }
            return .bulkString(bytes)
        case UInt8(ascii: "_"): return .null
        case UInt8(ascii: "#"): return .boolean(line == "t")
        case UInt8(ascii: ","):
            let spelled = line == "inf" ? "infinity" : line == "-inf" ? "-infinity" : line
            guard let value = Double(spelled) else {
                throw RESPParseError(description: "a double reply that is not one")
            }
            return .double(value)
        case UInt8(ascii: "("): return .simpleString(line)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            if line == "-1" { return .null }
            guard let count = Int(line), count >= 0, count <= maxElements else {
                throw RESPParseError(description: "a bad element count")
            }
            var elements: [RESPValue] = []
            for _ in 0..<count {
                guard let element = try parse(&buffer, depth: depth + 1, start: start, needed: &needed) else {
                    return nil
                }
                elements.append(element)
            }
            return marker == UInt8(ascii: ">") ? .push(elements) : .array(elements)
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = Int(line), count >= 0, count <= maxElements else {
                throw RESPParseError(description: "a bad element count")
            }
            var map: [RESPValue: RESPValue] = [:]
            for _ in 0..<count {
                guard let key = try parse(&buffer, depth: depth + 1, start: start, needed: &needed),
                    let value = try parse(&buffer, depth: depth + 1, start: start, needed: &needed)
                else { return nil }
                map[key] = value
            }
            // An attribute (`|`) describes the reply that follows it: skip to that reply.
            return marker == UInt8(ascii: "|")
                ? try parse(&buffer, depth: depth + 1, start: start, needed: &needed) : .map(map)
        default:
            throw RESPParseError(description: "a reply that is not RESP (first byte \(marker))")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), view.index(after: cr) < view.endIndex else {
            return nil
        }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    private static func blob(
        _ buffer: inout ByteBuffer,
        length line: String,
        start: Int,
        needed: inout Int
    ) throws(RESPParseError) -> ByteBuffer? {
        guard let length = Int(line), length >= 0 else { throw RESPParseError(description: "a bad string length") }
        guard length <= maxStringBytes else {
            throw RESPParseError(description: "a string of \(length) bytes, more than the \(maxStringBytes) taken")
        }
        guard buffer.readableBytes >= length + 2, let bytes = buffer.readSlice(length: length) else {
            // The whole value needs at least this much from where it began.
            needed = buffer.readerIndex - start + length + 2
            return nil
        }
        buffer.moveReaderIndex(forwardBy: 2)
        return bytes
    }
}

/// Writes a command as RESP: an array of bulk strings.
enum RESPEncoder {
    static func encode(_ arguments: [RedisArgument], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            switch argument {
            case .text(let text):
                buffer.writeString("$\(text.utf8.count)\r\n")
                buffer.writeString(text)
            case .bytes(let bytes):
                buffer.writeString("$\(bytes.readableBytes)\r\n")
                buffer.writeImmutableBuffer(bytes)
            }
            buffer.writeString("\r\n")
        }
    }
}

/// One argument of a command.
package enum RedisArgument: Sendable, ExpressibleByStringLiteral {
    case text(String)
    case bytes(ByteBuffer)

    package init(stringLiteral value: String) { self = .text(value) }
}
