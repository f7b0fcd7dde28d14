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
/// What Redis holds is in `SharedCacheLayout`. Reads (a lookup's GET and claim, a wait for a
/// peer) go straight out; every write (fills, releases, invalidations) goes through the one
/// `SharedCacheWriter`, in order. A fill lands only while its claim holds (the lease rule), so an
/// invalidation on any host is final for the fleet (docs/scale.md).
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
    let layout: SharedCacheLayout
    private let state = NIOLockedValueBox<State>(.connecting)
    let counts = Counts()
    private let logger: Logger
    /// Every write goes out through it, in order; its loop runs in `SharedCacheService`.
    let writer = SharedCacheWriter()
    /// The fleet's invalidation count as this host last knew it (from its own invalidations,
    /// the messages it heard, and each connect); `nil` before the first connect.
    private let knownEpoch = NIOLockedValueBox<Int64?>(nil)
    /// Nonces of the invalidation messages heard this minute and the last.
    private let heardNonces = NIOLockedValueBox<(minute: Int, current: Set<UInt64>, previous: Set<UInt64>)>(
        (0, [], [])
    )

    init(address: RedisAddress, prefix: String, timeout: Duration, seal: SharedCacheSeal? = nil, logger: Logger) {
        self.address = address
        self.layout = SharedCacheLayout(prefix: prefix, seal: seal)
        self.timeout = TimeAmount(timeout)
        self.logger = logger
    }

    var stateName: String { state.withLockedValue { $0.name } }

    /// The channel other hosts publish invalidations on.
    var invalidationChannel: String { layout.channel }

    // MARK: SharedTier

    package func lookUp(_ key: ContactKey, lease: Double) async -> SharedLookup {
        let token = UUID().uuidString
        let replies = await send([
            ["GET", .text(layout.entryKey(key))],
            // Read before the claim is taken: an invalidation between the two makes the fill
            // refuse itself, never the other way round.
            ["GET", .text(layout.epochKey)],
            ["SET", .text(layout.claimKey(key)), .text(token), "NX", "PX", .text(String(max(1, Int(lease * 1000))))],
            ["TIME"],
        ])
        guard let replies, replies.count == 4 else { return .unavailable }
        if let entry = layout.decode(
            replies[0],
            for: key,
            redisNow: SharedCacheLayout.milliseconds(fromTime: replies[3])
        ) {
            counts.hits.add(1, ordering: .relaxed)
            // Found after all: the claim taken in the same round trip is not needed.
            if replies[2] != .null { writer.enqueue([releaseCommand(token, for: key)]) }
            return .found(entry)
        }
        counts.misses.add(1, ordering: .relaxed)
        guard replies[2] != .null else { return .fetchedElsewhere }
        let epoch = replies[1].string.flatMap { Int64($0) } ?? 0
        return .claimed(token: "\(token) \(epoch)")
    }

    package func awaitPeer(_ key: ContactKey, until deadline: Double) async -> SharedEntry? {
        counts.waits.add(1, ordering: .relaxed)
        // Polled: a few hosts wait for one key for one API call's time; a message per fill would
        // cost every host a message for every fetch.
        var pause = 0.005
        while MonotonicClock.system.now() + pause < deadline {
            try? await Task.sleep(for: .seconds(pause))
            guard
                let replies = await send([
                    ["GET", .text(layout.entryKey(key))], ["EXISTS", .text(layout.claimKey(key))], ["TIME"],
                ]), replies.count == 3
            else { return nil }
            if let entry = layout.decode(
                replies[0],
                for: key,
                redisNow: SharedCacheLayout.milliseconds(fromTime: replies[2])
            ) {
                return entry
            }
            // The claim is gone and nothing was stored: that host's fetch failed (or an
            // invalidation voided it); ask the API.
            if replies[1] == .integer(0) { return nil }
            pause = min(pause * 2, 0.05)
        }
        return nil
    }

    package func store(_ value: CachedValue, for key: ContactKey, lifetime: Double, claim: String) {
        let parts = claim.split(separator: " ")
        guard parts.count == 2 else { return }
        let expiry = Date().timeIntervalSince1970 + lifetime
        var keys = [key]
        var idSuffix = "-"
        if case .contact(let contact) = value {
            keys += contact.ownKeys.filter { $0 != key }
            idSuffix = layout.suffix(.id(contact.id))
        }
        var command: [RedisArgument] = ["EVAL", .text(SharedCacheLayout.fillScript), .text(String(3 + 2 * keys.count))]
        command.append(.text(layout.claimKey(key)))
        command.append(.text(idSuffix == "-" ? layout.claimKey(key) : layout.keySetKey(idSuffix: idSuffix)))
        command.append(.text(layout.allMarkKey))
        command += keys.map { .text(layout.entryKey($0)) }
        command += keys.map { .text(layout.markKey($0)) }
        command += [.text(String(parts[0])), .text(String(parts[1])), .text(String(max(1, Int(lifetime * 1000))))]
        command.append(.text(idSuffix))
        command += keys.map { .bytes(layout.payload(value, for: $0, expiry: expiry)) }
        let counts = self.counts
        writer.enqueue([command]) { replies in
            if replies?.first == .integer(1) { counts.writes.add(1, ordering: .relaxed) }
        }
    }

    package func release(_ claim: String, for key: ContactKey) {
        guard let token = claim.split(separator: " ").first else { return }
        writer.enqueue([releaseCommand(String(token), for: key)])
    }

    package func invalidate(_ keys: [ContactKey]) async -> Bool {
        let command: [RedisArgument] =
            ["EVAL", .text(SharedCacheLayout.invalidateScript), .text(String(1 + keys.count)), .text(layout.epochKey)]
            + keys.map { .text(layout.entryKey($0)) }
            + [.text(layout.prefix), .text(String(SharedCacheLayout.markMilliseconds))]
        guard let replies = await writer.write([command]), case .array(let result)? = replies.first,
            result.count == 2, case .integer(let epoch) = result[0]
        else {
            return fleetPartFailed("an invalidation")
        }
        // The contact's other keys, from what Redis held: hosts holding it under one of those
        // drop it too.
        var all = keys
        for key in keys {
            guard case .contact(let contact)? = layout.decode(result[1], for: key, redisNow: nil)?.value else {
                continue
            }
            for other in contact.ownKeys where !all.contains(other) { all.append(other) }
            break
        }
        learned(epoch: epoch)
        let published = await writer.write(
            all.map { ["PUBLISH", .text(layout.channel), .bytes(layout.message(epoch: epoch, $0.description))] }
        )
        return published != nil ? true : fleetPartFailed("an invalidation's message")
    }

    package func invalidateAll() async -> Bool {
        guard
            let replies = await writer.write([
                [
                    "EVAL", .text(SharedCacheLayout.invalidateAllScript), "2", .text(layout.epochKey),
                    .text(layout.allMarkKey), .text(String(SharedCacheLayout.markMilliseconds)),
                ]
            ]), case .integer(let epoch)? = replies.first
        else { return fleetPartFailed("invalidating everything") }
        learned(epoch: epoch)
        guard
            await writer.write([["PUBLISH", .text(layout.channel), .bytes(layout.message(epoch: epoch, "*"))]]) != nil
        else { return fleetPartFailed("the message to empty every host") }
        // Then the entries, a batch per round trip (SCAN, unlike KEYS, does not hold Redis up);
        // claims are voided by the mark and left to expire. Any fill claimed before the mark is
        // refused, so entries written from here on are newer than the invalidation.
        for pattern in layout.entryPatterns {
            var cursor = "0"
            repeat {
                guard
                    let replies = await send([["SCAN", .text(cursor), "MATCH", .text(pattern), "COUNT", "1000"]]),
                    case .array(let parts) = replies[0], parts.count == 2, let next = parts[0].string,
                    case .array(let found) = parts[1]
                else { return fleetPartFailed("removing the shared entries") }
                let names = found.compactMap(\.string)
                if !names.isEmpty, await writer.write([["UNLINK"] + names.map { .text($0) }]) == nil {
                    return fleetPartFailed("removing the shared entries")
                }
                cursor = next
            } while cursor != "0"
        }
        return true
    }

    /// Logs that an invalidation's fleet part did not happen; returns `false` (the reply says so).
    private func fleetPartFailed(_ what: String) -> Bool {
        logger.warning(
            "\(what) was made on this host only: the shared cache did not take it (\(stateName)); other hosts may answer the old entry until it expires"
        )
        return false
    }

    // MARK: Invalidations heard and missed

    /// Notes an epoch this host took part in or heard of.
    func learned(epoch: Int64) {
        knownEpoch.withLockedValue { $0 = max($0 ?? epoch, epoch) }
    }

    /// How far a message's time may be from this host's clock, and how long its nonce is kept.
    static let messageWindow = 60.0

    /// The key an invalidation message names (`nil` for all), and whether to act on it: not for
    /// garbage, one sent more than a minute from now by this host's clock, or one already heard
    /// (a replay: its nonce is kept for that minute). Notes its epoch.
    func read(message bytes: ByteBuffer, now: Double = Date().timeIntervalSince1970) -> (key: ContactKey?, valid: Bool)
    {
        guard let message = layout.readMessage(bytes) else { return (nil, false) }
        let sent = Double(message.sent) / 1000
        guard abs(now - sent) <= Self.messageWindow else {
            counts.errors.add(1, ordering: .relaxed)
            logger.debug(
                "an invalidation message from outside the last minute was ignored (replayed, or a clock far off)"
            )
            return (nil, false)
        }
        // Nonces by minute, this one and the last: every message within the window is in one.
        let minute = Int(now / Self.messageWindow)
        let fresh = heardNonces.withLockedValue { heard -> Bool in
            if minute != heard.minute {
                heard.previous = minute == heard.minute + 1 ? heard.current : []
                heard.current = []
                heard.minute = minute
            }
            guard !heard.previous.contains(message.nonce) else { return false }
            return heard.current.insert(message.nonce).inserted
        }
        guard fresh else { return (nil, false) }
        learned(epoch: message.epoch)
        return (message.key, true)
    }

    /// On each connect: whether the fleet made invalidations this host did not hear while it was
    /// not connected (then it must drop what it holds: it cannot tell which entries they named).
    func missedInvalidations(currentEpoch epoch: Int64) -> Bool {
        knownEpoch.withLockedValue { known in
            defer { known = epoch }
            guard let last = known else { return false }
            return last != epoch
        }
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
    func send(_ commands: [[RedisArgument]]) async -> [RESPValue]? {
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

    private func releaseCommand(_ token: String, for key: ContactKey) -> [RedisArgument] {
        // Deletes the claim only if it is still this host's (a slow host's lease may have passed).
        [
            "EVAL", "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            "1", .text(layout.claimKey(key)), .text(token),
        ]
    }
}
