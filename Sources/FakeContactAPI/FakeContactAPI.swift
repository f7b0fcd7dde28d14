import Foundation
import HTTPResponder
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A loopback HTTP server that answers `POST /get-contact` like the real API, with switchable faults.
///
/// It stands in for the API in tests and benchmarks (`--demo` has its own, `DemoAPI`): it counts the calls it gets (in total,
/// per key, and the most in flight at once) and can answer with any status, slowly, with garbage,
/// or by dropping the connection.
package final class FakeContactAPI: Sendable {
    /// How the next requests are answered.
    package enum Behavior: Sendable, Equatable {
        /// Look the contact up: 200 with it, or 404.
        case normal
        /// Answer with this status, optional `Retry-After`, and body.
        case status(Int, retryAfter: String? = nil, body: String = #"{"error":"fault"}"#)
        /// 200 with a body that is not a contact.
        case garbage(String)
        /// Close the connection without answering.
        case drop
        /// Answer with this status and a short body that echoes the request's `Authorization`
        /// header, as some APIs and proxies do in their error pages.
        case echoAuthorization(Int)
        /// For each request at random: after a delay of up to `maxDelay`, mostly `.normal`, else
        /// 500, 503, 429 (Retry-After 1), `.drop` or garbage. For chaos tests.
        case chaos(maxDelay: TimeAmount)
    }

    /// The base URL to give the daemon as `--api-url`, e.g. `http://127.0.0.1:39123`.
    package let baseURL: String
    /// The port it listens on.
    package let port: Int
    private let channel: any Channel
    private let core: FakeAPICore

    private init(channel: any Channel, core: FakeAPICore, port: Int) {
        self.channel = channel
        self.core = core
        self.port = port
        self.baseURL = "http://127.0.0.1:\(port)"
    }

    /// Starts a fake on 127.0.0.1 at a free port.
    ///
    /// - Parameters:
    ///   - contacts: raw JSON objects it knows, each found by its `id` and `phone_number`.
    ///   - expectedToken: when set, any other bearer token gets 401.
    ///   - generate: answers keys (`"phone:+1…"`, `"id:…"`) not among `contacts`, e.g.
    ///     `BenchContacts.generate` for a million contacts without storing them.
    ///   - port: the port to listen on; 0 picks a free one.
    package static func start(
        contacts: [String] = [],
        expectedToken: String? = nil,
        generate: (@Sendable (String) -> String?)? = nil,
        port: Int = 0
    ) async throws -> FakeContactAPI {
        var initial = FakeAPICore.State()
        initial.expectedToken = expectedToken
        for raw in contacts {
            guard let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] else {
                continue
            }
            if let id = object["id"] as? String { initial.contacts["id:" + id] = raw }
            if let phone = object["phone_number"] as? String { initial.contacts["phone:" + phone] = raw }
        }
        let core = FakeAPICore(initial, generate: generate)
        let channel = try await HTTPResponder.bootstrap { request, eventLoop in core.respond(to: request, on: eventLoop)
        }
        .bind(host: "127.0.0.1", port: port)
        .get()
        return FakeContactAPI(channel: channel, core: core, port: channel.localAddress?.port ?? 0)
    }

    /// Stops listening; open connections end with the event loop group.
    package func shutdown() async {
        try? await channel.close()
    }

    /// Sets how the following requests are answered.
    package func setBehavior(_ behavior: Behavior) {
        core.state.withLockedValue { $0.behavior = behavior }
    }

    /// Answers the next requests with `behaviors`, one each, before the behaviour set by
    /// `setBehavior` applies again.
    package func script(_ behaviors: [Behavior]) {
        core.state.withLockedValue { $0.script = behaviors }
    }

    /// Delays every answer by `delay`.
    package func setDelay(milliseconds: Int) {
        setDelay(.milliseconds(Int64(milliseconds)))
    }

    package func setDelay(_ delay: TimeAmount) {
        core.state.withLockedValue { $0.delay = delay }
    }

    /// Changes the token the fake accepts (`nil`: any).
    package func setExpectedToken(_ token: String?) {
        core.state.withLockedValue { $0.expectedToken = token }
    }

    /// Adds or replaces a contact.
    package func addContact(_ raw: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] else { return }
        core.state.withLockedValue { state in
            if let id = object["id"] as? String { state.contacts["id:" + id] = raw }
            if let phone = object["phone_number"] as? String { state.contacts["phone:" + phone] = raw }
        }
    }

    /// Parks every answer until `release()`; requests are still counted as they arrive.
    package func hold() {
        core.state.withLockedValue { $0.held = true }
    }

    /// Sends every parked answer and stops parking.
    package func release() {
        let responders = core.state.withLockedValue { state in
            state.held = false
            defer { state.heldResponders = [] }
            return state.heldResponders
        }
        for responder in responders { responder() }
    }

    /// Requests received so far.
    package var calls: Int { core.state.withLockedValue { $0.calls } }

    /// Requests received for a key: `"phone:+1…"` or `"id:…"`.
    package func calls(for key: String) -> Int { core.state.withLockedValue { $0.callsByKey[key] ?? 0 } }

    /// The most requests that were being answered at one time.
    package var maxInFlight: Int { core.state.withLockedValue { $0.maxInFlight } }

    /// The most requests for one key that were being answered at one time.
    package var maxInFlightPerKey: Int { core.state.withLockedValue { $0.maxInFlightPerKey } }

    /// Every `Authorization` header received, in order (tests check the token sent).
    package var authorizationHeaders: [String] { core.state.withLockedValue { $0.authorizationHeaders } }

    /// What was POSTed to `/v1/traces`: point a daemon's `--otlp-endpoint` at `baseURL` and this
    /// fake collects its spans (each body an OTLP ExportTraceServiceRequest in protobuf).
    package var traceExports: [[UInt8]] { core.state.withLockedValue { $0.traceExports } }

    /// Waits until at least `count` requests have arrived (polling the counter every 5 ms).
    package func waitForCalls(_ count: Int) async throws {
        while calls < count {
            try await Task.sleep(for: .milliseconds(5))
        }
    }

}

