import Crypto
import Foundation
import NIOCore

/// Encrypts what contactd puts in Redis, so that whoever runs Redis cannot read contacts or tell
/// which numbers were looked up (`shared-cache-key` credential or `--shared-cache-key-file`).
///
/// Values are sealed with AES-GCM (random nonce per value, authenticated: a changed value is
/// refused, not served). Key names are HMAC-SHA256 of the key, so a phone number never appears
/// in Redis; invalidation messages are sealed like values. Two keys are derived from the one given
/// (HKDF-SHA256), one per use. Every host of a fleet needs the same key.
package struct SharedCacheSeal: Sendable {
    /// Why a key cannot be used, in plain words.
    package struct KeyError: Error, Sendable, CustomStringConvertible {
        package let description: String
    }

    // Kept as bytes: swift-crypto's `SymmetricKey` is not `Sendable` (3.x).
    private let valueKeyBytes: [UInt8]
    private let nameKeyBytes: [UInt8]
    private var valueKey: SymmetricKey { SymmetricKey(data: valueKeyBytes) }
    private var nameKey: SymmetricKey { SymmetricKey(data: nameKeyBytes) }

    /// - Parameter key: 32 random bytes written as 64 hex digits or base64 (`openssl rand -hex 32`).
    package init(key text: String) throws(KeyError) {
        guard let bytes = Self.bytes(text), bytes.count >= 32 else {
            throw KeyError(
                description:
                    "the shared cache key must be 32 random bytes written as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)"
            )
        }
        let material = SymmetricKey(data: bytes)
        func derive(_ use: String) -> [UInt8] {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: material, info: Data(use.utf8), outputByteCount: 32)
                .withUnsafeBytes { Array($0) }
        }
        valueKeyBytes = derive("contactd shared cache values")
        nameKeyBytes = derive("contactd shared cache names")
    }

    /// The name a key is stored under: hex of its HMAC.
    func name(_ key: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(key.utf8), using: nameKey)
            .map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// `plain` encrypted and authenticated, bound to `context` (the Redis key it is stored under,
    /// or the channel): opened under any other context, it is refused.
    func seal(_ plain: ByteBuffer, boundTo context: String) -> ByteBuffer {
        // Sealing with a fresh random nonce cannot fail for a 256-bit key.
        let box = try! AES.GCM.seal(
            Data(plain.readableBytesView),
            using: valueKey,
            authenticating: Data(context.utf8)
        )
        return ByteBuffer(bytes: box.combined!)
    }

    /// The plain bytes; `nil` for bytes not sealed with this key and `context` (or changed since).
    func open(_ sealed: ByteBuffer, boundTo context: String) -> ByteBuffer? {
        guard let box = try? AES.GCM.SealedBox(combined: Data(sealed.readableBytesView)),
            let plain = try? AES.GCM.open(box, using: valueKey, authenticating: Data(context.utf8))
        else { return nil }
        return ByteBuffer(bytes: plain)
    }

    private static func bytes(_ text: String) -> [UInt8]? {
        let text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count == 64, text.allSatisfy(\.isHexDigit) {
            var bytes: [UInt8] = []
            var index = text.startIndex
            while index < text.endIndex {
                let next = text.index(index, offsetBy: 2)
                guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
                bytes.append(byte)
                index = next
            }
            return bytes
        }
        return Data(base64Encoded: text).map { Array($0) }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
