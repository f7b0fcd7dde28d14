import ContactdCore
import ContactdJSON
import ContactdProtocol
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
/// Three rooms: what Redis holds and the commands that change it are in `SharedCacheLayout`
/// (the codec); the connection's state is `SharedCacheLink` (the state machine, driven by
/// `SharedCacheService`); this class is the adapter between them and the lookups. Reads (a
/// lookup's GET and claim, a wait for a peer) go straight out; every write (fills, releases,
/// invalidations) goes through the one `SharedCacheWriter`, in order. A fill lands only while its
/// claim holds (the lease rule), so an invalidation on any host is final for the fleet
/// (docs/scale.md).
///
/// Redis is an accelerator, never a dependency. Each call waits at most `--shared-cache-timeout`;
/// a failed or slow call marks the connection down, every lookup then skips Redis at once, and
/// `SharedCacheService` connects again with backoff. One log line per change of state.
package final class SharedCache: SharedTier, Sendable {
    /// Counts for `cache.stats` and the metrics.
    package final class Counts: Sendable {
        package let hits = Atomic<Int>(0)
        package let misses = Atomic<Int>(0)
        package let waits = Atomic<Int>(0)
        package let writes = Atomic<Int>(0)
        package let errors = Atomic<Int>(0)
        package let skipped = Atomic<Int>(0)
        package let invalidationsReceived = Atomic<Int>(0)
    }

    let target: RedisTarget
    let timeout: TimeAmount
    let layout: SharedCacheLayout
    private let link = NIOLockedValueBox(SharedCacheLink())
    package let counts = Counts()
    private let logger: Logger
    /// Every write goes out through it, in order; its loop runs in `SharedCacheService`.
    let writer = SharedCacheWriter()
    private let epoch = NIOLockedValueBox(FleetEpoch())

    package init(target: RedisTarget, prefix: String, timeout: Duration, seal: SharedCacheSeal? = nil, logger: Logger) {
        self.target = target
        self.layout = SharedCacheLayout(prefix: prefix, seal: seal)
        self.timeout = TimeAmount(timeout)
        self.logger = logger
    }

    package var state: SharedCacheState { link.withLockedValue { $0.state.reported } }

    /// How many times the tier came up on another server than before (a failover followed).
    package var failovers: Int { link.withLockedValue { $0.failovers } }

    /// The channel other hosts publish invalidations on.
    var invalidationChannel: String { layout.channel }

    // MARK: SharedTier

    package func lookUp(_ key: ContactKey, lease: Double) async -> SharedLookup {
        let token = UUID().uuidString
        guard let replies = await send(layout.lookUpCommands(key, token: token, lease: lease)), replies.count == 4
        else { return .unavailable }
        if let entry = layout.decode(
            replies[0],
            for: key,
            redisNow: SharedCacheLayout.milliseconds(fromTime: replies[3])
        ) {
            counts.hits.add(1, ordering: .relaxed)
            // Found after all: the claim taken in the same round trip is not needed.
            if replies[2] != .null { writer.enqueue([layout.releaseCommand(token, for: key)]) }
            return .found(entry)
        }
        counts.misses.add(1, ordering: .relaxed)
        guard replies[2] != .null else { return .fetchedElsewhere }
        let epoch = replies[1].string.flatMap { Int64($0) } ?? 0
        return .claimed(token: SharedCacheLayout.claim(token: token, epoch: epoch))
    }

    package func awaitPeer(_ key: ContactKey, until deadline: Double) async -> SharedEntry? {
        counts.waits.add(1, ordering: .relaxed)
        // Polled: a few hosts wait for one key for one API call's time; a message per fill would
        // cost every host a message for every fetch.
        var pause = 0.005
        while MonotonicClock.system.now() + pause < deadline {
            try? await Task.sleep(for: .seconds(pause))
            guard let replies = await send(layout.peerCommands(key)), replies.count == 3 else { return nil }
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
        guard let claim = SharedCacheLayout.parseClaim(claim) else { return }
        let command = layout.fillCommand(value, for: key, lifetime: lifetime, token: claim.token, epoch: claim.epoch)
        let counts = self.counts
        writer.enqueue([command]) { replies in
            if replies?.first == .integer(1) { counts.writes.add(1, ordering: .relaxed) }
        }
    }

    package func release(_ claim: String, for key: ContactKey) {
        guard let claim = SharedCacheLayout.parseClaim(claim) else { return }
        writer.enqueue([layout.releaseCommand(claim.token, for: key)])
    }

    package func invalidate(_ keys: [ContactKey]) async -> Bool {
        let id = UInt64.random(in: 0...UInt64.max)
        guard let replies = await writer.write([layout.invalidateCommand(keys, id: id)]),
            case .array(let result)? = replies.first, result.count == 2, case .integer(let epoch) = result[0]
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
        learned(epoch: epoch, id: id)
        let messages = all.enumerated().map { index, key in
            index == 0
                ? layout.publishCommand(epoch: epoch, key.description, nonce: id)
                : layout.publishCommand(epoch: epoch, key.description)
        }
        let published = await writer.write(messages)
        return published != nil ? true : fleetPartFailed("an invalidation's message")
    }

    package func invalidateAll() async -> Bool {
        let id = UInt64.random(in: 0...UInt64.max)
        guard let replies = await writer.write([layout.invalidateAllCommand(id: id)]),
            case .integer(let epoch)? = replies.first
        else { return fleetPartFailed("invalidating everything") }
        learned(epoch: epoch, id: id)
        guard await writer.write([layout.publishCommand(epoch: epoch, "*", nonce: id)]) != nil else {
            return fleetPartFailed("the message to empty every host")
        }
        // Then the entries, a batch per round trip (SCAN, unlike KEYS, does not hold Redis up);
        // claims are voided by the mark and left to expire. Any fill claimed before the mark is
        // refused, so entries written from here on are newer than the invalidation.
        for pattern in layout.entryPatterns {
            var cursor = "0"
            repeat {
                guard let replies = await send([layout.scanCommand(cursor: cursor, pattern: pattern)]),
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
            "\(what) was made on this host only: the shared cache did not take it (\(state)); other hosts may answer the old entry until it expires"
        )
        return false
    }

    // MARK: Invalidations heard and missed

    /// Notes an epoch this host took part in or heard of.
    func learned(epoch value: Int64, id: UInt64) {
        epoch.withLockedValue { $0.learned(value, id: id) }
    }

    /// The key an invalidation message names (`nil` for all), and whether to act on it: not for
    /// garbage, one sent more than a minute from now by this host's clock, or one already heard
    /// (a replay). Notes its epoch.
    func read(message bytes: ByteBuffer, now: Double = Date().timeIntervalSince1970) -> (key: ContactKey?, valid: Bool)
    {
        guard let message = layout.readMessage(bytes) else { return (nil, false) }
        switch epoch.withLockedValue({ $0.accept(message, now: now) }) {
        case .fresh:
            return (message.key, true)
        case .outOfWindow:
            counts.errors.add(1, ordering: .relaxed)
            logger.debug(
                "an invalidation message from outside the last minute was ignored (replayed, or a clock far off)"
            )
            return (nil, false)
        case .replayed:
            return (nil, false)
        }
    }

    /// On each connect: the server's epoch against what this host knew (`FleetEpoch`).
    func connected(
        serverEpoch value: Int64,
        generation: String,
        history: [SharedCacheLayout.HistoryEntry]
    ) -> FleetEpoch.Comparison {
        epoch.withLockedValue { $0.connected(serverEpoch: value, generation: generation, history: history) }
    }

    // MARK: Reports

    /// `cache.stats`' `shared` member.
    package var statsReport: CacheStats.Shared {
        var report = CacheStats.Shared()
        report.state = state
        report.hits = counts.hits.load(ordering: .relaxed)
        report.misses = counts.misses.load(ordering: .relaxed)
        report.waits = counts.waits.load(ordering: .relaxed)
        report.writes = counts.writes.load(ordering: .relaxed)
        report.errors = counts.errors.load(ordering: .relaxed)
        report.skipped = counts.skipped.load(ordering: .relaxed)
        report.invalidationsReceived = counts.invalidationsReceived.load(ordering: .relaxed)
        return report
    }

    /// `daemon.status`' `shared_cache` member.
    package var statusReport: DaemonStatus.SharedCache {
        let link = self.link.withLockedValue { $0 }
        var report = DaemonStatus.SharedCache()
        report.state = link.state.reported
        report.address = target.description
        if case .down(let reason) = link.state { report.reason = reason }
        if case .sentinels = target {
            // Which server the tier uses, and when it last moved to another one.
            if case .up(_, let server) = link.state { report.primary = server }
            report.failovers = link.failovers
            report.movedAt = link.movedAt.map { Date(timeIntervalSince1970: $0).formatted(.iso8601) }
        }
        return report
    }

    // MARK: Connection state (driven by SharedCacheService)

    /// The connection to `server` is ready. Returns the server used before, when this is another
    /// one (a failover followed).
    @discardableResult
    func connected(_ connection: any SharedCacheConnection, server: String) -> String? {
        let change = link.withLockedValue {
            $0.connected(connection, server: server, now: Date().timeIntervalSince1970)
        }
        guard case .cameUp(let movedFrom) = change else { return nil }
        if let movedFrom {
            logger.notice(
                "shared cache up on a new primary (\(server)), moved from \(movedFrom)",
                metadata: ["shared_cache.address": "\(target)"]
            )
        } else {
            logger.notice("shared cache up", metadata: ["shared_cache.address": "\(target)"])
        }
        return movedFrom
    }

    /// Marks the connection down (once per change) and closes it: `SharedCacheService` then
    /// connects again.
    func markDown(_ reason: String) {
        apply(link.withLockedValue { $0.failed(reason) }, reason: reason)
    }

    /// A connect attempt failed: how long to wait before the next.
    func attemptFailed(_ reason: String) -> Double {
        let (change, pause) = link.withLockedValue { $0.attemptFailed(reason) }
        apply(change, reason: reason)
        return pause
    }

    /// The sentinels announced a new primary: the next attempt is made at once.
    func primaryMoved() {
        link.withLockedValue { $0.primaryMoved() }
    }

    private func apply(_ change: SharedCacheLink.Change, reason: String) {
        guard case .wentDown(let connection) = change else { return }
        logger.warning(
            "shared cache unavailable: \(reason); serving from this host's cache and the API until it is back",
            metadata: ["shared_cache.address": "\(target)"]
        )
        if let connection { Task { await connection.close() } }
    }

    /// The server the tier is connected to (`host:port` in sentinel mode); `nil` when not up.
    var currentServer: String? {
        link.withLockedValue { if case .up(_, let server) = $0.state { server } else { nil } }
    }

    // MARK: Sending

    /// The replies, or `nil` when the shared cache is not up or did not answer in time (it is then
    /// marked down).
    func send(_ commands: [[RedisArgument]]) async -> [RESPValue]? {
        guard let connection = link.withLockedValue({ $0.connection }) else {
            counts.skipped.add(1, ordering: .relaxed)
            return nil
        }
        do {
            return try await connection.send(commands, timeout: timeout)
        } catch {
            counts.errors.add(1, ordering: .relaxed)
            if case .refused(let message) = error, !Self.meansMoveOn(message) {
                // The server is there and refused one command (e.g. out of memory): not down.
                logger.debug("shared cache refused a command: \(error)")
                return nil
            }
            markDown(error.description)
            return nil
        }
    }

    /// Refusals that say this connection is of no more use: the password changed, or the server
    /// is a replica now (a failover demoted it; writes must go to the new primary).
    static func meansMoveOn(_ refusal: String) -> Bool {
        refusal.hasPrefix("NOAUTH") || refusal.hasPrefix("WRONGPASS") || refusal.hasPrefix("READONLY")
    }
}
