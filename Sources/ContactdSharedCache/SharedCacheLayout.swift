import ContactdCore
import Foundation
import NIOCore
import RedisClient

/// What contactd keeps in Redis and how it reads it back: key names, the entry codec, the
/// invalidation messages and the two scripts that keep "an invalidation is final" fleet-wide.
///
/// Under `--shared-cache-prefix` P, for a key whose suffix is `p:<number>` or `i:<id>` (or
/// `h:<HMAC>` of it when values are encrypted):
///
/// - `P<suffix>`: the API's answer: `<id suffix or -> <Redis ms when stored>\n<payload>`, the
///   payload `2 <expiry unix ms> c <contact JSON>` or `2 <expiry> n` (sealed, bound to the key's
///   name, when encrypted). The head is in clear so that the invalidation script can find the
///   contact's other keys; it holds no number (the id's suffix is an HMAC when encrypted).
/// - `Plock:<suffix>`: the claim on fetching the key (a lease: `<token>`, half a deadline).
/// - `Pinv:<suffix>`: the number of the last invalidation of the key (10 minutes, longer than
///   any lease), and `Pinv-all`: that of the last "invalidate everything".
/// - `Pkeys:<id suffix>`: the names the contact is stored under.
/// - `Pepoch`: how many invalidations the fleet has made; `Phistory`: the newest of them
///   (`<number>:<id>`, newest first, 256 kept); `Pgeneration`: a random name for the data the count
///   belongs to, set by the first host to find none; `Pinvalidate`: the channel.
struct SharedCacheLayout: Sendable {
    let prefix: String
    /// Encrypts values, key names and messages; `nil`: they are stored in clear.
    let seal: SharedCacheSeal?

    /// How long an invalidation mark outlives its invalidation: longer than any claim.
    static let markMilliseconds = 600_000

    var epochKey: String { prefix + "epoch" }
    var generationKey: String { prefix + "generation" }
    var historyKey: String { prefix + "history" }
    /// How many invalidations `Phistory` keeps: a host away for fewer can tell whether the one it
    /// knew last is still the server's (`FleetEpoch`).
    static let historyLength = 256
    var allMarkKey: String { prefix + "inv-all" }
    var channel: String { prefix + "invalidate" }

    func suffix(_ key: ContactKey) -> String {
        let plain: String
        switch key {
        case .phone(let phone): plain = "p:" + phone.e164
        case .id(let id): plain = "i:" + id.rawValue
        }
        return seal.map { "h:" + $0.name(plain) } ?? plain
    }

    func entryKey(_ key: ContactKey) -> String { prefix + suffix(key) }
    func claimKey(_ key: ContactKey) -> String { prefix + "lock:" + suffix(key) }
    func markKey(_ key: ContactKey) -> String { prefix + "inv:" + suffix(key) }
    func keySetKey(idSuffix: String) -> String { prefix + "keys:" + idSuffix }

    /// The patterns `invalidate all` scans: contactd's own entry shapes under the prefix, so a
    /// fleet whose prefix extends this one (`contactd:staging:` beside `contactd:`) is left alone.
    var entryPatterns: [String] {
        let base = Self.globEscaped(prefix)
        return seal == nil ? [base + "p:*", base + "i:*", base + "keys:*"] : [base + "h:*", base + "keys:*"]
    }

    // MARK: Entries

    /// The payload stored under `key` for `value`, valid until `expiry` (unix seconds).
    func payload(_ value: CachedValue, for key: ContactKey, expiry: Double) -> ByteBuffer {
        var bytes = ByteBuffer(string: "2 \(Int64(expiry * 1000)) ")
        switch value {
        case .contact(let contact):
            bytes.writeString("c ")
            bytes.writeBytes(contact.json)
        case .notFound:
            bytes.writeString("n")
        }
        return seal?.seal(bytes, boundTo: entryKey(key)) ?? bytes
    }

