import CLinux
import Foundation
import Glibc
import Histogram

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
