import ArgumentParser
import ContactdClient
import ContactdJSON
import ContactdProtocol
import Foundation

/// How JSON is printed: `--json=short|pretty|off` (`--json` alone is `short`).
enum JSONOutput: String, ExpressibleByArgument, CaseIterable {
    case short, pretty, off
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "The daemon's socket. Default: $CONTACTD_SOCKET, else /run/contactd/contactd.sock.")
    var socket: String?

    @Option(help: "Print the raw JSON result: short (one line, what --json alone means), pretty, or off.")
    var json: JSONOutput = .off

    @Flag(help: "Leave out column headers.")
    var noLegend = false

    @Option(
        parsing: .unconditional,
        help: "Longest wait for contactd, connecting and answering: seconds, or a number with ms, s or m. Default 5s."
    )
    var timeout: String = "5s"

    func validate() throws {
        guard Self.duration(timeout) != nil else {
            throw ValidationError(
                "--timeout: '\(timeout)' is not a duration above 0 (seconds, or a number with ms, s or m)"
            )
        }
    }

    /// `5`, `5s`, `250ms`, `1m` as a duration above zero.
    static func duration(_ text: String) -> Duration? {
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("", 1.0)] where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)), value.isFinite, value > 0 else { return nil }
            return .milliseconds(Int64((value * scale * 1000).rounded(.up)))
        }
        return nil
    }

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["CONTACTD_SOCKET"] ?? ContactdConnection.defaultSocketPath
    }

    /// Connects, runs `body`, and turns every client error into a message and an exit code.
    ///
    /// A connection that a stopping contactd closes or answers with `shutting_down` is tried once
    /// more within `--timeout`: during `systemctl restart` the socket, kept by systemd, queues the
    /// new connection for the next daemon, and every command is safe to repeat.
    func withConnection(_ body: (ContactdConnection) async throws -> Void) async throws {
        let timeout = Self.duration(timeout)
        let deadline = timeout.map { ContinuousClock.now + $0 }
        do {
            do {
                try await ContactdConnection.withConnection(socketPath: socketPath, timeout: timeout) {
                    try await body($0)
                }
            } catch let error as ContactdClientError
                where error.reason == "shutting_down" || error.reason == "connection_closed"
            {
                let remaining = deadline.map { $0 - ContinuousClock.now }
                guard remaining.map({ $0 > .zero }) ?? true else { throw error }
                try await ContactdConnection.withConnection(socketPath: socketPath, timeout: remaining) {
                    try await body($0)
                }
            }
        } catch let error as ContactdClientError {
            Self.report(error)
            throw ExitCode(Contactctl.exitStatus(for: error))
        }
    }

    /// The error on stderr, `[reason]` after it, and a hint on the next line when there is an
    /// obvious next step.
    static func report(_ error: ContactdClientError, key: String? = nil) {
        var text = "contactctl: " + (key.map { ContactView.escape($0) + ": " } ?? "")
        text += "\(error.description) [\(error.reason)]\n"
        if let hint = Contactctl.hint(for: error) { text += "hint: \(hint)\n" }
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Whether JSON is asked for.
    var wantsJSON: Bool { json != .off }

    func printJSON(_ value: JSONValue) {
        print(json == .pretty ? ContactView.pretty(value) : value.jsonString)
    }
}

struct Contactctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contactctl",
        abstract: "Ask the local contactd for contacts, and inspect or control its cache.",
        discussion: """
            contactd caches the get-contact API for the services on this host. contactctl talks to it \
            over its Unix socket, like resolvectl talks to systemd-resolved.

            Examples:
              contactctl get +14155551234          look up by phone number (a leading + means phone)
              contactctl get c1d2e3f4-…            look up by contact id
              contactctl get +1415… +1212… c1d2…   several at once, answered in order
              contactctl get --max-age 0 +1415…    force a fresh fetch from the API
              contactctl --json=pretty get +1415…  the raw result, indented (--json alone: one line)
              contactctl invalidate --all          empty the cache
              contactctl stats                     cache hits, misses and API calls
              contactctl reset-statistics          zero those counters
              contactctl config                    every setting in effect, and where it came from
              contactctl reload                    re-read the configuration (root or contactd's user)
              contactctl metrics                   Prometheus metrics (node_exporter's textfile format)
              contactctl call daemon.ping          any JSON-RPC method, raw

            Exit status: 0 ok, 1 not found, 2 usage or invalid input, 69 daemon or API unavailable \
            or a bad API answer, 70 internal error, 75 rate limited, overloaded or no answer within \
            --timeout, 77 unauthorized, forbidden, or no permission to open the socket, 78 (reload) the \
            configuration or token did not load and the running one stays. With several \
            keys, the status of the first that failed. Errors name their reason in brackets and, \
            when there is an obvious next step, give it on a "hint:" line.
            """,
        version: "contactctl \(ContactdVersion.current)",
        subcommands: [
            Get.self, Invalidate.self, Stats.self, Status.self, Config.self, Reload.self, Metrics.self,
            ResetStatistics.self, Ping.self, Call.self,
        ]
    )

    /// What to do next, for the errors where that is clear.
    static func hint(for error: ContactdClientError) -> String? {
        switch error.kind {
        case .connectionFailed: "start it with `systemctl start contactd.socket`, or pass --socket PATH"
        case .permissionDenied: "add your user to the contactd-clients group, then log in again"
        case .timedOut: "contactd is stopped or overloaded: see `systemctl status contactd`; --timeout waits longer"
        case .upstreamUnauthorized:
            "the API rejected contactd's token: replace /etc/credstore/contactd.api-token, then `systemctl restart contactd`"
        case .upstreamUnavailable: "the API is down or unreachable; `contactctl status` shows since when"
        case .rateLimited:
            "the API is rate limiting" + (error.retryAfter.map { ": try again in \(Int($0.rounded(.up)))s" } ?? "")
        case .overloaded: "contactd is at a limit (--max-connections, --api-queue); try again shortly"
        case .forbidden: "your user or group is not in contactd's --allow-uid/--allow-gid"
        case .invalidPhoneNumber: "write the number in E.164, e.g. +14155551234"
        case .shuttingDown, .connectionClosed: "contactd is restarting; run the command again"
        default: nil
        }
    }

    /// SPEC §5's exit status for `error`, from `ErrorReason`'s table; 70 for a reason it does
    /// not know (from a newer contactd).
    static func exitStatus(for error: ContactdClientError) -> Int32 {
        ErrorReason(rawValue: error.reason)?.exitStatus ?? 70
    }
}

