import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import NIOCore
import Testing

@Suite(.timeLimit(.minutes(1))) struct UpstreamErrorTests {
    @Test(arguments: [
        (FakeContactAPI.Behavior.status(401), -32003, "upstream_unauthorized"),
        (.status(403), -32003, "upstream_unauthorized"),
        (.status(429, retryAfter: "30"), -32004, "rate_limited"),
        (.status(500), -32002, "upstream_unavailable"),
        (.status(502), -32002, "upstream_unavailable"),
        (.status(503, retryAfter: "7"), -32002, "upstream_unavailable"),
        (.status(400), -32602, "rejected_by_api"),
        (.status(422), -32602, "rejected_by_api"),
        (.status(302), -32006, "upstream_bad_response"),
        (.status(418), -32006, "upstream_bad_response"),
        (.garbage("<html>oops</html>"), -32006, "upstream_bad_response"),
        (.garbage(#"{"name":"no id"}"#), -32006, "upstream_bad_response"),
        (.garbage("[1,2,3]"), -32006, "upstream_bad_response"),
        (.drop, -32002, "upstream_unavailable"),
    ])
    func apiAnswerBecomesTheSpecifiedError(behavior: FakeContactAPI.Behavior, code: Int, reason: String) async throws {
        try await withFakeAPI { api in
            api.setBehavior(behavior)
            // One attempt per fetch: retries have their own tests (ResilienceTests).
            try await withDaemon(api: api, configure: { $0.policy.retryAttempts = 1 }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let reply = try await roundTrip(client, getPhone(johnPhone, id: 42))
                #expect(reply["id"] == .number("42"))
                #expect(reply.errorCode == code)
                #expect(reply.errorReason == reason)
                #expect(reply["error"]?["message"]?.stringValue?.isEmpty == false)
                if case .status(_, let retryAfter?, _) = behavior {
                    #expect(reply["error"]?["data"]?["retry_after"]?.intValue == Int(retryAfter))
                }
                // Errors are not cached: the next request asks again. Except a 429, which holds
                // the key back until Retry-After passes, and a rejected token, which fails fast
                // until a reload or the breaker cooldown (ResilienceTests cover both).
                let again = try await roundTrip(client, getPhone(johnPhone, id: 43))
                #expect(again.errorReason == reason)
                switch behavior {
                case .status(429, _, _), .status(401, _, _), .status(403, _, _): #expect(api.calls == 1)
                default: #expect(api.calls == 2)
                }
                await client.close()
            }
        }
    }

    @Test func slowAPIBecomesUpstreamUnavailableAfterTheTimeout() async throws {
        try await withFakeAPI { api in
            api.setDelay(.seconds(3))
            try await withDaemon(api: api, configure: { $0.policy.deadline = .seconds(0.3) }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let start = ContinuousClock.now
                let reply = try await roundTrip(client, getPhone(johnPhone))
                #expect(reply.errorReason == "upstream_unavailable")
                #expect(ContinuousClock.now - start < .seconds(2))
                await client.close()
            }
        }
    }

    @Test func unreachableAPIBecomesUpstreamUnavailable() async throws {
        try await withFakeAPI { api in
            try await withDaemon(
                api: api,
                configure: {
                    $0.upstream.url = "http://127.0.0.1:1"
                    $0.policy.deadline = .seconds(1)
                }
            ) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(client, getPhone(johnPhone)).errorReason == "upstream_unavailable")
                await client.close()
            }
        }
    }

    @Test(arguments: [
        (200, "{\"id\":\"a\"}", nil as String?),
        (404, "", "notFound"),
        (401, "", "unauthorized"),
        (403, "", "unauthorized"),
        (429, "", "rateLimited"),
        (500, "", "unavailable"),
        (504, "", "unavailable"),
        (400, "", "rejectedByAPI"),
        (422, "", "rejectedByAPI"),
        (301, "", "badResponse"),
        (409, "", "badResponse"),
        (200, "null", "badResponse"),
    ])
    func statusMapping(status: Int, body: String, expected: String?) {
        do {
            _ = try HTTPContactSource.contact(status: status, retryAfter: nil, body: Array(body.utf8))
            #expect(expected == nil)
        } catch {
            #expect(String(describing: error).hasPrefix(expected ?? "success"))
        }
    }

    @Test(arguments: [
        ("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("-1", nil), ("x", nil), ("", nil), ("1.5", nil),
        // Absurd values are clamped to the documented maximum.
        ("86400", 3600.0), ("99999999999999999999999", 3600.0),
        // HTTP-dates, against a fixed now of Wed, 21 Oct 2026 07:28:00 GMT: all three forms.
        ("Wed, 21 Oct 2026 07:28:07 GMT", 7.0), ("Wednesday, 21-Oct-26 07:28:30 GMT", 30.0),
        ("Wed Oct 21 07:29:00 2026", 60.0), ("Wed Oct  1 07:29:00 2026", 0.0),
        // In the past: no wait. Too far ahead: the maximum.
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("Thu, 22 Oct 2026 07:28:00 GMT", 3600.0),
        ("Wed, 21 Foo 2026 07:28:07 GMT", nil), ("Wed, 21 Oct 2026 25:28:07 GMT", nil),
        ("Wed, 21 Oct 2026 07:28:07 PST", nil),
    ])
    func retryAfterParsing(header: String, seconds: Double?) {
        let now = RetryAfter.httpDate("Wed, 21 Oct 2026 07:28:00 GMT")!
        #expect(now.timeIntervalSince1970 == 1_792_567_680)
        #expect(RetryAfter.seconds(header, now: now) == seconds)
    }
}
