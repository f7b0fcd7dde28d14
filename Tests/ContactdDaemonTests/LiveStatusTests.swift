import ContactdCore
import ContactdDaemon
import ContactdProtocol
import Testing

@Suite struct DaemonStatusTests {
    let stats = LookupStats(
        entries: 42,
        bytes: 1000,
        hits: 931,
        misses: 69,
        evictions: 0,
        upstreamRequests: 17,
        upstreamErrors: 2,
        upstreamInFlight: 0
    )

    @Test func statusLineSaysWhatAPersonNeeds() {
        let line = LiveStatus().statusLine(stats: stats, upstreamFailure: nil)
        #expect(line == "Serving; 42 cached, hit ratio 93.1%, API ok (17 requests, 2 failed), 0 connections")
    }

    @Test(arguments: [
        (LookupError.unauthorized, "API REJECTS THE TOKEN"),
        (.rateLimited(retryAfter: 3), "API rate limiting"),
        (.unavailable(detail: "x", retryAfter: nil), "API unavailable"),
        (.badResponse(detail: "x"), "API answering garbage"),
    ])
    func statusLineNamesTheAPIState(failure: LookupError, text: String) {
        #expect(LiveStatus().statusLine(stats: stats, upstreamFailure: failure).contains(text))
    }

    @Test func anOutageBehindStaleAnswersIsNamedWithItsStart() {
        var outage = stats
        outage.circuitState = .open
        outage.servingStaleFor = 90
        let line = LiveStatus().statusLine(stats: outage, upstreamFailure: .unavailable(detail: "x", retryAfter: nil))
        #expect(line.contains("API circuit open, serving stale since "))
        #expect(line.contains(" UTC"))
        var rejected = stats
        rejected.tokenRejected = true
        #expect(LiveStatus().statusLine(stats: rejected, upstreamFailure: nil).contains("API REJECTS THE TOKEN"))
    }

    @Test func drainingShowsInTheStatusLine() {
        let status = LiveStatus()
        status.markReady()
        status.markDraining()
        #expect(status.statusLine(stats: stats, upstreamFailure: nil).hasPrefix("Draining;"))
        #expect(!status.ready)
    }
}
