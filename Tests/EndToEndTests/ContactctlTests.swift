import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// The built contactctl against the built contactd and a loopback API: output modes, units,
/// several keys at once, reset-statistics, escaping, hints.
@Suite(.timeLimit(.minutes(2))) struct ContactctlTests {
    static let evil =
        #"{"id":"evil-1","phone_number":"+15550001111","name":"Eve\u001b]0;owned\u0007\u001b[31m","notes":"line1\nline2\u009b"}"#

    /// Runs `body` with a daemon against a fake API that knows the demo contacts and `evil`.
    static func withStack(_ body: (String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            let api = try await FakeContactAPI.start(
                contacts: [
                    evil,
                    #"{"id":"c1d2e3f4-5678-9abc-def0-123456789abc","phone_number":"+14155551234","name":"John Smith"}"#,
                ],
                expectedToken: "t"
            )
            let daemon = try SpawnedDaemon(
                directory: dir,
                arguments: ["--api-url", api.baseURL],
                environment: ["CONTACTD_API_TOKEN": "t"]
            )
            do {
                _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
                try await body(daemon.socketPath)
            } catch {
                await daemon.stop()
                await api.shutdown()
                throw error
            }
            await daemon.stop()
            await api.shutdown()
        }
    }

    static func ctl(_ socket: String, _ arguments: [String]) async throws -> CommandResult {
        try await runProduct("contactctl", ["--socket", socket] + arguments)
    }

    @Test func jsonShortPrettyAndOff() async throws {
        try await Self.withStack { socket in
            let short = try await Self.ctl(socket, ["--json", "get", "+14155551234"])
            #expect(short.status == 0 && short.stdout.split(separator: "\n").count == 1)
            #expect(short.stdout.hasPrefix(#"{"contact":{"id":"c1d2e3f4"#))
            let pretty = try await Self.ctl(socket, ["get", "--json=pretty", "+14155551234"])
            #expect(pretty.stdout.hasPrefix("{\n  \"contact\": {\n    \"id\": \"c1d2e3f4"), "\(pretty.stdout)")
            let off = try await Self.ctl(socket, ["--json=off", "get", "+14155551234"])
            #expect(off.stdout.hasPrefix("John Smith\n"))
            let bad = try await Self.ctl(socket, ["--json=loud", "ping"])
            #expect(bad.status == 2 && bad.stderr.contains("loud"))
        }
    }

    @Test func severalKeysAtOnceEachAnsweredInOrder() async throws {
        try await Self.withStack { socket in
            let result = try await Self.ctl(
                socket,
                ["get", "+14155551234", "+15550009999", "c1d2e3f4-5678-9abc-def0-123456789abc"]
            )
            #expect(result.status == 1, "a key not found makes the command's status 1")
            let blocks = result.stdout.components(separatedBy: "\n\n")
            #expect(blocks.count == 2 && blocks.allSatisfy { $0.hasPrefix("John Smith") }, "\(result.stdout)")
            #expect(
                result.stderr.contains("contactctl: +15550009999: Contact not found [not_found]"),
                "\(result.stderr)"
            )
        }
    }

    @Test func countersHaveUnitsAndResetStatisticsZeroesThem() async throws {
        try await Self.withStack { socket in
            _ = try await Self.ctl(socket, ["get", "+14155551234"])
            _ = try await Self.ctl(socket, ["get", "+14155551234"])
            let stats = try await Self.ctl(socket, ["stats"])
            let rows = Dictionary(
                stats.stdout.split(separator: "\n").map { line -> (String, String) in
                    let parts = line.split(separator: " ", maxSplits: 1)
                    return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
                },
                uniquingKeysWith: { $1 }
            )
            #expect(rows["hit_ratio"] == "50.0%", "\(stats.stdout)")
            #expect(rows["held_bytes"] == "1.0 MiB", "\(stats.stdout)")
            #expect(rows["bytes"]?.hasSuffix(" B") == true || rows["bytes"]?.hasSuffix("KiB") == true)
            #expect(rows["upstream.latency_ms.p50"]?.hasSuffix(" ms") == true)
            let status = try await Self.ctl(socket, ["status"])
            #expect(status.stdout.split(separator: "\n").contains { $0.hasPrefix("uptime") && $0.hasSuffix("s") })

            let reset = try await Self.ctl(socket, ["reset-statistics"])
            #expect(reset.status == 0 && reset.stdout.isEmpty)
            let after = try await Self.ctl(socket, ["--json", "stats"])
            #expect(after.stdout.contains(#""entries":1,"#), "entries are a level, not a counter: \(after.stdout)")
            #expect(after.stdout.contains(#""hits":0,"#) && after.stdout.contains(#""misses":0,"#))
            #expect(after.stdout.contains(#""requests":0,"#))
        }
    }

    @Test func controlCharactersFromTheAPIAreEscapedInHumanOutput() async throws {
        try await Self.withStack { socket in
            let human = try await Self.ctl(socket, ["get", "+15550001111"])
            #expect(human.status == 0)
            #expect(!human.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B })
            #expect(human.stdout.hasPrefix(#"Eve\e]0;owned\x07\e[31m"#), "\(human.stdout)")
            #expect(human.stdout.contains(#"line1\nline2\u{9b}"#))
            // JSON output stays JSON: the escapes are JSON's.
            let json = try await Self.ctl(socket, ["--json", "get", "+15550001111"])
            #expect(json.stdout.contains(#"Eve\u001b]0;owned\u0007\u001b[31m"#), "\(json.stdout)")
        }
    }

    @Test func configHasALegendUnlessAskedNot() async throws {
        try await Self.withStack { socket in
            let plain = try await Self.ctl(socket, ["config"])
            #expect(plain.stdout.hasPrefix("SETTING"))
            let bare = try await Self.ctl(socket, ["--no-legend", "config"])
            #expect(bare.stdout.hasPrefix("config "), "\(bare.stdout.prefix(80))")
        }
    }

    @Test func errorsWithAnObviousNextStepSayIt() async throws {
        let missing = try await runProduct("contactctl", ["--socket", "/tmp/cdt-no-such.sock", "ping"])
        #expect(missing.status == 69)
        #expect(missing.stderr.contains("hint: start it with `systemctl start contactd.socket`, or pass --socket PATH"))
        try await Self.withStack { socket in
            let invalid = try await Self.ctl(socket, ["get", "+0123"])
            #expect(invalid.status == 2)
            #expect(invalid.stderr.contains("hint: write the number in E.164, e.g. +14155551234"), "\(invalid.stderr)")
            let notFound = try await Self.ctl(socket, ["get", "+15550009998"])
            #expect(!notFound.stderr.contains("hint:"), "not found needs no hint")
        }
    }
}
