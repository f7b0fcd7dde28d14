import ContactdCore
import Foundation
import Logging
import NIOCore
import RedisClient
import Testing

@testable import ContactdDaemon
@testable import ContactdSharedCache

/// What contactd puts in Redis, read back: pure functions, no Redis (issue #23, item 9).
@Suite struct SharedCacheLayoutTests {
    static let key = String(repeating: "3f", count: 32)
    static let john = try! APIContact(apiBody: Array(#"{"id":"j1","phone_number":"+14155551234","name":"J"}"#.utf8))

    func layouts() throws -> [SharedCacheLayout] {
        [
            SharedCacheLayout(prefix: "contactd:", seal: nil),
            SharedCacheLayout(prefix: "contactd:", seal: try SharedCacheSeal(key: Self.key)),
        ]
    }

    /// A stored value as Redis holds it after the fill script: head, then the payload.
    func stored(_ layout: SharedCacheLayout, _ value: CachedValue, for key: ContactKey, expiry: Double, at ms: Int64)
        -> RESPValue
    {
        var bytes = ByteBuffer(string: "i:j1 \(ms)\n")
        var payload = layout.payload(value, for: key, expiry: expiry)
        bytes.writeBuffer(&payload)
        return .bulkString(bytes)
    }

    @Test func anEntryReadsBackWithItsAgeOnRedissClock() throws {
        for layout in try layouts() {
            let key = ContactKey.phone(PhoneNumber("+14155551234")!)
            let value = stored(
                layout,
                .contact(Self.john),
                for: key,
                expiry: Date().timeIntervalSince1970 + 60,
                at: 1_000_000
            )
            let entry = try #require(layout.decode(value, for: key, redisNow: 1_042_500))
            #expect(entry.value == .contact(Self.john))
            #expect(entry.age == 42.5, "Redis's clock on both ends, whatever this host's clock says")
        }
    }

    @Test func anEntryPastItsExpiryIsNotTaken() throws {
        for layout in try layouts() {
            let key = ContactKey.id(ContactID("j1")!)
            let value = stored(layout, .notFound, for: key, expiry: Date().timeIntervalSince1970 - 1, at: 5)
            #expect(layout.decode(value, for: key, redisNow: 6) == nil)
        }
    }

    /// With a key, a sealed value is bound to the key it was stored under: copied to another,
    /// it is refused.
    @Test func aSealedValueCopiedToAnotherKeyIsRefused() throws {
        let layout = SharedCacheLayout(prefix: "contactd:", seal: try SharedCacheSeal(key: Self.key))
        let number = ContactKey.phone(PhoneNumber("+14155551234")!)
        let other = ContactKey.phone(PhoneNumber("+14155550000")!)
        let value = stored(layout, .contact(Self.john), for: number, expiry: Date().timeIntervalSince1970 + 60, at: 1)
        #expect(layout.decode(value, for: number, redisNow: 2) != nil)
        #expect(layout.decode(value, for: other, redisNow: 2) == nil)
    }

    @Test func messagesRoundTripAndSealedOnesAreBoundToTheChannel() throws {
        for layout in try layouts() {
            let bytes = layout.message(epoch: 7, "id:j1", sent: 1000)
            let message = try #require(layout.readMessage(bytes))
            #expect(message.epoch == 7 && message.sent == 1_000_000 && message.key == .id(ContactID("j1")!))
            #expect(layout.readMessage(layout.message(epoch: 8, "*"))?.key == nil)
            #expect(layout.readMessage(ByteBuffer(string: "garbage")) == nil)
        }
        let sealed = SharedCacheLayout(prefix: "contactd:", seal: try SharedCacheSeal(key: Self.key))
        let staging = SharedCacheLayout(prefix: "contactd:staging:", seal: try SharedCacheSeal(key: Self.key))
        #expect(staging.readMessage(sealed.message(epoch: 1, "*")) == nil, "sealed for another channel")
    }

    /// An invalidation's first message carries its id, and the history reads back what the
    /// scripts write (`<number>:<id in hex>`, newest first), leaving out what does not read.
    @Test func theHistoryAndAnInvalidationsIDReadBack() throws {
        for layout in try layouts() {
            let message = try #require(layout.readMessage(layout.message(epoch: 3, "*", nonce: 0xbeef)))
            #expect(message.epoch == 3 && message.nonce == 0xbeef)
        }
        let reply = RESPValue.array(["12:ff", "garbage", "11:a0"].map { .bulkString(ByteBuffer(string: $0)) })
        #expect(
            SharedCacheLayout.history(reply) == [.init(epoch: 12, id: 0xff), .init(epoch: 11, id: 0xa0)]
        )
        #expect(SharedCacheLayout.history(.null).isEmpty)
        let command = SharedCacheLayout(prefix: "p:", seal: nil).invalidateAllCommand(id: 0xff)
        let texts = command.map { if case .text(let text) = $0 { text } else { "" } }
        #expect(texts.suffix(2) == ["ff", String(SharedCacheLayout.historyLength)])
    }

    /// An invalidation message heard twice (a replay), or sent more than a minute ago, is not
    /// acted on: an old `*` cannot empty the fleet again.
    @Test func aReplayedOrOldMessageIsIgnored() throws {
        let cache = SharedCache(
            target: try RedisTarget(parsing: "redis://127.0.0.1:1"),
            prefix: "contactd:",
            timeout: .milliseconds(20),
            seal: try SharedCacheSeal(key: Self.key),
            logger: Logger(label: "test")
        )
        let now = Date().timeIntervalSince1970
        let message = cache.layout.message(epoch: 3, "*", sent: now)
        #expect(cache.read(message: message, now: now).valid)
        #expect(!cache.read(message: message, now: now + 1).valid, "the same message again")
        #expect(!cache.read(message: message, now: now + 61).valid, "a minute later")
        #expect(!cache.read(message: cache.layout.message(epoch: 4, "*", sent: now - 120), now: now).valid)
        #expect(
            cache.read(message: cache.layout.message(epoch: 5, "id:j1", sent: now), now: now).key
                == .id(ContactID("j1")!)
        )
    }

    /// `invalidate all` scans contactd's own key shapes under the prefix, so a fleet whose prefix
    /// extends this one keeps its keys.
    @Test func invalidateAllScansOnlyContactdsOwnShapes() throws {
        let plain = SharedCacheLayout(prefix: "contactd:", seal: nil)
        #expect(plain.entryPatterns == ["contactd:p:*", "contactd:i:*", "contactd:keys:*"])
        for pattern in plain.entryPatterns {
            #expect(!"contactd:staging:p:+1".matchesGlobPrefix(of: pattern))
        }
        let sealed = SharedCacheLayout(prefix: "a*b:", seal: try SharedCacheSeal(key: Self.key))
        #expect(sealed.entryPatterns == [#"a\*b:h:*"#, #"a\*b:keys:*"#])
    }
}

extension String {
    /// Whether `self` starts with the literal part of a `PREFIX*` glob (enough for these patterns).
    fileprivate func matchesGlobPrefix(of pattern: String) -> Bool {
        hasPrefix(String(pattern.dropLast()).replacingOccurrences(of: "\\", with: ""))
    }
}
