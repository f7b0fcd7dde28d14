/// A connection's life: `open`, then (once the daemon drains or the client shuts its side)
/// finishing what it owes, then `closing`. Later events never move it back (`advance`).
enum ConnectionPhase: Comparable {
    /// Reading and answering.
    case open
    /// The daemon drains: requests still read get `shutting_down`; the connection closes
    /// once the answers it owes are written.
    case draining
    /// The client shut its side: nothing more to read; the connection closes once the
    /// answers it owes are written.
    case inputClosed
    /// Closing: nothing more is read or written.
    case closing
}
