import CLinux
import Foundation
import Glibc
import Histogram

/// What the load generator speaks.
enum WireProtocol: String, CaseIterable, Sendable {
    /// contactd's newline-delimited JSON-RPC `contact.get`.
    case json
    /// Redis `GET <phone>` (RESP2), for the side-by-side run.
    case resp
    /// `POST /get-contact` straight to the (fake) API: the baseline for the miss path.
    case http
}

/// Which keys requests ask for.
struct KeyPicker {
    enum Distribution: Sendable {
        case one
        case uniform(Int)
        case zipf(Int, Double)
        /// 0, 1, 2, … in order (cache warming).
        case sequential(Int)
    }

    private var state: UInt64
    private let distribution: Distribution
    private let cdf: [Double]
    private var nextSequential = 0
    /// Every request with probability `missRatio` asks for a key never asked before.
    private let missRatio: Double
    private var nextMiss: Int

    init(_ distribution: Distribution, missRatio: Double, seed: UInt64, missBase: Int) {
        self.distribution = distribution
        self.state = seed | 1
        self.missRatio = missRatio
        self.nextMiss = missBase
        if case .zipf(let n, let s) = distribution {
            var weights = (1...n).map { 1 / pow(Double($0), s) }
            let total = weights.reduce(0, +)
            var running = 0.0
            for i in weights.indices {
                running += weights[i] / total
                weights[i] = running
            }
            cdf = weights
        } else {
            cdf = []
        }
    }

    /// xorshift64*: cheap enough that the generator never shows in a profile.
    private mutating func random() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    private mutating func unit() -> Double { Double(random() >> 11) / Double(1 << 53) }

    /// The next key's index, and whether it is a deliberate miss.
    mutating func next() -> Int {
        if missRatio > 0, unit() < missRatio {
            nextMiss += 1
            return nextMiss
        }
        switch distribution {
        case .one: return 0
        case .uniform(let n): return Int(random() % UInt64(n))
        case .sequential(let n):
            defer { nextSequential += 1 }
            return nextSequential % n
        case .zipf:
            let u = unit()
            var low = 0
            var high = cdf.count - 1
            while low < high {
                let mid = (low + high) / 2
                if cdf[mid] < u { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }
}

/// Counts and latencies of one run.
struct RunResult {
    var completed = 0
    /// Well-formed error replies (not found, overloaded, a Redis nil, an HTTP 404…).
    var errorReplies = 0
    /// Replies that do not answer what was asked: unknown id, wrong contact, unparsable bytes.
    var wrong = 0
    /// Requests with no reply when the run ended.
    var unanswered = 0
    var seconds = 0.0
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    var requestsPerSecond: Double { seconds > 0 ? Double(completed) / seconds : 0 }

    /// Latency at `percentile`, in microseconds.
    func micros(_ percentile: Double) -> Double {
        latency.totalCount == 0 ? 0 : Double(latency.valueAtPercentile(percentile)) / 1000
    }
}

/// Where to connect.
enum Endpoint: Sendable {
    case unix(String)
    case tcp(port: UInt16)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
