/// The key a contact is looked up by: a normalised phone number or an API contact id.
package enum ContactKey: Sendable, Hashable, CustomStringConvertible {
    case phone(PhoneNumber)
    case id(ContactID)

    package var description: String {
        switch self {
        case .phone(let p): "phone:\(p.e164)"
        case .id(let i): "id:\(i.rawValue)"
        }
    }
}

/// A phone number in E.164 form: `+` then 2 to 15 digits, the first not 0.
package struct PhoneNumber: Sendable, Hashable {
    /// The normalised number, e.g. `+14155551234`.
    package let e164: String

    /// Normalises `input` by dropping spaces, `-`, `.`, `(` and `)`; `nil` unless the rest is E.164.
    package init?(_ input: String) {
        // Already normalised (what clients almost always send): keep the string as it is. This
        // skips building a digit array, the one allocation left per cache hit (docs/benchmarks.md).
        let utf8 = input.utf8
        if utf8.count >= 3, utf8.count <= 16, utf8.first == UInt8(ascii: "+"),
            utf8.dropFirst().first != UInt8(ascii: "0"),
            utf8.dropFirst().allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        {
            e164 = input
            return
        }
        var digits: [UInt8] = []
        digits.reserveCapacity(16)
        var sawPlus = false
        for byte in input.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                continue
            case UInt8(ascii: "+") where !sawPlus && digits.isEmpty:
                sawPlus = true
            case UInt8(ascii: "0")...UInt8(ascii: "9") where sawPlus:
                if digits.isEmpty && byte == UInt8(ascii: "0") { return nil }
                digits.append(byte)
                if digits.count > 15 { return nil }
            default:
                return nil
            }
        }
        guard sawPlus, digits.count >= 2 else { return nil }
        e164 = "+" + String(decoding: digits, as: UTF8.self)
    }
}

/// An API contact id: 1 to 128 bytes of printable characters, no whitespace.
package struct ContactID: Sendable, Hashable {
    /// Longest id accepted, in UTF-8 bytes (SPEC §3).
    package static let maximumBytes = 128

    package let rawValue: String

    /// `nil` if `rawValue` is empty, longer than 128 bytes, or holds whitespace or control characters.
    package init?(_ rawValue: String) {
        let utf8 = rawValue.utf8
        guard !utf8.isEmpty, utf8.count <= Self.maximumBytes else { return nil }
        guard
            !rawValue.unicodeScalars.contains(where: {
                $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
            })
        else { return nil }
        self.rawValue = rawValue
    }
}
