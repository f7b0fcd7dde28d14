import ChildProcess
import Foundation

/// A cache access trace: one key per access, in order.
package struct Trace: Sendable {
    /// How a trace file spells its keys.
    package enum Format: String, Sendable, CaseIterable {
        /// Big-endian signed 32-bit integers, no header (the cache2k traces in shared/traces).
        case cache2k
        /// Big-endian 64-bit integers, no header (the Scarab Research traces).
        case scarab
        /// One key per line, any text.
        case lines
    }

    package let name: String
    package let keys: [UInt64]

    package init(name: String, keys: [UInt64]) {
        self.name = name
        self.keys = keys
    }

    /// Distinct keys of the trace.
    package var distinctKeys: Int { Set(keys).count }

    /// Why a trace could not be read.
    package struct ReadError: Error, CustomStringConvertible {
        package let description: String
    }

    /// Reads `path` (decompressed with `xz -dc` first when it ends in `.xz`).
    package static func read(path: String, format: Format) throws -> Trace {
        let bytes = try path.hasSuffix(".xz") ? decompressed(path) : contents(path)
        var name = URL(fileURLWithPath: path).lastPathComponent
        for suffix in [".xz", ".trace"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        return Trace(name: name, keys: try parse(bytes, format: format))
    }

    /// The keys in `bytes` as `format` spells them.
    package static func parse(_ bytes: [UInt8], format: Format) throws -> [UInt64] {
        switch format {
        case .cache2k, .scarab:
            let width = format == .cache2k ? 4 : 8
            guard bytes.count % width == 0 else {
                throw ReadError(description: "a \(format) trace is a whole number of \(width)-byte keys")
            }
            var keys: [UInt64] = []
            keys.reserveCapacity(bytes.count / width)
            var i = 0
            while i < bytes.count {
                var value: UInt64 = 0
                for b in bytes[i..<i + width] { value = value << 8 | UInt64(b) }
                // Sign-extend a 32-bit key, so -1 and 4294967295 stay apart from 64-bit ones.
                if width == 4 { value = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value))) }
                keys.append(value)
                i += width
            }
            return keys
        case .lines:
            var numbers: [Substring: UInt64] = [:]
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
                if let known = numbers[line] { return known }
                let next = UInt64(numbers.count)
                numbers[line] = next
                return next
            }
        }
    }

    private static func contents(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReadError(description: "cannot read \(path)")
        }
        return [UInt8](data)
    }

    private static func decompressed(_ path: String) throws -> [UInt8] {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ReadError(description: "cannot read \(path)")
        }
        let process: ChildProcess
        do {
            process = try ChildProcess(
                "/usr/bin/xz",
                ["-dc", "--", path],
                environment: [:],
                stdout: .collect,
                stderr: .discard
            )
        } catch {
            throw ReadError(description: "\(path) ends in .xz and xz could not be run (install xz-utils)")
        }
        guard process.waitUntilExit() == 0 else {
            throw ReadError(description: "xz could not decompress \(path)")
        }
        return Array(process.outputBytes(1))
    }
}
