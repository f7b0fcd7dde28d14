import CLinux
import ContactdCore
import ContactdProtocol
import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

// MARK: - One loop of the fast lane: its thread, its epoll set, its connections

extension FastLane {
    /// One loop. Its mutable state is touched only by its own thread (`run()`); other threads
    /// only `post` commands, which go through a lock and an eventfd.
    final class Loop: @unchecked Sendable {
        let index: Int
        let epollFD: Int32
        private let wakeFD: Int32
        private let listener: Int32
        private let exclusive: Bool
        private let hits: HitWriter
        private let rules: ConnectionRules
        let host: any FastLaneHost
        private let gauge: HandOverGauge
        private let callers: CallerUnits
        /// The idle timeout in nanoseconds; 0 = none.
        let idleNanos: Int64
        // A pthread mutex (not `Synchronization.Mutex`, which ThreadSanitizer does not model; security.md).
        private let mailbox = NIOLockedValueBox(Mailbox())
        /// All loops, this one included; set before they start, read-only after.
        var siblings: [Loop] = []
        /// The loop the next accepted connection goes to (round robin, so that a burst of
        /// connections accepted by one loop is spread over all of them, as NIO spreads its own).
        private var nextLoop = 0

        private struct Mailbox {
            var commands: [(Command, CheckedContinuation<Void, Never>?)] = []
            var ended = false
        }

        /// A connection on this loop.
        struct Connection {
            /// When it last sent something (monotonic ns).
            var lastRead: Int64
            /// Where its lookups are counted.
            let caller: CallerUnits.Tally
        }

        // The loop thread's own state.
        var connections: [Int32: Connection] = [:]
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
            hits: HitWriter,
            rules: ConnectionRules,
            host: any FastLaneHost,
            gauge: HandOverGauge,
            callers: CallerUnits
        ) throws(FastLaneError) {
            self.index = index
            self.gauge = gauge
            self.callers = callers
            self.exclusive = exclusive
            self.listener = listener
            self.hits = hits
            self.rules = rules
            self.host = host
            self.idleNanos = rules.idleTimeout.nanoseconds
            epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
            wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            guard epollFD >= 0, wakeFD >= 0 else {
                if epollFD >= 0 { close(epollFD) }
                if wakeFD >= 0 { close(wakeFD) }
                // The buffers are freed by deinit, which runs for an object this far initialised.
                throw FastLaneError(cause: errno)
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
                    } else if connections[fd] != nil {
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
                if case .adopt(let fd, _, _) = command {
                    close(fd)
                    host.release()
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
                case .adopt(let fd, let acceptedAt, let caller):
                    connections[fd] = Connection(lastRead: acceptedAt, caller: caller)
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
                let peer = PeerCredentials(of: fd)
                let allowed = rules.allowLists.current
                guard !allowed.checksPeers || peer.map(allowed.allows) == true, host.admit() else {
                    // The host checks again, logs and refuses, as for a connection NIO accepted.
                    handOver(fd, output: ByteBuffer(), lookUp: nil, input: ByteBuffer(), admitted: false)
                    continue
                }
                let caller = callers.tally(pid: peer?.pid)
                let target = siblings[nextLoop]
                nextLoop = (nextLoop + 1) % siblings.count
                if target === self {
                    connections[fd] = Connection(lastRead: now, caller: caller)
                    watch(fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
                } else if !target.post(.adopt(fd, acceptedAt: now, caller: caller), whenDone: nil) {
                    close(fd)
                    host.release()
                }
            }
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
            guard let slot = connections.index(forKey: fd) else { return }
            connections.values[slot].lastRead = now
            let caller = connections.values[slot].caller
            // Moved out of the loop object for the read: replies are then appended to a local
            // value, with no exclusivity check on the object per write.
            var out = output
            defer { output = out }
            out.clear()
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[..<count])
            // Read once per read: while draining, NIO answers every line (with `shutting_down`).
            let draining = host.isDraining
            var start = 0
            // Lookups answered or started in this read, counted for the caller's unit at once.
            var lookups = 0
            defer { if lookups > 0 { caller.count(lookups) } }
            lines: while start < count {
                guard let newline = memchr(bytes.baseAddress! + start, 0x0A, count - start) else { break }
                let end = bytes.baseAddress!.distance(to: UnsafeRawPointer(newline))
                // An over-long line, or any line while draining: NIO answers it.
                guard end - start <= rules.maxLineBytes, !draining else { break }
                if let line = ConnectionRules.content(of: UnsafeRawBufferPointer(rebasing: bytes[start..<end])) {
                    switch hits.answer(line: line, into: &out) {
                    case .wrote:
                        lookups += 1
                        out.append("\n" as StaticString)
                    case .lookUp(let pending):
                        lookups += 1
                        let rest = UnsafeRawBufferPointer(rebasing: bytes[(end + 1)...])
                        giveToNIO(fd, output: out.bytes, lookUp: pending, input: rest)
                        return
                    case .parse:
                        break lines
                    }
                }
                start = end + 1
            }
            if start < count {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
                giveToNIO(fd, output: out.bytes, lookUp: nil, input: rest)
                return
            }
            flush(fd, out.bytes)
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
                lookUp: nil,
                input: UnsafeRawBufferPointer(start: nil, count: 0)
            )
        }

        private func giveToNIO(
            _ fd: Int32,
            output: UnsafeRawBufferPointer,
            lookUp: PendingLookup?,
            input: UnsafeRawBufferPointer
        ) {
            epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
            let caller = connections.removeValue(forKey: fd)?.caller
            handOver(
                fd,
                output: ByteBuffer(bytes: output),
                lookUp: lookUp,
                input: ByteBuffer(bytes: input),
                admitted: true,
                caller: caller
            )
        }

        private func handOver(
            _ fd: Int32,
            output: ByteBuffer,
            lookUp: PendingLookup?,
            input: ByteBuffer,
            admitted: Bool,
            caller: CallerUnits.Tally? = nil
        ) {
            gauge.pending.add(1, ordering: .relaxed)
            host.handOver(
                HandOver(
                    descriptor: fd,
                    unwritten: output,
                    lookUp: lookUp,
                    unread: input,
                    admitted: admitted,
                    caller: caller,
                    gauge: gauge
                )
            )
        }
    }

}
