import ContactdProtocol
import Logging
import NIOCore
import NIOPosix

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
    private let dispatcher: RequestDispatcher
    let registry: ConnectionRegistry
    private let logger: Logger

    package init(
        configuration: DaemonConfiguration,
        dispatcher: RequestDispatcher,
        status: DaemonStatus,
        logger: Logger
    ) {
        self.configuration = configuration
        self.dispatcher = dispatcher
        self.registry = ConnectionRegistry(status: status, maxConnections: configuration.limits.maxConnections)
        self.logger = logger
    }

    /// Starts listening: on `inheritedSocket` if systemd passed one, else on a socket file it creates.
    package func listen(inheritedSocket: Int32?) async throws -> Listener {
        let bootstrap = makeBootstrap()
        if let inheritedSocket {
            let channel = try await bootstrap.withBoundSocket(inheritedSocket).get()
            logger.info("listening on inherited socket", metadata: ["socket.fd": "\(inheritedSocket)"])
            return Listener(channel: channel, createdFile: nil, createdInode: nil)
        }
        let file = SocketFile(path: configuration.socket.path)
        try file.prepare()
        let channel = try await bootstrap.bind(unixDomainSocketPath: file.path, cleanupExistingSocketFile: false).get()
        do {
            try file.applyPermissions(mode: configuration.socket.mode, group: configuration.socket.group)
        } catch {
            try? await channel.close()
            file.remove(ifInode: file.inode())
            throw error
        }
        logger.info(
            "listening",
            metadata: ["socket.path": "\(file.path)", "socket.mode": "\(String(configuration.socket.mode, radix: 8))"]
        )
        return Listener(channel: channel, createdFile: file, createdInode: file.inode())
    }

    /// Stops accepting: closes the listening socket and removes its file if we made it.
    package func stopAccepting(_ listener: Listener) async {
        try? await listener.channel.close()
        listener.createdFile?.remove(ifInode: listener.createdInode)
    }

    /// Lets every connection finish what it has received, for at most `timeout` seconds, then
    /// closes whatever is left. Returns whether everything finished in time.
    package func drainConnections(timeout: Double) async -> Bool {
        registry.drainAll()
        let registry = self.registry
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await registry.waitForAllClosed()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                return false
            }
            let finished = await group.next() ?? false
            if !finished { registry.closeAll() }
            group.cancelAll()
            return finished
        }
    }

    /// Closes every connection now (cancellation, or a second signal).
    package func closeAllConnections() {
        registry.closeAll()
    }

    /// Whether the peer's credentials (SO_PEERCRED) are on the allow lists; true when there are
    /// none. Root is always allowed. A refusal is logged once, with the peer's uid, gid and pid.
    private func peerAllowed(_ channel: any Channel) -> EventLoopFuture<Bool> {
        let uids = configuration.socket.allowUIDs
        let gids = configuration.socket.allowGIDs
        guard !uids.isEmpty || !gids.isEmpty else { return channel.eventLoop.makeSucceededFuture(true) }
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(false)
        }
        let logger = self.logger
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: .socket,
            name: NIOBSDSocket.Option(rawValue: PeerCredentials.optionName)
        )
        return credentials.map { peer in
            let allowed = peer.uid == 0 || uids.contains(peer.uid) || gids.contains(peer.gid)
            if !allowed {
                logger.notice(
                    "refused a peer not on the allow lists",
                    metadata: ["peer.uid": "\(peer.uid)", "peer.gid": "\(peer.gid)", "peer.pid": "\(peer.pid)"]
                )
            }
            return allowed
        }.recover { _ in false }
    }

    private func makeBootstrap() -> ServerBootstrap {
        let dispatcher = self.dispatcher
        let registry = self.registry
        let limits = configuration.limits
        let peerAllowed = self.peerAllowed
        return ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                peerAllowed(channel).flatMapThrowing { allowed in
                    guard allowed else {
                        try channel.pipeline.syncOperations.addHandler(RefuseConnectionHandler(error: .forbidden))
                        return
                    }
                    guard registry.admit(channel) else {
                        try channel.pipeline.syncOperations.addHandler(
                            RefuseConnectionHandler(error: .overloaded("too many connections"))
                        )
                        return
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(
                            dispatcher: dispatcher,
                            maxLineBytes: limits.maxLineBytes,
                            maxBatch: limits.maxBatch,
                            maxInFlight: limits.maxInFlightPerConnection,
                            timeouts: .init(
                                idle: .nanoseconds(Int64(limits.idleTimeout * 1e9)),
                                partialLine: .nanoseconds(Int64(limits.partialLineTimeout * 1e9))
                            )
                        )
                    )
                }
            }
    }
}

/// `struct ucred` from `<sys/socket.h>` (Glibc's Swift module hides it behind `_GNU_SOURCE`):
/// what `getsockopt(SO_PEERCRED)` fills in for a Unix socket peer. Same layout: three 32-bit fields.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    /// `SO_PEERCRED` on Linux (asm-generic/socket.h).
    static let optionName: CInt = 17
}
