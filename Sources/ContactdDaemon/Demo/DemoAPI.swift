import ContactdJSON
import Foundation
import HTTPResponder
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
        let channel = try await HTTPResponder.bootstrap(maxBodyBytes: 64 << 10) { request, eventLoop in
            eventLoop.makeSucceededFuture(answer(request, contacts: known, token: token))
        }
        .bind(host: "127.0.0.1", port: 0)
        .get()
        return DemoAPI(channel: channel, token: token)
    }

    /// Stops listening.
    func shutdown() async {
        try? await channel.close()
    }

    private static func answer(
        _ request: HTTPResponder.Request,
        contacts: [String: String],
        token: String
    ) -> HTTPResponder.Answer {
        func json(_ status: HTTPResponseStatus, _ text: String) -> HTTPResponder.Answer {
            .text(status, text, headers: [("content-type", "application/json")])
        }
        guard request.head.method == .POST, request.path.hasSuffix("/get-contact") else {
            return json(.notFound, #"{"error":"no such endpoint"}"#)
        }
        guard request.head.headers["authorization"].first == "Bearer " + token else {
            return json(.unauthorized, #"{"error":"invalid token"}"#)
        }
        guard let body = try? JSONParser.parse(Array(request.body.readableBytesView)) else {
            return json(.badRequest, #"{"error":"body is not JSON"}"#)
        }
        for member in ["phone_number", "contact_id"] {
            guard let value = body[member]?.stringValue else { continue }
            guard let contact = contacts[member + ":" + value] else {
                return json(.notFound, #"{"error":"contact not found"}"#)
            }
            return json(.ok, contact)
        }
        return json(.badRequest, #"{"error":"give phone_number or contact_id"}"#)
    }
}
