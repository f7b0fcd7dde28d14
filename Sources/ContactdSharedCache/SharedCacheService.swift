import ContactdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisClient
import ServiceLifecycle
import Synchronization

/// Keeps the shared cache's connection: connects (and subscribes to invalidations), and after any
/// failure connects again with backoff (`SharedCacheLink`) until the daemon stops. The daemon is
/// ready without it: lookups skip Redis until it is up.
///
/// With `sentinel://`, each connect asks the sentinels which server is the primary and checks it
/// with `ROLE`; the service also listens on every sentinel for `+switch-master`, which ends the
/// connection to the old primary and any pause at once (docs/scale.md, "Failover").
package struct SharedCacheService: Service, CustomStringConvertible {
    package var description: String { "SharedCacheService" }

    let cache: SharedCache
    /// From the `shared-cache-password` credential or `--shared-cache-password-file`; never logged.
    let password: String?
    /// The sentinels' own password (`shared-cache-sentinel-password`); never logged.
    let sentinelPassword: String?
    /// For `rediss://` and `sentinels://`: the CAs to trust (`--shared-cache-ca-file`); `nil`: the system's.
    let certificateAuthorities: String?
    let lookup: ContactResolver
    let logger: Logger
    /// Ends a pause between attempts when the sentinels announce a new primary.
    private let moves = Nudge()
    /// The sentinel that named the primary last time: asked first next time.
    private let lastSentinel = NIOLockedValueBox(0)

    package init(
        cache: SharedCache,
        password: String?,
        sentinelPassword: String? = nil,
        certificateAuthorities: String?,
        lookup: ContactResolver,
        logger: Logger
    ) {
        self.cache = cache
        self.password = password
        self.sentinelPassword = sentinelPassword
        self.certificateAuthorities = certificateAuthorities
        self.lookup = lookup
        self.logger = logger
    }

    package func run() async {
        let cache = self.cache
        await withDiscardingTaskGroup { group in
            group.addTask { await cache.writer.run { await cache.send($0) } }
            if case .sentinels(let sentinels) = cache.target {
                for index in sentinels.sentinels.indices {
                    group.addTask { await listen(to: sentinels, index) }
                }
            }
            await keepConnected()
            cache.writer.finish()
            group.cancelAll()
        }
    }

    private func keepConnected() async {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let pause: Double
            do {
                let connection = try await connect()
                await waitForEnd(of: connection)
                await connection.close()
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                pause = cache.attemptFailed("the connection to Redis closed")
            } catch {
                // Logged as a change of state once (`SharedCache`); each attempt at debug level.
                logger.debug("shared cache: connecting failed: \(error)")
                pause = cache.attemptFailed(error.description)
            }
            // Ended early by shutdown (the loop then ends) or by news from the sentinels.
            await cancelWhenGracefulShutdown { await moves.pause(for: pause) }
        }
    }

    /// Connects to the server (in sentinel mode, the primary), subscribes to invalidations and
    /// compares the fleet's epoch with what this host knew.
    private func connect() async throws(RedisError) -> RedisConnection {
        let channel = cache.invalidationChannel
        let server: String
        let connection: RedisConnection
        switch cache.target {
        case .server(let address):
            // Connecting may take longer than one lookup's timeout; it does not hold up lookups.
            connection = try await connect(to: address, timeout: max(cache.timeout, .seconds(1)))
            server = address.description
        case .sentinels(let sentinels):
            // Shorter than for one server: a primary that does not answer in 250 ms is passed
            // over for what the sentinels say next, which is what a failover needs.
            let timeout = max(cache.timeout, .milliseconds(250))
            let found = try await RedisSentinel.findPrimary(
                sentinels,
                sentinelPassword: sentinelPassword,
                first: lastSentinel.withLockedValue { $0 },
                timeout: timeout,
                certificateAuthorities: certificateAuthorities
            ) { address throws(RedisError) in try await connect(to: address, timeout: timeout) }
            lastSentinel.withLockedValue { $0 = found.sentinel }
            (connection, server) = (found.connection, RedisSentinel.hostPort(found.server))
        }
        let epoch: Int64
        let generation: String
        let history: [SharedCacheLayout.HistoryEntry]
        do {
            // Subscribed first, then the count read: an invalidation after the read is heard.
            let setupTimeout = max(cache.timeout, .seconds(1))
            _ = try await connection.send(["SUBSCRIBE", .text(channel)], timeout: setupTimeout)
            // The count, the generation and the history in one round trip (FleetEpoch).
            let replies = try await connection.send(
                [cache.layout.epochAndGenerationCommand, cache.layout.historyCommand],
                timeout: setupTimeout
            )
            epoch = replies[0].array?.first?.string.flatMap { Int64($0) } ?? 0
            history = SharedCacheLayout.history(replies[1])
            if let named = replies[0].array?.last?.string {
                generation = named
            } else {
                // No generation yet: the first host to find none names it. A server that refuses
                // the write (full, or a replica) is used without one, as before; its writes fail
                // where they always did.
                do {
                    _ = try await connection.send(cache.layout.newGenerationCommand(), timeout: setupTimeout)
                } catch .refused {}
                let named = try await connection.send(
                    ["GET", .text(cache.layout.generationKey)],
                    timeout: setupTimeout
                )
                generation = named.string ?? ""
            }
        } catch {
            await connection.close()
            throw error
        }
        let comparison = cache.connected(serverEpoch: epoch, generation: generation, history: history)
        switch comparison {
        case .inStep:
            break
        case .missedSome:
            // Invalidations were made while this host could not hear them, and it cannot tell
            // which: what it holds may be what they removed (docs/scale.md, "Failures").
            let dropped = lookup.dropAllLocally()
            logger.warning(
                "the fleet made invalidations while this host was not connected to the shared cache: emptied this host's cache (\(dropped) entries) so that none of them is undone"
            )
        case .lostSome:
            // The server lost invalidations its predecessor took (a failover before they
            // reached a replica): the entries they removed may be back in it, and on hosts
            // that did not hear them. Emptied everywhere once up (docs/scale.md, "Failover").
            let dropped = lookup.dropAllLocally()
            logger.warning(
                "the shared cache lost invalidations in a failover: emptied this host's cache (\(dropped) entries) and the shared one, so that none of them is undone"
            )
        }
        cache.connected(connection, server: server)
        if comparison == .lostSome { _ = await cache.invalidateAll() }
        return connection
    }

    private func connect(to address: RedisAddress, timeout: TimeAmount) async throws(RedisError) -> RedisConnection {
        let lookup = self.lookup
        let channel = cache.invalidationChannel
        let cache = self.cache
        return try await RedisConnection.connect(
            to: address,
            password: password,
            timeout: timeout,
            certificateAuthorities: certificateAuthorities
        ) { push in
            guard case .push(let parts) = push, parts.count == 3, parts[0].string == "message",
                parts[1].string == channel, case .bulkString(let bytes) = parts[2]
            else { return }
            let (key, valid) = cache.read(message: bytes)
            guard valid else { return }
            cache.counts.invalidationsReceived.add(1, ordering: .relaxed)
            if let key {
                lookup.dropLocally([key])
            } else {
                lookup.dropAllLocally()
            }
        }
    }

    /// Returns when the connection closes (a failed call closes it: `SharedCache.markDown`) or
    /// the daemon stops.
    private func waitForEnd(of connection: RedisConnection) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await connection.closed.get() }
            group.addTask {
                try? await gracefulShutdown()
                // `closed.get()` above cannot be cancelled: closing ends it.
                await connection.close()
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Listens on sentinel `index` for `+switch-master` until the daemon stops; connects again
    /// after a second when it cannot. Every sentinel is listened to: one that is down or stopped
    /// cannot keep the news from this host.
    private func listen(to sentinels: SentinelAddress, _ index: Int) async {
        let cache = self.cache
        let moves = self.moves
        let logger = self.logger
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let timeout = max(cache.timeout, .seconds(1))
                let connection = try await RedisConnection.connect(
                    to: sentinels.sentinel(index),
                    password: sentinelPassword,
                    timeout: timeout,
                    certificateAuthorities: certificateAuthorities
                ) { push in
                    guard let moved = RedisSentinel.switchedPrimary(push, primaryName: sentinels.primaryName) else {
                        return
                    }
                    let server = RedisSentinel.hostPort(sentinels.server(host: moved.host, port: moved.port))
                    logger.info("the sentinels moved the primary to \(server)")
                    cache.primaryMoved()
                    if cache.currentServer != server { cache.markDown("the sentinels moved the primary to \(server)") }
                    moves.nudge()
                }
                do {
                    _ = try await connection.send(["SUBSCRIBE", "+switch-master"], timeout: timeout)
                } catch {
                    await connection.close()
                    throw error
                }
                await waitForEnd(of: connection)
                await connection.close()
            } catch {
                logger.debug("cannot listen to sentinel \(RedisSentinel.hostPort(sentinels.sentinel(index))): \(error)")
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
    }
}

/// A pause that news can end early: `nudge()` ends the pause under way, or the next one.
final class Nudge: Sendable {
    private let waiting = Mutex<(nudged: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

    func nudge() {
        let continuation = waiting.withLock { state in
            defer { state = (state.continuation == nil, nil) }
            return state.continuation
        }
        continuation?.resume()
    }

    /// Waits `seconds`, or until nudged (at once if nudged since the last pause).
    func pause(for seconds: Double) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: .seconds(seconds)) }
            group.addTask { await self.nudged() }
            await group.next()
            group.cancelAll()
            // The nudge wait does not end on cancellation by itself: end it.
            self.nudge()
        }
        waiting.withLock { $0.nudged = false }
    }

    private func nudged() async {
        await withCheckedContinuation { continuation in
            let now = waiting.withLock { state -> Bool in
                if state.nudged {
                    state.nudged = false
                    return true
                }
                state.continuation = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
