import ArgumentParser
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
    let process: Process
    let socketPath: String
    let directory: String
    var apiPort: UInt16 { UInt16(api.baseURL.split(separator: ":").last.flatMap { Int($0) } ?? 0) }

    private init(api: FakeContactAPI, process: Process, socketPath: String, directory: String) {
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
        let process = Process()
        var arguments = [
            daemon, "--socket", socketPath, "--api-url", api.baseURL, "--log-level", "warning",
            "--cache-max-entries", "2000000", "--cache-max-bytes", "4G",
        ]
        if let cpu { arguments = ["-c", String(cpu)] + arguments }
        process.executableURL = URL(fileURLWithPath: cpu == nil ? daemon : "/usr/bin/taskset")
        process.arguments = cpu == nil ? Array(arguments.dropFirst()) : arguments
        process.environment = ["CONTACTD_API_TOKEN": "bench-token", "PATH": "/usr/bin:/bin"]
        try process.run()
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
            process.terminate()
            process.waitUntilExit()
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

struct FakeAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-api",
        abstract: "Serve the benchmark contacts as the get-contact API on 127.0.0.1 until killed."
    )

    @Option(help: "Port to listen on.")
    var port = 18_080
    @Option(help: "The bearer token it accepts.")
    var token = "bench-token"
    @Option(help: "Milliseconds to wait before each answer, as a distant API would.")
    var delayMilliseconds = 0

    func run() async throws {
        let api = try await FakeContactAPI.start(
            contacts: [],
            expectedToken: token,
            generate: BenchContacts.generate,
            port: port
        )
        api.setDelay(milliseconds: delayMilliseconds)
        FileHandle.standardOutput.write(Data("fake API at \(api.baseURL)\n".utf8))
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

struct LoadRedis: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-redis",
        abstract: "SET the first N benchmark keys in Redis to the bytes contactd answers for them."
    )

    @Option(help: "Redis's Unix socket.")
    var socket: String
    @Option(help: "How many keys.")
    var count = 1000
    @Flag(help: "Store each contact's JSON (what contactd caches) instead of contactd's whole reply.")
    var contactBytes = false

    func run() throws {
        let connection = try BenchConnection(.unix(socket))
        var sent = 0
        var acknowledged = 0
        while acknowledged < count {
            while sent < count && sent - acknowledged < 1000 {
                let value = Array((contactBytes ? BenchContacts.contact(sent) : Self.reply(for: sent)).utf8)
                connection.output.append(contentsOf: "*3\r\n$3\r\nSET\r\n$12\r\n".utf8)
                appendPhone(sent, to: &connection.output)
                connection.output.append(contentsOf: "\r\n$\(value.count)\r\n".utf8)
                connection.output.append(contentsOf: value)
                connection.output.append(contentsOf: "\r\n".utf8)
                sent += 1
            }
            try connection.flush()
            var poller = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&poller, 1, 1000)
            guard try connection.fill() else { throw BenchError("Redis closed the connection") }
            let bytes = UnsafeRawBufferPointer(
                start: connection.input.baseAddress! + connection.inputStart,
                count: connection.inputEnd - connection.inputStart
            )
            var index = 0
            while let end = bytes[index...].firstIndex(of: 0x0A) {
                guard bytes[index] == UInt8(ascii: "+") else {
                    throw BenchError("Redis refused a SET: \(String(decoding: bytes[index..<end], as: UTF8.self))")
                }
                acknowledged += 1
                index = end + 1
            }
            connection.inputStart += index
        }
        print("loaded \(count) keys")
    }

    /// What contactd answers for a hit on contact `index` (request id 1, age 0).
    static func reply(for index: Int) -> String {
        #"{"jsonrpc":"2.0","id":1,"result":{"contact":\#(BenchContacts.contact(index)),"cache":{"status":"hit","age":0}}}"#
    }
}

