import AsyncHTTPClient
import ContactdCore
import ContactdJSON
import ContactdProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The get-contact API as a `ContactSource`: `POST {api-url}/get-contact` with the bearer token.
///
/// One shared `HTTPClient` keeps connections alive between calls. The token can be swapped at run
/// time (SIGHUP re-reads it) without dropping those connections.
package final class HTTPContactSource: ContactSource {
    /// Largest response body read, in bytes; a contact is well under 10 KiB, so 1 MiB only stops
    /// a broken or hostile upstream from growing our memory.
    static let maximumBodyBytes = 1 << 20

    private let client: HTTPClient
    private let endpoint: String
    private let token: NIOLockedValueBox<Secret>
    private let logger: Logger
    /// What AsyncHTTPClient logs through: never headers or bodies (`HTTPClientLogHandler`).
    private let clientLogger: Logger

    /// - Parameters:
    ///   - baseURL: the API base, without `/get-contact`.
    package init(client: HTTPClient, baseURL: String, token: Secret, logger: Logger) {
        self.client = client
        self.endpoint = baseURL + "/get-contact"
        self.token = NIOLockedValueBox(token)
        self.logger = logger
        self.clientLogger = HTTPClientLogHandler.logger(writingTo: logger)
    }

    /// Uses `token` from the next call on; returns whether it differs from the one in use.
    @discardableResult
    package func replaceToken(_ token: Secret) -> Bool {
        self.token.withLockedValue { current in
            defer { current = token }
            return current.value != token.value
        }
    }

    package func fetch(_ key: ContactKey, timeout: Double) async throws(LookupError) -> APIContact {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer " + token.withLockedValue { $0.value })
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "contactd/\(ContactdVersion.current)")
        request.headers.add(name: "Accept", value: "application/json")
        let body: JSONValue
        switch key {
        case .phone(let phone): body = .object(["phone_number": .string(phone.e164)])
        case .id(let id): body = .object(["contact_id": .string(id.rawValue)])
        }
        request.body = .bytes(ByteBuffer(bytes: body.jsonBytes))

        let status: Int
        let retryAfter: String?
        let responseBody: ByteBuffer
        do {
            let response = try await client.execute(
                request,
                timeout: .nanoseconds(Int64(max(timeout, 0.001) * 1e9)),
                logger: clientLogger
            )
            status = Int(response.status.code)
            retryAfter = response.headers.first(name: "retry-after")
            responseBody = try await response.body.collect(upTo: Self.maximumBodyBytes)
        } catch is NIOTooManyBytesError {
            throw .badResponse(detail: "response body larger than \(Self.maximumBodyBytes) bytes")
        } catch {
            // Refused, unreachable, timed out, reset, TLS: worth another attempt (a certificate
            // that does not verify will fail again, but the breaker then stops the calls).
            throw .unavailable(detail: TransportErrorDescription.describe(error), retryAfter: nil, retryable: true)
        }
        logger.debug("upstream answered", metadata: ["upstream.status": "\(status)"])
        return try Self.contact(status: status, retryAfter: retryAfter, body: responseBody.readableBytesView)
    }

    /// Maps an HTTP answer to a contact or a `LookupError` (SPEC §2).
    package static func contact(
        status: Int,
        retryAfter: String?,
        body: some Collection<UInt8>
    ) throws(LookupError) -> APIContact {
        switch status {
        case 200:
            do {
                return try APIContact(apiBody: body)
            } catch {
                throw .badResponse(detail: error.problem)
            }
        case 404: throw .notFound
        case 401, 403: throw .unauthorized
        case 429: throw .rateLimited(retryAfter: RetryAfter.seconds(retryAfter))
        case 400, 422: throw .rejectedByAPI
        case 500...599:
            // 502/503/504 say "try again"; 500 and the rest say the API itself is broken.
            throw .unavailable(
                detail: "the API answered HTTP \(status)",
                retryAfter: RetryAfter.seconds(retryAfter),
                retryable: [502, 503, 504].contains(status)
            )
        default:
            throw .badResponse(detail: "unexpected HTTP status \(status)")
        }
    }
}
