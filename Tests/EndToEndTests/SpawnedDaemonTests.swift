import ChildProcess
import ContactdClient
import ContactdProtocol
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// The built `contactd` as a child process, driven by the built `contactctl` and a test-owned
/// NOTIFY_SOCKET. Nothing here runs in-process but the fake API.
@Suite(.timeLimit(.minutes(2))) struct SpawnedDaemonTests {
    @Test func demoAnswersAMissThenAHitThroughContactctl() async throws {
        try await withTemporaryDirectory { dir in
            let daemon = try SpawnedDaemon(directory: dir, arguments: ["--demo"])
            do {
                _ = try await daemon.notify.waitFor("READY=1") { $0.split(separator: "\n").contains("READY=1") }
                // READY=1 promises the socket accepts: connect at once, no retry.
                let first = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"])
                #expect(first.status == 0, "\(first.stderr)")
                #expect(first.stdout.contains("John Smith"))
                #expect(first.stdout.contains("cache: miss"))
                let second = try await runProduct(
                    "contactctl",
                    ["--socket", daemon.socketPath, "get", "c1d2e3f4-5678-9abc-def0-123456789abc"]
                )
                #expect(second.stdout.contains("cache: hit"))
                let stats = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "stats"])
                #expect(stats.stdout.contains(#""hits":1"#))
                #expect(stats.stdout.contains(#""misses":1"#))
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
                #expect(daemon.notify.received.contains { $0.contains("STOPPING=1") })
                #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "socket file left behind")
            } catch {
                await daemon.stop()
                throw error
            }
            await daemon.stop()
        }
    }

    @Test func bothBinariesSayTheirVersion() async throws {
        for name in ["contactd", "contactctl"] {
            let result = try await runProduct(name, ["--version"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "\(name) \(ContactdVersion.current)\n")
        }
    }

    /// The package installs contactctl as a link to contactd: run by that name, contactd is
    /// contactctl (its version, its help, its exit statuses).
    @Test func contactdRunAsContactctlIsContactctl() async throws {
        try await withTemporaryDirectory { dir in
            let link = URL(fileURLWithPath: dir + "/contactctl")
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: try builtProductURL("contactd"))
            let version = try await runCommand(link, ["--version"])
            #expect(version.stdout == "contactctl \(ContactdVersion.current)\n", "\(version.stderr)")
            let help = try await runCommand(link, ["--help"])
            #expect(help.stdout.contains("Ask the local contactd for contacts"))
            let missing = try await runCommand(link, ["--socket", dir + "/none.sock", "ping"])
            #expect(missing.status == 69, "\(missing.stderr)")
            #expect(missing.stderr.contains("[connection_failed]"))
        }
    }

    /// `contactctl config` shows each setting's value and source, and the token's source only.
    @Test func contactctlConfigShowsWhereSettingsCameFrom() async throws {
        try await withTemporaryDirectory { dir in
            try await withSpawnedDaemon(
                directory: dir,
                arguments: ["--api-url", "http://127.0.0.1:9", "--ttl", "2m"],
                environment: ["CONTACTD_API_TOKEN": "tok-visible-nowhere", "CONTACTD_NEGATIVE_TTL": "20s"]
            ) { daemon in
                let shown = try await runProduct("contactctl", ["--socket", daemon.socketPath, "config"])
                #expect(shown.status == 0, "\(shown.stderr)")
                let rows = shown.stdout.split(separator: "\n").map {
                    $0.split(separator: " ", omittingEmptySubsequences: true)
                }
                #expect(rows.first == ["SETTING", "VALUE", "SOURCE"])
                #expect(rows.contains(["ttl", "2m", "flag"]))
                #expect(rows.contains(["negative-ttl", "20s", "environment"]))
                #expect(rows.contains(["max-batch", "1000", "default"]))
                #expect(rows.contains(["api-token", "(not", "shown)", "environment"]))
                #expect(!shown.stdout.contains("tok-visible-nowhere"))
                let json = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "config"])
                #expect(json.stdout.contains(#""ttl":{"value":"2m","source":"flag"}"#))
                #expect(!json.stdout.contains("tok-visible-nowhere"))
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
            }
        }
    }

    /// The issue's own example: a misspelled variable is not silently ignored.
    @Test func aMisspelledVariableStopsTheStartNamingTheRightOne() async throws {
        let result = try await runProduct("contactd", ["--demo"], environment: ["CONTACTD_TTLL": "5"])
        #expect(result.status == 78)
        #expect(result.stderr == "contactd: CONTACTD_TTLL is not a contactd setting; did you mean CONTACTD_TTL?\n")
    }

    /// A config file at start, and SIGHUP re-reading it: a broken file keeps the running
    /// configuration, a changed setting is named as needing a restart.
    @Test func theConfigFileIsReadAtStartAndCheckedOnReload() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/contactd.yaml"
            try "ttl: 2m\nnegative-ttl: 20s\n".write(toFile: file, atomically: true, encoding: .utf8)
            try await withSpawnedDaemon(directory: dir, arguments: ["--demo", "--config", file]) { daemon in
                let shown = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "config"])
                #expect(shown.stdout.contains(#""ttl":{"value":"2m","source":"file"}"#), "\(shown.stdout)")
                #expect(shown.stdout.contains(#""config":{"value":"\#(file)","source":"flag"}"#))
                // Writes `text` to the file, sends SIGHUP and waits for the reload's READY=1.
                var reloads = 0
                func reload(with text: String) async throws {
                    try text.write(toFile: file, atomically: true, encoding: .utf8)
                    reloads += 1
                    daemon.signal(SIGHUP)
                    _ = try await daemon.notify.waitFor(count: reloads + 1, "READY=1 after reload \(reloads)") {
                        $0.contains("READY=1")
                    }
                }

                try await reload(with: "ttll: 5m\n")
                #expect(
                    daemon.log.contains(
                        "configuration not reloaded: \(file): unknown setting 'ttll'; did you mean 'ttl'?"
                    )
                )
                let ping = try await runProduct("contactctl", ["--socket", daemon.socketPath, "ping"])
                #expect(ping.status == 0, "the daemon goes on with its running configuration")

                try await reload(with: "ttl: 2m\nnegative-ttl: 20s\ncache-max-entries: 500\n")
                #expect(daemon.log.contains("settings=cache-max-entries"), "\(daemon.log)")
                #expect(daemon.log.contains("the new values take effect after a restart"))

                // log-level changes at once: the per-lookup debug line appears without a restart.
                _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"])
                #expect(!daemon.log.contains("looked up"), "at info there is no per-lookup line")
                try await reload(with: "ttl: 2m\nnegative-ttl: 20s\nlog-level: debug\n")
                #expect(daemon.log.contains("reloaded: applied at once"), "\(daemon.log)")
                #expect(daemon.log.contains("settings=log-level"))
                _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"])
                #expect(daemon.log.contains("looked up"), "\(daemon.log)")
                let after = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "config"])
                #expect(after.stdout.contains(#""log-level":{"value":"debug","source":"file"}"#), "\(after.stdout)")
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
            }
        }
    }

    /// Settings that can change live do, on SIGHUP, without a restart: a TTL (an entry cached
    /// under the old one is stale by the new one at the next read), the allow lists and the API
    /// budget; `daemon.config` shows the new values, from the file. (That the allow lists apply
    /// to the next connection: `aReloadAppliesTheAllowListsToTheNextConnection`.)
    @Test func aReloadAppliesTTLsAllowListsAndBudgetsAtOnce() async throws {
        try await withReloadableDemo { daemon, file in
            let pid = daemon.process.pid
            func get() async throws -> String {
                try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"]).stdout
            }
            _ = try await get()
            #expect(try await get().contains("cache: hit"))

            try "ttl: 0\nallow-uid: 4242\napi-concurrency: 2\n".write(
                toFile: file,
                atomically: true,
                encoding: .utf8
            )
            daemon.signal(SIGHUP)
            _ = try await daemon.notify.waitFor(count: 2, "READY=1 after the reload") { $0.contains("READY=1") }
            #expect(daemon.process.pid == pid && daemon.process.isRunning, "no restart")
            #expect(daemon.log.contains("reloaded: applied at once"), "\(daemon.log)")
            #expect(daemon.log.contains("ttl=0"), "\(daemon.log)")
            #expect(!daemon.log.contains("take effect after a restart"), "\(daemon.log)")
            // Cached an hour ago by the old TTL's measure or a second ago: with a TTL of 0 it is
            // stale now, answered at once while it is refreshed.
            #expect(try await get().contains("cache: stale"))
            let config = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "config"])
                .stdout
            #expect(config.contains(#""ttl":{"value":"0","source":"file"}"#), "\(config)")
            #expect(config.contains(#""allow-uid":{"value":"4242","source":"file"}"#), "\(config)")
            #expect(config.contains(#""api-concurrency":{"value":"2","source":"file"}"#), "\(config)")
            daemon.signal(SIGTERM)
            #expect(try await daemon.waitForExit() == 0)
        }
    }

    /// A demo daemon reading `ttl: 1h` from a config file anyone may connect to, and the file.
    func withReloadableDemo(_ body: (SpawnedDaemon, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            chmod(dir, 0o755)
            let file = dir + "/contactd.yaml"
            try "ttl: 1h\n".write(toFile: file, atomically: true, encoding: .utf8)
            try await withSpawnedDaemon(
                directory: dir,
                arguments: ["--demo", "--config", file, "--socket-mode", "0666"]
            ) { daemon in try await body(daemon, file) }
        }
    }

    /// The allow lists a reload sets apply to the next connection: uid 65534 may connect before
    /// and is refused after.
    @Test(.enabled(if: TestTools.canActAsNobody, "needs root and /usr/bin/setpriv to connect as another user"))
    func aReloadAppliesTheAllowListsToTheNextConnection() async throws {
        try await withReloadableDemo { daemon, file in
            #expect(try await TestTools.contactctlAsNobody(["--socket", daemon.socketPath, "ping"]).status == 0)
            try "allow-uid: 4242\n".write(toFile: file, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            _ = try await daemon.notify.waitFor(count: 2, "READY=1 after the reload") { $0.contains("READY=1") }
            let nobody = try await TestTools.contactctlAsNobody(["--socket", daemon.socketPath, "ping"])
            #expect(nobody.status == 77, "uid 65534 is not on the new allow list: \(nobody.stderr)")
            daemon.signal(SIGTERM)
            #expect(try await daemon.waitForExit() == 0)
        }
    }

    @Test func withoutATokenItExits78WithOneClearLine() async throws {
        let result = try await runProduct("contactd", ["--socket", "/tmp/cdt-never.sock"])
        #expect(result.status == 78)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.stderr.contains("no API token"))
        let missing = try await runProduct(
            "contactd",
            ["--socket", "/tmp/cdt-never.sock", "--token-file", "/nonexistent/token"]
        )
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("/nonexistent/token"))
    }

    @Test func badFlagValueExits78NamingTheFlag() async throws {
        let result = try await runProduct("contactd", ["--demo", "--ttl", "forever"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("--ttl"))
    }

    /// Issue #12, item 4, through the real argument parser: a negative value is named as such, not
    /// taken for a missing one, and a size is accepted as the help spells it.
    @Test func negativeValuesAreNamedAndUnitsAreAcceptedOnTheCommandLine() async throws {
        let ttl = try await runProduct("contactd", ["--demo", "--ttl", "-5s"])
        #expect(ttl.status == 78)
        #expect(ttl.stderr.contains("--ttl: '-5s' is negative"), "\(ttl.stderr)")
        let maxAge = try await runProduct("contactctl", ["get", "--max-age", "-1", "+14155551234"])
        #expect(maxAge.status == 2)
        #expect(maxAge.stderr.contains("--max-age: -1.0 is negative"), "\(maxAge.stderr)")
        let variable = try await runProduct("contactd", ["--demo"], environment: ["CONTACTD_TTL": "banana"])
        #expect(variable.status == 78)
        #expect(variable.stderr.contains("CONTACTD_TTL: 'banana'"), "\(variable.stderr)")
        try await withTemporaryDirectory { dir in
            try await withSpawnedDaemon(
                directory: dir,
                arguments: ["--demo", "--max-line-bytes", "64K", "--cache-max-bytes", "1M", "--ttl", "2m"]
            ) { daemon in
                daemon.signal(SIGTERM)
                let status = try await daemon.waitForExit()
                #expect(status == 0, "the sizes and durations with units were taken")
            }
        }
    }

    @Test func sigtermAnswersRequestsInFlightRefusesNewOnesAndExitsZero() async throws {
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                api.hold()
                let daemon = try SpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--shutdown-timeout", "20s"],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                )
                do {
                    _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                    let client = try await RawSocketClient.connect(daemon.socketPath)
                    try await client.send(
                        #"{"id":1,"method":"contact.get","params":{"phone_number":"+14155551234"}}"# + "\n"
                    )
                    try await api.waitForCalls(1)
                    daemon.signal(SIGTERM)
                    _ = try await daemon.notify.waitFor("STOPPING=1") { $0.contains("STOPPING=1") }
                    try await client.send(#"{"id":2,"method":"daemon.ping"}"# + "\n")
                    let refused = try #require(try await client.readLine())
                    #expect(refused.contains(#""id":2"#) && refused.contains("shutting_down"))
                    api.release()
                    let answered = try #require(try await client.readLine())
                    #expect(answered.contains(#""id":1"#) && answered.contains("John Smith"))
                    #expect(try await client.readLine() == nil)
                    #expect(try await daemon.waitForExit() == 0)
                    await client.close()
                } catch {
                    api.release()
                    await daemon.stop()
                    throw error
                }
                await daemon.stop()
            }
        }
    }

    @Test func sighupReloadsTheTokenFile() async throws {
        try await withFakeAPI(expectedToken: nil) { api in
            try await withTemporaryDirectory { dir in
                let tokenFile = dir + "/token"
                try "first-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--token-file", tokenFile]
                ) { daemon in
                    _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+14155551234"])
                    try "second-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                    daemon.signal(SIGHUP)
                    let reloading = try await daemon.notify.waitFor("RELOADING=1") { $0.contains("RELOADING=1") }
                    #expect(reloading.contains("MONOTONIC_USEC="))
                    _ = try await daemon.notify.waitFor(count: 2, "second READY=1") { $0.contains("READY=1") }
                    _ = try await runProduct("contactctl", ["--socket", daemon.socketPath, "get", "+442079460958"])
                    #expect(api.authorizationHeaders == ["Bearer first-token", "Bearer second-token"])
                    daemon.signal(SIGTERM)
                    _ = try? await daemon.waitForExit()
                }
            }
        }
    }

    @Test func newTokenEndsTheRejectedStateAndDropsNotFoundEntriesLearnedWithTheOld() async throws {
        try await withFakeAPI(expectedToken: "token-one") { api in
            try await withTemporaryDirectory { dir in
                let tokenFile = dir + "/token"
                try "token-one\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--token-file", tokenFile, "--retry-attempts", "1"]
                ) { daemon in
                    func ctl(_ arguments: [String]) async throws -> CommandResult {
                        try await runProduct("contactctl", ["--socket", daemon.socketPath] + arguments)
                    }
                    // A not-found learned with token one.
                    #expect(try await ctl(["get", "+19995550100"]).status == 1)
                    api.addContact(#"{"id":"late-1","name":"Late Comer","phone_number":"+19995550100"}"#)
                    #expect(try await ctl(["get", "+19995550100"]).status == 1)  // cached
                    #expect(api.calls == 1)

                    // The API stops accepting token one: one visible state, one log line.
                    api.setExpectedToken("token-two")
                    #expect(try await ctl(["get", "+14155551234"]).status == 77)
                    #expect(try await ctl(["get", "+442079460958"]).status == 77)
                    #expect(api.calls == 2)  // the second failed fast
                    let status = try await ctl(["call", "daemon.status"])
                    #expect(status.stdout.contains(#""token_rejected""#))
                    #expect(daemon.log.components(separatedBy: "rejects the token").count == 2)

                    // Reload with token two: the state ends and the old not-found is gone.
                    try "token-two\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
                    daemon.signal(SIGHUP)
                    let ready = try await daemon.notify.waitFor(count: 2, "second READY=1") { $0.contains("READY=1") }
                    #expect(!ready.contains("REJECTS THE TOKEN"))
                    #expect(try await ctl(["get", "+19995550100"]).status == 0)
                    #expect(try await ctl(["get", "+14155551234"]).status == 0)
                    daemon.signal(SIGTERM)
                    _ = try? await daemon.waitForExit()
                }
            }
        }
    }

    @Test func tokenNeverReachesLogsResponsesOrArgv() async throws {
        let token = "tok-\(UInt64.random(in: 1...UInt64.max))"
        try await withFakeAPI(expectedToken: "something-else") { api in
            // The API rejects the token and echoes it back in its error body.
            api.setBehavior(.status(401, body: #"{"error":"bad token \#(token)"}"#))
            try await withTemporaryDirectory { dir in
                let daemon = try SpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--log-level", "trace"],
                    environment: ["CONTACTD_API_TOKEN": token]
                )
                do {
                    _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                    let result = try await runProduct(
                        "contactctl",
                        ["--socket", daemon.socketPath, "--json", "get", "+14155551234"]
                    )
                    #expect(result.status == 77)
                    #expect(!result.stdout.contains(token) && !result.stderr.contains(token))
                    let status = try await runProduct(
                        "contactctl",
                        ["--socket", daemon.socketPath, "--json", "status"]
                    )
                    #expect(!status.stdout.contains(token))
                    let cmdline = try String(
                        contentsOfFile: "/proc/\(daemon.process.pid)/cmdline",
                        encoding: .utf8
                    )
                    #expect(!cmdline.contains(token))
                    daemon.signal(SIGTERM)
                    _ = try await daemon.waitForExit()
                    #expect(!daemon.log.isEmpty)
                    #expect(!daemon.log.contains(token))
                } catch {
                    await daemon.stop()
                    throw error
                }
                await daemon.stop()
            }
        }
    }
}

