import CLinux
import Foundation
import Glibc
import PlainErrors

/// The socket's path on disk: checks before binding, permissions after, removal at exit.
///
/// SPEC §4 forbids unlinking a socket the daemon did not create, so unlike Hummingbird's
/// `cleanupExistingSocketFile: true` a leftover file is removed only when nobody listens on it.
struct SocketFile {
    let path: String
    /// The setting that named `path`, for messages.
    var flag = "--socket"

    /// Makes `path` free to bind: creates the parent directory if missing, removes a stale socket
    /// (connect is refused), and refuses a live one or a file that is not a socket.
    func prepare() throws(ConfigurationError) {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory,
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o755]
                )
            } catch {
                throw ConfigurationError("\(flag): cannot create directory \(directory)")
            }
        }
        var directoryInfo = stat()
        if stat(directory.isEmpty ? "." : directory, &directoryInfo) == 0,
            directoryInfo.st_mode & S_IWOTH != 0, directoryInfo.st_mode & S_ISVTX == 0
        {
            // Anyone could replace our socket with theirs and read every client's requests.
            throw ConfigurationError(
                "\(flag): \(directory) is writable by everyone and not sticky; choose a private directory"
            )
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigurationError("\(flag): \(path) exists and is not a socket; not touching it")
        }
        if Self.someoneListens(at: path) {
            throw ConfigurationError("\(flag): another process is already listening on \(path)")
        }
        unlink(path)
    }

    /// Applies the mode and, if given, the group to the freshly bound socket file.
    func applyPermissions(mode: UInt32, group: String?) throws(ConfigurationError) {
        if let group {
            guard let entry = getgrnam(group) else {
                throw ConfigurationError("--socket-group: no group named '\(group)'")
            }
            guard chown(path, uid_t.max, entry.pointee.gr_gid) == 0 else {
                throw ConfigurationError(
                    "--socket-group: cannot give \(path) to group '\(group)': \(ErrnoText.plain(errno))"
                )
            }
        }
        guard chmod(path, mode_t(mode)) == 0 else {
            throw ConfigurationError("--socket-mode: cannot chmod \(path): \(ErrnoText.plain(errno))")
        }
    }

    /// Creates a non-blocking listening socket bound to `path` (which `prepare()` made free).
    func bindListener(backlog: Int32) throws(ConfigurationError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConfigurationError("\(flag): cannot create a socket: \(ErrnoText.plain(errno))") }
        guard var address = Self.address(path) else {
            close(fd)
            throw ConfigurationError("\(flag): \(path) is too long for a Unix socket path")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let error = errno
            close(fd)
            throw ConfigurationError("\(flag): cannot listen on \(path): \(ErrnoText.plain(error))")
        }
        return fd
    }

    /// The inode of the file at `path` now, to recognise our own socket at exit.
    func inode() -> UInt? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return UInt(info.st_ino)
    }

    /// Removes the socket file if it is still the one we created.
    func remove(ifInode expected: UInt?) {
        guard let expected, inode() == expected else { return }
        unlink(path)
    }

    private static func someoneListens(at path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard var address = address(path) else { return false }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    private static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return address
    }
}
