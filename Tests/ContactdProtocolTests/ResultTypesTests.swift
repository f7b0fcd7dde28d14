import ContactdJSON
import ContactdProtocol
import Foundation
import Testing

/// The wire's result types: what the daemon encodes is what a client decodes, member for member,
/// in the order the types declare; words a newer daemon adds survive an older reader.
@Suite struct ResultTypesTests {
    static func roundTrip<T: Codable & Equatable>(_ value: T) throws -> T {
        let encoded = try JSONValueEncoder().encode(value)
        return try JSONDecoder().decode(T.self, from: Data(encoded.jsonBytes))
    }

    @Test func everyResultDecodesToWhatWasEncoded() throws {
        var stats = CacheStats()
        stats.entries = 3
        stats.hitRatio = 0.75
        stats.heldBytes = 65536
        stats.upstream.circuit.state = .halfOpen
        stats.upstream.latencyMs = CacheStats.Latency()
        var shared = CacheStats.Shared()
        shared.state = .down
        shared.invalidationsReceived = 2
        stats.shared = shared
        #expect(try Self.roundTrip(stats) == stats)

        var status = DaemonStatus()
        status.version = "1.2.3"
        status.pid = 42
        var api = DaemonStatus.API()
        api.state = .rateLimited
        api.circuit = .open
        status.api = api
        var tier = DaemonStatus.SharedCache()
        tier.state = .up
        tier.failovers = 1
        status.sharedCache = tier
        #expect(try Self.roundTrip(status) == status)

        var config = DaemonConfig()
        config.add("ttl", .init(value: "5m", source: .flag))
        config.add("socket-group", .init(value: nil, source: .default))
        config.apiTokenSource = .credential
        #expect(try Self.roundTrip(config) == config)
        let sent = try JSONValueEncoder().encode(config)
        #expect(DaemonConfig(result: sent) == config && DaemonConfig(result: sent)?.names == ["ttl", "socket-group"])

        var reload = ReloadResult()
        reload.applied = ["ttl": "10m", "log-level": "debug"]
        reload.afterRestart = ["cache-max-entries"]
        reload.token = .unchanged
        #expect(try Self.roundTrip(reload) == reload)

        #expect(
            try Self.roundTrip(InvalidateResult(removed: 2, shared: true)) == InvalidateResult(removed: 2, shared: true)
        )
        #expect(try Self.roundTrip(MetricsText(contentType: "text/plain", text: "a 1\n")).text == "a 1\n")
    }

    /// Members in the type's order, `nil` left out, an unset setting's value `null`, numbers as
    /// the wire has always written them (whole doubles without a fraction, at most three decimals).
    @Test func theEncodingIsTheWiresSpelling() throws {
        var status = DaemonStatus()
        status.version = "1"
        status.uptime = 12.34567
        #expect(
            try JSONValueEncoder().encode(status).jsonString
                == #"{"version":"1","uptime":12.346,"connections":0,"ready":false,"draining":false}"#
        )
        var config = DaemonConfig()
        config.add("ttl", .init(value: "5m", source: .flag))
        config.add("socket-group", .init(value: nil, source: .default))
        config.apiTokenSource = .environment
        #expect(
            try JSONValueEncoder().encode(config).jsonString
                == #"{"ttl":{"value":"5m","source":"flag"},"socket-group":{"value":null,"source":"default"},"#
                + #""api-token":{"source":"environment"}}"#
        )
        var reload = ReloadResult()
        reload.applied = ["ttl": "10m", "log-level": "debug"]
        #expect(
            try JSONValueEncoder().encode(reload).jsonString
                == #"{"applied":{"log-level":"debug","ttl":"10m"},"after_restart":[]}"#
        )
    }

    /// A daemon newer than the reader: a word it does not know is kept as `.unknown`, a member it
    /// does not know is ignored; neither fails the call.
    @Test func aNewerDaemonsWordsAndMembersAreRead() throws {
        let text =
            #"{"version":"9","uptime":1,"connections":0,"ready":true,"draining":false,"#
            + #""api":{"state":"melting","circuit":"ajar","token_rejected":false,"queue_depth":0},"quantum":true}"#
        let status = try JSONDecoder().decode(DaemonStatus.self, from: Data(text.utf8))
        #expect(status.api?.state == .unknown("melting") && status.api?.circuit == .unknown("ajar"))
        #expect(status.api?.state.description == "melting")
        #expect(try Self.roundTrip(status) == status)
    }

    /// Each word is spelled once: no two values of a type share a spelling, and every spelling
    /// reads back as its value.
    @Test func everyWordReadsBackAsItsValue() {
        func check<Word: WireSpelling>(_ type: Word.Type) {
            #expect(Set(Word.known).count == Word.known.count, "\(type) spells two values alike")
            for (value, spelling) in Word.spellings {
                #expect(Word(spelling: spelling) == value && value.description == spelling)
            }
        }
        check(CacheStatus.self)
        check(StaleReason.self)
        check(CacheTier.self)
        check(CircuitState.self)
        check(APIState.self)
        check(SharedCacheState.self)
        check(ValueSource.self)
        check(TokenChange.self)
    }
}