/// contactctl's exit statuses (SPEC §5), against a spawned daemon.
@Suite(.timeLimit(.minutes(2))) struct ContactctlExitStatusTests {
    @Test func exitStatusesFollowTheSpec() async throws {
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                let daemon = try SpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL],
                    environment: ["CONTACTD_API_TOKEN": "test-token"]
                )
                do {
                    _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                    let socket = ["--socket", daemon.socketPath]
                    func status(_ args: [String]) async throws -> Int32 {
                        try await runProduct("contactctl", socket + args).status
                    }
                    #expect(try await status(["get", "+14155551234"]) == 0)
                    #expect(try await status(["get", "+19995550000"]) == 1)
                    #expect(try await status(["get", "+0"]) == 2)
                    #expect(try await status(["get", "--phone", "--id", "x"]) == 2)
                    #expect(try await status(["bogus"]) == 2)
                    #expect(try await status(["call", "no.such.method"]) == 2)
                    #expect(try await status(["ping"]) == 0)
                    #expect(try await status(["invalidate", "--all"]) == 0)
                    // A different key each time: a 429 holds its key back, and a 401 puts the
                    // daemon in the token-rejected state, so it goes last.
                    api.setBehavior(.status(429, retryAfter: "5"))
                    #expect(try await status(["get", "+442079460958"]) == 75)
                    api.setBehavior(.status(503))
                    #expect(try await status(["get", "+4930901820"]) == 69)
                    api.setBehavior(.garbage("nope"))
                    #expect(try await status(["get", "+81312345678"]) == 69)
                    api.setBehavior(.status(401))
                    #expect(try await status(["get", "+5511987654321"]) == 77)
                    let help = try await runProduct("contactctl", ["--help"])
                    #expect(help.status == 0)
                    #expect(help.stdout.contains("Exit status"))
                    daemon.signal(SIGTERM)
                    #expect(try await daemon.waitForExit() == 0)
                    #expect(try await status(["ping"]) == 69)  // daemon gone
                } catch {
                    await daemon.stop()
                    throw error
                }
                await daemon.stop()
            }
        }
    }
}
