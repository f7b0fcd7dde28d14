import ContactdCore
import ContactdDaemon
import ContactdJSON
import Foundation
import Testing

/// The settings table (`DaemonConfiguration.settings`): every setting given is taken as given,
/// by flag and by environment; the command line, `--help` and the docs all come from it.
@Suite struct SettingsTests {
    /// A value other than the default for every setting: as given, and as the daemon writes it back.
    static let samples: [String: (given: String, shown: String)] = [
        "socket": ("/tmp/x.sock", "/tmp/x.sock"), "socket-mode": ("600", "0600"),
        "socket-group": ("contactd-clients", "contactd-clients"), "allow-uid": ("1000,1001", "1000,1001"),
        "allow-gid": ("50", "50"), "api-url": ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
        "token-file": ("/etc/contactd/token", "/etc/contactd/token"), "connect-timeout": ("250ms", "250ms"),
        "cache-max-entries": ("500", "500"),
        "cache-max-bytes": ("1048576", "1M"), "ttl": ("90", "90s"), "stale-ttl": ("2h", "2h"),
        "stale-if-error": ("180m", "3h"), "refresh-ahead": ("0.5", "0.5"), "refresh-ahead-reads": ("4", "4"),
        "negative-ttl": ("30s", "30s"), "upstream-timeout": ("1500ms", "1.5s"), "retry-attempts": ("1", "1"),
        "retry-base-delay": ("50ms", "50ms"), "retry-max-delay": ("5s", "5s"), "breaker-failures": ("9", "9"),
        "breaker-cooldown": ("30s", "30s"), "api-concurrency": ("4", "4"), "api-rate": ("12.5", "12.5"),
        "api-burst": ("3", "3"), "api-queue": ("10", "10"), "rate-limit-all-keys": ("yes", "on"),
        "max-connections": ("10", "10"), "max-line-bytes": ("4096", "4K"), "max-batch": ("5", "5"),
        "max-requests-per-connection": ("7", "7"), "idle-timeout": ("0", "0"), "partial-line-timeout": ("3s", "3s"),
        "fast-path": ("off", "off"), "shutdown-timeout": ("1m", "1m"), "log-level": ("DEBUG", "debug"),
        "snapshot-interval": ("15s", "15s"), "snapshot-file": ("/var/lib/contactd/cache", "/var/lib/contactd/cache"),
        "log-personal-data": ("true", "on"), "demo": ("1", "on"),
    ]

    static var names: [String] { DaemonConfiguration.settings.map(\.name) }

    /// Each setting's value, as written back.
    static func shown(_ c: DaemonConfiguration) -> [String: String] {
        Dictionary(uniqueKeysWithValues: DaemonConfiguration.settings.map { ($0.name, $0.text(in: c)) })
    }

    @Test func everySettingHasASampleSoNoneGoesUntested() {
        #expect(Set(Self.samples.keys) == Set(Self.names))
        #expect(Set(Self.names).count == Self.names.count, "a setting is declared twice")
    }

    /// Given alone, by flag or by variable, a setting takes the value given and changes no other.
    @Test(arguments: DaemonConfiguration.settings.map(\.name))
    func aSettingGivenIsTakenAsGivenAndChangesNoOther(name: String) throws {
        let sample = try #require(Self.samples[name])
        let setting = try #require(DaemonConfiguration.settings.first { $0.name == name })
        let defaults = Self.shown(DaemonConfiguration())
        #expect(defaults[name] != sample.shown, "the sample for \(name) is its default")
        for configuration in [
            try DaemonConfiguration.load(arguments: [name: sample.given], environment: [:]),
            try DaemonConfiguration.load(arguments: [:], environment: [setting.environmentVariable: sample.given]),
        ] {
            var expected = defaults
            expected[name] = sample.shown
            #expect(Self.shown(configuration) == expected)
        }
    }

    /// All given at once (but demo mode, which has its own API), none overrides another.
    @Test func allSettingsGivenTogetherAreEachTakenAsGiven() throws {
        let samples = Self.samples.filter { $0.key != "demo" }
        let configuration = try DaemonConfiguration.load(arguments: samples.mapValues(\.given), environment: [:])
        var expected = samples.mapValues(\.shown)
        expected["demo"] = "off"
        #expect(Self.shown(configuration) == expected)
    }

