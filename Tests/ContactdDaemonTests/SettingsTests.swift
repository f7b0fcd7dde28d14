import ContactdCore
import ContactdDaemon
import ContactdJSON
import ContactdProtocol
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
        "stale-if-error": ("180m", "3h"), "stale-if-error-wait": ("0.05", "50ms"), "refresh-ahead": ("0.5", "0.5"),
        "refresh-ahead-reads": ("4", "4"),
        "negative-ttl": ("30s", "30s"), "upstream-timeout": ("1500ms", "1.5s"), "retry-attempts": ("1", "1"),
        "retry-base-delay": ("50ms", "50ms"), "retry-max-delay": ("5s", "5s"), "breaker-failures": ("9", "9"),
        "breaker-cooldown": ("30s", "30s"), "api-concurrency": ("4", "4"), "api-rate": ("12.5", "12.5"),
        "api-burst": ("3", "3"), "api-queue": ("10", "10"), "rate-limit-all-keys": ("yes", "on"),
        "max-connections": ("10", "10"), "max-line-bytes": ("4096", "4K"), "max-batch": ("5", "5"),
        "max-requests-per-connection": ("7", "7"), "idle-timeout": ("0", "0"), "partial-line-timeout": ("3s", "3s"),
        "fast-path": ("off", "off"), "shutdown-timeout": ("1m", "1m"), "log-level": ("DEBUG", "debug"),
        "config": ("/dev/null", "/dev/null"), "snapshot-interval": ("15s", "15s"),
        "snapshot-file": ("/var/lib/contactd/cache", "/var/lib/contactd/cache"),
        "metrics-listen": ("unix:/run/contactd/metrics.sock", "unix:/run/contactd/metrics.sock"),
        "otlp-endpoint": ("http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
        "shared-cache": ("redis://10.0.0.5:6380/2", "redis://10.0.0.5:6380/2"),
        "shared-cache-prefix": ("fleet-a:", "fleet-a:"),
        "shared-cache-timeout": ("50ms", "50ms"),
        "shared-cache-password-file": ("/etc/contactd/redis-password", "/etc/contactd/redis-password"),
        "shared-cache-key-file": ("/etc/contactd/redis-key", "/etc/contactd/redis-key"),
        "shared-cache-ca-file": ("/etc/contactd/redis-ca.pem", "/etc/contactd/redis-ca.pem"),
        "shared-cache-sentinel-password-file": ("/etc/contactd/sentinel-password", "/etc/contactd/sentinel-password"),
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

    /// The config file: settings by flag name, YAML or JSON; flag > environment > file > default.
    @Test func aConfigFileSetsWhatFlagsAndTheEnvironmentDoNot() throws {
        let directory = NSTemporaryDirectory() + "contactd-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let yaml = directory + "/contactd.yaml"
        try """
        # comments and blank lines are fine

        ttl: 2m
        negative-ttl: 30s
        stale-ttl: 10m
        socket-mode: 0640        # octal as a flag takes it, not YAML 1.1's integer
        allow-uid: [1000, 1001]
        fast-path: off
        api-url: http://127.0.0.1:9
        """.write(toFile: yaml, atomically: true, encoding: .utf8)
        let configuration = try DaemonConfiguration.load(
            arguments: ["config": yaml, "stale-ttl": "20m"],
            environment: ["CONTACTD_NEGATIVE_TTL": "45s"]
        )
        #expect(configuration.cache.ttl == .seconds(120))
        #expect(configuration.socket.mode == 0o640)
        #expect(configuration.socket.allowUIDs == [1000, 1001])
        #expect(configuration.fastPath == false)
        #expect(configuration.policy.staleTTL == .seconds(1200), "a flag wins over the file")
        #expect(configuration.cache.negativeTTL == .seconds(45), "the environment wins over the file")
        #expect(configuration.sources["ttl"] == .file && configuration.sources["stale-ttl"] == .flag)
        #expect(configuration.sources["negative-ttl"] == .environment && configuration.sources["max-batch"] == nil)

        let json = directory + "/contactd.json"
        try #"{"ttl": "3m", "cache-max-entries": 500, "rate-limit-all-keys": true, "allow-gid": [50]}"#
            .write(toFile: json, atomically: true, encoding: .utf8)
        let fromJSON = try DaemonConfiguration.load(arguments: [:], environment: ["CONTACTD_CONFIG": json])
        #expect(fromJSON.cache.ttl == .seconds(180) && fromJSON.cache.maxEntries == 500)
        #expect(fromJSON.policy.rateLimitAllKeys && fromJSON.socket.allowGIDs == [50])

        // Found at the default path when --config is not given; not an error when it is absent.
        let byDefault = try DaemonConfiguration.load(arguments: [:], environment: [:], defaultConfigFile: yaml)
        #expect(byDefault.cache.ttl == .seconds(120))
        let none = try DaemonConfiguration.load(
            arguments: [:],
            environment: [:],
            defaultConfigFile: directory + "/no.yaml"
        )
        #expect(none.cache.ttl == .seconds(300))
    }

    @Test func aTypoInTheFileOrTheEnvironmentStopsTheStartNamingTheNearestSetting() throws {
        let directory = NSTemporaryDirectory() + "contactd-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func failure(_ file: String?, _ environment: [String: String] = [:]) -> String {
            var arguments: [String: String] = [:]
            if let file {
                let path = directory + "/c.yaml"
                try? file.write(toFile: path, atomically: true, encoding: .utf8)
                arguments["config"] = path
            }
            do {
                _ = try DaemonConfiguration.load(arguments: arguments, environment: environment)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(failure("ttll: 5m\n") == directory + "/c.yaml: unknown setting 'ttll'; did you mean 'ttl'?")
        #expect(failure("ttl: banana\n").hasPrefix(directory + "/c.yaml: ttl: 'banana'"))
        #expect(failure("ttl:\n  nested: 1\n") == directory + "/c.yaml: 'ttl' must be a value or a list of values")
        #expect(failure("- just\n- a list\n") == directory + "/c.yaml: expected settings as 'name: value' lines")
        #expect(failure("config: /etc/other.yaml\n").contains("cannot be set in the config file itself"))
        #expect(
            failure(nil, ["CONTACTD_TTLL": "5"])
                == "CONTACTD_TTLL is not a contactd setting; did you mean CONTACTD_TTL?"
        )
        #expect(failure(nil, ["CONTACTD_CONFIG": directory + "/missing.yaml"]).contains("cannot read the config file"))
        #expect(failure(nil, ["CONTACTD_API_TOKEN": "t", "CONTACTD_TTL": "5m"]) == "accepted")
    }

    /// `daemon.config`: every setting with its value as a flag takes it and where it came from;
    /// the token by its source only.
    @Test func theConfigReportSaysWhereEachValueCameFrom() throws {
        let configuration = try DaemonConfiguration.load(
            arguments: ["ttl": "90s"],
            environment: ["CONTACTD_NEGATIVE_TTL": "30s", "CONTACTD_TTL": "10s", "CONTACTD_API_TOKEN": "s3cret"]
        )
        let report = try JSONValueEncoder().encode(configuration.report(tokenSource: .environment))
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

    /// A reload copies each setting the table marks live from the new configuration into the
    /// running one: the value arrives as given and no other setting changes. The fields
    /// `ContactResolver.reconfigure` reads (the policy and the cache's TTLs) are all live.
    @Test func aReloadCopiesEachLiveSettingAndNothingElse() throws {
        let live = DaemonConfiguration.settings.filter(\.reload.isLive)
        #expect(live.count == 21)
        for setting in live {
            let sample = try #require(Self.samples[setting.name])
            let fresh = try DaemonConfiguration.load(arguments: [setting.name: sample.given], environment: [:])
            var running = DaemonConfiguration()
            setting.copyValue(from: fresh, to: &running)
            var expected = Self.shown(DaemonConfiguration())
            expected[setting.name] = sample.shown
            #expect(Self.shown(running) == expected, "\(setting.name)")
        }
        for name in ["ttl", "negative-ttl", "api-rate", "upstream-timeout", "log-level", "allow-uid"] {
            #expect(DaemonConfiguration.appliedLive.contains(name))
        }
        #expect(!DaemonConfiguration.appliedLive.contains("cache-max-entries"))
    }

    /// Whether `file` (from the repository's root) holds `expected`. With CONTACTD_REGENERATE=1
    /// in the environment it is written instead: how a change to the settings reaches the files
    /// generated from them (`CONTACTD_REGENERATE=1 swift test --filter SettingsTests`).
    static func generatedFile(_ file: String, holds expected: String) throws -> Bool {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../" + file).standardizedFileURL.path
        if ProcessInfo.processInfo.environment["CONTACTD_REGENERATE"] == "1" {
            try expected.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return try String(contentsOfFile: path, encoding: .utf8) == expected
    }

    /// The man pages' parts that list settings are the settings table.
    @Test func theManualPagesAreTheSettingsTable() throws {
        #expect(
            try Self.generatedFile("packaging/man/contactd.yaml.5", holds: DaemonConfiguration.configManualPage),
            "packaging/man/contactd.yaml.5 should read:\n\(DaemonConfiguration.configManualPage)"
        )
        #expect(
            try Self.generatedFile(
                "packaging/man/contactd.8.sections",
                holds: DaemonConfiguration.daemonManualSections
            ),
            "packaging/man/contactd.8.sections should read:\n\(DaemonConfiguration.daemonManualSections)"
        )
        // Every setting is in the page, with its reload rule.
        for setting in DaemonConfiguration.settings where setting.name != "config" {
            #expect(DaemonConfiguration.configManualPage.contains(".It Ic \(setting.name) Ns :"))
        }
        #expect(DaemonConfiguration.configManualPage.contains("Applied on reload."))
        #expect(DaemonConfiguration.configManualPage.contains("Takes effect at the next start."))
    }

    /// The example config file lists every setting at its default, and reads back as the defaults.
    @Test func theExampleConfigFileIsTheSettingsTable() throws {
        #expect(
            try Self.generatedFile("systemd/contactd.yaml", holds: DaemonConfiguration.exampleConfigFile),
            "systemd/contactd.yaml should read:\n\(DaemonConfiguration.exampleConfigFile)"
        )
        // Uncommented, it is a valid file that changes nothing.
        let uncommented = DaemonConfiguration.exampleConfigFile.split(separator: "\n")
            .filter { $0.hasPrefix("#") && !$0.hasPrefix("# ") && !$0.hasSuffix(":") }
            .map { $0.dropFirst() }.joined(separator: "\n")
        let file = NSTemporaryDirectory() + "contactd-example-\(UUID().uuidString).yaml"
        try uncommented.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let values = try ConfigFile.read(file)
        #expect(values.count >= DaemonConfiguration.settings.count - 13)
        let configuration = try DaemonConfiguration.load(arguments: ["config": file], environment: [:])
        for setting in DaemonConfiguration.settings where setting.name != "config" {
            #expect(setting.text(in: configuration) == setting.text(in: DaemonConfiguration()), "\(setting.name)")
        }
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
