import ContactdJSON
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `--demo`'s stand-in for the get-contact API: a loopback HTTP server that knows the sample
/// contacts (`DemoContacts`) and nothing else, so the demo runs the daemon's real HTTP client, with
/// no token and no network.
///
/// It answers `POST /get-contact` as the API does: 200 with the contact, 404 for an unknown key,
/// 401 for another bearer token, 400 for a body that names no key.
final class DemoAPI: Sendable {
    /// The base URL to use as the API's.
    let baseURL: String
    /// The bearer token it accepts: made for this run, known to nobody else.
    let token: String
    private let channel: any Channel

    private init(channel: any Channel, token: String) {
        self.channel = channel
        self.token = token
        self.baseURL = "http://127.0.0.1:\(channel.localAddress?.port ?? 0)"
    }

    /// Starts listening on 127.0.0.1 at a free port.
    static func start() async throws -> DemoAPI {
        var contacts: [String: String] = [:]
        for raw in DemoContacts.all {
            guard let contact = try? JSONParser.parse(Array(raw.utf8)) else { continue }
            if let id = contact["id"]?.stringValue { contacts["contact_id:" + id] = raw }
            if let phone = contact["phone_number"]?.stringValue { contacts["phone_number:" + phone] = raw }
        }
        let token = UUID().uuidString
        let known = contacts
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        NIOHTTPServerRequestAggregator(maxContentLength: 64 << 10)
                    )
                    try channel.pipeline.syncOperations.addHandler(Handler(contacts: known, token: token))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return DemoAPI(channel: channel, token: token)
    }

    /// Stops listening.
    func shutdown() async {
        try? await channel.close()
    }

    /// Answers one request (collected whole by `NIOHTTPServerRequestAggregator`).
    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = NIOHTTPServerRequestFull
        typealias OutboundOut = HTTPServerResponsePart

        private let contacts: [String: String]
        private let token: String

        init(contacts: [String: String], token: String) {
            self.contacts = contacts
            self.token = token
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = unwrapInboundIn(data)
            let (status, text) = answer(request.head, body: request.body ?? ByteBuffer())
            var headers = HTTPHeaders([("content-type", "application/json")])
            headers.add(name: "content-length", value: String(text.utf8.count))
            let head = HTTPResponseHead(version: request.head.version, status: status, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        private func answer(_ head: HTTPRequestHead, body: ByteBuffer) -> (HTTPResponseStatus, String) {
            guard head.method == .POST, head.uri.hasSuffix("/get-contact") else {
                return (.notFound, #"{"error":"no such endpoint"}"#)
            }
            guard head.headers["authorization"].first == "Bearer " + token else {
                return (.unauthorized, #"{"error":"invalid token"}"#)
            }
            guard let request = try? JSONParser.parse(Array(body.readableBytesView)) else {
                return (.badRequest, #"{"error":"body is not JSON"}"#)
            }
            for member in ["phone_number", "contact_id"] {
                guard let value = request[member]?.stringValue else { continue }
                guard let contact = contacts[member + ":" + value] else {
                    return (.notFound, #"{"error":"contact not found"}"#)
                }
                return (.ok, contact)
            }
            return (.badRequest, #"{"error":"give phone_number or contact_id"}"#)
        }
    }
}
