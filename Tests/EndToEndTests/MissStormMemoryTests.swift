import ContactdJSON
import ContactdTestSupport
import Foundation
import Testing

/// Issue #12, item 7: a burst of misses leaves no memory behind beyond the cache's own.
///
/// Not a benchmark (docs/benchmarks.md has the figures); a bound wide enough for a debug build
/// on a loaded machine and far below what the defect kept: every miss left a cancelled sleeping
/// task for its whole deadline, so 30,000 misses at 512 in flight held some 25 MiB of glibc heap
/// that did not come back after `contact.invalidate {"all": true}`.
@Suite(.timeLimit(.minutes(3))) struct MissStormMemoryTests {
    static let contacts = 30_000

    func residentBytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])) * 1024
    }

    func call(_ socket: String, _ request: String) async throws -> JSONValue {
        let client = try await RawSocketClient.connect(socket)
        try await client.send(request + "\n")
        let line = try #require(try await client.readLine())
        await client.close()
        return try JSONParser.parse(Array(line.utf8))
    }

    @Test func aMissStormLeavesNothingBehindOnceTheCacheIsEmptied() async throws {
        try await withTemporaryDirectory { dir in
            let port = 20_000 + Int(getpid() % 5000)
            let api = Process()
            api.executableURL = try builtProductURL("contactd-bench")
            api.arguments = ["fake-api", "--port", String(port)]
            api.standardOutput = FileHandle.nullDevice
            try api.run()
            defer { api.terminate() }
            let daemon = try SpawnedDaemon(
                directory: dir,
                arguments: [
                    "--api-url", "http://127.0.0.1:\(port)", "--log-level", "warning", "--cache-max-entries", "200000",
                ],
                environment: ["CONTACTD_API_TOKEN": "bench-token"]
            )
            defer { Task { await daemon.stop() } }
            _ = try await daemon.notify.waitFor("READY=1") { $0.contains("READY=1") }
            let pid = daemon.process.processIdentifier
            let before = try residentBytes(pid)

            let fill = try await runProduct(
                "contactd-bench",
                [
                    "run", "--socket", daemon.socketPath, "--key-count", String(Self.contacts), "--prefill-in-flight",
                    "512", "--requests", "1", "--warmup", "0",
                ]
            )
            #expect(fill.status == 0, "\(fill.stdout)\(fill.stderr)")
            let stats = try await call(daemon.socketPath, #"{"jsonrpc":"2.0","id":1,"method":"cache.stats"}"#)
            #expect(stats["result"]?["entries"]?.intValue == Self.contacts)
            let cacheBytes = try #require(stats["result"]?["bytes"]?.intValue)
            let filled = try residentBytes(pid)

            let removed = try await call(
                daemon.socketPath,
                #"{"jsonrpc":"2.0","id":2,"method":"contact.invalidate","params":{"all":true}}"#
            )
            #expect(removed["result"]?["removed"]?.intValue == Self.contacts)
            let emptied = try residentBytes(pid)
            let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
            print(
                "miss storm: \(Self.contacts) contacts, cache \(mib(cacheBytes)); RSS +\(mib(filled - before)) filled, "
                    + "+\(mib(emptied - before)) emptied"
            )
            #expect(
                filled - before < cacheBytes + 16 << 20,
                "filled: +\(mib(filled - before)), cache \(mib(cacheBytes))"
            )
            #expect(emptied - before < 12 << 20, "after invalidating all: +\(mib(emptied - before))")
        }
    }
}
