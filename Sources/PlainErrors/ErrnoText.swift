import Glibc

/// An `errno` in plain words, without its number: what every message says of a failed system
/// call (the socket file, snapshots, the fast lane, the API's and Redis's connections).
package enum ErrnoText {
    package static func plain(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such file or directory"
        case EACCES, EPERM: "permission denied"
        case ENOSPC: "no space left on the device"
        case EROFS: "the file system is read-only"
        case ENOMEM: "out of memory"
        case EADDRINUSE: "the address is in use"
        case ECONNREFUSED: "connection refused"
        case ETIMEDOUT: "timed out"
        case ECONNRESET, EPIPE: "the connection was reset"
        case ENETUNREACH, EHOSTUNREACH: "the network is unreachable"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}
