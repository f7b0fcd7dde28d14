import ContactdTestSupport
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
            let echo = Process()
            echo.executableURL = try builtProductURL("contactd-bench")
            echo.arguments = ["echo", "--socket", dir + "/echo.sock"]
            try echo.run()
            defer { echo.terminate() }
            while !FileManager.default.fileExists(atPath: dir + "/echo.sock") {
                try await Task.sleep(for: .milliseconds(10))
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
}
