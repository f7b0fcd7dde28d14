import ContactdCore
import ContactdProtocol
import Foundation
import Testing

/// docs/protocol.md names everything a client can meet on the wire: every method, every error
/// reason contactd sends (with its code), every word a state travels as (cache status, stale reason, tier,
/// circuit, API and shared-cache states, a setting's source, the token after a reload). A new one
/// added to the code and not to the docs fails here.
@Suite struct ProtocolDocsTests {
    static let protocolDocs: String = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/protocol.md")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    @Test func everyMethodHasASection() {
        for method in RPCMethod.allCases {
            let section = "### `\(method.rawValue)`"
            #expect(Self.protocolDocs.contains(section), "docs/protocol.md: no section for \(method)")
        }
    }

    @Test func everyReasonTheDaemonSendsIsInTheErrorsTableWithItsCode() throws {
        let errors = try #require(Self.protocolDocs.range(of: "## Errors")).upperBound
        let table = Self.protocolDocs[errors...]
        for reason in ErrorReason.allCases where reason.sentByServer {
            let row = table.split(separator: "\n").first { $0.contains("`\(reason.rawValue)`") }
            #expect(row != nil, "docs/protocol.md's errors table has no `\(reason.rawValue)`")
            let code = reason.code ?? 0
            #expect(row?.contains("\(code)") == true, "`\(reason.rawValue)` is not on a row of code \(code)")
            let retry = row?.split(separator: "|").last?.trimmingCharacters(in: .whitespaces)
            #expect(retry == reason.retry.description, "`\(reason.rawValue)`: retry? says \(retry ?? "nothing")")
        }
    }

    /// Every word a state travels as (ContactdProtocol's `WireSpelling` types) is named.
    @Test func everyWordOfEveryStateIsNamed() {
        let words: [(String, [String])] = [
            ("cache status", CacheStatus.known), ("stale reason", StaleReason.known), ("tier", CacheTier.known),
            ("circuit state", CircuitState.known), ("shared cache state", SharedCacheState.known),
            ("API state", APIState.known), ("setting source", ValueSource.known), ("token", TokenChange.known),
        ]
        for (what, values) in words {
            for value in values {
                #expect(
                    Self.protocolDocs.contains("`\(value)`"),
                    "docs/protocol.md does not name the \(what) `\(value)`"
                )
            }
        }
    }
}
