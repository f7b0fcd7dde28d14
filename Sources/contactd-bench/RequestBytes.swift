import CLinux
import Foundation
import Glibc
import Histogram

/// Calls `body` with a `sockaddr_un` for `path` and its length (for bind and connect).
func withUnixAddress(
    _ path: String,
    _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32
) throws -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        throw BenchError("socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// Writes a request into a fixed stack buffer (512 bytes: more than any request needs).
struct RequestWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var count = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    mutating func put(_ text: StaticString) {
        (buffer.baseAddress! + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            (buffer.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            count += bytes.count
        }
    }

    mutating func putDecimal(_ value: Int) {
        if value < 0 {
            put("-")
        }
        var rest = value.magnitude
        var digits = 1
        var probe = rest / 10
        while probe > 0 {
            digits += 1
            probe /= 10
        }
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            buffer[position] = UInt8(0x30 + rest % 10)
            rest /= 10
        }
        count += digits
    }

    mutating func putPhone(_ index: Int) {
        writePhone(index, to: UnsafeMutableRawBufferPointer(rebasing: buffer[count..<count + 12]))
        count += 12
    }
}

/// `+1555` and the index in 7 digits (12 bytes): `BenchContacts.phone(_:)` without a String.
func writePhone(_ index: Int, to raw: UnsafeMutableRawBufferPointer) {
    raw[0] = 0x2B
    raw[1] = 0x31
    raw[2] = 0x35
    raw[3] = 0x35
    raw[4] = 0x35
    var value = index
    for position in stride(from: 11, through: 5, by: -1) {
        raw[position] = UInt8(0x30 + value % 10)
        value /= 10
    }
}

func appendPhone(_ index: Int, to out: inout [UInt8]) {
    var phone: (UInt64, UInt32) = (0, 0)
    withUnsafeMutableBytes(of: &phone) { raw in
        writePhone(index, to: UnsafeMutableRawBufferPointer(rebasing: raw[0..<12]))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<12]))
    }
}

/// First occurrence of `needle` in `count` bytes at `haystack` (glibc's memmem needs _GNU_SOURCE,
/// which Swift's Glibc module does not set).
func search(_ haystack: UnsafeRawPointer, _ count: Int, _ needle: UnsafeRawPointer, _ needleCount: Int)
    -> UnsafeRawPointer?
{
    guard needleCount > 0, count >= needleCount else { return nil }
    let first = Int32(needle.load(as: UInt8.self))
    var position = haystack
    let last = haystack + (count - needleCount)
    while position <= last {
        guard let hit = memchr(position, first, last - position + 1) else { return nil }
        let candidate = UnsafeRawPointer(hit)
        if memcmp(candidate, needle, needleCount) == 0 { return candidate }
        position = candidate + 1
    }
    return nil
}

func search(_ haystack: UnsafeRawPointer, _ count: Int, _ needle: StaticString) -> UnsafeRawPointer? {
    search(haystack, count, UnsafeRawPointer(needle.utf8Start), needle.utf8CodeUnitCount)
}
