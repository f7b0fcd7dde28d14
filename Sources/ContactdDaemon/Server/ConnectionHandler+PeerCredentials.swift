import NIOCore
import NIOPosix

extension ConnectionHandler {
    /// The uid of the process at the other end (`SO_PEERCRED`), asked only for `daemon.reload`.
    static func peerUID(of channel: any Channel) async -> UInt32? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: .socket,
            name: NIOBSDSocket.Option(rawValue: PeerCredentials.optionName)
        )
        return try? await credentials.get().uid
    }
}