    /// The entry stored under `key`, `redisNow` (Redis's clock, ms) giving its age; `nil` for
    /// none, for bytes that are not one, for one sealed for another key, or one past its expiry.
    func decode(_ reply: RESPValue, for key: ContactKey, redisNow: Int64?) -> SharedEntry? {
        guard case .bulkString(var bytes) = reply,
            let newline = bytes.readableBytesView.firstIndex(of: UInt8(ascii: "\n")),
            let head = bytes.readString(length: newline - bytes.readerIndex),
            bytes.readInteger(as: UInt8.self) == UInt8(ascii: "\n"),
            let stamp = head.split(separator: " ").last.flatMap({ Int64($0) })
        else { return nil }
        if let seal {
            guard let plain = seal.open(bytes, boundTo: entryKey(key)) else { return nil }
            bytes = plain
        }
        guard bytes.readString(length: 2) == "2 ",
            let space = bytes.readableBytesView.firstIndex(of: UInt8(ascii: " ")),
            let expiry = bytes.readString(length: space - bytes.readerIndex).flatMap(Int64.init),
            bytes.readInteger(as: UInt8.self) == UInt8(ascii: " "),
            let kind = bytes.readInteger(as: UInt8.self),
            Double(expiry) / 1000 > Date().timeIntervalSince1970
        else { return nil }
        // Both instants on Redis's clock: one host's clock running ahead cannot make an old
        // entry fresh for the fleet.
        let age = max(0, Double((redisNow ?? stamp) - stamp) / 1000)
        switch kind {
        case UInt8(ascii: "n"):
            return SharedEntry(value: .notFound, age: age)
        case UInt8(ascii: "c"):
            guard bytes.readInteger(as: UInt8.self) == UInt8(ascii: " "),
                let contact = try? APIContact(apiBody: bytes.readableBytesView)
            else { return nil }
            return SharedEntry(value: .contact(contact), age: age)
        default:
            return nil
        }
    }

    /// Redis's `TIME` reply in milliseconds.
    static func milliseconds(fromTime reply: RESPValue) -> Int64? {
        guard case .array(let parts) = reply, parts.count == 2,
            let seconds = parts[0].string.flatMap(Int64.init), let micros = parts[1].string.flatMap(Int64.init)
        else { return nil }
        return seconds * 1000 + micros / 1000
    }

    // MARK: Invalidation messages

    /// An invalidation message as read: its epoch, when it was sent, a nonce, and what it
    /// invalidates (`nil` key: everything).
    struct Message: Equatable {
        var epoch: Int64
        /// Unix milliseconds when it was sent.
        var sent: Int64
        var nonce: UInt64
        var key: ContactKey?
    }

    /// A message: `<epoch> <unix ms> <nonce> <key or *>`, sealed (bound to the channel) when
    /// values are. The time and nonce let a host refuse one replayed later (`SharedCache`); an
    /// invalidation's first message has its id as the nonce.
    func message(
        epoch: Int64,
        _ text: String,
        nonce: UInt64 = .random(in: 0...UInt64.max),
        sent: Double = Date().timeIntervalSince1970
    ) -> ByteBuffer {
        let plain = ByteBuffer(string: "\(epoch) \(Int64(sent * 1000)) \(String(nonce, radix: 16)) \(text)")
        return seal?.seal(plain, boundTo: channel) ?? plain
    }

    /// A message as sent; `nil` for garbage or one not sealed with this key.
    func readMessage(_ bytes: ByteBuffer) -> Message? {
        var plain = bytes
        if let seal {
            guard let opened = seal.open(bytes, boundTo: channel) else { return nil }
            plain = opened
        }
        let parts = String(buffer: plain).split(separator: " ", maxSplits: 3).map(String.init)
        guard parts.count == 4, let epoch = Int64(parts[0]), let sent = Int64(parts[1]),
            let nonce = UInt64(parts[2], radix: 16)
        else { return nil }
        let rest = parts[3]
        var message = Message(epoch: epoch, sent: sent, nonce: nonce, key: nil)
        if rest == "*" { return message }
        if rest.hasPrefix("phone:"), let phone = PhoneNumber(String(rest.dropFirst(6))) {
            message.key = .phone(phone)
        } else if rest.hasPrefix("id:"), let id = ContactID(String(rest.dropFirst(3))) {
            message.key = .id(id)
        } else {
            return nil
        }
        return message
    }

    /// One invalidation in `Phistory`: its number and its id.
    struct HistoryEntry: Equatable, Sendable {
        var epoch: Int64
        var id: UInt64
    }

