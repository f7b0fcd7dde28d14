import ArgumentParser
import CLinux
import ChildProcess
import FakeContactAPI
import Foundation
import Glibc

struct FakeAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-api",
        abstract: "Serve the benchmark contacts as the get-contact API on 127.0.0.1 until killed.",
        discussion: """
            Also the stand-in API of the systemd end-to-end test: `--port 0 --port-file PATH` to \
            take a free port and say which, `--contact JSON` for contacts beyond the benchmark's, \
            and the controls `GET /fake/calls` (calls so far) and `PUT`/`DELETE /fake/outage` \
            (answer every call with 503, or not).
            """
    )

    @Option(help: "Port to listen on; 0 for a free one.")
    var port = 18_080
    @Option(help: "Write the port here once listening (written whole: a reader never sees part of it).")
    var portFile: String?
    @Option(help: "The bearer token it accepts.")
    var token = "bench-token"
    @Option(help: "Read the token it accepts from this file instead (a secret stays out of argv).")
    var tokenFile: String?
    @Option(help: "A contact to know besides the benchmark's, as the API's JSON (repeatable).")
    var contact: [String] = []
    @Option(help: "Milliseconds to wait before each answer, as a distant API would.")
    var delayMilliseconds = 0

    func run() async throws {
        let expected =
            try tokenFile.map {
                try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            ?? token
        let api = try await FakeContactAPI.start(
            contacts: contact,
            expectedToken: expected,
            generate: BenchContacts.generate,
            port: port
        )
        api.setDelay(milliseconds: delayMilliseconds)
        if let portFile {
            try String(api.port).write(toFile: portFile + ".tmp", atomically: false, encoding: .utf8)
            guard rename(portFile + ".tmp", portFile) == 0 else { throw BenchError("cannot write \(portFile)") }
        }
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
            var arguments = [daemon, "--socket", directory + "/contactd.sock", "--api-url", apiURL]
            if let snapshotFile {
                arguments += [
                    "--snapshot-file", snapshotFile, "--snapshot-interval", "0", "--cache-max-entries", "10000000",
                ]
                arguments += ["--cache-max-bytes", "16G"]
            }
            if let cpu { arguments = ["-c", String(cpu)] + arguments }
            let start = monotonicNanos()
            let process = try ChildProcess(
                cpu == nil ? daemon : "/usr/bin/taskset",
                cpu == nil ? Array(arguments.dropFirst()) : arguments,
                environment: ["CONTACTD_API_TOKEN": "t", "NOTIFY_SOCKET": notifyPath, "PATH": "/usr/bin:/bin"],
                stdout: .discard,
                stderr: .discard
            )
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
            process.signal(SIGTERM)
            _ = process.waitUntilExit()
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
