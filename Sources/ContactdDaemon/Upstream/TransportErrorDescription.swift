import AsyncHTTPClient
import Glibc
import NIOCore
import NIOPosix
import NIOSSL
import PlainErrors

/// What went wrong on the way to the API, in plain words for a client's error message and the
/// log: "connection refused", "timed out connecting to the API". Never a library's type names, its
/// internal states or an errno number, and never anything from the request (no headers).
enum TransportErrorDescription {
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as HTTPClientError:
            if error == .connectTimeout { return "timed out connecting to the API" }
            if error == .readTimeout || error == .deadlineExceeded { return "timed out waiting for the API's answer" }
            if error == .remoteConnectionClosed { return "the API closed the connection before answering" }
            return "the HTTP exchange with the API failed"
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return describe(first.error) }
            if error.dnsAError != nil || error.dnsAAAAError != nil {
                return "the API's host name \(error.host) could not be resolved"
            }
            return "could not connect to the API"
        case is SocketAddressError:
            return "the API's host name could not be resolved"
        case let error as IOError:
            return describe(errno: error.errnoCode)
        case let error as NIOSSLError:
            if case .handshakeFailed(let reason) = error, "\(reason)".contains("CERTIFICATE_VERIFY_FAILED") {
                return "the API's TLS certificate could not be verified"
            }
            return "the TLS handshake with the API failed"
        case let error as ChannelError:
            switch error {
            case .connectTimeout: return "timed out connecting to the API"
            default: return "the connection to the API was closed"
            }
        default:
            return "the connection to the API failed"
        }
    }

    private static func describe(errno code: Int32) -> String {
        switch code {
        case ECONNREFUSED: "connection refused"
        case ETIMEDOUT: "timed out connecting to the API"
        case ENETUNREACH, EHOSTUNREACH: "the API's network is unreachable"
        case ECONNRESET, EPIPE: "the connection to the API was reset"
        default: ErrnoText.plain(code)
        }
    }
}
