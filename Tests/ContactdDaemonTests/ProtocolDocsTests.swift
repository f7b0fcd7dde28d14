import ContactdCore
import ContactdProtocol
import Foundation
import Testing

/// docs/protocol.md names everything a client can meet on the wire: every method, every error
/// reason contactd sends (with its code), every cache status, stale reason and tier. A new one
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

    @Test func everyCacheStatusStaleReasonAndTierIsNamed() {
        let values =
            CacheStatus.allCases.map(\.rawValue) + StaleReason.allCases.map(\.rawValue)
            + CacheTier.allCases.map(\.rawValue)
        for value in values {
            #expect(Self.protocolDocs.contains("`\(value)`"), "docs/protocol.md does not name `\(value)`")
        }
    }
}
