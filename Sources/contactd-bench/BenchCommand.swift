import ArgumentParser
import ChildProcess
import FakeContactAPI
import Foundation
import Glibc

@main
struct ContactdBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contactd-bench",
        abstract: "Load generator for contactd (and, for comparison, Redis and the API itself).",
        discussion: """
            Keys are the synthetic contacts of BenchContacts: contact i has phone +1555 and i in 7 \
            digits, and a reply of about 550 bytes. `contactd-bench run --spawn` starts a fake API \
            and contactd itself; otherwise point it at a running daemon (--socket), at Redis \
            (--protocol resp --socket redis.sock, after `load-redis`) or at an API (--protocol http).
            """,
        subcommands: [
            Run.self, FakeAPI.self, LoadRedis.self, Startup.self, Echo.self, CacheMemory.self, ReplayTrace.self,
        ],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send requests and report req/s and latency.")

    @Option(help: "json (contactd), resp (Redis GET) or http (POST /get-contact to the API).")
    var `protocol` = "json"
    @Option(help: "Unix socket of contactd or Redis.")
    var socket: String?
    @Option(help: "TCP port on 127.0.0.1, for --protocol http.")
    var port: Int?
    @Flag(help: "Start a fake API and contactd (the contactd next to this binary) for this run.")
    var spawn = false
    @Option(help: "With --spawn: pin contactd to this CPU (taskset).")
    var daemonCPU: Int?
    @Option(help: "Concurrent connections.")
    var connections = 1
    @Option(help: "Requests in flight per connection.")
    var pipeline = 1
    @Option(help: "Seconds to measure.")
    var duration = 10.0
    @Option(help: "Stop after this many requests (0: no bound).")
    var requests = 0
    @Option(help: "Seconds of unmeasured load first.")
    var warmup = 1.0
    @Option(help: "one, uniform or zipf.")
    var keys = "uniform"
    @Option(help: "Distinct keys for uniform and zipf (they are cached before the run).")
    var keyCount = 1000
    @Option(help: "Zipf exponent.")
    var zipfExponent = 0.99
    @Option(help: "Fraction of requests for keys never asked before (each a miss to the API).")
    var missRatio = 0.0
    @Option(help: "Send this max_age with every contact.get (0 forces a fetch).")
    var maxAge: Double?
    @Flag(help: "Skip asking for every key once before the run.")
    var noPrefill = false
    @Option(help: "Requests in flight while prefilling (over at most 16 connections).")
    var prefillInFlight = 256
    @Flag(help: "Print one JSON object instead of text.")
    var json = false
    @Option(help: "A label for the report.")
    var label = ""

    func validate() throws {
        guard WireProtocol(rawValue: `protocol`) != nil else {
            throw ValidationError("--protocol must be json, resp or http")
        }
        guard ["one", "uniform", "zipf"].contains(keys) else {
            throw ValidationError("--keys must be one, uniform or zipf")
        }
        guard connections >= 1, pipeline >= 1, keyCount >= 1, duration > 0 || requests > 0 else {
            throw ValidationError("--connections, --pipeline and --key-count must be at least 1")
        }
        guard (0...1).contains(missRatio) else { throw ValidationError("--miss-ratio is a fraction from 0 to 1") }
        guard prefillInFlight >= 1 else { throw ValidationError("--prefill-in-flight must be at least 1") }
        guard spawn || socket != nil || port != nil else {
            throw ValidationError("give --socket, --port, or --spawn")
        }
    }

    func run() async throws {
        let wire = WireProtocol(rawValue: `protocol`)!
        var spawned: SpawnedStack?
        let endpoint: Endpoint
        if spawn {
            let stack = try await SpawnedStack.start(cpu: daemonCPU)
            spawned = stack
            endpoint = wire == .http ? .tcp(port: stack.apiPort) : .unix(stack.socketPath)
        } else if let socket {
            endpoint = .unix(socket)
        } else {
            endpoint = .tcp(port: UInt16(port!))
        }
        defer { spawned?.stop() }

        let distribution: KeyPicker.Distribution
        switch keys {
        case "one": distribution = .one
        case "zipf": distribution = .zipf(keyCount, zipfExponent)
        default: distribution = .uniform(keyCount)
        }
        let distinct = keys == "one" ? 1 : keyCount
        var loop = LoadLoop(wire: wire, endpoint: endpoint, connections: connections, depth: pipeline)
        loop.maxAge = maxAge
        if wire == .json && !noPrefill {
            // Every key once, so that the measured run's hits are hits.
            let prefillConnections = min(16, distinct, prefillInFlight)
            let prefill = LoadLoop(
                wire: .json,
                endpoint: endpoint,
                connections: prefillConnections,
                depth: max(1, prefillInFlight / prefillConnections)
            )
            let done = try prefill.run(
                picker: KeyPicker(.sequential(distinct), missRatio: 0, seed: 1, missBase: 0),
                seconds: 3600,
                maxRequests: distinct,
                record: false
            )
            guard done.completed == distinct, done.wrong == 0, done.errorReplies == 0 else {
                throw BenchError(
                    "prefill got \(done.completed) of \(distinct) replies, \(done.wrong) wrong, \(done.errorReplies) errors"
                )
            }
        }
        // Misses ask for indices above 5,000,000, fresh in every run.
        let missBase = 5_000_000 + Int.random(in: 0..<4_000_000)
        if warmup > 0 {
            _ = try loop.run(
                picker: KeyPicker(distribution, missRatio: missRatio, seed: 7, missBase: missBase),
                seconds: warmup,
                maxRequests: 0,
                record: false
            )
        }
        let result = try loop.run(
            picker: KeyPicker(distribution, missRatio: missRatio, seed: 42, missBase: missBase + 500_000),
            seconds: requests > 0 ? 3600 : duration,
            maxRequests: requests,
            record: true
        )
        report(result, wire: wire)
        if result.wrong > 0 || result.unanswered > 0 { throw ExitCode(1) }
        // A run of error replies measures how fast the server says no, not what was asked.
        if result.errorReplies > 0 {
            FileHandle.standardError.write(
                Data("contactd-bench: \(result.errorReplies) of \(result.completed) replies were errors\n".utf8)
            )
            throw ExitCode(1)
        }
    }

    private func report(_ r: RunResult, wire: WireProtocol) {
        if json {
            let fields: [String] = [
                #""label":"\#(label)""#, #""protocol":"\#(wire.rawValue)""#, #""connections":\#(connections)"#,
                #""pipeline":\#(pipeline)"#, #""requests":\#(r.completed)"#, #""seconds":\#(r.seconds)"#,
                #""rps":\#(Int(r.requestsPerSecond))"#, #""p50_us":\#(r.micros(50))"#, #""p90_us":\#(r.micros(90))"#,
                #""p99_us":\#(r.micros(99))"#, #""p999_us":\#(r.micros(99.9))"#, #""max_us":\#(r.micros(100))"#,
                #""error_replies":\#(r.errorReplies)"#, #""wrong":\#(r.wrong)"#, #""unanswered":\#(r.unanswered)"#,
            ]
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            print(
                """
                \(label.isEmpty ? "" : label + ": ")\(wire.rawValue), \(connections) connections × \(pipeline) in flight: \
                \(r.completed) requests in \(String(format: "%.2f", r.seconds)) s = \(Int(r.requestsPerSecond)) req/s
                latency µs: p50 \(r.micros(50))  p90 \(r.micros(90))  p99 \(r.micros(99))  p99.9 \(r.micros(99.9))  max \(r.micros(100))
                error replies \(r.errorReplies), wrong replies \(r.wrong), unanswered \(r.unanswered)
                """
            )
        }
    }
}

