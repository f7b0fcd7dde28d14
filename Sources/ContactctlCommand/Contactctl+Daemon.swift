import ArgumentParser
import ContactdClient
import ContactdJSON
import ContactdProtocol
import Foundation

// The commands that inspect and control the daemon: stats, status, config, reload, metrics,
// reset-statistics, ping, and call for any method.
extension Contactctl {
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show cache and API counters.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let stats = try global.encoded(await connection.stats())
                global.wantsJSON ? global.printJSON(.object(stats)) : print(ContactView.table(stats, units: true))
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the daemon's version, uptime and state.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await global.withConnection { connection in
                let status = try global.encoded(await connection.status())
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
                let config = try await connection.config()
                global.wantsJSON
                    ? global.printJSON(.object(try global.encoded(config)))
                    : print(config.table(legend: !global.noLegend, escape: ContactView.escape))
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
                let result = try await connection.reload()
                if global.wantsJSON {
                    global.printJSON(.object(try global.encoded(result)))
                    failed = result.configurationError != nil || result.tokenError != nil
                    return
                }
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
                let result = try await connection.metrics()
                if global.wantsJSON {
                    global.printJSON(.object(try global.encoded(result)))
                } else {
                    print(result.text, terminator: "")
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
                try await connection.resetStats()
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
