import NIOCore

/// Where a reply is assembled: a byte array, a NIO buffer, or the fast lane's own buffer.
///
/// Every reply is written through `RPCResponse` into one of these, so the envelope is spelled in
/// one place and a hit is written straight into the connection's output with no copy between.
package protocol ReplySink {
    mutating func append(_ text: StaticString)
    mutating func append(_ bytes: UnsafeRawBufferPointer)
    /// Makes room for `count` more bytes.
    mutating func reserve(_ count: Int)
}

extension ReplySink {
    package mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    package mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends `value` in decimal (what `String(value)` would spell, without making the string).
    package mutating func appendDecimal(_ value: Int) {
        if value < 0 { append("-" as StaticString) }
        var rest = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            append(UnsafeRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[start...]))
        }
    }
}

extension Array: ReplySink where Element == UInt8 {
    package mutating func append(_ text: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
    package mutating func append(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
    package mutating func reserve(_ count: Int) { reserveCapacity(self.count + count) }
}

extension ByteBuffer: ReplySink {
    package mutating func append(_ text: StaticString) { writeStaticString(text) }
    package mutating func append(_ bytes: UnsafeRawBufferPointer) { writeBytes(bytes) }
    package mutating func reserve(_ count: Int) { reserveCapacity(minimumWritableBytes: count) }
}
