import ContactdProtocol
import Foundation
import Glibc
import NIOConcurrencyHelpers

/// The rules every client connection is held to, whichever path serves it: the fast lane
/// consults them for the connections on its loops, `ConnectionHandler` and `SocketServer` for the
/// ones on NIO.
struct ConnectionRules: Sendable {
    /// Longest request line in bytes, newline excluded (a trailing `\r` counts).
    var maxLineBytes: Int
    /// Close a connection silent this long with no answer owed; `.zero` = never.
    var idleTimeout: Duration
    /// Close a connection whose started line is not finished this long after; `.zero` = never.
    var partialLineTimeout: Duration
    /// Peers allowed by uid and by primary gid (SO_PEERCRED); a reload may change them.
    let allowLists: AllowLists

    /// Whether peers are checked at all.
    var checksPeers: Bool { allowLists.current.checksPeers }

    /// Whether `peer` may use the daemon: root always, else a uid or primary gid on the lists.
    func allows(_ peer: PeerCredentials) -> Bool { allowLists.current.allows(peer) }

    /// The content of one line as framed (`LineFramer`'s rule): without a trailing `\r`; `nil`
    /// for a blank line, which is skipped.
    static func content(of line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var end = line.count
        if end > 0, line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let content = UnsafeRawBufferPointer(rebasing: line[..<end])
        return LineFramer.isBlank(content) ? nil : content
    }
}

/// The peers allowed by uid and by primary gid; both lists empty: anyone the socket file's mode
/// lets in. Checked when a connection is accepted, so a reload (`set`) holds for new connections;
/// open ones stay.
final class AllowLists: Sendable {
    struct Lists: Sendable {
        var uids: Set<UInt32>
        var gids: Set<UInt32>

        var checksPeers: Bool { !uids.isEmpty || !gids.isEmpty }

        func allows(_ peer: PeerCredentials) -> Bool {
            !checksPeers || peer.uid == 0 || uids.contains(peer.uid) || gids.contains(peer.gid)
        }
    }

    private let lists: NIOLockedValueBox<Lists>

    init(uids: [UInt32], gids: [UInt32]) {
        lists = NIOLockedValueBox(Lists(uids: Set(uids), gids: Set(gids)))
    }

    var current: Lists { lists.withLockedValue { $0 } }

    func set(uids: [UInt32], gids: [UInt32]) {
        lists.withLockedValue { $0 = Lists(uids: Set(uids), gids: Set(gids)) }
    }
}

/// `struct ucred` from `<sys/socket.h>` (Glibc's Swift module hides it behind `_GNU_SOURCE`):
/// what `getsockopt(SO_PEERCRED)` fills in for a Unix socket peer. Same layout: three 32-bit fields.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    /// `SO_PEERCRED` on Linux (asm-generic/socket.h).
    static let optionName: CInt = 17

    /// The credentials of the peer connected to `descriptor`; `nil` if the kernel will not say.
    init?(of descriptor: Int32) {
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(descriptor, SOL_SOCKET, Self.optionName, &self, &length) == 0 else { return nil }
    }

    init() {}
}

extension AllowLists {
    /// Why allow lists cannot work in this process's user namespace, or `nil` when they can.
    ///
    /// `SO_PEERCRED` gives a peer's ids as this namespace sees them. Under systemd's
    /// `PrivateUsers=yes` (the shipped unit) only root and the service's own user are mapped:
    /// every other client appears as 65534, so `--allow-uid 1000` would refuse every real user
    /// and allowing 65534 would allow them all. Only an identity map (`0 0 4294967295`) tells
    /// clients apart.
    static func unusableReason(uidMap: String? = try? String(contentsOfFile: "/proc/self/uid_map", encoding: .utf8))
        -> String?
    {
        guard let uidMap else { return nil }  // no /proc: nothing to say against them
        let lines = uidMap.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        if lines.count == 1, lines[0] == ["0", "0", "4294967295"] { return nil }
        return
            "allow lists cannot work in this user namespace (systemd's PrivateUsers=): every client but root appears as uid 65534; let the socket's group decide who may connect (contactd-clients), or add PrivateUsers=no to the service in a drop-in (docs/security.md)"
    }
}
