import ContactdCore
import ContactdJSON
import ContactdProtocol
import NIOCore

// MARK: - Batches: every element answered, the replies in one line in the batch's order

extension ConnectionHandler {
    func handleBatch(_ items: [RPCItem]) {
        let ids = items.map { item -> JSONValue? in
            if case .request(let request) = item { return request.id }
            return nil
        }
        var outcomes: [RequestDispatcher.Outcome] = []
        outcomes.reserveCapacity(items.count)
        var needsFetch = false
        for item in items {
            if let refusal = refusal(for: item) {
                outcomes.append(.reply(refusal.isEmpty ? nil : refusal))
                continue
            }
            let outcome = dispatcher.respond(to: item)
            if case .reply = outcome {} else { needsFetch = true }
            outcomes.append(outcome)
        }
        guard needsFetch else {
            let replies = outcomes.map { outcome -> [UInt8]? in
                if case .reply(let bytes) = outcome { return bytes }
                return nil
            }
            if let line = Self.batchLine(replies, ids: ids) { writeLine(line) }
            return
        }
        let snapshot = outcomes
        guard let channel = context?.channel else { return }
        startAsync { dispatcher in
            let replies = await withTaskGroup(of: (Int, [UInt8]?).self) { group in
                var replies = [[UInt8]?](repeating: nil, count: snapshot.count)
                for (index, outcome) in snapshot.enumerated() {
                    switch outcome {
                    case .reply(let bytes): replies[index] = bytes
                    case .fetch(let pending): group.addTask { (index, await dispatcher.fetch(pending)) }
                    case .invalidate(let params, let id):
                        group.addTask { (index, await dispatcher.invalidate(params, id: id)) }
                    case .reload(let id):
                        group.addTask {
                            (index, await dispatcher.reload(id: id, peerUID: await Self.peerUID(of: channel)))
                        }
                    }
                }
                for await (index, bytes) in group { replies[index] = bytes }
                return replies
            }
            return Self.batchLine(replies, ids: ids)
        }
    }

    /// Most bytes of one batch's reply line. `--max-batch` bounds the requests, not their
    /// replies: a contact may be up to 1 MiB, so a full batch could otherwise ask for a gigabyte.
    static let maxBatchReplyBytes = 16 << 20

    /// `[r1,r2,…]` of the replies given (`nil`: a notification's), or `nil` when every element was
    /// a notification. Past `maxBatchReplyBytes`, each further request is answered with
    /// `batch_too_large` instead of its reply (`ids` gives its id).
    static func batchLine(_ replies: [[UInt8]?], ids: [JSONValue?]) -> [UInt8]? {
        var out: [UInt8] = [UInt8(ascii: "[")]
        var first = true
        for (index, reply) in replies.enumerated() {
            guard var reply else { continue }
            if out.count + reply.count > maxBatchReplyBytes {
                reply = RPCResponse.failure(
                    id: ids[index] ?? .null,
                    error: .batchReplyTooLarge(limit: maxBatchReplyBytes)
                )
            }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: reply)
        }
        guard !first else { return nil }
        out.append(UInt8(ascii: "]"))
        return out
    }
}
