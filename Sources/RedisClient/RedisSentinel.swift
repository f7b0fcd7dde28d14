import NIOCore

/// Where the sentinels that watch a Redis primary listen, read from a URL:
/// `sentinel://[user@]host:port[,host:port…]/<primary-name>[?db=N]`, or `sentinels://…` for TLS
/// to the sentinels and the servers they name alike. The user is the data servers' ACL user.
package struct SentinelAddress: Sendable, Equatable, CustomStringConvertible {
    package var sentinels: [(host: String, port: Int)]
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    package var primaryName: String
    package var database: Int
    package var user: String?
    package var tls: Bool

    /// - Throws: a message naming what is wrong with `text`, in plain words.
    package init(parsing text: String) throws(RedisAddressError) {
        var rest: Substring
        if text.hasPrefix("sentinel://") {
            tls = false
            rest = text.dropFirst(11)
        } else if text.hasPrefix("sentinels://") {
            tls = true
            rest = text.dropFirst(12)
        } else {
            throw RedisAddressError("'\(text)' is not a sentinel:// or sentinels:// address")
        }
        if let query = rest.firstIndex(of: "?") {
            let option = rest[rest.index(after: query)...]
            guard option.hasPrefix("db="), let number = Int(option.dropFirst(3)), number >= 0 else {
                throw RedisAddressError("'\(text)': the only option after ? is db=N")
            }
            database = number
            rest = rest[..<query]
        } else {
            database = 0
        }
        guard let slash = rest.firstIndex(of: "/"), rest.index(after: slash) < rest.endIndex else {
            throw RedisAddressError("'\(text)' needs the primary's name after the sentinels, e.g. /mymaster")
        }
        primaryName = String(rest[rest.index(after: slash)...])
        guard !primaryName.contains("/"), !primaryName.contains(" ") else {
            throw RedisAddressError("'\(text)': '\(primaryName)' is not a primary's name")
        }
        rest = rest[..<slash]
        if let at = rest.lastIndex(of: "@") {
            guard !rest[..<at].contains(":") else {
                throw RedisAddressError("'\(text)' has a password in it; passwords never come from a URL")
            }
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        } else {
            user = nil
        }
        sentinels = []
        for part in rest.split(separator: ",", omittingEmptySubsequences: false) {
            // Each sentinel parses as a Redis address of its own, so a host reads the same in both.
            let one = try RedisAddress(parsing: "redis://" + part)
            guard case .tcp(let host, let port) = one.endpoint, part.contains(":") else {
                throw RedisAddressError("'\(text)': each sentinel needs host:port ('\(part)' has no port)")
            }
            sentinels.append((host, port))
        }
        guard !sentinels.isEmpty else { throw RedisAddressError("'\(text)' names no sentinel") }
    }

    /// The sentinel at `index`, as an address to connect to.
    package func sentinel(_ index: Int) -> RedisAddress {
        RedisAddress(endpoint: .tcp(host: sentinels[index].host, port: sentinels[index].port), tls: tls)
    }

    /// A data server the sentinels named, as an address to connect to.
    package func server(host: String, port: Int) -> RedisAddress {
        RedisAddress(endpoint: .tcp(host: host, port: port), tls: tls, database: database, user: user)
    }

    package var description: String {
        let hosts = sentinels.map { ($0.host.contains(":") ? "[\($0.host)]" : $0.host) + ":\($0.port)" }
        return "\(tls ? "sentinels" : "sentinel")://\(user.map { "\($0)@" } ?? "")\(hosts.joined(separator: ","))/"
            + primaryName + (database == 0 ? "" : "?db=\(database)")
    }

    package static func == (a: SentinelAddress, b: SentinelAddress) -> Bool {
        a.description == b.description
    }
}