    /// `Phistory`'s entries as read (newest first); ones that do not read are left out.
    static func history(_ reply: RESPValue) -> [HistoryEntry] {
        (reply.array ?? []).compactMap { element in
            let parts = element.string?.split(separator: ":") ?? []
            guard parts.count == 2, let epoch = Int64(parts[0]), let id = UInt64(parts[1], radix: 16) else {
                return nil
            }
            return HistoryEntry(epoch: epoch, id: id)
        }
    }

    // MARK: Scripts

    /// Stores a fetched answer only while its claim is held and none of its keys was invalidated
    /// after the claim was taken (the lease rule). KEYS: claim, the contact's key set (or the
    /// claim again), the invalidate-all mark, n entries, their n marks. ARGV: token, the epoch
    /// when claimed, lifetime ms, the id suffix (or -), n payloads. Returns 1 if stored.
    static let fillScript = """
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1])
        local claimed = tonumber(ARGV[2])
        local all = redis.call('GET', KEYS[3])
        if all and tonumber(all) > claimed then return 0 end
        local n = (#KEYS - 3) / 2
        for i = 1, n do
          local mark = redis.call('GET', KEYS[3 + n + i])
          if mark and tonumber(mark) > claimed then return 0 end
        end
        local t = redis.call('TIME')
        local head = ARGV[4] .. ' ' .. (t[1] * 1000 + math.floor(t[2] / 1000)) .. '\\n'
        for i = 1, n do
          redis.call('SET', KEYS[3 + i], head .. ARGV[4 + i], 'PX', ARGV[3])
          if ARGV[4] ~= '-' then redis.call('SADD', KEYS[2], KEYS[3 + i]) end
        end
        if ARGV[4] ~= '-' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
        return 1
        """

    /// Invalidates keys: every name the contact is stored under goes, with its claim, and gets a
    /// mark with the new epoch so that no fill claimed before lands after. KEYS: epoch, the given
    /// entry names. ARGV: prefix, mark ms, the invalidation's id (hex), the history's length.
    /// Returns {epoch, the first entry found or false}.
    static let invalidateScript = """
        local prefix = ARGV[1]
        local names, seen, first = {}, {}, false
        local function add(name)
          if not seen[name] then seen[name] = true; names[#names + 1] = name end
        end
        local function siblings(idSuffix)
          local set = prefix .. 'keys:' .. idSuffix
          add(prefix .. idSuffix)
          for _, member in ipairs(redis.call('SMEMBERS', set)) do add(member) end
          redis.call('DEL', set)
        end
        for i = 2, #KEYS do
          add(KEYS[i])
          local value = redis.call('GET', KEYS[i])
          if value then
            if not first then first = value end
            local id = string.match(value, '^(%S+) ')
            if id and id ~= '-' then siblings(id) end
          end
          siblings(string.sub(KEYS[i], #prefix + 1))
        end
        local epoch = redis.call('INCR', KEYS[1])
        redis.call('LPUSH', prefix .. 'history', epoch .. ':' .. ARGV[3])
        redis.call('LTRIM', prefix .. 'history', 0, ARGV[4] - 1)
        for _, name in ipairs(names) do
          local suffix = string.sub(name, #prefix + 1)
          redis.call('DEL', name, prefix .. 'lock:' .. suffix)
          redis.call('SET', prefix .. 'inv:' .. suffix, epoch, 'PX', ARGV[2])
        end
        return {epoch, first}
        """

    /// Invalidates everything: a new epoch, and a mark that voids every claim taken before it.
    /// KEYS: epoch, the invalidate-all mark, the history. ARGV: mark ms, the invalidation's id
    /// (hex), the history's length. Returns the epoch.
    static let invalidateAllScript = """
        local epoch = redis.call('INCR', KEYS[1])
        redis.call('SET', KEYS[2], epoch, 'PX', ARGV[1])
        redis.call('LPUSH', KEYS[3], epoch .. ':' .. ARGV[2])
        redis.call('LTRIM', KEYS[3], 0, ARGV[3] - 1)
        return epoch
        """

    /// `text` as a glob pattern that matches only itself.
    static func globEscaped(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if "*?[]\\".contains(character) { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
