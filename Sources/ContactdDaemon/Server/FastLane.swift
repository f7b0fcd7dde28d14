import CLinux
import ContactdProtocol
import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Plain cache hits served by hand-written `epoll` loops beside SwiftNIO; everything else is
/// handed to NIO together with the connection.
///
/// Why by hand: with a hit costing contactd about 1 µs of its own work, SwiftNIO's per-event
/// machinery around it (the readable event, a pipeline hop, `channelReadComplete`, the flush
/// through `PendingWritesManager`, the channel's lifecycle checks) was most of the rest: at
/// 50 connections × 1 the daemon spent about 6 µs of CPU per request against Redis's 4.1, half
/// of it in the kernel's `read` and `write` that both do (docs/benchmarks.md, "Where the time goes").
/// This loop does only those two system calls, the scan and the cache read per request.
///
/// Each loop is a thread with its own epoll set; all of them accept from the listening socket
/// (`EPOLLEXCLUSIVE` wakes one). A connection stays on its loop while every complete line it sends
/// is a `contact.get` the cache answers at once (a fresh hit or a cached not-found) and its
/// replies go out in one write. The first time that does not hold — another method, a miss, a
/// malformed, unusual or over-long line, a read that ends mid-line, a full socket buffer, a peer
/// the allow lists refuse, the connection limit, the daemon draining — the descriptor, the replies
/// not yet written and the bytes not yet handled go to a `ConnectionHandler` on NIO, which serves
/// the connection from then on exactly as one it accepted itself. So every rule lives in one
/// place, NIO's, except three that this loop keeps for its own connections: the connection count
/// (`ConnectionRegistry`), the peer allow lists (checked on accept) and the idle timeout (swept
/// here). A connection never comes back.
final class FastLane: Sendable {
    /// What NIO takes over: the connection's descriptor, replies not yet written, bytes not yet
    /// handled, and whether the connection already counts against the limit.
    struct HandOver: Sendable {
        var descriptor: Int32
        var unfinished: ConnectionHandler.Unfinished
        /// `false`: NIO must still check the peer and the connection limit, as for a connection
        /// it accepted.
        var admitted: Bool
        fileprivate var gauge: HandOverGauge

        /// NIO has set the connection up (or failed to): call exactly once.
        func settled() { gauge.pending.subtract(1, ordering: .relaxed) }
    }

    /// Hand-overs NIO has not set up yet. The lane accepts no faster than NIO takes connections
    /// over. Without a bound, clients that connect, send a miss and hang up in a loop (the soak
    /// test's "abrupt" clients) were accepted at the lane's pace and queued for NIO: the daemon ran
    /// out of descriptors (20,000 open) within seconds. With a bound of 64, those connections
    /// still filled the connection limit while waiting for their misses, and the other clients'
    /// hits fell from 27,000 to 7,800 with four hit clients and two such (release build; SwiftNIO
    /// alone: 27,200).
    /// With 4 (about what NIO's own accept takes per loop iteration) it is 20,000–27,400: the lane
    /// then accepts about as NIO itself would when connections leave it.
    fileprivate final class HandOverGauge: Sendable {
        let pending = Atomic<Int>(0)
        static let limit = 4
    }

    private let loops: [Loop]

    /// - Parameters:
    ///   - listener: the listening socket (non-blocking); the caller keeps owning it.
    ///   - handOver: gives a connection to NIO; called on a loop's thread.
    init(
        listener: Int32,
        loopCount: Int,
        dispatcher: RequestDispatcher,
        registry: ConnectionRegistry,
        configuration: DaemonConfiguration,
        handOver: @escaping @Sendable (HandOver) -> Void
    ) throws {
        var loops: [Loop] = []
        let gauge = HandOverGauge()
        for index in 0..<max(1, loopCount) {
            loops.append(
                try Loop(
                    index: index,
                    exclusive: loopCount > 1,
                    listener: listener,
                    dispatcher: dispatcher,
                    registry: registry,
                    configuration: configuration,
                    gauge: gauge,
                    handOver: handOver
                )
            )
        }
        self.loops = loops
        for loop in loops { loop.siblings = loops }
    }

    func start() {
        for loop in loops {
            let thread = Thread { loop.run() }
            thread.name = "contactd-fastlane-\(loop.index)"
            thread.start()
        }
    }

    /// Stops accepting on every loop; returns once none will touch the listening socket again.
    func stopAccepting() async {
        for loop in loops { await loop.send(.stopAccepting) }
    }

    /// Returns once every loop has run a no-op command (the watchdog's liveness probe); never, if
    /// one is wedged.
    func answer() async {
        for loop in loops { await loop.send(.ping) }
    }

    /// Closes every connection still on a loop (they owe no replies: hits are answered before
    /// the next read) and ends the loops; returns once they have.
    func closeAll() async {
        for loop in loops { await loop.send(.closeAll) }
    }
}

