import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Testing

@Suite(.timeLimit(.minutes(1))) struct CachingTests {
    @Test func missThenHitCallsTheAPIOnce() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                let first = try await roundTrip(client, getPhone(johnPhone))
                #expect(first.cacheStatus == "miss")
                let second = try await roundTrip(client, getPhone(johnPhone, id: 2))
                #expect(second.cacheStatus == "hit")
                #expect(second["id"] == .number("2"))
                #expect(api.calls == 1)
                await client.close()
            }
        }
    }

    @Test func contactIsPassedThroughVerbatimWithoutWhitespace() async throws {
        let raw =
            #"{"id": "v1", "phone_number": "+15005550006", "score": 1.50, "big": 1E+3, "new_field": {"x": [1, 2]}}"#
        try await withFakeAPI(contacts: [raw]) { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                try await client.send(getID("v1") + "\n")
                let line = try #require(try await client.readLine())
                #expect(
                    line.contains(
                        #""contact":{"id":"v1","phone_number":"+15005550006","score":1.50,"big":1E+3,"new_field":{"x":[1,2]}}"#
                    )
                )
                await client.close()
            }
        }
    }

    @Test func oneEntryAnswersForItsIDItsNumberAndOtherSpellings() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(client, getPhone("+1 (415) 555-1234")).cacheStatus == "miss")
                #expect(try await roundTrip(client, getID(johnID)).cacheStatus == "hit")
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "hit")
                #expect(try await roundTrip(client, getPhone("+1.415.555.1234")).cacheStatus == "hit")
                #expect(api.calls == 1)
                let stats = try await roundTrip(client, #"{"id":9,"method":"cache.stats"}"#)
                #expect(stats["result"]?["entries"] == .number("1"))
                await client.close()
            }
        }
    }

    @Test func hundredConcurrentClientsCauseOneAPICall() async throws {
        try await withFakeAPI { api in
            api.hold()
            // A long deadline: the held call is hedged after half of it, and a loaded machine once
            // took longer than the default's half (2.5 s) to register the hundred misses.
            try await withDaemon(api: api, configure: { $0.policy.deadline = .seconds(60) }) { daemon in
                try await withThrowingTaskGroup(of: String?.self) { group in
                    for _ in 0..<100 {
                        group.addTask {
                            let client = try await RawSocketClient.connect(daemon.socketPath)
                            defer { Task { await client.close() } }
                            return try await roundTrip(client, getPhone(johnPhone)).cacheStatus
                        }
                    }
                    // Release the API only once every client's miss is registered in the daemon.
                    let probe = try await RawSocketClient.connect(daemon.socketPath)
                    try await eventually("every client's miss registered") {
                        try await roundTrip(probe, #"{"id":1,"method":"cache.stats"}"#)["result"]?["misses"]?.intValue
                            ?? 0 >= 100
                    }
                    await probe.close()
                    api.release()
                    for try await status in group { #expect(status == "miss") }
                }
                #expect(api.calls == 1)
            }
        }
    }

    @Test func notFoundIsCachedAsANegativeEntry() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                for id in 1...3 {
                    let reply = try await roundTrip(client, getPhone("+15550001111", id: id))
                    #expect(reply.errorReason == "not_found")
                    #expect(reply.errorCode == -32001)
                }
                #expect(api.calls == 1)
                await client.close()
            }
        }
    }

    @Test func maxAgeZeroForcesAFetch() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))
                #expect(try await roundTrip(client, getPhone(johnPhone, maxAge: 0)).cacheStatus == "miss")
                #expect(try await roundTrip(client, getPhone(johnPhone, maxAge: 60)).cacheStatus == "hit")
                #expect(api.calls == 2)
                await client.close()
            }
        }
    }

    @Test func invalidateRemovesTheEntryUnderAllItsKeys() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))
                let removed = try await roundTrip(
                    client,
                    #"{"id":2,"method":"contact.invalidate","params":{"contact_id":"\#(johnID)"}}"#
                )
                #expect(removed["result"]?["removed"] == .number("1"))
                #expect(try await roundTrip(client, getPhone(johnPhone, id: 3)).cacheStatus == "miss")
                _ = try await roundTrip(client, getPhone("+15550001111", id: 4))
                let all = try await roundTrip(client, #"{"id":5,"method":"contact.invalidate","params":{"all":true}}"#)
                #expect(all["result"]?["removed"] == .number("2"))
                #expect(api.calls == 3)
                await client.close()
            }
        }
    }

    @Test func notificationWarmsTheCacheWithoutAReply() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                try await client.send(#"{"method":"contact.get","params":{"phone_number":"\#(johnPhone)"}}"# + "\n")
                try await api.waitForCalls(1)
                // The fetch lands in the cache shortly after the API answers.
                var attempt = 0
                try await eventually("the fetch lands in the cache") {
                    attempt += 1
                    return try await roundTrip(client, getPhone(johnPhone, id: attempt, maxAge: nil)).cacheStatus
                        == "hit"
                }
                #expect(api.calls == 1)
                await client.close()
            }
        }
    }

    @Test func sendsTheBearerTokenAndUserAgent() async throws {
        try await withFakeAPI(expectedToken: "s3cret") { api in
            try await withDaemon(api: api, token: "s3cret") { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                #expect(try await roundTrip(client, getPhone(johnPhone)).cacheStatus == "miss")
                #expect(api.authorizationHeaders == ["Bearer s3cret"])
                await client.close()
            }
        }
    }
}