extension Contactctl {
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Look a contact up by phone number or id.",
            discussion: "A key starting with + is a phone number; anything else is a contact id."
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Treat the key as a phone number.") var phone = false
        @Flag(help: "Treat the key as a contact id.") var id = false
        // Unconditional, so `--max-age -1` reaches validate() and is named as negative, not taken
        // for an option.
        @Option(parsing: .unconditional, help: "Seconds; refetch if the cached entry is older (0 forces a fetch).")
        var maxAge: Double?
        @Argument(help: "Phone numbers such as +14155551234, or contact ids; several are looked up at once.")
        var keys: [String]

        func validate() throws {
            if phone && id { throw ValidationError("--phone and --id exclude each other") }
            if let maxAge, maxAge < 0 {
                throw ValidationError("--max-age: \(maxAge) is negative; it must be 0 or more")
            }
            if let maxAge, !maxAge.isFinite { throw ValidationError("--max-age: must be a finite number of seconds") }
            if keys.isEmpty { throw ValidationError("give at least one phone number or contact id") }
        }

        func run() async throws {
            var failure: Int32?
            try await global.withConnection { connection in
                // Every lookup at once on the one connection (they are pipelined), printed in order.
                let answers = await withTaskGroup(of: (Int, Result<ContactLookup, ContactdClientError>).self) { group in
                    for (index, key) in keys.enumerated() {
                        let byPhone = phone || (!id && key.hasPrefix("+"))
                        group.addTask {
                            do {
                                let found =
                                    byPhone
                                    ? try await connection.contact(phoneNumber: key, maxAge: maxAge)
                                    : try await connection.contact(id: key, maxAge: maxAge)
                                return (index, .success(found))
                            } catch let error as ContactdClientError {
                                return (index, .failure(error))
                            } catch {
                                return (index, .failure(.connectionClosed))
                            }
                        }
                    }
                    var answers = [Result<ContactLookup, ContactdClientError>?](repeating: nil, count: keys.count)
                    for await (index, answer) in group { answers[index] = answer }
                    return answers
                }
                for (index, answer) in answers.enumerated() {
                    switch answer {
                    case .success(let found)?:
                        if global.wantsJSON {
                            global.printJSON(found.result)
                        } else {
                            if index > 0 { print("") }
                            print(ContactView.render(found))
                        }
                    case .failure(let error)?:
                        // A connection problem is the whole command's; a key's own error is its own.
                        if keys.count == 1 || error.code == nil { throw error }
                        GlobalOptions.report(error, key: keys[index])
                        failure = failure ?? Contactctl.exitStatus(for: error)
                    case nil:
                        break
                    }
                }
            }
            if let failure { throw ExitCode(failure) }
        }
    }

    struct Invalidate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop a contact from the cache, or everything.")

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Drop every entry.") var all = false
        @Flag(help: "Treat the key as a phone number.") var phone = false
        @Flag(help: "Treat the key as a contact id.") var id = false
        @Argument(help: "A phone number or contact id.") var key: String?

        func validate() throws {
            if all == (key != nil) { throw ValidationError("give a key or --all") }
            if phone && id { throw ValidationError("--phone and --id exclude each other") }
        }

        func run() async throws {
            try await global.withConnection { connection in
                let removed: Int
                if all {
                    removed = try await connection.invalidateAll()
                } else if let key, phone || (!id && key.hasPrefix("+")) {
                    removed = try await connection.invalidate(phoneNumber: key)
                } else {
                    removed = try await connection.invalidate(id: key ?? "")
                }
                if global.wantsJSON {
                    global.printJSON(.object(["removed": .int(removed)]))
                } else {
                    print("removed \(removed) \(removed == 1 ? "entry" : "entries")")
                }
            }
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show cache and API counters.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let stats = try await connection.call("cache.stats").objectValue ?? [:]
                global.wantsJSON ? global.printJSON(.object(stats)) : print(ContactView.table(stats, units: true))
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the daemon's version, uptime and state.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let status = try await connection.call("daemon.status").objectValue ?? [:]
                global.wantsJSON ? global.printJSON(.object(status)) : print(ContactView.table(status, units: true))
            }
        }
    }

    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every setting's effective value and where it came from (flag, environment, file, default)."
        )
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let config = try await connection.call("daemon.config").objectValue ?? [:]
                global.wantsJSON
                    ? global.printJSON(.object(config)) : print(ContactView.settings(config, legend: !global.noLegend))
            }
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the daemon to re-read its configuration and token, and show what changed.",
            discussion: """
                The same as `systemctl reload contactd` (SIGHUP), with the outcome printed: the \
                settings applied at once, and those that wait for a restart. Only root and the \
                daemon's own user may. Exit status 78 when the configuration or the token did not \
                load: the daemon keeps running with what it had.
                """
        )
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            var failed = false
            try await global.withConnection { connection in
                if global.wantsJSON {
                    let result = try await connection.call("daemon.reload")
                    global.printJSON(result)
                    failed = result["configuration_error"] != nil || result["token_error"] != nil
                    return
                }
                let result = try await connection.reload()
                print(ContactView.reload(result))
                for (what, error) in [("configuration", result.configurationError), ("token", result.tokenError)] {
                    guard let error else { continue }
                    FileHandle.standardError.write(
                        Data("contactctl: the \(what) did not load; the daemon keeps the running one: \(error)\n".utf8)
                    )
                    failed = true
                }
            }
            if failed { throw ExitCode(78) }
        }
    }

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the Prometheus metrics, as /metrics serves them (for node_exporter's textfile collector)."
        )
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let result = try await connection.call("daemon.metrics")
                if global.wantsJSON {
                    global.printJSON(result)
                } else {
                    print(result.objectValue?["text"]?.stringValue ?? "", terminator: "")
                }
            }
        }
    }

    struct ResetStatistics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-statistics",
            abstract: "Zero the cache and API counters (entries and the cache itself stay)."
        )
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                _ = try await connection.call("cache.reset_stats")
                if global.wantsJSON { global.printJSON(.object([:])) }
            }
        }
    }

    struct Ping: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                try await connection.ping()
                global.wantsJSON ? global.printJSON("pong") : print("pong")
            }
        }
    }

    struct Call: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Call any JSON-RPC method and print its result as JSON."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The method, e.g. cache.stats.") var method: String
        @Argument(help: #"Params as JSON, e.g. '{"phone_number":"+14155551234"}'."#) var params: String?

        func validate() throws {
            if let params, (try? JSONParser.parse(Array(params.utf8))) == nil {
                throw ValidationError("params are not valid JSON")
            }
        }

        func run() async throws {
            let parsed = try params.map { try JSONParser.parse(Array($0.utf8)) }
            try await global.withConnection { connection in
                global.printJSON(try await connection.call(method, params: parsed))
            }
        }
    }
}

