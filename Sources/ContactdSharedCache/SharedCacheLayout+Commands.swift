import ContactdCore
import Foundation
import RedisClient

/// The commands the shared cache sends, built from `SharedCacheLayout`'s names: pure, so that
/// what goes to Redis can be read and tested without one.
extension SharedCacheLayout {
    /// A lookup: the entry, the epoch, the claim (taken if free, for `lease` seconds), Redis's clock.
    func lookUpCommands(_ key: ContactKey, token: String, lease: Double) -> [[RedisArgument]] {
        [
            ["GET", .text(entryKey(key))],
            // Read before the claim is taken: an invalidation between the two makes the fill
            // refuse itself, never the other way round.
            ["GET", .text(epochKey)],
            ["SET", .text(claimKey(key)), .text(token), "NX", "PX", .text(String(max(1, Int(lease * 1000))))],
            ["TIME"],
        ]
    }

    /// A look at a key another host is fetching: the entry, whether the claim is still held, the clock.
    func peerCommands(_ key: ContactKey) -> [[RedisArgument]] {
        [["GET", .text(entryKey(key))], ["EXISTS", .text(claimKey(key))], ["TIME"]]
    }

    /// Names the data's generation unless a host has already (`SET … NX`).
    func newGenerationCommand() -> [RedisArgument] {
        ["SET", .text(generationKey), .text(String(UInt64.random(in: 0...UInt64.max), radix: 16)), "NX"]
    }

    /// The fleet's invalidation count and the generation it belongs to.
    var epochAndGenerationCommand: [RedisArgument] { ["MGET", .text(epochKey), .text(generationKey)] }

    /// A claim as the lookup holds it: the token and the epoch read when it was taken.
    static func claim(token: String, epoch: Int64) -> String { "\(token) \(epoch)" }

    static func parseClaim(_ claim: String) -> (token: String, epoch: String)? {
        let parts = claim.split(separator: " ")
        return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
    }

    /// Stores `value` under `key` (and a contact's other keys) for `lifetime` seconds, if the
    /// claim still holds (`fillScript`).
    func fillCommand(
        _ value: CachedValue,
        for key: ContactKey,
        lifetime: Double,
        token: String,
        epoch: String,
        now: Double = Date().timeIntervalSince1970
    ) -> [RedisArgument] {
        let expiry = now + lifetime
        var keys = [key]
        var idSuffix = "-"
        if case .contact(let contact) = value {
            keys += contact.ownKeys.filter { $0 != key }
            idSuffix = suffix(.id(contact.id))
        }
        var command: [RedisArgument] = ["EVAL", .text(Self.fillScript), .text(String(3 + 2 * keys.count))]
        command.append(.text(claimKey(key)))
        command.append(.text(idSuffix == "-" ? claimKey(key) : keySetKey(idSuffix: idSuffix)))
        command.append(.text(allMarkKey))
        command += keys.map { .text(entryKey($0)) }
        command += keys.map { .text(markKey($0)) }
        command += [.text(token), .text(epoch), .text(String(max(1, Int(lifetime * 1000))))]
        command.append(.text(idSuffix))
        command += keys.map { .bytes(payload(value, for: $0, expiry: expiry)) }
        return command
    }

    /// Deletes the claim only if it is still this host's (a slow host's lease may have passed).
    func releaseCommand(_ token: String, for key: ContactKey) -> [RedisArgument] {
        [
            "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            "1", .text(claimKey(key)), .text(token),
        ]
    }

    /// Invalidates `keys` and every other name their contact is stored under (`invalidateScript`).
    /// `id`: the invalidation's, kept in the history.
    func invalidateCommand(_ keys: [ContactKey], id: UInt64) -> [RedisArgument] {
        ["EVAL", .text(Self.invalidateScript), .text(String(1 + keys.count)), .text(epochKey)]
            + keys.map { .text(entryKey($0)) }
            + [
                .text(prefix), .text(String(Self.markMilliseconds)), .text(String(id, radix: 16)),
                .text(String(Self.historyLength)),
            ]
    }

    /// A new epoch and a mark voiding every claim taken before it (`invalidateAllScript`).
    func invalidateAllCommand(id: UInt64) -> [RedisArgument] {
        [
            "EVAL", .text(Self.invalidateAllScript), "3", .text(epochKey), .text(allMarkKey), .text(historyKey),
            .text(String(Self.markMilliseconds)), .text(String(id, radix: 16)), .text(String(Self.historyLength)),
        ]
    }

    /// Tells every host what was invalidated (`text`: a key, or `*` for everything); the first
    /// message of an invalidation has its id as the nonce.
    func publishCommand(epoch: Int64, _ text: String, nonce: UInt64 = .random(in: 0...UInt64.max)) -> [RedisArgument] {
        ["PUBLISH", .text(channel), .bytes(message(epoch: epoch, text, nonce: nonce))]
    }

    /// The fleet's recent invalidations, newest first.
    var historyCommand: [RedisArgument] { ["LRANGE", .text(historyKey), "0", "-1"] }

    func scanCommand(cursor: String, pattern: String) -> [RedisArgument] {
        ["SCAN", .text(cursor), "MATCH", .text(pattern), "COUNT", "1000"]
    }
}
