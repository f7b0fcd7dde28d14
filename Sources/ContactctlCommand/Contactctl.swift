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

    /// A typed result as the JSON object the daemon sent (members in the type's order).
    func encoded(_ result: some Encodable) throws -> JSONObject {
        try JSONValueEncoder().encode(result).objectValue ?? [:]
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
