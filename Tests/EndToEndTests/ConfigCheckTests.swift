import ContactdTestSupport
import Foundation
import Testing

/// `contactd --check-config` (issue #26, item 4), run as an operator would before a reload: the
/// effective settings and their sources, or the start's own message and 78.
/// Serialized: its eight short-lived processes start one at a time, not all at the suite's start
/// beside the timing tests.
@Suite(.serialized) struct ConfigCheckTests {
    static func rows(_ text: String) -> [[Substring]] {
        text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
    }

    @Test func showsWhatAStartWouldRunWithAndWhereEachSettingCameFrom() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/contactd.yaml"
            try "ttl: 10m\ncache-max-entries: 500\n".write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o644)
            let result = try await runProduct(
                "contactd",
                ["--check-config", "--config", file, "--max-batch", "10"],
                environment: ["CONTACTD_API_TOKEN": "tok-never-shown", "CONTACTD_NEGATIVE_TTL": "20s"]
            )
            #expect(result.status == 0, "\(result.stderr)")
            let rows = Self.rows(result.stdout)
            #expect(rows.first == ["SETTING", "VALUE", "SOURCE"])
            #expect(rows.contains(["ttl", "10m", "file"]))
            #expect(rows.contains(["cache-max-entries", "500", "file"]))
            #expect(rows.contains(["negative-ttl", "20s", "environment"]))
            #expect(rows.contains(["max-batch", "10", "flag"]))
            #expect(rows.contains(["stale-ttl", "1h", "default"]))
            #expect(rows.contains(["api-token", "(not", "shown)", "environment"]))
            #expect(result.stdout.hasSuffix("contactd: the configuration is valid\n"))
            #expect(!(result.stdout + result.stderr).contains("tok-never-shown"))
            #expect(result.stderr.isEmpty, "no warning for a file only its owner can write: \(result.stderr)")
        }
    }

    /// A typo, a bad value, no token: the check says exactly what the start would, and exits 78.
    @Test func failsWithTheStartsOwnMessage() async throws {
        try await withTemporaryDirectory { dir in
            let typo = dir + "/typo.yaml"
            try "ttll: 10m\n".write(toFile: typo, atomically: true, encoding: .utf8)
            for (arguments, environment) in [
                (["--config", typo], ["CONTACTD_API_TOKEN": "t"]),
                (["--ttl", "forever"], ["CONTACTD_API_TOKEN": "t"]),
                (["--socket", dir + "/never.sock"], [:]),
            ] {
                let check = try await runProduct("contactd", ["--check-config"] + arguments, environment: environment)
                let start = try await runProduct("contactd", arguments, environment: environment)
                #expect(check.status == 78, "\(arguments)")
                #expect(start.status == 78, "\(arguments)")
                #expect(check.stderr == start.stderr, "\(arguments)")
                #expect(check.stdout.isEmpty)
            }
        }
    }

    @Test func warnsWhenOthersCanWriteTheFile() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/contactd.yaml"
            try "ttl: 10m\n".write(toFile: file, atomically: true, encoding: .utf8)
            for (mode, who) in [(0o664, "its group"), (0o646, "anyone")] as [(mode_t, String)] {
                chmod(file, mode)
                let result = try await runProduct(
                    "contactd",
                    ["--check-config", "--config", file],
                    environment: ["CONTACTD_API_TOKEN": "t"]
                )
                #expect(result.status == 0)
                #expect(
                    result.stderr.contains("contactd: warning: \(file) can be written by \(who)"),
                    "\(result.stderr)"
                )
            }
        }
    }
}
