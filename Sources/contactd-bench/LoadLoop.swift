import CLinux
import Foundation
import Glibc
import Histogram

/// What the load generator speaks.
enum WireProtocol: String, CaseIterable, Sendable {
    /// contactd's newline-delimited JSON-RPC `contact.get`.
    case json
    /// Redis `GET <phone>` (RESP2), for the side-by-side run.
    case resp
    /// `POST /get-contact` straight to the (fake) API: the baseline for the miss path.
    case http
}

/// Which keys requests ask for.
struct KeyPicker {
    enum Distribution: Sendable {
        case one
        case uniform(Int)
        case zipf(Int, Double)
        /// 0, 1, 2, … in order (cache warming).
        case sequential(Int)
    }

    private var state: UInt64
    private let distribution: Distribution
    private let cdf: [Double]
    private var nextSequential = 0
    /// Every request with probability `missRatio` asks for a key never asked before.
    private let missRatio: Double
    private var nextMiss: Int

    init(_ distribution: Distribution, missRatio: Double, seed: UInt64, missBase: Int) {
        self.distribution = distribution
        self.state = seed | 1
        self.missRatio = missRatio
        self.nextMiss = missBase
        if case .zipf(let n, let s) = distribution {
            var weights = (1...n).map { 1 / pow(Double($0), s) }
            let total = weights.reduce(0, +)
            var running = 0.0
            for i in weights.indices {
                running += weights[i] / total
                weights[i] = running
            }
            cdf = weights
        } else {
            cdf = []
        }
    }

    /// xorshift64*: cheap enough that the generator never shows in a profile.
    private mutating func random() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    private mutating func unit() -> Double { Double(random() >> 11) / Double(1 << 53) }

