import ContactdCore
import Logging
import NIOCore
import RedisClient
import ServiceLifecycle
import Synchronization

/// Keeps the shared cache's connection: connects (and subscribes to invalidations), and after any
/// failure connects again with backoff (0.25 s doubling to 5 s) until the daemon stops. The daemon
/// is ready without it: lookups skip Redis until it is up.
struct SharedCacheService: Service, CustomStringConvertible {
    var description: String { "SharedCacheService" }

    let cache: SharedCache
    /// From the `shared-cache-password` credential or `--shared-cache-password-file`; never logged.
    let password: String?
    /// For `rediss://`: the CAs to trust (`--shared-cache-ca-file`); `nil`: the system's.
    let certificateAuthorities: String?
    let lookup: ContactLookup
    let logger: Logger

    func run() async {
        let cache = self.cache
        await withDiscardingTaskGroup { group in
            group.addTask { await cache.writer.run { await cache.send($0) } }
            await keepConnected()
            cache.writer.finish()
        }
    }

    private func keepConnected() async {
        var backoff = 0.25
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let connection = try await connect()
                cache.connected(connection)
                backoff = 0.25
                await waitForEnd(of: connection)
                await connection.close()
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                if !cache.isDown { cache.markDown("the connection to Redis closed") }
            } catch {
                cache.markDown(error.description)
            }
            let pause = backoff
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(pause)) }
            } catch {
                return
            }
            backoff = min(backoff * 2, 5)
        }
    }

    private func connect() async throws(RedisError) -> RedisConnection {
        let lookup = self.lookup
        let channel = cache.invalidationChannel
        let counts = cache.counts
        let cache = self.cache
        // Connecting may take longer than one lookup's timeout; it does not hold up lookups.
        let setupTimeout = max(cache.timeout, .seconds(1))
        let connection = try await RedisConnection.connect(
            to: cache.address,
            password: password,
            timeout: setupTimeout,
            certificateAuthorities: certificateAuthorities
        ) {
            push in
            guard case .push(let parts) = push, parts.count == 3, parts[0].string == "message",
                parts[1].string == channel, case .bulkString(let bytes) = parts[2]
            else { return }
            let (key, valid) = cache.read(message: bytes)
            guard valid else { return }
            counts.invalidationsReceived.add(1, ordering: .relaxed)
            if let key {
                lookup.dropLocally([key])
            } else {
                lookup.dropAllLocally()
            }
        }
        let epoch: Int64
        do {
            // Subscribed first, then the count read: an invalidation after the read is heard.
            _ = try await connection.send(["SUBSCRIBE", .text(channel)], timeout: setupTimeout)
            let reply = try await connection.send(["GET", .text(cache.layout.epochKey)], timeout: setupTimeout)
            epoch = reply.string.flatMap { Int64($0) } ?? 0
        } catch {
            await connection.close()
            throw error
        }
        if cache.missedInvalidations(currentEpoch: epoch) {
            // Invalidations were made while this host could not hear them, and it cannot tell
            // which: what it holds may be what they removed (docs/scale.md, "Failures").
            let dropped = lookup.dropAllLocally()
            logger.warning(
                "the fleet made invalidations while this host was not connected to the shared cache: emptied this host's cache (\(dropped) entries) so that none of them is undone"
            )
        }
        return connection
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
}