extension FastLane {
    fileprivate enum Command: Sendable {
        case stopAccepting
        case closeAll
        case ping
        /// Serve this connection, accepted and admitted by another loop.
        case adopt(Int32, acceptedAt: Int64)
    }

    /// One loop. Its mutable state is touched only by its own thread (`run()`); other threads
    /// only `post` commands, which go through a lock and an eventfd.
    fileprivate final class Loop: @unchecked Sendable {
        let index: Int
        private let epollFD: Int32
        private let wakeFD: Int32
        private let listener: Int32
        private let exclusive: Bool
        private let dispatcher: RequestDispatcher
        private let registry: ConnectionRegistry
        private let handOverToNIO: @Sendable (HandOver) -> Void
        private let gauge: HandOverGauge
        private let maxLineBytes: Int
        private let checksPeers: Bool
        private let allowUIDs: Set<UInt32>
        private let allowGIDs: Set<UInt32>
        /// Idle timeout in nanoseconds; 0 = none.
        private let idleNanos: Int64
        // A pthread mutex (not `Synchronization.Mutex`, which ThreadSanitizer does not model; security.md).
        private let mailbox = NIOLockedValueBox(Mailbox())
        /// All loops, this one included; set before they start, read-only after.
        fileprivate var siblings: [Loop] = []
        /// The loop the next accepted connection goes to (round robin, so that a burst of
        /// connections accepted by one loop is spread over all of them, as NIO spreads its own).
        private var nextLoop = 0

        private struct Mailbox {
            var commands: [(Command, CheckedContinuation<Void, Never>?)] = []
            var ended = false
        }

        // The loop thread's own state.
        /// Connections on this loop and when each last sent something (monotonic ns).
        private var lastRead: [Int32: Int64] = [:]
        private var accepting = true
        /// Set when accepting failed for want of descriptors or memory: accept again after it.
        private var acceptPausedUntil: Int64?
        private var nextSweep: Int64 = 0
        private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        private var output = ReplyBytes(capacity: 64 << 10)

        init(
            index: Int,
            exclusive: Bool,
            listener: Int32,
            dispatcher: RequestDispatcher,
            registry: ConnectionRegistry,
            configuration: DaemonConfiguration,
            gauge: HandOverGauge,
            handOver: @escaping @Sendable (HandOver) -> Void
        ) throws {
            self.index = index
            self.gauge = gauge
            self.exclusive = exclusive
            self.listener = listener
            self.dispatcher = dispatcher
            self.registry = registry
            self.handOverToNIO = handOver
            self.maxLineBytes = configuration.limits.maxLineBytes
            self.allowUIDs = Set(configuration.socket.allowUIDs)
            self.allowGIDs = Set(configuration.socket.allowGIDs)
            self.checksPeers = !configuration.socket.allowUIDs.isEmpty || !configuration.socket.allowGIDs.isEmpty
            self.idleNanos = Int64(configuration.limits.idleTimeout * 1e9)
            epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
            wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            guard epollFD >= 0, wakeFD >= 0 else {
                if epollFD >= 0 { close(epollFD) }
                if wakeFD >= 0 { close(wakeFD) }
                // The buffers are freed by deinit, which runs for an object this far initialised.
                throw ConfigurationError("cannot create the fast path's epoll set (errno \(errno))")
            }
            watch(wakeFD, events: EPOLLIN.rawValue)
            watch(listener, events: EPOLLIN.rawValue | (exclusive ? EPOLLEXCLUSIVE.rawValue : 0))
        }

        deinit {
            readBuffer.deallocate()
            output.deallocate()
        }

        // MARK: Commands from other threads

        /// Runs `command` on the loop's thread; returns when it is done.
        func send(_ command: Command) async {
            await withCheckedContinuation { continuation in post(command, whenDone: continuation) }
        }

        /// Queues `command` for the loop's thread; `false` if the loop has ended (and will not run it).
        @discardableResult
        private func post(_ command: Command, whenDone: CheckedContinuation<Void, Never>?) -> Bool {
            // The eventfd is written under the lock: the loop closes it under the same lock, so
            // this never writes to a descriptor number that has since been reused.
            let ended = mailbox.withLockedValue { mailbox in
                guard !mailbox.ended else { return true }
                mailbox.commands.append((command, whenDone))
                var one: UInt64 = 1
                _ = write(wakeFD, &one, 8)
                return false
            }
            if ended { whenDone?.resume() }
            return !ended
        }

        // MARK: The loop

        func run() {
            let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 64)
            defer { events.deallocate() }
            var running = true
            nextSweep = Self.now() + sweepInterval
            while running {
                let count = epoll_wait(epollFD, events, 64, waitMilliseconds())
                if count < 0 {
                    if errno == EINTR { continue }
                    break
                }
                let now = Self.now()
                for i in 0..<Int(count) {
                    let fd = contactd_epoll_event_fd(events + i)
                    if fd == wakeFD {
                        running = handleCommands()
                        if !running { break }
                    } else if fd == listener {
                        if accepting { acceptConnections(now: now) }
                    } else if lastRead[fd] != nil {
                        serve(fd, now: now)
                    }
                }
                guard running else { break }
                if let paused = acceptPausedUntil, now >= paused, accepting {
                    acceptPausedUntil = nil
                    watch(listener, events: EPOLLIN.rawValue | (exclusive ? EPOLLEXCLUSIVE.rawValue : 0))
                }
                if idleNanos > 0, now >= nextSweep {
                    closeIdle(now: now)
                    nextSweep = now + sweepInterval
                }
            }
            closeConnections()
            close(epollFD)
            siblings = []  // the loops refer to each other; this breaks the cycle
            let waiting = mailbox.withLockedValue { mailbox in
                mailbox.ended = true
                close(wakeFD)
                defer { mailbox.commands = [] }
                return mailbox.commands
            }
            for (command, continuation) in waiting {
                if case .adopt(let fd, _) = command {
                    close(fd)
                    registry.releaseFastLane()
                }
                continuation?.resume()
            }
        }

