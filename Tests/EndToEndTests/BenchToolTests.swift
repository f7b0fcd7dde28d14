import ChildProcess
import ContactdTestSupport
import FakeContactAPI
import Foundation
import Testing

/// contactd-bench drives a real daemon, and notices when replies are not what it asked for.
@Suite(.timeLimit(.minutes(1))) struct BenchToolTests {
    @Test func spawnedRunReportsRequestsAndNoWrongReplies() async throws {
        let run = try await runProduct(
            "contactd-bench",
            [
                "run", "--spawn", "--connections", "2", "--pipeline", "4", "--duration", "0.5", "--warmup", "0.2",
                "--key-count", "50", "--miss-ratio", "0.2", "--json",
            ]
        )
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
            "\(run.stdout)"
        )
        #expect((report["requests"] as? Int ?? 0) > 0)
        #expect(report["wrong"] as? Int == 0)
        #expect(report["unanswered"] as? Int == 0)
        #expect((report["p50_us"] as? Double ?? 0) > 0)
    }

    @Test func wrongRepliesFailTheRun() async throws {
        try await withTemporaryDirectory { dir in
            // The echo server answers every request with contact 0: right for key 0 only.
            let echo = try ChildProcess(
                try builtProductURL("contactd-bench").path,
                ["echo", "--socket", dir + "/echo.sock"],
                environment: ["PATH": "/usr/bin:/bin"],
                stdout: .file("/dev/null"),
                stderr: .file("/dev/null")
            )
            defer { echo.signal(SIGTERM) }
            try await eventually("the echo server's socket") {
                FileManager.default.fileExists(atPath: dir + "/echo.sock")
            }
            let right = try await runProduct(
                "contactd-bench",
                [
                    "run", "--socket", dir + "/echo.sock", "--keys", "one", "--no-prefill", "--duration", "0.3",
                    "--warmup", "0",
                ]
            )
            #expect(right.status == 0, "\(right.stdout)\(right.stderr)")
            let wrong = try await runProduct(
                "contactd-bench",
                ["run", "--socket", dir + "/echo.sock", "--no-prefill", "--duration", "0.3", "--warmup", "0", "--json"]
            )
            #expect(wrong.status == 1)
            #expect(!wrong.stdout.contains(#""wrong":0,"#))
        }
    }

    /// Issue #12: a daemon that answers every lookup with an error is not a benchmark result.
    @Test func errorRepliesFailTheRun() async throws {
        try await withFakeAPI(contacts: [], expectedToken: nil) { api in
            api.setBehavior(.status(503))
            try await withTemporaryDirectory { dir in
                try await withSpawnedDaemon(
                    directory: dir,
                    arguments: ["--api-url", api.baseURL, "--retry-attempts", "1"],
                    environment: ["CONTACTD_API_TOKEN": "bench-token"]
                ) { daemon in
                    let run = try await runProduct(
                        "contactd-bench",
                        [
                            "run", "--socket", daemon.socketPath, "--no-prefill", "--key-count", "20", "--requests",
                            "200",
                            "--warmup", "0", "--json",
                        ]
                    )
                    #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
                    #expect(run.stderr.contains("replies were errors"), "\(run.stderr)")
                    let prefilled = try await runProduct(
                        "contactd-bench",
                        [
                            "run", "--socket", daemon.socketPath, "--key-count", "20", "--requests", "20", "--warmup",
                            "0",
                        ]
                    )
                    #expect(prefilled.status != 0)
                    #expect(prefilled.stderr.contains("errors"), "\(prefilled.stderr)")
                }
            }
        }
    }
}