    /// Demo mode would ignore an API URL or token file: it refuses them, naming what was given.
    @Test(arguments: [
        (["demo": "on", "api-url": "http://127.0.0.1:9"], [:], "--api-url cannot be used with demo mode"),
        (["demo": "on"], ["CONTACTD_TOKEN_FILE": "/etc/t"], "CONTACTD_TOKEN_FILE cannot be used with demo mode"),
    ])
    func demoModeRefusesSettingsItWouldIgnore(
        arguments: [String: String],
        environment: [String: String],
        message: String
    ) {
        #expect {
            _ = try DaemonConfiguration.load(arguments: arguments, environment: environment)
        } throws: { error in
            "\(error)".hasPrefix(message)
        }
    }

    /// `daemon.config`: every setting with its value as a flag takes it and where it came from;
    /// the token by its source only.
    @Test func theConfigReportSaysWhereEachValueCameFrom() throws {
        let configuration = try DaemonConfiguration.load(
            arguments: ["ttl": "90s"],
            environment: ["CONTACTD_NEGATIVE_TTL": "30s", "CONTACTD_TTL": "10s", "CONTACTD_API_TOKEN": "s3cret"]
        )
        let report = configuration.report(tokenSource: .environment)
        let object = try #require(report.objectValue)
        #expect(object.keys.count == DaemonConfiguration.settings.count + 1)
        #expect(report["ttl"] == .object(["value": "90s", "source": "flag"]), "a flag wins over the environment")
        #expect(report["negative-ttl"] == .object(["value": "30s", "source": "environment"]))
        #expect(report["socket"] == .object(["value": "/run/contactd/contactd.sock", "source": "default"]))
        #expect(report["socket-group"] == .object(["value": .null, "source": "default"]))
        #expect(report["demo"] == .object(["value": "off", "source": "default"]))
        #expect(report["api-token"] == .object(["source": "environment"]))
        #expect(!report.jsonString.contains("s3cret"), "the token never appears")
    }

    @Test func theCommandLineIsReadByTheTable() throws {
        let values = try DaemonConfiguration.commandLineValues([
            "--ttl", "5s", "--socket=/tmp/a b.sock", "--demo", "--allow-uid", "1", "--allow-uid=2,3",
            "--cache-max-entries", "5", "--cache-max-entries", "6", "--ttl", "-1s",
        ])
        #expect(
            values == [
                "ttl": "-1s", "socket": "/tmp/a b.sock", "demo": "on", "allow-uid": "1,2,3", "cache-max-entries": "6",
            ]
        )
    }

    @Test(arguments: [
        (["--ttll", "5s"], "unknown option '--ttll'; did you mean --ttl?"),
        (["--colour"], "unknown option '--colour'"),
        (["--ttl"], "--ttl needs a value"),
        (["--demo=yes"], "--demo takes no value"),
        (["ttl", "5s"], "unexpected argument 'ttl'; settings are written --name value"),
    ])
    func aCommandLineThatCannotBeReadSaysWhy(arguments: [String], message: String) {
        #expect {
            _ = try DaemonConfiguration.commandLineValues(arguments)
        } throws: { error in
            "\(error)" == message
        }
    }

    @Test func helpListsEverySettingWithItsDefault() {
        let help = DaemonConfiguration.helpText
        for setting in DaemonConfiguration.settings {
            #expect(help.contains("--\(setting.name)"), "\(setting.name) is not in --help")
        }
        #expect(help.contains("Default: 5m."))
        #expect(help.contains("Default: 256M."))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 80 })
    }

    /// The table in docs/operations.md, as the settings make it.
    static var docsTable: String {
        var lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
        for setting in DaemonConfiguration.settings {
            let flag: String
            switch setting.form {
            case .value(let placeholder), .list(let placeholder): flag = "`--\(setting.name) <\(placeholder)>`"
            case .presence: flag = "`--\(setting.name)`"
            }
            lines.append("| \(flag) | `\(setting.environmentVariable)` | \(setting.defaultText) | \(setting.help) |")
        }
        return lines.joined(separator: "\n")
    }

    @Test func theDocsTableIsTheSettingsTable() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../docs/operations.md"
        )
        let text = try String(contentsOf: docs, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- settings table: begin -->\n"))
        let end = try #require(text.range(of: "\n<!-- settings table: end -->"))
        let table = String(text[begin.upperBound..<end.lowerBound])
        #expect(table == Self.docsTable, "docs/operations.md's table should read:\n\(Self.docsTable)")
    }
}