/// A fake API in this process and a contactd child process pointed at it.
final class SpawnedStack: @unchecked Sendable {
    // @unchecked: set up once, then only read; `process` is used through thread-safe members.
    let api: FakeContactAPI
    let process: ChildProcess
    let socketPath: String
    let directory: String
    var apiPort: UInt16 { UInt16(api.baseURL.split(separator: ":").last.flatMap { Int($0) } ?? 0) }

    private init(api: FakeContactAPI, process: ChildProcess, socketPath: String, directory: String) {
        self.api = api
        self.process = process
        self.socketPath = socketPath
        self.directory = directory
    }

    static func start(cpu: Int?) async throws -> SpawnedStack {
        let api = try await FakeContactAPI.start(
            contacts: [],
            expectedToken: "bench-token",
            generate: BenchContacts.generate
        )
        var template = Array("/tmp/contactd-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp failed") }
        let directory = String(cString: made)
        let socketPath = directory + "/contactd.sock"
        let daemon = try siblingExecutable("contactd")
        var arguments = [
            daemon, "--socket", socketPath, "--api-url", api.baseURL, "--log-level", "warning",
            "--cache-max-entries", "2000000", "--cache-max-bytes", "4G",
        ]
        if let cpu { arguments = ["-c", String(cpu)] + arguments }
        let process = try ChildProcess(
            cpu == nil ? daemon : "/usr/bin/taskset",
            cpu == nil ? Array(arguments.dropFirst()) : arguments,
            environment: ["CONTACTD_API_TOKEN": "bench-token", "PATH": "/usr/bin:/bin"],
            stdout: .discard,
            stderr: .file(directory + "/contactd.log")
        )
        let stack = SpawnedStack(api: api, process: process, socketPath: socketPath, directory: directory)
        for _ in 0..<500 {
            if (try? BenchConnection(.unix(socketPath))) != nil { return stack }
            try await Task.sleep(for: .milliseconds(10))
        }
        stack.stop()
        throw BenchError("contactd did not start listening on \(socketPath)")
    }

    func stop() {
        if process.isRunning {
            process.signal(SIGTERM)
            _ = process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A program built next to this one (`.build/release/contactd`).
func siblingExecutable(_ name: String) throws -> String {
    let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let path = me.deletingLastPathComponent().appendingPathComponent(name).path
    guard FileManager.default.isExecutableFile(atPath: path) else { throw BenchError("\(path) is not built") }
    return path
}