/// The fake's state, shared by the public object and the connection handlers.
final class FakeAPICore: Sendable {
    struct State {
        var contacts: [String: String] = [:]  // phone or id → raw JSON
        var behavior: FakeContactAPI.Behavior = .normal
        var delay: TimeAmount = .zero
        var expectedToken: String?
        var calls = 0
        var callsByKey: [String: Int] = [:]
        var inFlight = 0
        var maxInFlight = 0
        var inFlightByKey: [String: Int] = [:]
        var maxInFlightPerKey = 0
        var script: [FakeContactAPI.Behavior] = []
        var held = false
        var heldResponders: [@Sendable () -> Void] = []
        var authorizationHeaders: [String] = []
        /// Bodies POSTed to /v1/traces (OTLP/HTTP, protobuf): the fake is also a trace collector.
        var traceExports: [[UInt8]] = []
    }

    let state: NIOLockedValueBox<State>
    let generate: (@Sendable (String) -> String?)?

    init(_ initial: State, generate: (@Sendable (String) -> String?)?) {
        state = NIOLockedValueBox(initial)
        self.generate = generate
    }

    enum Answer {
        case respond(HTTPResponseStatus, [(String, String)], String)
        case drop
    }

    /// Decides the answer for one request, counting it; called on the connection's event loop.
    func answer(
        head: HTTPRequestHead,
        body: ByteBuffer
    ) -> (answer: Answer, delay: TimeAmount, held: Bool, key: String) {
        state.withLockedValue { state in
            state.calls += 1
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            let auth = head.headers.first(name: "authorization") ?? ""
            state.authorizationHeaders.append(auth)
            var key = "?"
            if let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] {
                if let phone = object["phone_number"] as? String { key = "phone:" + phone }
                if let id = object["contact_id"] as? String { key = "id:" + id }
            }
            state.callsByKey[key, default: 0] += 1
            state.inFlightByKey[key, default: 0] += 1
            state.maxInFlightPerKey = max(state.maxInFlightPerKey, state.inFlightByKey[key] ?? 0)
            var delay = state.delay
            var behavior = state.script.isEmpty ? state.behavior : state.script.removeFirst()
            if case .chaos(let maxDelay) = behavior {
                delay = .nanoseconds(Int64.random(in: 0...max(0, maxDelay.nanoseconds)))
                switch Int.random(in: 0..<100) {
                case 0..<55: behavior = .normal
                case 55..<62: behavior = .status(503)
                case 62..<67: behavior = .status(500)
                case 67..<77: behavior = .status(429, retryAfter: "1")
                case 77..<88: behavior = .drop
                default: behavior = .garbage(#"{"truncated":"#)
                }
            }
            let answer: Answer
            if head.method != .POST || head.uri != "/get-contact" {
                answer = .respond(.notFound, [], #"{"error":"no such route"}"#)
            } else if let token = state.expectedToken, auth != "Bearer \(token)" {
                answer = .respond(.unauthorized, [], #"{"error":"invalid token"}"#)
            } else {
                switch behavior {
                case .normal:
                    if let contact = state.contacts[key] ?? generate?(key) {
                        answer = .respond(.ok, [("content-type", "application/json")], contact)
                    } else {
                        answer = .respond(.notFound, [], #"{"error":"contact not found"}"#)
                    }
                case .status(let code, let retryAfter, let body):
                    answer = .respond(
                        HTTPResponseStatus(statusCode: code),
                        retryAfter.map { [("retry-after", $0)] } ?? [],
                        body
                    )
                case .garbage(let body):
                    answer = .respond(.ok, [("content-type", "application/json")], body)
                case .echoAuthorization(let code):
                    let body = #"{"error":"request refused","authorization":""# + auth + #""}"#
                    answer = .respond(HTTPResponseStatus(statusCode: code), [], body)
                case .drop, .chaos:
                    answer = .drop
                }
            }
            return (answer, delay, state.held, key)
        }
    }

    func recordTraces(_ body: [UInt8]) {
        state.withLockedValue { $0.traceExports.append(body) }
    }

    func finished(key: String) {
        state.withLockedValue { state in
            state.inFlight -= 1
            state.inFlightByKey[key, default: 1] -= 1
            if state.inFlightByKey[key] == 0 { state.inFlightByKey[key] = nil }
        }
    }

    func park(_ responder: @escaping @Sendable () -> Void) -> Bool {
        state.withLockedValue { state in
            guard state.held else { return false }
            state.heldResponders.append(responder)
            return true
        }
    }
}
