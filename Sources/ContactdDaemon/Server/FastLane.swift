import CLinux
import ContactdCore
import ContactdProtocol
import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import PlainErrors
import Synchronization

/// Plain cache hits served by hand-written `epoll` loops beside SwiftNIO; everything else is
/// handed to NIO together with the connection.
///
/// Why by hand: a hit is little work for contactd itself, and SwiftNIO's per-event machinery
/// around it was most of the rest; this loop does only `read`, the hit writer and `send` per
/// request (docs/benchmarks.md, "Where the time goes").
///
/// Each loop is a thread with its own epoll set; all of them accept from the listening socket
/// (`EPOLLEXCLUSIVE` wakes one). A connection stays on its loop while every complete line it sends
/// is a `contact.get` that `HitWriter` answers at once and its replies go out in one write. The
/// first time that does not hold — a miss, another method, a malformed, unusual or over-long line,
/// a read that ends mid-line, a full socket buffer, a peer the allow lists refuse, the connection
/// limit, the daemon draining — the connection goes to NIO with what the lane had not finished
/// (`HandOver`), and NIO serves it from then on as one it accepted itself. A connection never comes
/// back. The lane keeps three of the `ConnectionRules` for its own connections: the line limit
/// (an over-long line is handed over, for NIO to refuse), the peer check on accept and the idle
/// timeout (swept here).
///
/// Who owns a connection's descriptor, at every moment (the owner closes it):
///
/// | moment | owner |
/// |---|---|
/// | accepted, until admitted and placed | the accepting loop |
/// | placed on another loop, in its mailbox | that loop (closed by it if it has ended) |
/// | on a loop (`Loop.connections` holds it) | that loop |
/// | in a `HandOver` given to `FastLaneHost.handOver` | the host, which gives it to NIO |
/// | registered with NIO | the NIO channel (NIO also closes it when registering fails) |
final class FastLane: Sendable {
    /// A connection leaving the lane: its descriptor and what the lane had not finished.
    struct HandOver: Sendable {
        var descriptor: Int32
        /// Replies not yet written: they go out first.
        var unwritten: ByteBuffer
        /// The lookup of a line the lane read but could not answer at once: finish it, do not
        /// read the line again.
        var lookUp: PendingLookup?
        /// Bytes read but not handled, starting with the line the lane could not answer.
        var unread: ByteBuffer
        /// `false`: the connection is not counted yet (the limit was reached, or the peer is
        /// refused), so the host checks it as one NIO accepted itself.
        var admitted: Bool
        /// Where the connection's lookups are counted; `nil` when not admitted (the host finds it).
        var caller: CallerUnits.Tally?
        var gauge: HandOverGauge

        /// The host has set the connection up (or failed to): call exactly once.
        func settled() { gauge.pending.subtract(1, ordering: .relaxed) }
    }

    /// Hand-overs the host has not set up yet. The lane accepts no faster than NIO takes
    /// connections over: without a bound, clients that connect, send a miss and hang up in a loop
    /// were accepted at the lane's pace and queued for NIO until the daemon ran out of
    /// descriptors. 4 is about what NIO's own accept takes per loop iteration (the figures are in
    /// docs/benchmarks.md, "Hand-over bound").
    final class HandOverGauge: Sendable {
        let pending = Atomic<Int>(0)
        static let limit = 4
    }

    private let loops: [Loop]

    /// - Parameters:
    ///   - listener: the listening socket (non-blocking); the caller keeps owning it.
    ///   - host: what the lane asks of the server; called on the loops' threads.
    init(
        listener: Int32,
        loopCount: Int,
        hits: HitWriter,
        rules: ConnectionRules,
        host: any FastLaneHost,
        callers: CallerUnits
    ) throws(FastLaneError) {
        var loops: [Loop] = []
        let gauge = HandOverGauge()
        for index in 0..<max(1, loopCount) {
            loops.append(
                try Loop(
                    index: index,
                    exclusive: loopCount > 1,
                    listener: listener,
                    hits: hits,
                    rules: rules,
                    host: host,
                    gauge: gauge,
                    callers: callers
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

/// What the fast lane asks of the server it runs beside.
protocol FastLaneHost: Sendable {
    /// Counts a connection the lane accepted against the connection limit; `false` when full.
    func admit() -> Bool
    /// Takes a connection off the lane, for good (see `FastLane`'s ownership table).
    func handOver(_ handOver: FastLane.HandOver)
    /// A connection the lane admitted has closed on the lane.
    func release()
    /// Whether the daemon is draining: the lane then answers nothing itself.
    var isDraining: Bool { get }
}

/// The fast lane could not be set up.
struct FastLaneError: Error, CustomStringConvertible {
    /// The `errno` of the failed call.
    let cause: Int32

    var description: String {
        "cannot set up the fast lane's event loops: \(ErrnoText.plain(cause))"
    }
}