/// Runs contactctl with SPEC §5 exit statuses: ArgumentParser exits 64 on usage errors, we exit 2.
/// The `contactctl` executable calls it, and so does `contactd` when it is run by that name (the
/// package installs one program for both: see scripts/package).
package enum ContactctlMain {
    package static func main() async {
        do {
            let arguments = Array(CommandLine.arguments.dropFirst()).map { $0 == "--json" ? "--json=short" : $0 }
            var command = try Contactctl.parseAsRoot(movingGlobalOptions(arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = Contactctl.exitCode(for: error)
            let message = Contactctl.fullMessage(for: error)
            if code == .success {
                print(message)
                exit(0)
            }
            if !message.isEmpty {
                FileHandle.standardError.write(Data((message + "\n").utf8))
            }
            exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }

    /// Lets `--socket`, `--timeout`, `--json` and `--no-legend` come before the subcommand (`contactctl --socket S get K`), as
    /// with systemctl, by moving them after it, where ArgumentParser looks for them.
    static func movingGlobalOptions(_ arguments: [String]) -> [String] {
        var rest = arguments
        var globals: [String] = []
        while let first = rest.first {
            if first == "--socket" || first == "--timeout", rest.count >= 2 {
                globals += rest.prefix(2)
                rest.removeFirst(2)
            } else if first.hasPrefix("--socket=") || first.hasPrefix("--timeout=") || first.hasPrefix("--json=")
                || first == "--no-legend"
            {
                globals.append(first)
                rest.removeFirst()
            } else {
                break
            }
        }
        guard !globals.isEmpty, let subcommand = rest.first, !subcommand.hasPrefix("-") else { return arguments }
        return [subcommand] + globals + rest.dropFirst()
    }
}
