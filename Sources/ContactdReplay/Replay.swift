import ContactdCore

/// The policies a trace can be replayed through: contactd's own cache, and the published ones it
/// is measured against.
package enum PolicyName: String, CaseIterable, Sendable {
    case contactd
    case lru
    case sieve
    case s3fifo
    case arc
    case twoQ = "2q"
    case wtinylfu

    package func make(capacity: Int) -> any ReplayPolicy {
        switch self {
        case .contactd: ContactCachePolicy(capacity: capacity)
        case .lru: LRUPolicy(capacity: capacity)
        case .sieve: SievePolicy(capacity: capacity)
        case .s3fifo: S3FIFOPolicy(capacity: capacity)
        case .arc: ARCPolicy(capacity: capacity)
        case .twoQ: TwoQPolicy(capacity: capacity)
        case .wtinylfu: WTinyLFUPolicy(capacity: capacity)
        }
    }
}

/// Replays traces through policies and counts hits.
package enum Replay {
    /// The first key of the one-time keys a scanning client asks for (`mixScan`): above any
    /// 32-bit trace key, and far from the small 64-bit ones.
    static let scanKeys: UInt64 = 0x5CA0_0000_0000_0000

    /// Hits among the trace's own accesses, with `mixScan` one-time keys asked for after each.
    package static func hits(_ trace: [UInt64], through policy: any ReplayPolicy, mixScan: Int = 0) -> Int {
        var hits = 0
        var scanKey = scanKeys
        for key in trace {
            if policy.access(key) { hits += 1 }
            for _ in 0..<mixScan {
                _ = policy.access(scanKey)
                scanKey &+= 1
            }
        }
        return hits
    }

    /// The capacity, in keys, that is `fraction` of `distinctKeys` (at least 1).
    package static func capacity(fraction: Double, distinctKeys: Int) -> Int {
        max(1, Int((fraction * Double(distinctKeys)).rounded()))
    }
}

/// contactd's own cache (`ContactCache`, the policy and data structures the daemon ships), each
/// key a contact of one fixed size, bounded by entries only.
package final class ContactCachePolicy: ReplayPolicy {
    /// Bytes of each contact's JSON.
    package static let contactBytes = 160
    package let cache: ContactCache

    package init(capacity: Int) {
        var configuration = CacheConfiguration()
        configuration.maxEntries = capacity
        configuration.maxBytes = Int.max
        configuration.ttl = .seconds(1 << 40)
        configuration.negativeTTL = .seconds(1 << 40)
        cache = ContactCache(configuration: configuration)
    }

    package func access(_ key: UInt64) -> Bool {
        let id = ContactID(String(key))!
        if cache.read(.id(id), { _ in true }) != nil { return true }
        let head = #"{"id":"\#(id.rawValue)","name":""#
        let json =
            Array(head.utf8) + Array(repeating: UInt8(ascii: "x"), count: Self.contactBytes - head.utf8.count - 2)
            + Array(#""}"#.utf8)
        cache.insert(.contact(APIContact(json: json, id: id, phoneNumber: nil)), for: .id(id))
        return false
    }
}
