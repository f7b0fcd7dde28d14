import Configuration
import ContactdCore
import Foundation

/// One daemon setting, declared once: its name, its help, how its text becomes a field of
/// `DaemonConfiguration`, how the field is written back, and what a reload does with a new value.
/// The command line, the environment, `--help`, the man pages, the reload and the settings table
/// in docs/operations.md all come from `DaemonConfiguration.settings`; a default lives only in
/// `DaemonConfiguration`'s field initialisers.
package struct Setting: Sendable {
    /// How the setting is written on the command line.
    package enum Form: Sendable, Equatable {
        /// `--name VALUE` or `--name=VALUE`; the placeholder names the kind of value.
        case value(String)
        /// As `value`, repeatable; the values add up (comma-separated in the environment).
        case list(String)
        /// `--name` alone turns it on (`CONTACTD_NAME=on` in the environment).
        case presence
    }

    /// What a reload (SIGHUP, `daemon.reload`) does with a changed value.
    package enum Reload: Sendable, Equatable {
        /// It shapes what is built at start (a socket, the cache's size, the HTTP client): the
        /// new value takes effect after a restart.
        case afterRestart
        /// Applied at once: the running configuration takes the value and `Receiver` is told.
        case live(Receiver)

        package var isLive: Bool { self != .afterRestart }
    }

    /// Who applies a setting a reload changed.
    package enum Receiver: Sendable, Hashable {
        /// `ContactResolver.reconfigure`: freshness, the retry policy, the breaker, the API budget.
        case lookup
        /// The allow lists new connections are checked against.
        case allowLists
        /// The log handler's level.
        case logLevel
    }

    /// The flag without its dashes, e.g. `cache-max-entries`.
    package let name: String
    package let form: Form
    /// One line for `--help` and the docs.
    package let help: String
    package let reload: Reload
    /// What an unset value means, e.g. `none` or `the daemon's group`.
    private let unsetText: String
    private let show: @Sendable (DaemonConfiguration) -> String?
    private let parse: @Sendable (inout DaemonConfiguration, String) throws -> Void
    /// Sets the field in the first configuration to its value in the second.
    private let copy: @Sendable (inout DaemonConfiguration, DaemonConfiguration) -> Void

    /// A setting whose field `parse` sets from text, `show` writes back, and `copy` copies (a
    /// setting a reload applies needs `copy`).
    init(
        _ name: String,
        _ form: Form,
        help: String,
        unset: String = "none",
        reload: Reload = .afterRestart,
        show: @escaping @Sendable (DaemonConfiguration) -> String?,
        parse: @escaping @Sendable (inout DaemonConfiguration, String) throws -> Void,
        copy: (@Sendable (inout DaemonConfiguration, DaemonConfiguration) -> Void)? = nil
    ) {
        precondition(copy != nil || reload == .afterRestart, "\(name): a setting a reload applies needs copy")
        self.name = name
        self.form = form
        self.help = help
        self.unsetText = unset
        self.reload = reload
        self.show = show
        self.parse = parse
        self.copy = copy ?? { _, _ in }
    }

    /// Gives `configuration` this setting's value in `other` (a reload applying it).
    package func copyValue(from other: DaemonConfiguration, to configuration: inout DaemonConfiguration) {
        copy(&configuration, other)
    }

    /// The environment variable, e.g. `CONTACTD_CACHE_MAX_ENTRIES`.
    package var environmentVariable: String {
        "CONTACTD_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The configuration key: `contactd.` then the name in lower camel case.
    var key: ConfigKey {
        let parts = name.split(separator: "-")
        let camel = parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
        return ConfigKey(["contactd", camel])
    }

    /// The value in `configuration` as it is written (`5m`, `64K`, `on`); `nil` when unset.
    package func value(in configuration: DaemonConfiguration) -> String? {
        show(configuration)
    }

    /// The value in `configuration`, written as the setting is written (`5m`, `64K`, `on`).
    package func text(in configuration: DaemonConfiguration) -> String {
        show(configuration) ?? unsetText
    }

    /// The default, written as the setting is written.
    package var defaultText: String { text(in: DaemonConfiguration()) }

    /// Sets the field from `text`; the error says what is wrong with the text alone.
    func apply(_ text: String, to configuration: inout DaemonConfiguration) throws(ConfigurationError) {
        do {
            try parse(&configuration, text)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("'\(text)' cannot be used: \(error)")
        }
    }
}

// MARK: - Settings by kind of value

/// A field of the configuration a setting sets.
typealias Field<Value> = WritableKeyPath<DaemonConfiguration, Value> & Sendable

extension Setting {
    /// A setting whose text `parse` makes into `field`'s value and `show` writes back.
    private static func field<Value>(
        _ name: String,
        _ field: any Field<Value>,
        _ form: Form,
        help: String,
        unset: String = "none",
        reload: Reload,
        show: @escaping @Sendable (Value) -> String?,
        parse: @escaping @Sendable (String) throws -> Value
    ) -> Setting {
        Setting(
            name,
            form,
            help: help,
            unset: unset,
            reload: reload,
            show: { show($0[keyPath: field]) },
            parse: { c, text in
                c[keyPath: field] = try parse(text)
            },
            copy: { c, other in c[keyPath: field] = other[keyPath: field] }
        )
    }

    static func duration(
        _ name: String,
        _ field: any Field<Duration>,
        allowZero: Bool = true,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        self.field(name, field, .value("duration"), help: help, reload: reload, show: \.settingText) { text in
            try parseDuration(text, allowZero: allowZero)
        }
    }

    static func size(
        _ name: String,
        _ field: any Field<Int>,
        minimum: Int = 0,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        self.field(
            name,
            field,
            .value("size"),
            help: help,
            reload: reload,
            show: sizeText,
            parse: { try parseSize($0, minimum: minimum) }
        )
    }

    static func count(
        _ name: String,
        _ field: any Field<Int>,
        minimum: Int = 0,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        self.field(
            name,
            field,
            .value("n"),
            help: help,
            reload: reload,
            show: { String($0) },
            parse: { try parseCount($0, minimum: minimum) }
        )
    }

    static func fraction(
        _ name: String,
        _ field: any Field<Double>,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        self.field(
            name,
            field,
            .value("fraction"),
            help: help,
            reload: reload,
            show: numberText,
            parse: { try parseFraction($0) }
        )
    }

    static func rate(_ name: String, _ field: any Field<Double>, reload: Reload = .afterRestart, help: String)
        -> Setting
    {
        self.field(
            name,
            field,
            .value("per-second"),
            help: help,
            reload: reload,
            show: numberText,
            parse: { try parseRate($0) }
        )
    }

    /// A setting turned on or off by its value (`--fast-path off`).
    static func onOff(_ name: String, _ field: any Field<Bool>, help: String) -> Setting {
        self.field(
            name,
            field,
            .value("on/off"),
            help: help,
            reload: .afterRestart,
            show: { $0 ? "on" : "off" },
            parse: { try parseBool($0) }
        )
    }

    /// A setting turned on by its flag alone (`--demo`).
    static func presence(
        _ name: String,
        _ field: any Field<Bool>,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        self.field(
            name,
            field,
            .presence,
            help: help,
            reload: reload,
            show: { $0 ? "on" : "off" },
            parse: { try parseBool($0) }
        )
    }

    static func text(
        _ name: String,
        _ field: any Field<String>,
        placeholder: String,
        help: String,
        parse: @escaping @Sendable (String) throws -> String = { $0 }
    ) -> Setting {
        self.field(name, field, .value(placeholder), help: help, reload: .afterRestart, show: { $0 }, parse: parse)
    }

    static func optionalText(
        _ name: String,
        _ field: any Field<String?>,
        placeholder: String,
        unset: String,
        help: String
    ) -> Setting {
        self.field(
            name,
            field,
            .value(placeholder),
            help: help,
            unset: unset,
            reload: .afterRestart,
            show: { $0 },
            parse: { $0 }
        )
    }

    static func ids(
        _ name: String,
        _ field: any Field<[UInt32]>,
        unset: String,
        reload: Reload = .afterRestart,
        help: String
    ) -> Setting {
        let show: @Sendable ([UInt32]) -> String? = { ids in
            ids.isEmpty ? nil : ids.map(String.init).joined(separator: ",")
        }
        return self.field(
            name,
            field,
            .list("id"),
            help: help,
            unset: unset,
            reload: reload,
            show: show,
            parse: { try parseIDs($0) }
        )
    }
}

// MARK: - Values written as settings are

/// `64K`, `256M`, `1G` when the size is a whole number of them, else bytes.
func sizeText(_ bytes: Int) -> String {
    for (unit, factor) in [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] where bytes > 0 && bytes % factor == 0 {
        return "\(bytes / factor)\(unit)"
    }
    return String(bytes)
}

/// `0.8`, and `2` rather than `2.0`.
func numberText(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
}
