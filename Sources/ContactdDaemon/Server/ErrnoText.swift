import Glibc

/// An `errno` in plain words, without its number: what every message of the daemon says of a
/// failed system call (the socket file, snapshots, the fast lane, the API's connections).
enum ErrnoText {
    static func plain(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such file or directory"
        case EACCES, EPERM: "permission denied"
        case ENOSPC: "no space left on the device"
        case EROFS: "the file system is read-only"
        case ENOMEM: "out of memory"
        case EADDRINUSE: "the address is in use"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}
