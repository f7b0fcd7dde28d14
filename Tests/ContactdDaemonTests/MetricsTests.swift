import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdProtocol
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// Prometheus metrics: what `/metrics` and `daemon.metrics` say after real traffic through a
/// real socket, over HTTP on TCP and on a Unix socket.
@Suite(.timeLimit(.minutes(1))) struct MetricsTests {
    /// The `daemon.metrics` text, parsed.
    func scrape(_ client: RawSocketClient) async throws -> (PrometheusText, String) {
        let reply = try await roundTrip(client, #"{"jsonrpc":"2.0","id":90,"method":"daemon.metrics"}"#)
        let text = try #require(reply["result"]?["text"]?.stringValue)
        return (PrometheusText(text), text)
    }

    /// `GET path` over HTTP/1.1 on a Unix socket; the whole response.
    func httpGet(unixSocket path: String, _ target: String = "/metrics", method: String = "GET") async throws -> String
    {
        let client = try await RawSocketClient.connect(path)
        try await client.send("\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        var lines: [String] = []
        while let line = try await client.readLine() { lines.append(line) }
        await client.close()
        return lines.joined(separator: "\n")
    }

    @Test(arguments: [true, false])
    func countersAreCurrentAtEveryScrapeOnBothPaths(fastPath: Bool) async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.fastPath = fastPath }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))  // miss
                for id in 2...4 { _ = try await roundTrip(client, getPhone(johnPhone, id: id)) }  // hits
                // A spelling the line scanner leaves to the full parser, and a batch of two hits.
                _ = try await roundTrip(
                    client,
                    #"{"params":{"phone_number":"+14155551234"},"method":"contact.get","id":5,"jsonrpc":"2.0"}"#
                )
                _ = try await roundTrip(client, "[\(getPhone(johnPhone, id: 6)),\(getPhone(johnPhone, id: 7))]")
                api.setBehavior(.status(503))
                _ = try await roundTrip(client, getPhone("+14155550000", id: 8))  // fails: unavailable

                let (metrics, _) = try await scrape(client)
                #expect(metrics[#"contactd_lookups_total{status="hit"}"#] == 6)
                #expect(metrics[#"contactd_lookups_total{status="miss"}"#] == 2)
                #expect(metrics[#"contactd_lookups_total{status="stale"}"#] == 0)
                // This test process runs in no systemd unit: every lookup is counted under "none".
                #expect(metrics[#"contactd_unit_lookups_total{unit="none"}"#] == 8)
                let calls = api.calls
                #expect(metrics[#"contactd_api_requests_total{outcome="ok"}"#] == 1)
                #expect(metrics[#"contactd_api_requests_total{outcome="unavailable"}"#] == Double(calls - 1))
                #expect(metrics["contactd_api_request_duration_seconds_count"] == Double(calls))
                #expect(metrics[#"contactd_api_request_duration_seconds_bucket{le="+Inf"}"#] == Double(calls))
                #expect(metrics["contactd_cache_entries"] == 1)
                #expect((metrics["contactd_cache_bytes"] ?? 0) > 0)
                #expect(metrics["contactd_connections"] == 1)
                #expect(metrics[#"contactd_circuit_state{state="closed"}"#] == 1)
                #expect(metrics["contactd_token_rejected"] == 0)
                #expect(metrics[#"contactd_build_info{version="\#(ContactdVersion.current)"}"#] == 1)

                // Current at the next scrape too, with nothing else asked in between.
                _ = try await roundTrip(client, getPhone(johnPhone, id: 9))
                let (later, _) = try await scrape(client)
                #expect(later[#"contactd_lookups_total{status="hit"}"#] == 7)
                #expect(later[#"contactd_unit_lookups_total{unit="none"}"#] == 9)
                await client.close()
            }
        }
    }

    /// Each `contact.get` answered with an error is counted under its reason, on both paths: a
    /// not-found from the API and again from the cache (the hit path), a malformed number, bad
    /// params, the API down. Hits count nowhere here.
    @Test(arguments: [true, false])
    func failedLookupsAreCountedByReason(fastPath: Bool) async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api, configure: { $0.fastPath = fastPath }) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))  // miss, then a hit
                _ = try await roundTrip(client, getPhone(johnPhone, id: 2))
                api.setBehavior(.status(404))
                for id in 3...4 {  // the API's not-found, then the cached one
                    let reply = try await roundTrip(client, getPhone("+14155550000", id: id))
                    #expect(reply["error"]?["data"]?["reason"]?.stringValue == "not_found")
                }
                _ = try await roundTrip(client, getPhone("+1", id: 5))
                _ = try await roundTrip(
                    client,
                    #"{"jsonrpc":"2.0","id":6,"method":"contact.get","params":{"phone":"+14155551234"}}"#
                )
                api.setBehavior(.status(503))
                _ = try await roundTrip(client, getPhone("+14155550001", id: 7))

                let (metrics, _) = try await scrape(client)
                func failures(_ reason: String) -> Double? {
                    metrics[#"contactd_lookup_failures_total{reason="\#(reason)"}"#]
                }
                #expect(failures("not_found") == 2)
                #expect(failures("invalid_phone_number") == 1)
                #expect(failures("invalid_params") == 1)
                #expect(failures("upstream_unavailable") == 1)
                #expect(failures("rate_limited") == 0)
                #expect(metrics[#"contactd_lookups_total{status="hit"}"#] == 2)  // John once, the not-found once
                await client.close()
            }
        }
    }

    /// Every metric has help and a type; the names the SPEC fixes are there.
    @Test func everyMetricHasHelpAndATypeAndTheSpecNamesAreThere() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                _ = try await roundTrip(client, getPhone(johnPhone))
                let (metrics, _) = try await scrape(client)
                for name in [
                    "contactd_lookups_total", "contactd_api_requests_total", "contactd_api_request_duration_seconds",
                    "contactd_cache_entries", "contactd_cache_bytes", "contactd_unit_lookups_total",
                    "contactd_cache_evictions_total", "contactd_connections", "contactd_circuit_state",
                    "contactd_token_rejected", "contactd_api_queue_depth", "contactd_cache_admissions_refused_total",
                ] {
                    #expect(metrics.types[name] != nil, "\(name) has no TYPE line")
                }
                #expect(metrics.types["contactd_api_request_duration_seconds"] == "histogram")
                #expect(metrics.types["contactd_lookups_total"] == "counter")
                #expect(metrics.types["contactd_cache_admissions_refused_total"] == "counter")
                // The process, as every Prometheus client library exports it, and the bounds.
                #expect((metrics["process_resident_memory_bytes"] ?? 0) > 1_048_576)
                #expect((metrics["process_open_fds"] ?? 0) > 3)
                #expect((metrics["process_max_fds"] ?? 0) >= (metrics["process_open_fds"] ?? .infinity))
                #expect((metrics["process_start_time_seconds"] ?? 0) > 1.7e9)
                #expect(metrics.types["process_cpu_seconds_total"] == "counter")
                #expect(metrics["contactd_cache_max_entries"] == Double(daemon.configuration.cache.maxEntries))
                #expect(metrics["contactd_cache_max_bytes"] == Double(daemon.configuration.cache.maxBytes))
                #expect(metrics["contactd_max_connections"] == Double(daemon.configuration.limits.maxConnections))
                for cause in ["capacity", "expired"] {
                    #expect(metrics[#"contactd_cache_evictions_total{cause="\#(cause)"}"#] == 0, "\(cause)")
                }
                #expect(Set(metrics.types.keys) == metrics.helped, "a metric without help")
                await client.close()
            }
        }
    }

    /// `cache.reset_stats` zeroes what `cache.stats` shows; the exported counters never go back
    /// (Prometheus would read a drop as a restart) and go on counting.
    @Test func resettingStatisticsDoesNotTurnCountersBack() async throws {
        try await withFakeAPI { api in
            try await withDaemon(api: api) { daemon in
                let client = try await RawSocketClient.connect(daemon.socketPath)
                for id in 1...3 { _ = try await roundTrip(client, getPhone(johnPhone, id: id)) }
                _ = try await roundTrip(client, #"{"jsonrpc":"2.0","id":10,"method":"cache.reset_stats"}"#)
                let stats = try await roundTrip(client, #"{"jsonrpc":"2.0","id":11,"method":"cache.stats"}"#)
                #expect(stats["result"]?["hits"]?.intValue == 0)
                let (afterReset, _) = try await scrape(client)
                #expect(afterReset[#"contactd_lookups_total{status="hit"}"#] == 2)
                #expect(afterReset[#"contactd_lookups_total{status="miss"}"#] == 1)
                _ = try await roundTrip(client, getPhone(johnPhone, id: 12))
                let (later, _) = try await scrape(client)
                #expect(later[#"contactd_lookups_total{status="hit"}"#] == 3)
                #expect(later[#"contactd_unit_lookups_total{unit="none"}"#] == 4)
                await client.close()
            }
        }
    }

    /// `--metrics-listen unix:PATH`: HTTP/1.1 on a Unix socket; the same series as `daemon.metrics`;
    /// 404 elsewhere, 405 for another method; the socket file is removed at stop.
    @Test func servesHTTPOnAUnixSocket() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/metrics.sock"
            try await withFakeAPI { api in
                try await withDaemon(api: api, configure: { $0.metricsListen = .unix(path: path) }) { daemon in
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    _ = try await roundTrip(client, getPhone(johnPhone))
                    let response = try await httpGet(unixSocket: path)
                    #expect(response.hasPrefix("HTTP/1.1 200 OK"))
                    #expect(response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
                    let body = PrometheusText(response)
                    let (viaRPC, _) = try await scrape(client)
                    #expect(Set(body.types.keys) == Set(viaRPC.types.keys))
                    #expect(body[#"contactd_lookups_total{status="miss"}"#] == 1)
                    let health = try await httpGet(unixSocket: path, "/health")
                    #expect(health.hasPrefix("HTTP/1.1 200 OK"), "\(health)")
                    #expect(health.contains("Content-Length: 8\r\n") && health.contains("\r\n\r\nserving"), "\(health)")
                    #expect(try await httpGet(unixSocket: path, "/health", method: "HEAD").hasPrefix("HTTP/1.1 200 OK"))
                    #expect(try await httpGet(unixSocket: path, "/").hasPrefix("HTTP/1.1 404"))
                    #expect(try await httpGet(unixSocket: path, method: "POST").hasPrefix("HTTP/1.1 405"))
                    await client.close()
                }
                #expect(!FileManager.default.fileExists(atPath: path), "the metrics socket was left behind")
            }
        }
    }

    /// `/health` is 200 only while ready and not draining: before READY and during a drain an
    /// orchestrator must send no traffic.
    @Test func healthIsServingOnlyWhileReadyAndNotDraining() {
        #expect(Health(ready: false, draining: false) == .starting)
        #expect(Health(ready: true, draining: false) == .serving)
        #expect(Health(ready: true, draining: true) == .draining)
        #expect(Health(ready: false, draining: true) == .draining)
    }

    /// A port already taken stops the start with a plain message naming the setting.
    @Test func aTakenPortStopsTheStartWithAPlainMessage() async throws {
        let taken = try LoopbackListener()
        defer { taken.close() }
        _ = try await withFakeAPI { api in
            await #expect {
                try await withDaemon(
                    api: api,
                    configure: { $0.metricsListen = .tcp(host: "127.0.0.1", port: taken.port) }
                ) {
                    _ in
                }
            } throws: { error in
                let text = "\(error)"
                return text.contains("--metrics-listen: cannot listen on 127.0.0.1:\(taken.port)")
                    && text.contains("the address is in use")
            }
        }
    }

    @Test(arguments: [
        ("127.0.0.1:9464", MetricsAddress.tcp(host: "127.0.0.1", port: 9464)),
        ("[::1]:9464", .tcp(host: "::1", port: 9464)),
        ("localhost:80", .tcp(host: "localhost", port: 80)),
        ("unix:/run/contactd/metrics.sock", .unix(path: "/run/contactd/metrics.sock")),
    ])
    func addressesAreRead(text: String, address: MetricsAddress) throws {
        #expect(try MetricsAddress(parsing: text) == address)
        #expect(address.description == text)
    }

    @Test(arguments: [
        ("9464", "is not HOST:PORT"), (":9464", "has no host"), ("127.0.0.1:0", "is not HOST:PORT"),
        ("127.0.0.1:70000", "is not HOST:PORT"), ("unix:metrics.sock", "absolute path"),
        ("127.0.0.1:http", "is not HOST:PORT"),
    ])
    func badAddressesAreRefusedPlainly(text: String, message: String) {
        #expect {
            _ = try MetricsAddress(parsing: text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}

/// Per-unit counting with units chosen by the test: bounded labels for the busiest units, `none`,
/// remembered pids, and series that never go down.
@Suite struct CallerUnitsTests {
    func counts(_ callers: CallerUnits, at now: ContinuousClock.Instant = .now) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: callers.labelledCounts(at: now).map { ($0.unit, $0.lookups) })
    }

    @Test func unitsPastTheBoundCountAsOther() {
        let callers = CallerUnits(unitOf: { pid in "service-\(pid).service" })
        for pid in 1...Int32(CallerUnits.maxUnits + 10) { callers.tally(pid: pid).count(1) }
        let counts = counts(callers)
        #expect(counts.count == CallerUnits.maxUnits + 1)
        #expect(counts["other"] == 10)
        #expect(counts.values.reduce(0, +) == CallerUnits.maxUnits + 10)
    }

    /// The issue's case: a host starts many short-lived units (one lookup each) before a
    /// long-running service starts asking. At the next choice the service gets a label of its
    /// own and one of the quiet units goes to `other`, with everything it had counted.
    @Test func aBusyServiceTakesTheLabelOfAQuietShortLivedUnit() {
        let callers = CallerUnits(unitOf: { pid in pid == 1000 ? "billing.service" : "run-u\(pid).service" })
        let start = ContinuousClock.now
        for pid in 1...Int32(CallerUnits.maxUnits + 20) { callers.tally(pid: pid).count(1) }
        let first = counts(callers, at: start)
        #expect(first.count == CallerUnits.maxUnits + 1)
        let billing = callers.tally(pid: 1000)
        billing.count(500)
        // Before the next choice the service counts under `other`...
        let before = counts(callers, at: start + .seconds(1))
        #expect(before["billing.service"] == nil)
        #expect(before["other"] == 20 + 500)
        // ...and after it, under its own name, from then on.
        let after = counts(callers, at: start + CallerUnits.relabelInterval)
        #expect(after["billing.service"] == 0)
        #expect(after["other"] == 21 + 500)
        billing.count(7)
        #expect(counts(callers, at: start + CallerUnits.relabelInterval + .seconds(1))["billing.service"] == 7)
        #expect(after.count == CallerUnits.maxUnits + 1)
    }

    /// The rule under random interleavings of new units, lookups and readings at random times:
    /// every label's count only grows while the label exists, the counts always add up to every
    /// lookup made, and at most `maxUnits` units (besides `none`) have labels.
    @Test(arguments: 0..<20)
    func seriesNeverGoDownAndAlwaysAddUp(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let callers = CallerUnits(unitOf: { pid in pid % 97 == 0 ? nil : "unit-\(pid).service" })
        var now = ContinuousClock.now
        var total = 0
        var last: [String: Int] = [:]
        for _ in 0..<400 {
            switch random.next() % 4 {
            case 0, 1:
                let pid = Int32(random.next() % 200) + 1
                let lookups = Int(random.next() % (random.next() % 3 == 0 ? 200 : 3))
                callers.tally(pid: pid).count(lookups)
                total += lookups
            case 2:
                now += .seconds(Int64(random.next() % 90))
            default:
                let seen = counts(callers, at: now)
                #expect(seen.values.reduce(0, +) == total)
                #expect(seen.keys.filter { $0 != "other" && $0 != "none" }.count <= CallerUnits.maxUnits)
                for (label, count) in seen where last[label] != nil {
                    #expect(count >= last[label]!, "\(label) went from \(last[label]!) to \(count)")
                }
                last = seen
            }
        }
    }

    @Test func aPeerInNoUnitOrUnknownCountsAsNone() {
        let callers = CallerUnits(unitOf: { _ in nil })
        callers.tally(pid: 42).count(2)
        callers.tally(pid: nil).count(1)
        #expect(counts(callers) == ["none": 3])
    }

    @Test func aPidIsLookedUpOnceWhileRemembered() {
        let asked = Counter()
        let callers = CallerUnits(unitOf: { _ in
            asked.add()
            return "billing.service"
        })
        for _ in 0..<5 { callers.tally(pid: 7).count(1) }
        #expect(asked.value == 1)
        #expect(counts(callers)["billing.service"] == 5)
    }

    final class Counter: @unchecked Sendable {
        private var count = 0
        private let lock = NSLock()
        func add() { lock.withLock { count += 1 } }
        var value: Int { lock.withLock { count } }
    }
}
