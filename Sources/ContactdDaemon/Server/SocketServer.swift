import ContactdProtocol
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// The Unix socket listener: binds (or adopts systemd's socket) and hands connections to handlers.
package final class SocketServer: Sendable {
    /// A listening socket and what is needed to take it down again.
    package struct Listener: Sendable {
        package let channel: any Channel
        /// Set when we created the socket file, so we remove exactly that file at exit.
        fileprivate let createdFile: SocketFile?
        fileprivate let createdInode: UInt?
    }

    private let configuration: DaemonConfiguration
    private let rules: ConnectionRules
    private let dispatcher: RequestDispatcher
    let registry: ConnectionRegistry
    private let logger: Logger
    /// Lookups by the caller's systemd unit, counted on both paths.
    private let callers: CallerUnits
    /// The hand-written loops serving plain hits, while listening (`FastLane`).
    private let fastLane = NIOLockedValueBox<FastLane?>(nil)

    package init(
        configuration: DaemonConfiguration,
        dispatcher: RequestDispatcher,
        status: LiveStatus,
        callers: CallerUnits = CallerUnits(),
        logger: Logger
    ) {
        self.configuration = configuration
        self.callers = callers
        self.rules = ConnectionRules(configuration)
        self.dispatcher = dispatcher
        self.registry = ConnectionRegistry(status: status, maxConnections: configuration.limits.maxConnections)
        self.logger = logger
    }

    /// The allow lists every new connection is checked against (a reload replaces them).
    var allowLists: AllowLists { rules.allowLists }

    /// Starts listening: on `inheritedSocket` if systemd passed one, else on a socket file it creates.
    package func listen(inheritedSocket: Int32?) async throws -> Listener {
        let descriptor: Int32
        var file: SocketFile?
        if let inheritedSocket {
            descriptor = inheritedSocket
        } else {
            let created = SocketFile(path: configuration.socket.path)
            try created.prepare()
            descriptor = try created.bindListener(backlog: 1024)
            do {
                try created.applyPermissions(mode: configuration.socket.mode, group: configuration.socket.group)
            } catch {
                close(descriptor)
                created.remove(ifInode: created.inode())
                throw error
            }
            file = created
        }
        // With the fast lane on, NIO's listening channel only owns the socket (and closes it);
        // the lane's loops accept.
        let channel: any Channel
        do {
            channel = try await makeBootstrap()
                .serverChannelOption(.autoRead, value: !configuration.fastPath)
                .withBoundSocket(descriptor).get()
        } catch {
            file?.remove(ifInode: file?.inode())
            throw error
        }
        if configuration.fastPath {
            do {
                let lane = try FastLane(
                    listener: descriptor,
                    loopCount: Self.loopCount,
                    hits: dispatcher.hits,
                    rules: rules,
                    host: LaneHost(registry: registry, status: dispatcher.status, handOver: makeHandOver()),
                    callers: callers
                )
                fastLane.withLockedValue { $0 = lane }
                dispatcher.status.fastPathEnabled.store(true, ordering: .relaxed)
                lane.start()
            } catch {
                try? await channel.close()
                file?.remove(ifInode: file?.inode())
                throw error
            }
        }
        if let file {
            logger.info(
                "listening",
                metadata: [
                    "socket.path": "\(file.path)", "socket.mode": "\(String(configuration.socket.mode, radix: 8))",
                    "fast-path": "\(configuration.fastPath)",
                ]
            )
        } else {
            logger.info(
                "listening on inherited socket",
                metadata: ["socket.fd": "\(descriptor)", "fast-path": "\(configuration.fastPath)"]
            )
        }
        return Listener(channel: channel, createdFile: file, createdInode: file?.inode())
    }

    /// As many fast-lane loops as NIO has event loops (one per core the daemon may run on).
    private static var loopCount: Int {
        MultiThreadedEventLoopGroup.singleton.makeIterator().reduce(0) { count, _ in count + 1 }
    }

    /// Stops accepting: closes the listening socket and removes its file if we made it.
    package func stopAccepting(_ listener: Listener) async {
        // The lane's loops let go of the socket before NIO closes it (its number could be reused).
        await fastLane.withLockedValue { $0 }?.stopAccepting()
        try? await listener.channel.close()
        listener.createdFile?.remove(ifInode: listener.createdInode)
    }

    /// Lets every connection finish what it has received, for at most `timeout`, then
    /// closes whatever is left. Returns whether everything finished in time.
    package func drainConnections(timeout: Duration) async -> Bool {
        // Connections on the fast lane owe nothing (a hit is answered before the next read):
        // they are closed at once.
        await fastLane.withLockedValue { $0 }?.closeAll()
        registry.drainAll()
        let registry = self.registry
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await registry.waitForAllClosed()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let finished = await group.next() ?? false
            if !finished { registry.closeAll() }
            group.cancelAll()
            return finished
        }
    }

    /// Returns once the fast lane's loops have each run a no-op (see `FastLane.answer()`).
    package func fastLaneAnswers() async {
        await fastLane.withLockedValue { $0 }?.answer()
    }

    /// Closes every connection now (cancellation, or a second signal).
    package func closeAllConnections() async {
        await fastLane.withLockedValue { $0 }?.closeAll()
        registry.closeAll()
        await registry.waitForAllClosed()
    }

    /// Reads the peer's credentials (SO_PEERCRED): `nil` when they are not on the allow lists
    /// (there are none: anyone is), else where the connection's lookups are counted. Root is
    /// always allowed. A refusal is logged once, with the peer's uid, gid and pid.
    private func checkPeer(_ channel: any Channel) -> EventLoopFuture<CallerUnits.Tally?> {
        let rules = self.rules
        let callers = self.callers
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(rules.checksPeers ? nil : callers.tally(pid: nil))
        }
        let logger = self.logger
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: .socket,
            name: NIOBSDSocket.Option(rawValue: PeerCredentials.optionName)
        )
        return credentials.map { peer -> CallerUnits.Tally? in
            guard rules.allows(peer) else {
                logger.notice(
                    "refused a peer not on the allow lists",
                    metadata: ["peer.uid": "\(peer.uid)", "peer.gid": "\(peer.gid)", "peer.pid": "\(peer.pid)"]
                )
                return nil
            }
            return callers.tally(pid: peer.pid)
        }.recover { _ in rules.checksPeers ? nil : callers.tally(pid: nil) }
    }

    private func makeBootstrap() -> ServerBootstrap {
        let initialize = makeInitializer()
        return ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in initialize(channel, nil) }
    }

    /// Gives a connection from the fast lane to NIO. One it had admitted gets a
    /// `ConnectionHandler` with what the lane had not finished; one it had not goes through the
    /// same checks as a connection NIO accepted.
    private func makeHandOver() -> @Sendable (FastLane.HandOver) -> Void {
        let initialize = makeInitializer()
        let registry = self.registry
        let logger = self.logger
        let status = dispatcher.status
        return { handed in
            let adopted = Atomic<Bool>(false)
            ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    adopted.store(true, ordering: .relaxed)
                    handed.settled()
                    guard handed.admitted else { return initialize(channel, nil) }
                    registry.adoptFromFastLane(channel)
                    status.handedOver.add(1, ordering: .relaxed)
                    let unfinished = ConnectionHandler.Unfinished(
                        output: handed.unwritten,
                        lookUp: handed.lookUp,
                        input: handed.unread,
                        caller: handed.caller
                    )
                    return initialize(channel, unfinished)
                }
                .withConnectedSocket(handed.descriptor)
                .whenFailure { error in
                    // NIO closes the descriptor when it fails after taking it.
                    if !adopted.load(ordering: .relaxed) {
                        handed.settled()
                        if handed.admitted { registry.releaseFastLane() }
                    }
                    logger.warning("could not hand a connection to NIO", metadata: ["error": "\(error)"])
                }
        }
    }

    /// Sets up an accepted connection: the peer check and the connection limit (skipped for one
    /// the fast lane admitted and hands over with its unfinished work), then a `ConnectionHandler`.
    private func makeInitializer()
        -> @Sendable (any Channel, ConnectionHandler.Unfinished?) -> EventLoopFuture<Void>
    {
        let dispatcher = self.dispatcher
        let registry = self.registry
        let limits = configuration.limits
        let rules = self.rules
        let checkPeer = self.checkPeer
        return { channel, handedOver in
            @Sendable func handler(caller: CallerUnits.Tally?) -> ConnectionHandler {
                ConnectionHandler(
                    dispatcher: dispatcher,
                    rules: rules,
                    maxBatch: limits.maxBatch,
                    maxInFlight: limits.maxInFlightPerConnection,
                    handedOver: handedOver,
                    caller: caller
                )
            }
            if let handedOver {
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler(caller: handedOver.caller))
                }
            }
            return checkPeer(channel).flatMapThrowing { caller in
                guard let caller else {
                    try channel.pipeline.syncOperations.addHandler(RefuseConnectionHandler(error: .forbidden))
                    return
                }
                guard registry.admit(channel) else {
                    try channel.pipeline.syncOperations.addHandler(
                        RefuseConnectionHandler(error: .overloaded("too many connections"))
                    )
                    return
                }
                try channel.pipeline.syncOperations.addHandler(handler(caller: caller))
            }
        }
    }
}

/// The server's side of the fast lane's interface: the connection count and the hand-over.
private struct LaneHost: FastLaneHost {
    let registry: ConnectionRegistry
    let status: LiveStatus
    let handOver: @Sendable (FastLane.HandOver) -> Void

    func admit() -> Bool { registry.admitFastLane() }
    func handOver(_ handOver: FastLane.HandOver) { self.handOver(handOver) }
    func release() { registry.releaseFastLane() }
    var isDraining: Bool { status.draining }
}

extension ConnectionRules {
    init(_ configuration: DaemonConfiguration) {
        self.init(
            maxLineBytes: configuration.limits.maxLineBytes,
            idleTimeout: configuration.limits.idleTimeout,
            partialLineTimeout: configuration.limits.partialLineTimeout,
            allowLists: AllowLists(uids: configuration.socket.allowUIDs, gids: configuration.socket.allowGIDs)
        )
    }
}
