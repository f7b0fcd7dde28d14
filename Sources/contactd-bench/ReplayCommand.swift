import ArgumentParser
import ContactdReplay
import Foundation

/// Replays an access trace through contactd's cache in-process and reports its hit ratio beside
/// LRU's and Belady's optimum (docs/benchmarks.md, "Hit ratios").
struct ReplayTrace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a cache access trace through contactd's cache; compare with LRU and the optimum.",
        discussion: """
            Prints one JSON line per capacity. A capacity is a share of the trace's distinct keys \
            (--capacity-fraction) or a number of entries (--capacity). With --mix-scan R, R one-time \
            keys are asked for after every access of the trace (a scanning client); the ratios are \
            then the trace's own accesses', and the *_without_scan ones are from the same replay \
            without the scan.
            """
    )

    @Option(help: "The trace file (.xz is decompressed with xz).")
    var trace: String
    @Option(help: "cache2k (big-endian 32-bit keys), scarab (big-endian 64-bit) or lines (a key per line).")
    var format = "cache2k"
    @Option(help: "Capacities as shares of the distinct keys, comma-separated.")
    var capacityFraction = "0.001,0.01,0.1"
    @Option(help: "Capacities in entries, comma-separated (instead of --capacity-fraction).")
    var capacity: String?
    @Option(help: "One-time keys asked for after each access of the trace.")
    var mixScan = 0
    @Option(help: "The policy measured: \(PolicyName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var policy = "contactd"
    @Flag(help: "Also replay every other policy and report their hit ratios under \"policies\".")
    var compare = false
    @Option(help: "Exit 1 when the measured hit ratio falls below this at any capacity.")
    var requireHitRatio: Double?

    func validate() throws {
        guard Trace.Format(rawValue: format) != nil else {
            throw ValidationError("--format must be cache2k, scarab or lines")
        }
        guard PolicyName(rawValue: policy) != nil else {
            throw ValidationError(
                "--policy must be one of \(PolicyName.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard mixScan >= 0 else { throw ValidationError("--mix-scan is a count of keys, 0 or more") }
        _ = try capacities(distinctKeys: 1)
    }

    func run() throws {
        let trace: Trace
        do {
            trace = try Trace.read(path: self.trace, format: Trace.Format(rawValue: format)!)
        } catch let error as Trace.ReadError {
            throw ValidationError(error.description)
        }
        let distinct = trace.distinctKeys
        let measured = PolicyName(rawValue: policy)!
        var failed = false
        for capacity in try capacities(distinctKeys: distinct) {
            func ratio(_ name: PolicyName, scan: Int) -> Double {
                let hits = Replay.hits(trace.keys, through: name.make(capacity: capacity), mixScan: scan)
                return trace.keys.isEmpty ? 0 : Double(hits) / Double(trace.keys.count)
            }
            let hits = Replay.hits(trace.keys, through: measured.make(capacity: capacity), mixScan: mixScan)
            let hitRatio = trace.keys.isEmpty ? 0 : Double(hits) / Double(trace.keys.count)
            var line: [String: Any] = [
                "trace": trace.name,
                "policy": measured.rawValue,
                "capacity": capacity,
                "requests": trace.keys.count,
                "hits": hits,
                "hit_ratio": Self.rounded(hitRatio),
                "lru_hit_ratio": Self.rounded(ratio(.lru, scan: mixScan)),
                "optimal_hit_ratio": Self.rounded(
                    Double(Belady.hits(trace.keys, capacity: capacity)) / Double(max(1, trace.keys.count))
                ),
            ]
            if mixScan > 0 {
                line["scan_keys_per_access"] = mixScan
                line["hit_ratio_without_scan"] = Self.rounded(ratio(measured, scan: 0))
                line["lru_hit_ratio_without_scan"] = Self.rounded(ratio(.lru, scan: 0))
            }
            if compare {
                var others: [String: Double] = [:]
                for other in PolicyName.allCases where other != measured && other != .lru {
                    others[other.rawValue] = Self.rounded(ratio(other, scan: mixScan))
                }
                line["policies"] = others
            }
            let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            if let requireHitRatio, hitRatio < requireHitRatio {
                FileHandle.standardError.write(
                    Data(
                        "contactd-bench: hit ratio \(Self.rounded(hitRatio)) at capacity \(capacity) is below the required \(requireHitRatio)\n"
                            .utf8
                    )
                )
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }

    private func capacities(distinctKeys: Int) throws -> [Int] {
        if let capacity {
            let values = capacity.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ ($0 ?? -1) >= 1 }) else {
                throw ValidationError("--capacity is a comma-separated list of entry counts, each at least 1")
            }
            return values.map { $0! }
        }
        let fractions = capacityFraction.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !fractions.isEmpty, fractions.allSatisfy({ $0.map { $0 > 0 && $0 <= 1 } ?? false }) else {
            throw ValidationError("--capacity-fraction is a comma-separated list of shares above 0 and at most 1")
        }
        return fractions.map { Replay.capacity(fraction: $0!, distinctKeys: distinctKeys) }
    }

    private static func rounded(_ value: Double) -> Double {
        (value * 10_000).rounded() / 10_000
    }
}