/// Asking Redis Sentinel where the primary is, and hearing when it moves.
package enum RedisSentinel {
    /// The primary the sentinels name, connected and checked with `ROLE` to be one: a sentinel that
    /// is down, slow, or names a replica (stale, or lying) is passed over for the next.
    ///
    /// - Parameters:
    ///   - first: the sentinel to ask first (the one that answered last time).
    ///   - connect: connects to a data server the sentinels named (with its password and TLS).
    /// - Returns: the connection, its address, and the sentinel that named it.
    /// - Throws: `.cannotConnect` with every sentinel's reason, when none named a primary.
    package static func findPrimary(
        _ address: SentinelAddress,
        sentinelPassword: String?,
        first: Int,
        timeout: TimeAmount,
        certificateAuthorities: String?,
        connect: (RedisAddress) async throws(RedisError) -> RedisConnection
    ) async throws(RedisError) -> (connection: RedisConnection, server: RedisAddress, sentinel: Int) {
        var reasons: [String] = []
        for step in 0..<address.sentinels.count {
            let index = (first + step) % address.sentinels.count
            let sentinelAddress = address.sentinel(index)
            let named: RedisAddress
            do {
                let sentinel = try await RedisConnection.connect(
                    to: sentinelAddress,
                    password: sentinelPassword,
                    timeout: timeout,
                    certificateAuthorities: certificateAuthorities
                )
                let reply: RESPValue
                do {
                    reply = try await sentinel.send(
                        ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", .text(address.primaryName)],
                        timeout: timeout
                    )
                } catch {
                    await sentinel.close()
                    throw error
                }
                await sentinel.close()
                guard case .array(let parts) = reply, parts.count == 2, let host = parts[0].string,
                    let port = parts[1].string.flatMap({ Int($0) })
                else {
                    reasons.append(
                        "sentinel \(hostPort(sentinelAddress)) knows no primary named '\(address.primaryName)'"
                    )
                    continue
                }
                named = address.server(host: host, port: port)
            } catch {
                reasons.append("sentinel \(hostPort(sentinelAddress)): \(error)")
                continue
            }
            do {
                let connection = try await connect(named)
                let role: RESPValue
                do {
                    role = try await connection.send(["ROLE"], timeout: timeout)
                } catch {
                    await connection.close()
                    throw error
                }
                guard role.array?.first?.string == "master" else {
                    await connection.close()
                    reasons.append(
                        "sentinel \(hostPort(sentinelAddress)) named \(hostPort(named)), which is not a primary (\(role.array?.first?.string ?? "no role"))"
                    )
                    continue
                }
                return (connection, named, index)
            } catch {
                reasons.append("sentinel \(hostPort(sentinelAddress)) named \(hostPort(named)): \(error)")
            }
        }
        throw .cannotConnect("no sentinel named a primary that answers (\(reasons.joined(separator: "; ")))")
    }

    /// A `+switch-master` message for `primaryName`: the new primary's host and port.
    package static func switchedPrimary(_ push: RESPValue, primaryName: String) -> (host: String, port: Int)? {
        guard case .push(let parts) = push, parts.count == 3, parts[0].string == "message",
            parts[1].string == "+switch-master", let text = parts[2].string
        else { return nil }
        // "<name> <old ip> <old port> <new ip> <new port>"
        let words = text.split(separator: " ")
        guard words.count == 5, words[0] == primaryName, let port = Int(words[4]) else { return nil }
        return (String(words[3]), port)
    }

    /// `host:port`, as the sentinels say it.
    package static func hostPort(_ address: RedisAddress) -> String {
        switch address.endpoint {
        case .tcp(let host, let port): (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        case .unix(let path): path
        }
    }
}

extension RESPValue {
    /// The elements of an array reply.
    package var array: [RESPValue]? {
        if case .array(let elements) = self { elements } else { nil }
    }
}

/// Where to find Redis: one server, or the primary a set of sentinels watches.
package enum RedisTarget: Sendable, Equatable, CustomStringConvertible {
    case server(RedisAddress)
    case sentinels(SentinelAddress)

    /// - Throws: a message naming what is wrong with `text`, in plain words.
    package init(parsing text: String) throws(RedisAddressError) {
        if text.hasPrefix("sentinel://") || text.hasPrefix("sentinels://") {
            self = .sentinels(try SentinelAddress(parsing: text))
        } else {
            self = .server(try RedisAddress(parsing: text))
        }
    }

    package var description: String {
        switch self {
        case .server(let address): address.description
        case .sentinels(let address): address.description
        }
    }
}