    /// The next key's index, and whether it is a deliberate miss.
    mutating func next() -> Int {
        if missRatio > 0, unit() < missRatio {
            nextMiss += 1
            return nextMiss
        }
        switch distribution {
        case .one: return 0
        case .uniform(let n): return Int(random() % UInt64(n))
        case .sequential(let n):
            defer { nextSequential += 1 }
            return nextSequential % n
        case .zipf:
            let u = unit()
            var low = 0
            var high = cdf.count - 1
            while low < high {
                let mid = (low + high) / 2
                if cdf[mid] < u { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }
}

/// Counts and latencies of one run.
struct RunResult {
    var completed = 0
    /// Well-formed error replies (not found, overloaded, a Redis nil, an HTTP 404…).
    var errorReplies = 0
    /// Replies that do not answer what was asked: unknown id, wrong contact, unparsable bytes.
    var wrong = 0
    /// Requests with no reply when the run ended.
    var unanswered = 0
    var seconds = 0.0
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    var requestsPerSecond: Double { seconds > 0 ? Double(completed) / seconds : 0 }

    /// Latency at `percentile`, in microseconds.
    func micros(_ percentile: Double) -> Double {
        latency.totalCount == 0 ? 0 : Double(latency.valueAtPercentile(percentile)) / 1000
    }
}

/// Where to connect.
enum Endpoint: Sendable {
    case unix(String)
    case tcp(port: UInt16)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// One connection of the load loop: its buffers and the requests awaiting replies.
/// The requests in flight on one connection, by id.
///
/// Why not a `Dictionary`: its hashing on every send and every reply made the load generator's
/// JSON path dearer than its RESP path (a FIFO), and with pipelining the load generator, not the
/// server, is at the limit (docs/benchmarks.md), so that cost was charged to contactd. Ids are handed out in order, so a table indexed by the id's low bits
/// holds nearly all of them; a request still unanswered when its slot comes round again (a slow
/// miss) goes to the dictionary.
struct PendingByID {
    private static let slots = 4096
    private var ids = [Int](repeating: -1, count: slots)
    private var values = [(sent: UInt64, key: Int)](repeating: (0, 0), count: slots)
    private var overflow: [Int: (sent: UInt64, key: Int)] = [:]

    mutating func insert(_ id: Int, _ value: (sent: UInt64, key: Int)) {
        let slot = id & (Self.slots - 1)
        if ids[slot] == -1 {
            ids[slot] = id
            values[slot] = value
        } else {
            overflow[id] = value
        }
    }

    mutating func remove(_ id: Int) -> (sent: UInt64, key: Int)? {
        let slot = id & (Self.slots - 1)
        if ids[slot] == id {
            ids[slot] = -1
            return values[slot]
        }
        return overflow.isEmpty ? nil : overflow.removeValue(forKey: id)
    }
}

/// One connection of the load loop.
///
/// Its fields are read and written for every request; checking exclusive access to them at run
/// time was a visible share of the load generator's CPU where it, not the server, is the limit. `@exclusivity(unchecked)` turns the check off for these fields only: the loop is
/// single-threaded and never holds two accesses to one field at once.
final class BenchConnection {
    let fd: Int32
    private static let capacity = 4 << 20
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
    @exclusivity(unchecked) var inputStart = 0
    @exclusivity(unchecked) var inputEnd = 0
    @exclusivity(unchecked) var output: [UInt8] = []
    @exclusivity(unchecked) var nextID = 1
    /// JSON replies may come back out of order: matched by id.
    @exclusivity(unchecked) var pendingByID = PendingByID()
    /// RESP and HTTP replies come back in order.
    @exclusivity(unchecked) var pendingFIFO: [(sent: UInt64, key: Int)] = []
    @exclusivity(unchecked) var fifoHead = 0
    @exclusivity(unchecked) var inFlight = 0

    init(_ endpoint: Endpoint) throws {
        switch endpoint {
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            let fd = self.fd
            let result = try withUnixAddress(path) { connect(fd, $0, $1) }
            guard result == 0 else {
                throw BenchError("cannot connect to \(path): \(String(cString: strerror(errno)))")
            }
        case .tcp(let port):
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard result == 0 else {
                throw BenchError("cannot connect to port \(port): \(String(cString: strerror(errno)))")
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        output.reserveCapacity(64 << 10)
    }

    deinit {
        close(fd)
        input.deallocate()
    }

    /// Writes all of `output`, waiting for the socket when it is full.
    func flush() throws {
        var written = 0
        while written < output.count {
            let n = output.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n > 0 {
                written += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&poller, 1, 100)
            } else {
                throw BenchError("write failed: \(String(cString: strerror(errno)))")
            }
        }
        output.removeAll(keepingCapacity: true)
    }

    /// Reads what is there; false at end of file.
    func fill() throws -> Bool {
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
        } else if inputEnd > Self.capacity / 2 {
            let base = input.baseAddress!
            memmove(base, base + inputStart, inputEnd - inputStart)
            inputEnd -= inputStart
            inputStart = 0
        }
        let n = read(fd, input.baseAddress! + inputEnd, Self.capacity - inputEnd)
        if n > 0 {
            inputEnd += n
            return true
        }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EINTR { return true }
        throw BenchError("read failed: \(String(cString: strerror(errno)))")
    }
}

/// Drives connections with up to `depth` requests in flight each, from one thread with poll(2).
///
/// Hand-written on raw sockets rather than on SwiftNIO: the load generator must cost less per
/// request than the servers it measures, and this loop does one read and one write per batch of
/// replies with no allocation per request.
struct LoadLoop {
    let wire: WireProtocol
    let endpoint: Endpoint
    let connections: Int
    let depth: Int
    /// For `.http`: the bearer token to send.
    var token = "bench-token"
    /// For `.json`: `max_age` to send (0 forces a fetch), if any.
    var maxAge: Double?

    func run(
        picker: KeyPicker,
        seconds: Double,
        maxRequests: Int,
        record: Bool
    ) throws -> RunResult {
        var picker = picker
        let conns = try (0..<connections).map { _ in try BenchConnection(endpoint) }
        // epoll, not poll(2): poll looks at every connection on every call, and at 50
        // connections unpipelined that cost the load generator as much CPU per request as the
        // server it measures (docs/benchmarks.md), so it was the limit.
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw BenchError("epoll_create1 failed: \(String(cString: strerror(errno)))") }
        defer { close(epollFD) }
        for (index, conn) in conns.enumerated() {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = UInt64(index)
            guard epoll_ctl(epollFD, EPOLL_CTL_ADD, conn.fd, &event) == 0 else {
                throw BenchError("epoll_ctl failed: \(String(cString: strerror(errno)))")
            }
        }
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: connections)
        defer { events.deallocate() }
        var result = RunResult()
        var sent = 0
        let start = monotonicNanos()
        let end = start + UInt64(seconds * 1e9)
        var sending = true

        func top(_ conn: BenchConnection, now: UInt64) {
            while sending && conn.inFlight < depth {
                if maxRequests > 0 && sent >= maxRequests {
                    sending = false
                    break
                }
                let key = picker.next()
                encode(key: key, into: conn, now: now)
                conn.inFlight += 1
                sent += 1
            }
        }

        for conn in conns {
            top(conn, now: monotonicNanos())
            try conn.flush()
        }
        var drainDeadline: UInt64 = 0
        while true {
            let now = monotonicNanos()
            if sending && now >= end { sending = false }
            if !sending {
                let outstanding = conns.reduce(0) { $0 + $1.inFlight }
                if outstanding == 0 { break }
                if drainDeadline == 0 { drainDeadline = now + 5_000_000_000 }
                if now >= drainDeadline {
                    result.unanswered = outstanding
                    break
                }
            }
            let ready = epoll_wait(epollFD, events, Int32(connections), 100)
            if ready < 0 {
                if errno == EINTR { continue }
                throw BenchError("epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            if ready == 0 { continue }
            let received = monotonicNanos()
            for i in 0..<Int(ready) {
                let conn = conns[Int(events[i].data.u64)]
                guard try conn.fill() else {
                    throw BenchError("the server closed a connection (\(conn.inFlight) requests in flight)")
                }
                try parse(conn, at: received, into: &result, record: record)
                top(conn, now: received)
                try conn.flush()
            }
        }
        result.seconds = Double(monotonicNanos() - start) / 1e9
        return result
    }

    // MARK: Requests

    private static let jsonHead = Array(#"{"jsonrpc":"2.0","id":"#.utf8)

    /// Appends one request for `key` to the connection's output. Each request is assembled in a
    /// stack buffer and appended once: appending its five pieces one by one (and the id's digits
    /// one by one) cost the load generator more per JSON request than per RESP request, which at
    /// 50 × 16, where it is the limit, was charged to contactd.
    private func encode(key: Int, into conn: BenchConnection, now: UInt64) {
        withUnsafeTemporaryAllocation(byteCount: 512, alignment: 8) { buffer in
            var w = RequestWriter(buffer)
            switch wire {
            case .json:
                let id = conn.nextID
                conn.nextID += 1
                w.put(#"{"jsonrpc":"2.0","id":"#)
                w.putDecimal(id)
                w.put(#","method":"contact.get","params":{"phone_number":""#)
                w.putPhone(key)
                if let maxAge {
                    w.put(#"","max_age":"#)
                    w.putDecimal(Int(maxAge))
                    w.put("}}\n")
                } else {
                    w.put("\"}}\n")
                }
                conn.pendingByID.insert(id, (now, key))
            case .resp:
                w.put("*2\r\n$3\r\nGET\r\n$12\r\n")
                w.putPhone(key)
                w.put("\r\n")
                conn.pendingFIFO.append((now, key))
            case .http:
                w.put("POST /get-contact HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ")
                w.put(token)
                w.put("\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n")
                w.put(#"{"phone_number":""#)
                w.putPhone(key)
                w.put(#""}"#)
                conn.pendingFIFO.append((now, key))
            }
            conn.output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[..<w.count]))
        }
    }

    // MARK: Replies

    private func parse(_ conn: BenchConnection, at now: UInt64, into result: inout RunResult, record: Bool) throws {
        let base = UnsafeRawPointer(conn.input.baseAddress!)
        while conn.inputStart < conn.inputEnd {
            let start = base + conn.inputStart
            let available = conn.inputEnd - conn.inputStart
            let consumed: Int
            let outcome: (sent: UInt64, key: Int, ok: Bool, error: Bool)?
            switch wire {
            case .json: (consumed, outcome) = parseJSON(conn, start, available)
            case .resp: (consumed, outcome) = try parseRESP(conn, start, available)
            case .http: (consumed, outcome) = try parseHTTP(conn, start, available)
            }
            if consumed == 0 { return }
            conn.inputStart += consumed
            conn.inFlight -= 1
            guard let outcome else {
                result.wrong += 1
                continue
            }
            result.completed += 1
            if outcome.error { result.errorReplies += 1 } else if !outcome.ok { result.wrong += 1 }
            if record { _ = result.latency.record(now &- outcome.sent) }
        }
    }

    private func popFIFO(_ conn: BenchConnection) -> (sent: UInt64, key: Int)? {
        guard conn.fifoHead < conn.pendingFIFO.count else { return nil }
        let first = conn.pendingFIFO[conn.fifoHead]
        conn.fifoHead += 1
        if conn.fifoHead > 4096 && conn.fifoHead * 2 > conn.pendingFIFO.count {
            conn.pendingFIFO.removeFirst(conn.fifoHead)
            conn.fifoHead = 0
        }
        return first
    }

    /// One reply line: `{"jsonrpc":"2.0","id":N,"result":{…}}` carrying the asked-for contact, or
    /// `…,"error":…`.
    private func parseJSON(
        _ conn: BenchConnection,
        _ start: UnsafeRawPointer,
        _ available: Int
    ) -> (Int, (UInt64, Int, Bool, Bool)?) {
        guard let newline = memchr(start, 0x0A, available) else { return (0, nil) }
        let length = UnsafeRawPointer(newline) - start
        let line = UnsafeRawBufferPointer(start: start, count: length)
        let head = Self.jsonHead
        guard length > head.count, memcmp(start, head, head.count) == 0 else { return (length + 1, nil) }
        var index = head.count
        var id = 0
        while index < length, line[index] >= 0x30, line[index] <= 0x39 {
            id = id * 10 + Int(line[index] - 0x30)
            index += 1
        }
        guard let pending = conn.pendingByID.remove(id) else { return (length + 1, nil) }
        let isError = index + 8 < length && line[index + 2] == UInt8(ascii: "e")
        let ok = isError || containsPhone(pending.key, in: line)
        return (length + 1, (pending.sent, pending.key, ok, isError))
    }

    /// `$len\r\n<bytes>\r\n`, `$-1\r\n` (nil) or `-ERR …\r\n`.
    private func parseRESP(
        _ conn: BenchConnection,
        _ start: UnsafeRawPointer,
        _ available: Int
    ) throws -> (Int, (UInt64, Int, Bool, Bool)?) {
        guard let lineEnd = search(start, available, "\r\n") else { return (0, nil) }
        let headerLength = UnsafeRawPointer(lineEnd) - start
        let header = UnsafeRawBufferPointer(start: start, count: headerLength)
        switch header.first {
        case UInt8(ascii: "$"):
            if headerLength >= 3 && header[1] == UInt8(ascii: "-") {
                guard let pending = popFIFO(conn) else { return (headerLength + 2, nil) }
                return (headerLength + 2, (pending.sent, pending.key, true, true))
            }
            var size = 0
            for byte in header.dropFirst() { size = size * 10 + Int(byte &- 0x30) }
            let total = headerLength + 2 + size + 2
            guard available >= total else { return (0, nil) }
            guard let pending = popFIFO(conn) else { return (total, nil) }
            let payload = UnsafeRawBufferPointer(start: start + headerLength + 2, count: size)
            return (total, (pending.sent, pending.key, containsPhone(pending.key, in: payload), false))
        case UInt8(ascii: "-"):
            guard let pending = popFIFO(conn) else { return (headerLength + 2, nil) }
            return (headerLength + 2, (pending.sent, pending.key, true, true))
        default:
            throw BenchError("desynchronised RESP stream: \(String(decoding: header.prefix(40), as: UTF8.self))")
        }
    }

    /// `HTTP/1.1 200 OK\r\n…Content-Length: n\r\n\r\n<body>`.
    private func parseHTTP(
        _ conn: BenchConnection,
        _ start: UnsafeRawPointer,
        _ available: Int
    ) throws -> (Int, (UInt64, Int, Bool, Bool)?) {
        guard let headEnd = search(start, available, "\r\n\r\n") else { return (0, nil) }
        let headLength = UnsafeRawPointer(headEnd) - start + 4
        let head = String(decoding: UnsafeRawBufferPointer(start: start, count: headLength), as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 "), let status = Int(head.dropFirst(9).prefix(3)) else {
            throw BenchError("desynchronised HTTP stream")
        }
        var bodyLength = 0
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            bodyLength = Int(line.dropFirst(15).trimmingCharacters(in: CharacterSet.whitespaces)) ?? 0
        }
        guard available >= headLength + bodyLength else { return (0, nil) }
        guard let pending = popFIFO(conn) else { return (headLength + bodyLength, nil) }
        let body = UnsafeRawBufferPointer(start: start + headLength, count: bodyLength)
        let ok = status != 200 || containsPhone(pending.key, in: body)
        return (headLength + bodyLength, (pending.sent, pending.key, ok, status != 200))
    }

    private func containsPhone(_ key: Int, in bytes: UnsafeRawBufferPointer) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 12, alignment: 1) { phone in
            writePhone(key, to: phone)
            guard let base = bytes.baseAddress else { return false }
            return search(base, bytes.count, UnsafeRawPointer(phone.baseAddress!), 12) != nil
        }
    }
}

/// Calls `body` with a `sockaddr_un` for `path` and its length (for bind and connect).
func withUnixAddress(
    _ path: String,
    _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32
) throws -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        throw BenchError("socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// Writes a request into a fixed stack buffer (512 bytes: more than any request needs).
struct RequestWriter {
    let buffer: UnsafeMutableRawBufferPointer
    var count = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    mutating func put(_ text: StaticString) {
        (buffer.baseAddress! + count).copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            (buffer.baseAddress! + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            count += bytes.count
        }
    }

    mutating func putDecimal(_ value: Int) {
        if value < 0 {
            put("-")
        }
        var rest = value.magnitude
        var digits = 1
        var probe = rest / 10
        while probe > 0 {
            digits += 1
            probe /= 10
        }
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            buffer[position] = UInt8(0x30 + rest % 10)
            rest /= 10
        }
        count += digits
    }

    mutating func putPhone(_ index: Int) {
        writePhone(index, to: UnsafeMutableRawBufferPointer(rebasing: buffer[count..<count + 12]))
        count += 12
    }
}

/// `+1555` and the index in 7 digits (12 bytes): `BenchContacts.phone(_:)` without a String.
func writePhone(_ index: Int, to raw: UnsafeMutableRawBufferPointer) {
    raw[0] = 0x2B
    raw[1] = 0x31
    raw[2] = 0x35
    raw[3] = 0x35
    raw[4] = 0x35
    var value = index
    for position in stride(from: 11, through: 5, by: -1) {
        raw[position] = UInt8(0x30 + value % 10)
        value /= 10
    }
}

func appendPhone(_ index: Int, to out: inout [UInt8]) {
    var phone: (UInt64, UInt32) = (0, 0)
    withUnsafeMutableBytes(of: &phone) { raw in
        writePhone(index, to: UnsafeMutableRawBufferPointer(rebasing: raw[0..<12]))
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<12]))
    }
}

/// First occurrence of `needle` in `count` bytes at `haystack` (glibc's memmem needs _GNU_SOURCE,
/// which Swift's Glibc module does not set).
func search(_ haystack: UnsafeRawPointer, _ count: Int, _ needle: UnsafeRawPointer, _ needleCount: Int)
    -> UnsafeRawPointer?
{
    guard needleCount > 0, count >= needleCount else { return nil }
    let first = Int32(needle.load(as: UInt8.self))
    var position = haystack
    let last = haystack + (count - needleCount)
    while position <= last {
        guard let hit = memchr(position, first, last - position + 1) else { return nil }
        let candidate = UnsafeRawPointer(hit)
        if memcmp(candidate, needle, needleCount) == 0 { return candidate }
        position = candidate + 1
    }
    return nil
}

func search(_ haystack: UnsafeRawPointer, _ count: Int, _ needle: StaticString) -> UnsafeRawPointer? {
    search(haystack, count, UnsafeRawPointer(needle.utf8Start), needle.utf8CodeUnitCount)
}
