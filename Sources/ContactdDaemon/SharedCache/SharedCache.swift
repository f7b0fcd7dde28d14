import ContactdCore
import ContactdJSON
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import Synchronization

/// The Redis commands the shared cache sends, so that a maintained Redis client can stand in for
/// this project's own (`RedisClient`, written because none is among the available packages).
protocol SharedCacheConnection: Sendable {
    /// Sends `commands` in one round trip; their replies in order, or why not within `timeout`.
    func send(_ commands: [[RedisArgument]], timeout: TimeAmount) async throws(RedisError) -> [RESPValue]
    func close() async
}

extension RedisConnection: SharedCacheConnection {}

/// This host's side of the fleet's shared cache (`--shared-cache`): a `SharedTier` on Redis.
///
/// What Redis holds, under `--shared-cache-prefix`: `p:<number>` and `i:<id>` → the API's answer
/// (`1 <unix ms when fetched> c <contact JSON>`, or `… n` for not-found), expiring when no host
/// could answer from it any more; `lock:<key>` → a claim on fetching it (half the deadline);
/// channel `invalidate` → keys to drop (`*` for all; the entries under the prefix are then
/// removed with SCAN and UNLINK).
///
/// Redis is an accelerator, never a dependency. Each call waits at most `--shared-cache-timeout`;
/// a failed or slow call marks the connection down (`State`), every lookup then skips Redis at
/// once, and `SharedCacheService` connects again with backoff. One log line per change of state.
package final class SharedCache: SharedTier, Sendable {
    /// The connection's state: what every lookup reads first.
    enum State: Sendable {
        /// Not connected yet (the service is connecting).
        case connecting
        case up(any SharedCacheConnection)
        /// The last attempt or call failed; nothing is asked until the service reconnects.
        case down(reason: String)

        var name: String {
            switch self {
            case .connecting: "connecting"
            case .up: "up"
            case .down: "down"
            }
        }
    }

    /// Counts for `cache.stats` and the metrics.
    final class Counts: Sendable {
        let hits = Atomic<Int>(0)
        let misses = Atomic<Int>(0)
        let waits = Atomic<Int>(0)
        let writes = Atomic<Int>(0)
        let errors = Atomic<Int>(0)
        let skipped = Atomic<Int>(0)
        let invalidationsReceived = Atomic<Int>(0)
    }

    let address: RedisAddress
    let timeout: TimeAmount
    private let prefix: String
    /// Encrypts values, key names and messages; `nil`: they are stored in clear.
    private let seal: SharedCacheSeal?
    private let state = NIOLockedValueBox<State>(.connecting)
    let counts = Counts()
    private let logger: Logger

    init(address: RedisAddress, prefix: String, timeout: Duration, seal: SharedCacheSeal? = nil, logger: Logger) {
        self.address = address
        self.prefix = prefix
        self.seal = seal
        self.timeout = TimeAmount(timeout)
        self.logger = logger
    }

    var stateName: String { state.withLockedValue { $0.name } }

    /// The channel other hosts publish invalidations on.
    var invalidationChannel: String { prefix + "invalidate" }

    // MARK: SharedTier

    package func lookUp(_ key: ContactKey, lease: Double) async -> SharedLookup {
        let token = UUID().uuidString
        let replies = await send([
            ["GET", .text(entryKey(key))],
            ["SET", .text(claimKey(key)), .text(token), "NX", "PX", .text(String(max(1, Int(lease * 1000))))],
        ])
        guard let replies else { return .unavailable }
        if let entry = decode(replies[0]) {
            counts.hits.add(1, ordering: .relaxed)
            // Found after all: the claim taken in the same round trip is not needed.
            if replies[1] != .null { release(token, for: key) }
            return .found(entry)
        }
        counts.misses.add(1, ordering: .relaxed)
        return replies[1] == .null ? .fetchedElsewhere : .claimed(token: token)
    }

    package func awaitPeer(_ key: ContactKey, until deadline: Double) async -> SharedEntry? {
        counts.waits.add(1, ordering: .relaxed)
        // Polled: a few hosts wait for one key for one API call's time; a message per fill would
        // cost every host a message for every fetch.
        var pause = 0.005
        while MonotonicClock.system.now() + pause < deadline {
            try? await Task.sleep(for: .seconds(pause))
            guard let replies = await send([["GET", .text(entryKey(key))], ["EXISTS", .text(claimKey(key))]]) else {
                return nil
            }
            if let entry = decode(replies[0]) { return entry }
            // The claim is gone and nothing was stored: that host's fetch failed; ask the API.
            if replies[1] == .integer(0) { return nil }
            pause = min(pause * 2, 0.05)
        }
        return nil
    }

    package func store(_ value: CachedValue, for key: ContactKey, lifetime: Double, claim: String?) {
        let milliseconds = String(max(1, Int(lifetime * 1000)))
        var bytes = ByteBuffer(string: "1 \(Int64(Date().timeIntervalSince1970 * 1000)) ")
        var keys = [key]
        switch value {
        case .contact(let contact):
            bytes.writeString("c ")
            bytes.writeBytes(contact.json)
            keys += contact.ownKeys.filter { $0 != key }
        case .notFound:
            bytes.writeString("n")
        }
        let stored = seal?.seal(bytes) ?? bytes
        var commands = keys.map {
            ["SET", .text(entryKey($0)), .bytes(stored), "PX", .text(milliseconds)] as [RedisArgument]
        }
        if let claim { commands.append(releaseCommand(claim, for: key)) }
        counts.writes.add(1, ordering: .relaxed)
        sendBehind(commands)
    }

    package func release(_ claim: String, for key: ContactKey) {
        sendBehind([releaseCommand(claim, for: key)])
    }

    package func invalidate(_ keys: [ContactKey]) {
        Task {
            // The shared entry names the contact's other keys (its number, its id): they go too,
            // and every host hears each, whichever key it holds the contact under.
            var all = keys
            if let replies = await send(keys.map { ["GET", .text(entryKey($0))] as [RedisArgument] }) {
                for reply in replies {
                    guard case .contact(let contact)? = decode(reply)?.value else { continue }
                    for key in contact.ownKeys where !all.contains(key) { all.append(key) }
                }
            }
            var commands: [[RedisArgument]] = [["DEL"] + all.map { .text(entryKey($0)) }]
            for key in all {
                commands.append(["PUBLISH", .text(invalidationChannel), .bytes(message(key.description))])
            }
            _ = await send(commands)
        }
    }

    package func invalidateAll() {
        Task {
            _ = await send([["PUBLISH", .text(invalidationChannel), .bytes(message("*"))]])
            // Then this prefix's entries, a batch per round trip (SCAN, unlike KEYS, does not hold
            // Redis up); claims are left to expire.
            let pattern = Self.globEscaped(prefix) + "*"
            var cursor = "0"
            repeat {
                guard let replies = await send([["SCAN", .text(cursor), "MATCH", .text(pattern), "COUNT", "1000"]]),
                    case .array(let parts) = replies[0], parts.count == 2, let next = parts[0].string,
                    case .array(let found) = parts[1]
                else { return }
                let names = found.compactMap(\.string).filter { !$0.hasPrefix(prefix + "lock:") }
                if !names.isEmpty { _ = await send([["UNLINK"] + names.map { .text($0) }]) }
                cursor = next
            } while cursor != "0"
        }
    }

    /// `text` as a glob pattern that matches only itself.
    private static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }

    // MARK: Reports

    /// `cache.stats`' `shared` member.
    var statsJSON: JSONValue {
        func count(_ value: borrowing Synchronization.Atomic<Int>) -> JSONValue { .int(value.load(ordering: .relaxed)) }
        return .object([
            "state": .string(stateName),
            "hits": count(counts.hits),
            "misses": count(counts.misses),
            "waits": count(counts.waits),
            "writes": count(counts.writes),
            "errors": count(counts.errors),
            "skipped": count(counts.skipped),
            "invalidations_received": count(counts.invalidationsReceived),
        ])
    }

    /// `daemon.status`' `shared_cache` member.
    var statusJSON: JSONValue {
        var object: JSONObject = ["state": .string(stateName), "address": .string(address.description)]
        if case .down(let reason) = state.withLockedValue({ $0 }) { object["reason"] = .string(reason) }
        return .object(object)
    }

    // MARK: Connection state (driven by SharedCacheService)

    func connected(_ connection: any SharedCacheConnection) {
        let previous = state.withLockedValue { state in
            defer { state = .up(connection) }
            return state
        }
        if case .up = previous { return }
        logger.notice("shared cache up", metadata: ["shared_cache.address": "\(address)"])
    }

    /// Marks the connection down (once per change) and closes it: `SharedCacheService` then
    /// connects again.
    func markDown(_ reason: String) {
        let (changed, connection) = state.withLockedValue { state -> (Bool, (any SharedCacheConnection)?) in
            var connection: (any SharedCacheConnection)?
            if case .up(let current) = state { connection = current }
            if case .down = state { return (false, nil) }
            state = .down(reason: reason)
            return (true, connection)
        }
        guard changed else { return }
        logger.warning(
            "shared cache unavailable: \(reason); serving from this host's cache and the API until it is back",
            metadata: ["shared_cache.address": "\(address)"]
        )
        if let connection { Task { await connection.close() } }
    }

    var isDown: Bool {
        state.withLockedValue { if case .down = $0 { true } else { false } }
    }

    // MARK: Sending

    /// The replies, or `nil` when the shared cache is not up or did not answer in time (it is then
    /// marked down).
    private func send(_ commands: [[RedisArgument]]) async -> [RESPValue]? {
        guard case .up(let connection) = state.withLockedValue({ $0 }) else {
            counts.skipped.add(1, ordering: .relaxed)
            return nil
        }
        do {
            return try await connection.send(commands, timeout: timeout)
        } catch {
            counts.errors.add(1, ordering: .relaxed)
            if case .refused(let message) = error, !message.hasPrefix("NOAUTH"), !message.hasPrefix("WRONGPASS") {
                // The server is there and refused one command (e.g. out of memory): not down.
                logger.debug("shared cache refused a command: \(error)")
                return nil
            }
            markDown(error.description)
            return nil
        }
    }

    /// Sends without waiting for the lookup: writes go out behind the answer.
    private func sendBehind(_ commands: [[RedisArgument]]) {
        Task { _ = await send(commands) }
    }

    private func releaseCommand(_ claim: String, for key: ContactKey) -> [RedisArgument] {
        // Deletes the claim only if it is still this host's (a slow host's lease may have passed).
        [
            "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            "1", .text(claimKey(key)), .text(claim),
        ]
    }

    private func entryKey(_ key: ContactKey) -> String { prefix + name(Self.suffix(key)) }
    private func claimKey(_ key: ContactKey) -> String { prefix + "lock:" + name(Self.suffix(key)) }

    /// A key's name in Redis: as it is, or its HMAC when values are encrypted.
    private func name(_ suffix: String) -> String { seal.map { "h:" + $0.name(suffix) } ?? suffix }

    /// An invalidation message: the key's text, sealed when values are.
    private func message(_ text: String) -> ByteBuffer {
        let plain = ByteBuffer(string: text)
        return seal?.seal(plain) ?? plain
    }

    /// The text of an invalidation message; `nil` for one not sealed with this key.
    func messageText(_ bytes: ByteBuffer) -> String? {
        guard let seal else { return String(buffer: bytes) }
        return seal.open(bytes).map { String(buffer: $0) }
    }

    /// A stored entry, opened first when values are encrypted.
    private func decode(_ reply: RESPValue) -> SharedEntry? {
        guard let seal else { return Self.decode(reply) }
        guard case .bulkString(let sealed) = reply, let plain = seal.open(sealed) else { return nil }
        return Self.decode(.bulkString(plain))
    }

    private static func suffix(_ key: ContactKey) -> String {
        switch key {
        case .phone(let phone): "p:" + phone.e164
        case .id(let id): "i:" + id.rawValue
        }
    }

    /// A stored entry; `nil` for none, or for bytes that are not one (never trusted blindly).
    static func decode(_ reply: RESPValue) -> SharedEntry? {
        guard case .bulkString(var bytes) = reply,
            let version = bytes.readString(length: 2), version == "1 ",
            let space = bytes.readableBytesView.firstIndex(of: UInt8(ascii: " ")),
            let stamp = bytes.readString(length: space - bytes.readerIndex).flatMap(Int64.init),
            bytes.readInteger(as: UInt8.self) == UInt8(ascii: " "),
            let kind = bytes.readInteger(as: UInt8.self)
        else { return nil }
        let age = max(0, Date().timeIntervalSince1970 - Double(stamp) / 1000)
        switch kind {
        case UInt8(ascii: "n"):
            return SharedEntry(value: .notFound, age: age)
        case UInt8(ascii: "c"):
            guard bytes.readInteger(as: UInt8.self) == UInt8(ascii: " "),
                let contact = try? Contact(apiBody: bytes.readableBytesView)
            else { return nil }
            return SharedEntry(value: .contact(contact), age: age)
        default:
            return nil
        }
    }

    /// The key in an invalidation message; `nil` for `*` (everything) — and for garbage.
    static func key(fromMessage text: String) -> ContactKey? {
        if text.hasPrefix("phone:"), let phone = PhoneNumber(String(text.dropFirst(6))) { return .phone(phone) }
        if text.hasPrefix("id:"), let id = ContactID(String(text.dropFirst(3))) { return .id(id) }
        return nil
    }
}