        /// Runs the posted commands; `false` when the loop is to end.
        private func handleCommands() -> Bool {
            var counter: UInt64 = 0
            _ = read(wakeFD, &counter, 8)
            let commands = mailbox.withLockedValue { mailbox in
                defer { mailbox.commands = [] }
                return mailbox.commands
            }
            var keepRunning = true
            var finished: [CheckedContinuation<Void, Never>] = []
            for (command, continuation) in commands {
                switch command {
                case .stopAccepting:
                    if accepting {
                        accepting = false
                        if acceptPausedUntil == nil { epoll_ctl(epollFD, EPOLL_CTL_DEL, listener, nil) }
                        acceptPausedUntil = nil
                    }
                    if let continuation { finished.append(continuation) }
                case .ping:
                    if let continuation { finished.append(continuation) }
                case .adopt(let fd, let acceptedAt):
                    lastRead[fd] = acceptedAt
                    watch(fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
                case .closeAll:
                    // Resumed by run() once the connections are closed.
                    keepRunning = false
                    mailbox.withLockedValue { $0.commands.append((command, continuation)) }
                }
            }
            for continuation in finished { continuation.resume() }
            return keepRunning
        }

        /// Idle connections are looked for a few times per idle timeout, at most once a second.
        private var sweepInterval: Int64 { min(max(idleNanos / 4, 10_000_000), 1_000_000_000) }

        private func waitMilliseconds() -> Int32 {
            var deadline: Int64?
            if idleNanos > 0 { deadline = nextSweep }
            if let paused = acceptPausedUntil { deadline = min(deadline ?? paused, paused) }
            guard let deadline else { return -1 }
            return Int32(clamping: max(0, (deadline - Self.now() + 999_999) / 1_000_000))
        }

        // MARK: Accepting

        private func acceptConnections(now: Int64) {
            for _ in 0..<64 {
                guard gauge.pending.load(ordering: .relaxed) < HandOverGauge.limit else {
                    // NIO is behind with the connections given to it: accept again in 1 ms.
                    epoll_ctl(epollFD, EPOLL_CTL_DEL, listener, nil)
                    acceptPausedUntil = now + 1_000_000
                    return
                }
                let fd = contactd_accept(listener)
                if fd < 0 {
                    switch errno {
                    case EINTR, ECONNABORTED: continue
                    case EAGAIN: return
                    default:
                        // Out of descriptors or memory: the pending connection would wake this
                        // loop at once again. Look again in 100 ms.
                        epoll_ctl(epollFD, EPOLL_CTL_DEL, listener, nil)
                        acceptPausedUntil = now + 100_000_000
                        return
                    }
                }
                guard !checksPeers || peerAllowed(fd), registry.admitFastLane() else {
                    // NIO checks again, logs and refuses, as for a connection it accepted.
                    handOver(fd, output: ByteBuffer(), input: ByteBuffer(), admitted: false)
                    continue
                }
                let target = siblings[nextLoop]
                nextLoop = (nextLoop + 1) % siblings.count
                if target === self {
                    lastRead[fd] = now
                    watch(fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
                } else if !target.post(.adopt(fd, acceptedAt: now), whenDone: nil) {
                    close(fd)
                    registry.releaseFastLane()
                }
            }
        }

        /// Whether the peer's credentials are on the allow lists (`SocketServer.peerAllowed`'s rule).
        private func peerAllowed(_ fd: Int32) -> Bool {
            var peer = PeerCredentials()
            var length = socklen_t(MemoryLayout<PeerCredentials>.size)
            guard getsockopt(fd, SOL_SOCKET, PeerCredentials.optionName, &peer, &length) == 0 else { return false }
            return peer.isAllowed(uids: allowUIDs, gids: allowGIDs)
        }

        // MARK: Serving

        private func serve(_ fd: Int32, now: Int64) {
            let count = read(fd, readBuffer.baseAddress, readBuffer.count)
            guard count > 0 else {
                if count < 0, errno == EAGAIN || errno == EINTR { return }
                // End of input, a reset or an error: every request read so far is answered.
                closeConnection(fd)
                return
            }
            lastRead[fd] = now
            // Moved out of the loop object for the read: replies are then appended to a local
            // value, with no exclusivity check on the object per write.
            var out = output
            defer { output = out }
            out.clear()
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[..<count])
            var start = 0
            while start < count {
                guard let newline = memchr(bytes.baseAddress! + start, 0x0A, count - start) else { break }
                let end = bytes.baseAddress!.distance(to: UnsafeRawPointer(newline))
                // LineFramer's rules: the length (with a trailing \r) against the limit, the \r
                // dropped, empty lines skipped.
                var lineEnd = end
                if lineEnd > start, bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                if lineEnd > start {
                    guard end - start <= maxLineBytes,
                        answer(UnsafeRawBufferPointer(rebasing: bytes[start..<lineEnd]), into: &out)
                    else { break }
                }
                start = end + 1
            }
            if start < count {
                giveToNIO(fd, output: out.bytes, input: UnsafeRawBufferPointer(rebasing: bytes[start...]))
                return
            }
            flush(fd, out.bytes)
        }

        /// Appends the reply to one line to `out`; `false` when it is not a plain hit.
        private func answer(_ line: UnsafeRawBufferPointer, into out: inout ReplyBytes) -> Bool {
            guard !dispatcher.status.draining else { return false }
            let request: ContactGetScanner.Request
            if let raw = ContactGetScanner.scanCanonicalRaw(line) {
                switch dispatcher.writeHit(raw: raw, appendingTo: &out) {
                case .wrote: return true
                case .notAHit: return false
                case .unusable: request = ContactGetScanner.Request(raw)
                }
            } else {
                guard let scanned = ContactGetScanner.scanAnyOrder(line) else { return false }
                request = scanned
            }
            guard let key = RequestDispatcher.key(for: request) else { return false }
            return dispatcher.writeHit(for: request, key: key, appendingTo: &out)
        }

        private func flush(_ fd: Int32, _ replies: UnsafeRawBufferPointer) {
            var written = 0
            while written < replies.count {
                let result = Glibc.send(
                    fd,
                    replies.baseAddress! + written,
                    replies.count - written,
                    Int32(MSG_NOSIGNAL)
                )
                if result > 0 {
                    written += result
                } else if result < 0, errno == EINTR {
                    continue
                } else if result < 0, errno == EAGAIN {
                    break
                } else {
                    closeConnection(fd)
                    return
                }
            }
            guard written < replies.count else { return }
            // The client is not reading fast enough: NIO's back-pressure takes it from here.
            giveToNIO(
                fd,
                output: UnsafeRawBufferPointer(rebasing: replies[written...]),
                input: UnsafeRawBufferPointer(start: nil, count: 0)
            )
        }

        private func giveToNIO(_ fd: Int32, output: UnsafeRawBufferPointer, input: UnsafeRawBufferPointer) {
            epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
            lastRead.removeValue(forKey: fd)
            handOver(fd, output: ByteBuffer(bytes: output), input: ByteBuffer(bytes: input), admitted: true)
        }

        private func handOver(_ fd: Int32, output: ByteBuffer, input: ByteBuffer, admitted: Bool) {
            gauge.pending.add(1, ordering: .relaxed)
            handOverToNIO(
                HandOver(
                    descriptor: fd,
                    unfinished: .init(output: output, input: input),
                    admitted: admitted,
                    gauge: gauge
                )
            )
        }

        // MARK: Closing

        private func closeIdle(now: Int64) {
            let idle = lastRead.compactMap { fd, last in now - last >= idleNanos ? fd : nil }
            for fd in idle { closeConnection(fd) }
        }

        private func closeConnection(_ fd: Int32) {
            guard lastRead.removeValue(forKey: fd) != nil else { return }
            close(fd)
            registry.releaseFastLane()
        }

        private func closeConnections() {
            for fd in Array(lastRead.keys) { closeConnection(fd) }
        }

        // MARK: System

        private func watch(_ fd: Int32, events: UInt32) {
            var event = epoll_event()
            event.events = events
            event.data.fd = fd
            epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
        }

        private static func now() -> Int64 {
            var time = timespec()
            clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
            return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
        }
    }

}
