import ContactdJSON
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// `contactctl reload` (`daemon.reload`) against the built daemon: what it prints for settings
/// applied at once and for those that wait for a restart, a broken file, the token, who may ask,
/// and reloads from a request and from SIGHUP at once while a client asks steadily.
@Suite(.timeLimit(.minutes(2))) struct ReloadTests {
    /// A `--demo` daemon reading a config file that says `ttl: 1h`, ready; `body` gets it and the
    /// file's path.
    func withDemoDaemon(_ body: (SpawnedDaemon, String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/contactd.yaml"
            try "ttl: 1h\n".write(toFile: file, atomically: true, encoding: .utf8)
            try await withSpawnedDaemon(directory: dir, arguments: ["--demo", "--config", file]) { daemon in
                try await body(daemon, file)
            }
        }
    }

    @Test func reloadPrintsWhatChangedNowAndWhatWaitsForARestart() async throws {
        try await withDemoDaemon { daemon, file in
            func reload(_ extra: [String] = []) async throws -> CommandResult {
                try await runProduct("contactctl", ["--socket", daemon.socketPath] + extra + ["reload"])
            }

            let unchanged = try await reload()
            #expect(unchanged.status == 0, "\(unchanged.stderr)")
            #expect(unchanged.stdout == "configuration unchanged\n")

            try "ttl: 10m\nlog-level: debug\ncache-max-entries: 500\n".write(
                toFile: file,
                atomically: true,
                encoding: .utf8
            )
            let changed = try await reload()
            #expect(changed.status == 0, "\(changed.stderr)")
            #expect(
                changed.stdout == """
                    applied now:
                      log-level = debug
                      ttl = 10m
                    after a restart (systemctl restart contactd):
                      cache-max-entries

                    """
            )
            let config = try await runProduct("contactctl", ["--socket", daemon.socketPath, "--json", "config"])
            #expect(config.stdout.contains(#""ttl":{"value":"10m","source":"file"}"#), "\(config.stdout)")
            // What was applied is the running configuration now: asked again, only the restart
            // setting is still pending.
            let json = try await reload(["--json"])
            #expect(json.stdout == #"{"applied":{},"after_restart":["cache-max-entries"]}"# + "\n", "\(json.stdout)")

            try "ttll: 5m\n".write(toFile: file, atomically: true, encoding: .utf8)
            let broken = try await reload()
            #expect(broken.status == 78)
            #expect(
                broken.stderr.contains(
                    "contactctl: the configuration did not load; the daemon keeps the running one: \(file): unknown setting 'ttll'; did you mean 'ttl'?"
                ),
                "\(broken.stderr)"
            )
            let ping = try await runProduct("contactctl", ["--socket", daemon.socketPath, "ping"])
            #expect(ping.status == 0)
            // Each reload told systemd: RELOADING=1, then READY=1 (one at start, four reloads).
            _ = try await daemon.notify.waitFor(count: 5, "READY=1 after each reload") { $0.contains("READY=1") }
            daemon.signal(SIGTERM)
            #expect(try await daemon.waitForExit() == 0)
        }
    }

    /// The token is read again: the report says whether it changed, and a missing file keeps
    /// the one in use (exit 78, the file named).
    @Test func reloadSaysWhetherTheTokenChanged() async throws {
        try await withFakeAPI { api in
            try await withTemporaryDirectory { dir in
                let token = dir + "/token"
                try "first-token\n".write(toFile: token, atomically: true, encoding: .utf8)
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--token-file", token],
                    environment: [:]
                ) { daemon in
                    let ctl = ["--socket", daemon.socketPath, "reload"]
                    #expect(
                        try await runProduct("contactctl", ctl).stdout == "configuration unchanged\ntoken: unchanged\n"
                    )
                    try "second-token\n".write(toFile: token, atomically: true, encoding: .utf8)
                    #expect(try await runProduct("contactctl", ctl).stdout.hasSuffix("token: changed\n"))
                    try FileManager.default.removeItem(atPath: token)
                    let missing = try await runProduct("contactctl", ctl)
                    #expect(missing.status == 78)
                    #expect(missing.stderr.contains("the token did not load"), "\(missing.stderr)")
                    #expect(missing.stderr.contains(token), "\(missing.stderr)")
                    #expect(!missing.stdout.contains("second-token") && !missing.stderr.contains("second-token"))
                    daemon.signal(SIGTERM)
                    #expect(try await daemon.waitForExit() == 0)
                }
            }
        }
    }

    /// Only root and the daemon's own user may reload: a client that may look contacts up may not
    /// make the daemon re-read its token.
    @Test(.enabled(if: TestTools.canActAsNobody, "needs root and /usr/bin/setpriv to run contactctl as another user"))
    func anotherUserIsForbidden() async throws {
        try await withTemporaryDirectory { dir in
            chmod(dir, 0o755)
            try await withSpawnedDaemon(directory: dir, arguments: ["--demo", "--socket-mode", "0666"]) { daemon in
                func asNobody(_ command: String) async throws -> CommandResult {
                    try await TestTools.contactctlAsNobody(["--socket", daemon.socketPath, command])
                }
                #expect(try await asNobody("ping").status == 0, "nobody may use the socket")
                let refused = try await asNobody("reload")
                #expect(refused.status == 77)
                #expect(refused.stderr.contains("Only root and the daemon's own user"), "\(refused.stderr)")
                #expect(refused.stderr.contains("[forbidden]"))
                #expect(try await runProduct("contactctl", ["--socket", daemon.socketPath, "reload"]).status == 0)
                daemon.signal(SIGTERM)
                #expect(try await daemon.waitForExit() == 0)
            }
        }
    }

    /// Reloads from requests and from SIGHUP at once, while a client looks up steadily: every
    /// reload answers, none overlaps another (each sees the file as the one before left it), and
    /// no lookup fails or waits for them.
    @Test func reloadsFromRequestsAndSignalsAtOnceDuringLookups() async throws {
        try await withDemoDaemon { daemon, file in
            let client = try await RawSocketClient.connect(daemon.socketPath)
            @Sendable func lookUp(id: Int) async throws -> JSONValue {
                let request = #"{"jsonrpc":"2.0","id":\#(id),"method":"contact.get","#
                try await client.send(request + #""params":{"phone_number":"+14155551234"}}"# + "\n")
                let line = try #require(try await client.readLine())
                return try JSONParser.parse(Array(line.utf8))
            }
            _ = try await lookUp(id: 0)
            try "ttl: 2h\n".write(toFile: file, atomically: true, encoding: .utf8)
            let rounds = 6
            let reports = try await withThrowingTaskGroup(of: String?.self) { group in
                for round in 0..<rounds {
                    group.addTask {
                        if round % 2 == 0 {
                            daemon.signal(SIGHUP)
                            return nil
                        }
                        let reload = try await runProduct("contactctl", ["--socket", daemon.socketPath, "reload"])
                        #expect(reload.status == 0, "\(reload.stderr)")
                        return reload.stdout
                    }
                }
                group.addTask {
                    for id in 1...200 {
                        let reply = try await lookUp(id: id)
                        #expect(reply["result"]?["contact"] != nil, "lookup \(id) during the reloads: \(reply)")
                    }
                    return nil
                }
                return try await group.reduce(into: [String]()) { reports, report in
                    if let report { reports.append(report) }
                }
            }
            #expect(reports.count == rounds / 2)
            // The first reload to run applies ttl=2h; every later one finds nothing changed. Signals
            // sent while one is pending merge into one (the kernel queues no second SIGHUP), so at
            // least one of them is a reload of its own.
            _ = try await daemon.notify.waitFor(count: 1 + rounds / 2 + 1, "READY=1 after the reloads") {
                $0.contains("READY=1")
            }
            #expect(daemon.log.components(separatedBy: "reloaded: applied at once").count - 1 == 1, "\(daemon.log)")
            #expect(reports.filter { $0.contains("ttl = 2h") }.count <= 1)
            await client.close()
            daemon.signal(SIGTERM)
            #expect(try await daemon.waitForExit() == 0)
        }
    }
}
