import ContactdCore
import ContactdJSON
import ContactdProtocol
import NIOCore

/// Asks a connection to finish what it has and close (sent through the pipeline on shutdown).
struct DrainEvent: Sendable {}

/// Serves one client connection on NIO: splits lines, answers hits at once, misses when they land.
///
/// Runs on the connection's event loop. Responses to pipelined requests are written as they are
/// ready, so a slow miss never holds back a hit behind it; clients match them by `id`. Writes made
/// while handling one read are flushed once, in `channelReadComplete`.
///
/// It is the connection's only handler: line framing (`LineFramer`), the idle timeout and the
/// partial-line timeout are done here rather than by `ByteToMessageHandler`, `IdleStateHandler`
/// and a guard handler of their own, which cost a pipeline hop each per read
/// (docs/benchmarks.md, "One handler per connection").
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What the fast lane had not finished with a connection it gives to NIO.
    struct Unfinished: Sendable {
        /// Replies not yet written: they go out first.
        var output: ByteBuffer
        /// A lookup the lane could not answer at once, already read from the line: it is
        /// finished here, not read again.
        var lookUp: PendingLookup?
        /// Bytes read but not yet handled: read as if they had just arrived.
        var input: ByteBuffer
        /// Where the lane counted the connection's lookups.
        var caller: CallerUnits.Tally?
    }

    let dispatcher: RequestDispatcher
    private let rules: ConnectionRules
    private let maxBatch: Int
    /// Misses (and batches with misses) awaiting the API on this connection. Beyond the limit a
    /// request gets `overloaded` instead of another task: one client cannot queue without bound.
    private let maxInFlight: Int
    private var inFlight = 0
    /// Where the connection is in its life; it only moves forward.
    private var phase = ConnectionPhase.open
    private var reader: LineReader
    /// When the connection last delivered bytes (or was opened).
    private var lastRead = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var partialLineTimer: Scheduled<Void>?
    /// Replies written while handling the current read, sent as one buffer in
    /// `channelReadComplete`: NIO's per-write bookkeeping and an iovec per reply are saved.
    private var output: ByteBuffer?
    private(set) var context: ChannelHandlerContext?
    /// What the fast lane had not finished when it gave this connection up (`FastLane`).
    private var handedOver: Unfinished?
    /// Where this connection's lookups are counted by the caller's systemd unit.
    private let caller: CallerUnits.Tally?

    init(
        dispatcher: RequestDispatcher,
        rules: ConnectionRules,
        maxBatch: Int,
        maxInFlight: Int,
        handedOver: Unfinished? = nil,
        caller: CallerUnits.Tally? = nil
    ) {
        self.handedOver = handedOver
        self.caller = caller
        self.dispatcher = dispatcher
        self.rules = rules
        self.maxBatch = maxBatch
        self.maxInFlight = maxInFlight
        self.reader = LineReader(maxLineBytes: rules.maxLineBytes)
    }

    /// Moves the connection on to `next`, unless it is further along already.
    private func advance(to next: ConnectionPhase) {
        phase = max(phase, next)
    }

    /// Whether a new request is refused with `shutting_down`: this connection or the daemon drains.
    private var isDraining: Bool { phase == .draining || dispatcher.status.draining }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(in: TimeAmount(rules.idleTimeout))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    func channelActive(context: ChannelHandlerContext) {
        if var handedOver {
            // A connection from the fast lane: its unwritten replies go first, then the bytes it
            // had not handled are read as if they had just arrived.
            self.handedOver = nil
            if handedOver.output.readableBytes > 0 {
                prepareOutput(context, room: handedOver.output.readableBytes)
                output!.writeBuffer(&handedOver.output)
            }
            if let pending = handedOver.lookUp { startAsync { dispatcher in await dispatcher.fetch(pending) } }
            if handedOver.input.readableBytes > 0 { receive(handedOver.input) }
            // Handed over while the daemon drains: the drain event may have gone out before this
            // channel was registered.
            if dispatcher.status.draining {
                advance(to: .draining)
                closeIfDone()
            }
            flushIfNeeded()
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data))
    }

    private func receive(_ data: ByteBuffer) {
        guard phase != .closing else { return }
        if rules.idleTimeout > .zero { lastRead = .now() }
        let endsALine = data.readableBytesView.contains(UInt8(ascii: "\n"))
        reader.append(data)
        while phase != .closing, let frame = reader.next() {
            handle(frame)
        }
        if phase == .closing { reader.dropPartialLine() }
        // A read that completes a line restarts the partial-line clock; a read that leaves an
        // unfinished line behind starts it if it is not running. So a client that pipelines
        // steadily is never cut off, and one that trickles a single line is.
        if endsALine {
            partialLineTimer?.cancel()
            partialLineTimer = nil
        }
        if reader.hasPartialLine, partialLineTimer == nil { startPartialLineTimer() }
    }

    private func handle(_ frame: LineFrame) {
        guard let context else { return }
        switch frame {
        case .tooLong:
            // SPEC §3: reply with id null, then close; the framer discards the rest.
            writeLine(RPCResponse.failure(id: .null, error: .requestTooLarge(limit: rules.maxLineBytes)))
            closeAfterWrites()
        case .line(let line):
            // Refusals (draining, too many in flight) need the request's id: the full path gives them.
            guard !isDraining, inFlight < maxInFlight else {
                handle(RPCMessage.decode(line.readableBytesView, maxBatch: maxBatch))
                return
            }
            prepareOutput(context, room: 0)
            let decision = line.withUnsafeReadableBytes { dispatcher.hits.answer(line: $0, into: &output!) }
            switch decision {
            case .wrote:
                caller?.count(1)
                output!.writeInteger(UInt8(ascii: "\n"))
            case .lookUp(let pending):
                caller?.count(1)
                startAsync { dispatcher in await dispatcher.fetch(pending) }
            case .parse: handle(RPCMessage.decode(line.readableBytesView, maxBatch: maxBatch))
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A client that does not read its replies stops being read: the kernel's socket buffers
        // and NIO's high-water mark bound what it can cost us. Writable again means it read some:
        // progress, for the idle timeout.
        let writable = context.channel.isWritable
        if writable, rules.idleTimeout > .zero { lastRead = .now() }
        context.channel.setOption(.autoRead, value: writable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            advance(to: .draining)
            closeIfDone()
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // The client finished sending (shutdown(SHUT_WR)); an unfinished line is dropped,
            // what is pending is answered, then the connection closes.
            advance(to: .inputClosed)
            reader.dropPartialLine()
            partialLineTimer?.cancel()
            partialLineTimer = nil
            closeIfDone()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A connection's failure ends that connection only.
        context.close(promise: nil)
    }

    // MARK: Timers

    /// One timer per connection for the idle timeout, re-armed when it fires rather than on every
    /// read; each read only notes the time.
    private func scheduleIdleCheck(in delay: TimeAmount) {
        guard let context, delay.nanoseconds > 0 else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) { loopBound.value.idleCheck() }
    }

    private func idleCheck() {
        idleTimer = nil
        let idle = TimeAmount(rules.idleTimeout)
        let silent = NIODeadline.now() - lastRead
        guard silent >= idle else {
            scheduleIdleCheck(in: idle - silent)
            return
        }
        // Silent for the idle timeout. Replies it has not read for that long: the client is not
        // reading, and waiting for those writes would keep the connection forever; closed now.
        // Otherwise close once written, unless answers are still owed (then look again after
        // another timeout).
        if let context, !context.channel.isWritable {
            context.close(promise: nil)
        } else if inFlight == 0 {
            closeAfterWrites()
        } else {
            scheduleIdleCheck(in: TimeAmount(rules.idleTimeout))
        }
    }

    private func startPartialLineTimer() {
        guard let context, rules.partialLineTimeout > .zero else { return }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let limit = rules.partialLineTimeout
        partialLineTimer = context.eventLoop.scheduleTask(in: TimeAmount(limit)) {
            let handler = loopBound.value
            handler.partialLineTimer = nil
            let error = RPCError.invalidRequest("line not finished within \(limit.settingText); closing")
            handler.writeLine(RPCResponse.failure(id: .null, error: error))
            handler.closeAfterWrites()
        }
    }

    private func cancelTimers() {
        idleTimer?.cancel()
        idleTimer = nil
        partialLineTimer?.cancel()
        partialLineTimer = nil
    }

    private func handle(_ message: RPCMessage) {
        switch message {
        case .failure(let error):
            writeLine(RPCResponse.failure(id: .null, error: error))
        case .single(let item):
            countLookups(CollectionOfOne(item))
            if let refusal = refusal(for: item) {
                writeLine(refusal)
                return
            }
            dispatch(dispatcher.respond(to: item))
        case .batch(let items):
            countLookups(items)
            handleBatch(items)
        }
    }

    /// Counts the `contact.get` requests among `items` for the caller's unit.
    private func countLookups(_ items: some Collection<RPCItem>) {
        guard let caller else { return }
        let lookups = items.count { item in
            if case .request(let request) = item { return request.method == RPCMethod.contactGet.rawValue }
            return false
        }
        if lookups > 0 { caller.count(lookups) }
    }

    private func dispatch(_ outcome: RequestDispatcher.Outcome) {
        switch outcome {
        case .reply(let bytes):
            if let bytes { writeLine(bytes) }
        case .fetch(let pending):
            startAsync { dispatcher in await dispatcher.fetch(pending) }
        case .invalidate(let params, let id):
            startAsync { dispatcher in await dispatcher.invalidate(params, id: id) }
        case .reload(let id):
            guard let channel = context?.channel else { return }
            startAsync { dispatcher in await dispatcher.reload(id: id, peerUID: await Self.peerUID(of: channel)) }
        }
    }

    /// `shutting_down` while draining, `overloaded` past the in-flight limit; `nil` to go ahead.
    func refusal(for item: RPCItem) -> [UInt8]? {
        guard case .request(let request) = item else { return nil }
        let refusal = refusal(id: request.id)
        if refusal != nil, request.method == RPCMethod.contactGet.rawValue {
            dispatcher.failures.count(isDraining ? .shuttingDown : .overloaded)
        }
        return refusal
    }

    /// The refusal for a request with `id` (`nil`: a notification, refused silently).
    private func refusal(id: JSONValue?) -> [UInt8]? {
        // The daemon-wide flag is set before STOPPING=1 is sent; the per-connection drain event
        // may arrive a little later.
        if isDraining {
            return id.map { RPCResponse.failure(id: $0, error: .shuttingDown) } ?? []
        }
        if inFlight >= maxInFlight {
            return id.map {
                RPCResponse.failure(id: $0, error: .overloaded("too many requests in flight on this connection"))
            } ?? []
        }
        return nil
    }

    /// Runs `work` in a task and writes its reply back on the event loop.
    func startAsync(_ work: @escaping @Sendable (RequestDispatcher) async -> [UInt8]?) {
        guard let context else { return }
        inFlight += 1
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let dispatcher = self.dispatcher
        Task {
            let reply = await work(dispatcher)
            eventLoop.execute {
                loopBound.value.finishAsync(reply)
            }
        }
    }

    private func finishAsync(_ reply: [UInt8]?) {
        inFlight -= 1
        if let reply, phase != .closing { writeLine(reply) }
        flushIfNeeded()
        closeIfDone()
    }

    func writeLine(_ object: [UInt8]) {
        guard let context, !object.isEmpty else { return }
        prepareOutput(context, room: object.count + 1)
        output!.writeBytes(object)
        output!.writeInteger(UInt8(ascii: "\n"))
    }

    /// Makes sure there is an output buffer (kept across read cycles, see `flushIfNeeded`).
    private func prepareOutput(_ context: ChannelHandlerContext, room: Int) {
        if output == nil { output = context.channel.allocator.buffer(capacity: max(2048, room)) }
    }

    private func flushIfNeeded() {
        guard let context, var buffer = output, buffer.readableBytes > 0 else { return }
        // Taken out before writing: a failed write can re-enter this handler (NIO reads EOF on a
        // reset and fires channelReadComplete from inside writeAndFlush), and the inner call must
        // neither send these bytes again nor find the buffer gone when this one resumes.
        output = nil
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        // Keep the buffer for the next read cycle. When the kernel took the whole write, NIO has
        // already let go of its copy and `clear()` keeps the storage: one allocation (and free)
        // less per request without pipelining. Otherwise `clear()` allocates afresh and NIO
        // keeps the old storage until it is written. A buffer grown large (a big batch) is let go.
        guard output == nil, phase != .closing, buffer.capacity <= 64 << 10 else { return }
        buffer.clear()
        output = buffer
    }

    private func closeIfDone() {
        guard phase == .draining || phase == .inputClosed, inFlight == 0 else { return }
        closeAfterWrites()
    }

    /// Closes once every reply written so far has reached the socket.
    private func closeAfterWrites() {
        guard phase != .closing, let context else { return }
        phase = .closing
        if let buffer = output, buffer.readableBytes > 0 {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        output = nil
        let channel = context.channel
        // The empty write completes after all earlier writes, so nothing queued is lost.
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
