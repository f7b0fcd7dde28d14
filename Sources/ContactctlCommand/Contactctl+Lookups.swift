import ArgumentParser
import ContactdClient
import ContactdJSON
import ContactdProtocol
import Foundation

// `get` and `invalidate`: the commands that take keys.
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
                let params: JSONObject =
                    if all {
                        ["all": true]
                    } else if let key, phone || (!id && key.hasPrefix("+")) {
                        ["phone_number": .string(key)]
                    } else {
                        ["contact_id": .string(key ?? "")]
                    }
                let result = try await connection.invalidation(params)
                let removed = result.removed
                if global.wantsJSON {
                    global.printJSON(.object(try global.encoded(result)))
                } else {
                    print("removed \(removed) \(removed == 1 ? "entry" : "entries")")
                }
            }
        }
    }
}
