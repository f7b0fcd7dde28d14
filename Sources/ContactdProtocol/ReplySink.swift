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
