import ContactdCore
import ContactdDaemon
import ContactdTestSupport
import Foundation
import Logging
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsMatchTheSpec() throws {
        let c = try DaemonConfiguration.load(arguments: [:], environment: [:])
        #expect(c.socket.path == "/run/contactd/contactd.sock")
        #expect(c.socket.mode == 0o660)
        #expect(c.upstream.url == "https://mtxbiyilvgwhbdptysex.supabase.co/functions/v1")
        #expect(c.cache.maxEntries == 100_000)
        #expect(c.cache.maxBytes == 256 << 20)
        #expect(c.cache.ttl == .seconds(300))
        #expect(c.policy.staleTTL == .seconds(3600))
        #expect(c.cache.negativeTTL == .seconds(60))
        #expect(c.policy.deadline == .seconds(5))
        #expect(c.limits.maxConnections == 1024)
        #expect(c.limits.maxLineBytes == 64 << 10)
        #expect(c.shutdownTimeout == .seconds(10))
        #expect(c.logLevel == .info)
        #expect(c.demo == false)
        #expect(c.fastPath == true)
    }

    @Test func theFastPathIsTurnedOffByFlagOrEnvironmentAndABadValueNamesTheFlag() throws {
        #expect(try DaemonConfiguration.load(arguments: ["fast-path": "off"], environment: [:]).fastPath == false)
        #expect(
            try DaemonConfiguration.load(arguments: [:], environment: ["CONTACTD_FAST_PATH": "0"]).fastPath == false
        )
        #expect(
            try DaemonConfiguration.load(arguments: ["fast-path": "on"], environment: ["CONTACTD_FAST_PATH": "off"])
                .fastPath == true
        )
        #expect {
            try DaemonConfiguration.load(arguments: ["fast-path": "sometimes"], environment: [:])
        } throws: { error in
            "\(error)".contains("--fast-path")
        }
    }

    @Test func resilienceDefaultsAreTheDocumentedOnes() throws {
        let p = try DaemonConfiguration.load(arguments: [:], environment: [:]).policy
        #expect(p.staleIfError == .seconds(86_400))
        #expect(p.refreshAhead == 0.8)
        #expect(p.refreshAheadReads == 2)
        #expect(p.retryAttempts == 3)
        #expect(p.retryBaseDelay == .milliseconds(100))
        #expect(p.retryMaxDelay == .seconds(2))
        #expect(p.breakerFailures == 5)
        #expect(p.breakerCooldown == .seconds(10))
        #expect(p.maxConcurrent == 16)
        #expect(p.ratePerSecond == 0)
        #expect(p.queueLimit == 1024)
        #expect(p.rateLimitAllKeys == false)
    }

    @Test func resilienceSettingsComeFromFlagsAndEnvironment() throws {
        let p = try DaemonConfiguration.load(
            arguments: ["stale-if-error": "2h", "retry-attempts": "5", "api-rate": "12.5", "refresh-ahead": "0"],
            environment: [
                "CONTACTD_BREAKER_FAILURES": "3", "CONTACTD_BREAKER_COOLDOWN": "250ms",
                "CONTACTD_API_CONCURRENCY": "4", "CONTACTD_API_QUEUE": "10", "CONTACTD_RATE_LIMIT_ALL_KEYS": "true",
                "CONTACTD_RETRY_ATTEMPTS": "9",
            ]
        ).policy
        #expect(p.staleIfError == .seconds(7200))
        #expect(p.retryAttempts == 5)
        #expect(p.ratePerSecond == 12.5)
        #expect(p.refreshAhead == 0)
        #expect(p.breakerFailures == 3)
        #expect(p.breakerCooldown == .milliseconds(250))
        #expect(p.maxConcurrent == 4)
        #expect(p.queueLimit == 10)
        #expect(p.rateLimitAllKeys)
    }

    @Test func flagWinsOverEnvironmentWhichWinsOverDefault() throws {
        let c = try DaemonConfiguration.load(
            arguments: ["ttl": "90s"],
            environment: ["CONTACTD_TTL": "10m", "CONTACTD_CACHE_MAX_ENTRIES": "500", "CONTACTD_DEMO": "yes"]
        )
        #expect(c.cache.ttl == .seconds(90))
        #expect(c.cache.maxEntries == 500)
        #expect(c.demo)
    }

    @Test func everySettingMapsMechanicallyToItsEnvironmentVariable() {
        for setting in DaemonConfiguration.settings {
            #expect(
                setting.environmentVariable == "CONTACTD_"
                    + setting.name.uppercased().replacingOccurrences(of: "-", with: "_")
            )
        }
    }

    @Test(arguments: [
        ("ttl", "250ms", 0.25), ("ttl", "5s", 5), ("ttl", "2m", 120), ("ttl", "1h", 3600), ("ttl", "42", 42),
        ("ttl", "1.5s", 1.5),
    ])
    func durations(flag: String, text: String, seconds: Double) throws {
        #expect(
            try DaemonConfiguration.load(arguments: [flag: text], environment: [:]).cache.ttl
                == .nanoseconds(Int64(seconds * 1e9))
        )
    }

    @Test(arguments: [("1024", 1024), ("64K", 65536), ("256M", 268_435_456), ("1G", 1_073_741_824), ("2k", 2048)])
    func sizes(text: String, bytes: Int) throws {
        #expect(
            try DaemonConfiguration.load(arguments: ["cache-max-bytes": text], environment: [:]).cache.maxBytes == bytes
        )
    }

    @Test(arguments: [
        ("ttl", "soon"), ("ttl", "-5s"), ("cache-max-bytes", "lots"), ("cache-max-entries", "1e3"),
        ("upstream-timeout", "0"), ("max-connections", "0"), ("log-level", "loud"), ("api-url", "ftp://x"),
        ("socket-mode", "999"), ("demo", "perhaps"), ("max-line-bytes", "10"), ("refresh-ahead", "1.5"),
        ("retry-attempts", "0"), ("api-rate", "-1"), ("breaker-cooldown", "0"), ("api-concurrency", "0"),
        ("stale-if-error", "later"), ("rate-limit-all-keys", "maybe"), ("shared-cache-prefix", ""),
        ("stale-if-error-wait", "soon"),
    ])
    func badValuesNameTheirFlag(flag: String, text: String) {
        #expect {
            _ = try DaemonConfiguration.load(arguments: [flag: text], environment: [:])
        } throws: { error in
            String(describing: error).contains("--\(flag)")
        }
    }

    // MARK: Issue #12, item 4: every unit on every size and duration, by flag and by variable

    static let sizeSettings = ["cache-max-bytes", "max-line-bytes"]
    static let durationSettings = [
        "ttl", "stale-ttl", "stale-if-error", "negative-ttl", "upstream-timeout", "retry-base-delay",
        "retry-max-delay", "breaker-cooldown", "idle-timeout", "partial-line-timeout", "shutdown-timeout",
    ]
    /// Spellings of one value: with a unit, and the same value in plain bytes or seconds.
    static let sizeSpellings = [("32K", "32768"), ("1M", "1048576"), ("2m", "2097152"), ("1G", "1073741824")]
    static let durationSpellings = [("1500ms", "1.5"), ("90s", "90"), ("2m", "120"), ("2h", "7200")]

    /// Everything a setting can change, as text (the configuration holds a clock, so is not Equatable).
    static func settingsText(_ c: DaemonConfiguration) -> String {
        "\(c.cache) \(c.policy) \(c.limits) \(c.upstream) \(c.socket) \(c.shutdownTimeout)"
    }

    static let unitCases: [(String, String, String)] =
        sizeSettings.flatMap { flag in sizeSpellings.map { (flag, $0.0, $0.1) } }
        + durationSettings.flatMap { flag in durationSpellings.map { (flag, $0.0, $0.1) } }

    @Test(arguments: unitCases)
    func everyUnitWorksOnEverySizeAndDurationByFlagAndByVariable(flag: String, withUnit: String, plain: String) throws {
        let variable = "CONTACTD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
        let byFlag = try DaemonConfiguration.load(arguments: [flag: withUnit], environment: [:])
        let byVariable = try DaemonConfiguration.load(arguments: [:], environment: [variable: withUnit])
        let expected = try DaemonConfiguration.load(arguments: [flag: plain], environment: [:])
        let defaults = try DaemonConfiguration.load(arguments: [:], environment: [:])
        #expect(Self.settingsText(byFlag) == Self.settingsText(expected))
        #expect(Self.settingsText(byVariable) == Self.settingsText(expected))
        #expect(Self.settingsText(expected) != Self.settingsText(defaults), "\(flag) \(plain) changed nothing")
    }

    @Test func theDocumentedDefaultLineLimitIsAcceptedAsDocumented() throws {
        #expect(
            try DaemonConfiguration.load(arguments: ["max-line-bytes": "64K"], environment: [:]).limits.maxLineBytes
                == 65536
        )
        #expect {
            _ = try DaemonConfiguration.load(arguments: ["max-line-bytes": "255"], environment: [:])
        } throws: { error in
            "\(error)" == "--max-line-bytes: '255' is below the least allowed size, 256 bytes"
        }
    }

    @Test(arguments: [
        ("ttl", "-5s"), ("upstream-timeout", "-1"), ("cache-max-bytes", "-64K"), ("max-line-bytes", "-1"),
    ])
    func negativeValuesAreNamedAsNegative(flag: String, text: String) {
        #expect {
            _ = try DaemonConfiguration.load(arguments: [flag: text], environment: [:])
        } throws: { error in
            "\(error)".hasPrefix("--\(flag): '\(text)' is negative")
        }
    }

    @Test(arguments: [("ttl", "banana"), ("cache-max-bytes", "lots"), ("fast-path", "maybe"), ("log-level", "loud")])
    func aBadValueFromTheEnvironmentNamesTheVariable(flag: String, text: String) {
        let variable = "CONTACTD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
        #expect {
            _ = try DaemonConfiguration.load(arguments: [:], environment: [variable: text])
        } throws: { error in
            "\(error)".hasPrefix("\(variable): '\(text)'") && !"\(error)".contains("--\(flag)")
        }
    }

    @Test func aBadSwitchValueSaysOnOrOffAsTheHelpDoes() {
        #expect {
            _ = try DaemonConfiguration.load(arguments: ["fast-path": "maybe"], environment: [:])
        } throws: { error in
            "\(error)" == "--fast-path: 'maybe' is not on or off (true/false, yes/no and 1/0 work too)"
        }
    }

    @Test func tokenSourcesInOrderWithWhitespaceTrimmed() async throws {
        try await withTemporaryDirectory { dir in
            let file = dir + "/token"
            try "  from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: dir + "/creds", withIntermediateDirectories: true)
            try "from-credential\n".write(toFile: dir + "/creds/api-token", atomically: true, encoding: .utf8)
            let env = ["CREDENTIALS_DIRECTORY": dir + "/creds", "CONTACTD_API_TOKEN": " from-env "]
            #expect(try Secret.apiToken(file: file, environment: env).secret.value == "from-file")
            #expect(try Secret.apiToken(file: nil, environment: env).secret.value == "from-credential")
            #expect(
                try Secret.apiToken(file: nil, environment: ["CONTACTD_API_TOKEN": " from-env "]).secret.value
                    == "from-env"
            )
        }
    }

    @Test func missingEmptyOrAbsentTokensAreErrors() async throws {
        try await withTemporaryDirectory { dir in
            try "  \n".write(toFile: dir + "/empty", atomically: true, encoding: .utf8)
            #expect(throws: ConfigurationError.self) {
                try Secret.apiToken(file: dir + "/nope", environment: [:]).secret
            }
            #expect(throws: ConfigurationError.self) {
                try Secret.apiToken(file: dir + "/empty", environment: [:]).secret
            }
            #expect(throws: ConfigurationError.self) { try Secret.apiToken(file: nil, environment: [:]).secret }
            #expect(throws: ConfigurationError.self) {
                try Secret.apiToken(file: nil, environment: ["CONTACTD_API_TOKEN": ""]).secret
            }
        }
    }

    @Test func tokenNeverShowsInItsDescription() {
        let token = Secret("very-secret-value")
        #expect(!"\(token)".contains("very-secret"))
        #expect(!String(reflecting: token).contains("very-secret"))
    }
}
