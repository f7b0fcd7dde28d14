import Glibc
import Logging

/// The process limits contactd sets for itself at start (docs/security.md, "Descriptors" and
/// "Core dumps"): descriptors enough for every connection it accepts, and no core dumps.
package enum ProcessLimits {
    /// Descriptors kept free beyond the client connections: the listening socket, the API's and
    /// Redis's connections, the metrics listener and its clients, the snapshot's memfd and file,
    /// the journal, NIO's own.
    package static let reservedDescriptors = 128

    /// The soft descriptor limit now (the ready log line shows it).
    package static var descriptorLimit: Int {
        var files = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0 else { return 0 }
        return Int(clamping: files.rlim_cur)  // RLIM_INFINITY is the largest value: Int.max
    }

    /// Raises the soft descriptor limit to the hard one, forbids core dumps (they would hold the
    /// token and every cached contact), and returns the connections to accept:
    /// `maxConnections`, or fewer (with a warning) when the descriptor limit leaves too little room.
    ///
    /// Under the shipped unit `LimitNOFILE=` and `LimitCORE=0` already did both (its system call
    /// filter refuses `setrlimit`); run by hand, this does.
    package static func apply(maxConnections: Int, logger: Logger) -> Int {
        var core = rlimit(rlim_cur: 0, rlim_max: 0)
        if getrlimit(Int32(RLIMIT_CORE.rawValue), &core) == 0, core.rlim_cur != 0 {
            core.rlim_cur = 0
            _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &core)
        }
        var files = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0 else { return maxConnections }
        if files.rlim_cur < files.rlim_max {
            var raised = files
            raised.rlim_cur = files.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { files = raised }
        }
        let soft = Int(clamping: files.rlim_cur)  // RLIM_INFINITY is the largest value: Int.max
        let room = max(1, soft - reservedDescriptors)
        guard maxConnections > room else { return maxConnections }
        logger.warning(
            "--max-connections \(maxConnections) does not fit the descriptor limit of \(soft) (\(reservedDescriptors) are kept for the API, Redis and the daemon itself): accepting at most \(room) connections; raise LimitNOFILE= or lower --max-connections"
        )
        return room
    }
}