struct Startup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time from exec of contactd to its READY=1, over several starts."
    )

    @Option(help: "Starts to time.")
    var runs = 20
    @Option(help: "Pin contactd to this CPU.")
    var cpu: Int?
    @Option(help: "Start with this cache snapshot (contactd --snapshot-file; each stop writes it again).")
    var snapshotFile: String?
    @Option(help: "The API URL contactd is given (a snapshot is restored only for the API it was taken for).")
    var apiURL = "http://127.0.0.1:9"

    func run() throws {
        let daemon = try siblingExecutable("contactd")
        var timings: [Double] = []
        for _ in 0..<runs {
            var template = Array("/tmp/contactd-start-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp failed") }
            let directory = String(cString: made)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let notifyPath = directory + "/notify.sock"
            let notify = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(notify) }
            guard try withUnixAddress(notifyPath, { bind(notify, $0, $1) }) == 0 else {
                throw BenchError("cannot bind \(notifyPath)")
            }
            let process = Process()
            var arguments = [daemon, "--socket", directory + "/contactd.sock", "--api-url", apiURL]
            if let snapshotFile {
                arguments += [
                    "--snapshot-file", snapshotFile, "--snapshot-interval", "0", "--cache-max-entries", "10000000",
                ]
                arguments += ["--cache-max-bytes", "16G"]
            }
            if let cpu { arguments = ["-c", String(cpu)] + arguments }
            process.executableURL = URL(fileURLWithPath: cpu == nil ? daemon : "/usr/bin/taskset")
            process.arguments = cpu == nil ? Array(arguments.dropFirst()) : arguments
            process.environment = ["CONTACTD_API_TOKEN": "t", "NOTIFY_SOCKET": notifyPath, "PATH": "/usr/bin:/bin"]
            process.standardError = FileHandle.nullDevice
            let start = monotonicNanos()
            try process.run()
            var buffer = [UInt8](repeating: 0, count: 4096)
            var ready: UInt64?
            while ready == nil {
                var poller = pollfd(fd: notify, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 60_000) > 0 else { break }
                let n = recv(notify, &buffer, buffer.count, 0)
                if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).contains("READY=1") {
                    ready = monotonicNanos()
                }
            }
            process.terminate()
            process.waitUntilExit()
            guard let ready else { throw BenchError("contactd sent no READY=1 within 60 s") }
            timings.append(Double(ready - start) / 1e6)
        }
        timings.sort()
        let median = timings[timings.count / 2]
        print(
            "READY=1 after exec, ms over \(runs) starts: min \(String(format: "%.1f", timings.first!)) "
                + "median \(String(format: "%.1f", median)) max \(String(format: "%.1f", timings.last!))"
        )
    }
}

struct Echo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A do-nothing server: answers each request line with a fixed reply (the floor).",
        discussion: """
            The reply is contactd's reply for contact 0 with the request's id spliced in, so run the \
            load against it with --keys one. One thread, poll(2), no parsing beyond finding the id.
            """
    )

    @Option(help: "Unix socket to listen on.")
    var socket: String

    func run() throws {
        unlink(socket)
        let listener = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = try withUnixAddress(socket) { bind(listener, $0, $1) }
        guard bound == 0, listen(listener, 512) == 0 else { throw BenchError("cannot listen on \(socket)") }
        let reply = Array(LoadRedis.reply(for: 0).utf8)
        let head = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        let tail = Array(reply[reply.firstIndex(of: UInt8(ascii: ","))!...]) + [0x0A]
        var pollers = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
        var pending: [Int32: [UInt8]] = [:]
        var input = [UInt8](repeating: 0, count: 1 << 20)
        var output: [UInt8] = []
        while true {
            guard poll(&pollers, nfds_t(pollers.count), -1) > 0 else { continue }
            var closed: Set<Int32> = []
            for index in pollers.indices where pollers[index].revents != 0 {
                let fd = pollers[index].fd
                pollers[index].revents = 0
                if fd == listener {
                    let client = accept(listener, nil, nil)
                    if client >= 0 { pollers.append(pollfd(fd: client, events: Int16(POLLIN), revents: 0)) }
                    continue
                }
                let n = read(fd, &input, input.count)
                if n <= 0 {
                    closed.insert(fd)
                    continue
                }
                var carry = pending[fd] ?? []
                carry.append(contentsOf: input[0..<n])
                var lineStart = 0
                output.removeAll(keepingCapacity: true)
                while let newline = carry[lineStart...].firstIndex(of: 0x0A) {
                    // The id: digits after `"id":` in the request.
                    var id = ArraySlice<UInt8>([0x31])
                    if let at = search(carry, from: lineStart, to: newline, #""id":"#) {
                        var end = at
                        while end < newline, carry[end] >= 0x30, carry[end] <= 0x39 { end += 1 }
                        id = carry[at..<end]
                    }
                    output.append(contentsOf: head)
                    output.append(contentsOf: id)
                    output.append(contentsOf: tail)
                    lineStart = newline + 1
                }
                pending[fd] = Array(carry[lineStart...])
                var written = 0
                while written < output.count {
                    let w = output[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if w <= 0 { break }
                    written += w
                }
            }
            if !closed.isEmpty {
                for fd in closed {
                    close(fd)
                    pending[fd] = nil
                }
                pollers.removeAll { closed.contains($0.fd) }
            }
        }
    }

    /// Index just after `needle` in `bytes[from..<to]`.
    private func search(_ bytes: [UInt8], from: Int, to: Int, _ needle: String) -> Int? {
        let pattern = Array(needle.utf8)
        guard to - from >= pattern.count else { return nil }
        for start in from...(to - pattern.count) where bytes[start..<start + pattern.count].elementsEqual(pattern) {
            return start + pattern.count
        }
        return nil
    }
}
