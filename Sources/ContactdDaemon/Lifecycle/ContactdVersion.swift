/// The daemon's version, sent in `User-Agent` and reported by `daemon.status`.
package enum ContactdVersion {
    package static let current = "0.1.0"
}
