import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import NIOCore
import Testing

@Suite(.timeLimit(.minutes(1))) struct LimitsTests {
    @Test func unfinishedLineIsCutOffAfterThePartialLineTimeout() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.partialLineTimeout = .seconds(0.3) }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                try await client.send(#"{"id":1,"method":"daemon.p"#)
                let start = ContinuousClock.now
                let reply = try JSONParser.parse(Array(#require(try await client.readLine()).utf8))
                #expect(reply.errorReason == "invalid_request")
                #expect(reply["id"] == .null)
                #expect(ContinuousClock.now - start >= .milliseconds(250))
                #expect(try await client.readLine() == nil)
                await client.close()
            }
        }
    }

    @Test func steadilyCompletedLinesAreNeverCutOff() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.partialLineTimeout = .seconds(3) }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                // Each send finishes the previous request and starts the next: a line is left
                // unfinished for all of 3.5 s, past the 3 s limit, but lines complete every
                // 250 ms, so the guard's clock keeps restarting. The limit is 12x the interval:
                // with the whole suite running at once on a loaded 2-core machine, 1 s limits
                // saw gaps of over a second between a sleep's end and the daemon's read.
                try await client.send(#"{"id":0,"method":"daemon."#)
                for id in 1...14 {
                    try await Task.sleep(for: .milliseconds(250))
                    try await client.send("ping\"}\n" + #"{"id":\#(id),"method":"daemon."#)
                    #expect(try await client.readLine()?.contains("pong") == true)
                }
                await client.close()
            }
        }
    }

    // Idle timeouts of 1 s, not less: with the whole suite running at once, more than 0.3 s
    // passed between a test's connect and its first send, and the daemon had closed it already.
    @Test func silentConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.idleTimeout = .seconds(1) }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(client, #"{"id":1,"method":"daemon.ping"}"#)["result"] == "pong")
                #expect(try await client.readLine(timeout: 5) == nil)
                await client.close()
            }
        }
    }

    @Test func idleTimeoutWaitsForAnswersStillOwed() async throws {
        try await withFakeAPI { api in
            api.setDelay(.milliseconds(2500))
            try await withDaemon(api: api, configure: { $0.limits.idleTimeout = .seconds(1) }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                try await client.send(getPhone(johnPhone) + "\n")
                let reply = try JSONParser.parse(Array(#require(try await client.readLine(timeout: 5)).utf8))
                #expect(reply.cacheStatus == "miss")
                #expect(try await client.readLine(timeout: 5) == nil)
                await client.close()
            }
        }
    }

    @Test func requestsBeyondThePerConnectionLimitGetOverloaded() async throws {
        try await withFakeAPI { api in
            api.hold()
            try await withDaemon(api: api, configure: { $0.limits.maxInFlightPerConnection = 2 }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let numbers = ["+14155551234", "+442079460958", "+4930901820"]
                try await client.send(numbers.enumerated().map { getPhone($1, id: $0) }.joined(separator: "\n") + "\n")
                let refused = try JSONParser.parse(Array(#require(try await client.readLine()).utf8))
                #expect(refused["id"] == .number("2"))
                #expect(refused.errorReason == "overloaded")
                api.release()
                let answered = try await client.readLines(2)
                #expect(answered.allSatisfy { $0.contains(#""status":"miss""#) })
                await client.close()
            }
        }
    }

    @Test func batchBeyondTheLimitIsRefusedWhole() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.limits.maxBatch = 2 }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let ping = #"{"id":1,"method":"daemon.ping"}"#
                let reply = try await roundTrip(client, "[\(ping),\(ping),\(ping)]")
                #expect(reply.errorReason == "batch_too_large")
                #expect(reply.arrayValue == nil)
                await client.close()
            }
        }
    }
}
