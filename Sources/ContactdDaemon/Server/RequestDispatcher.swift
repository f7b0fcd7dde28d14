import ContactdCore
import ContactdJSON
import ContactdProtocol
import ContactdSharedCache
import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Tracing

/// Answers parsed requests: every method, through the full JSON parser. Plain `contact.get`
/// lines never come here (`HitWriter` answers them); `contact.get` in any other spelling uses
/// the same `HitWriter` once its params are read.
///
/// Shared by all connections; `respond(to:)` runs on a connection's event loop and never waits.
package final class RequestDispatcher: Sendable {
    /// What to do with one request.
    package enum Outcome: Sendable {
        /// Reply with this response object (no newline); `nil` for a notification.
        case reply([UInt8]?)
        /// The contact must be fetched; call `fetch(_:)` and reply with what it returns.
        case fetch(PendingLookup)
        /// An invalidation that waits for the shared cache; call `invalidate(_:id:)`.
        case invalidate(InvalidateParams, id: JSONValue?)
        /// `daemon.reload`: call `reload(id:peerUID:)` with the caller's uid.
        case reload(id: JSONValue?)
    }

    let lookup: ContactResolver
    let status: LiveStatus
    let hits: HitWriter
    /// `contact.get` errors by reason, for the metrics.
    let failures: LookupFailures
    private let log: LookupLog
    private let discoverResult: [UInt8]
    /// `daemon.config`'s answer: made at start, made again when a reload changes a setting live.
    private let configReport: NIOLockedValueBox<DaemonConfig>
    /// What `daemon.metrics` renders; `nil` in tests that build a dispatcher alone.
    private let metrics: DaemonMetrics?
    /// The cache shared with other hosts, when configured: its state and counts join the reports.
    private let sharedCache: SharedCache?
    /// What `daemon.reload` runs; set once the daemon has made it (it needs this dispatcher).
    /// `nil` in tests that build a dispatcher alone: `daemon.reload` then says there is nothing
    /// to reload.
    var reloader: Reloader? {
        get { reloaderBox.withLockedValue { $0 } }
        set { reloaderBox.withLockedValue { $0 = newValue } }
    }
    private let reloaderBox = NIOLockedValueBox<Reloader?>(nil)

    package init(
        lookup: ContactResolver,
        status: LiveStatus,
        logger: Logger,
        logPersonalData: Bool = false,
        configReport: DaemonConfig = DaemonConfig(),
        levelSwitch: LogLevelSwitch? = nil,
        metrics: DaemonMetrics? = nil,
        sharedCache: SharedCache? = nil,
        failures: LookupFailures = LookupFailures()
    ) {
        self.lookup = lookup
        self.failures = failures
        self.metrics = metrics
        self.sharedCache = sharedCache
        self.status = status
        self.configReport = NIOLockedValueBox(configReport)
        self.log = LookupLog(logger: logger, clear: logPersonalData, levelSwitch: levelSwitch)
        self.hits = HitWriter(lookup: lookup, log: log, failures: failures)
        // The document is a constant checked by a test; compact it once here.
        self.discoverResult = (try? JSONParser.parse(Array(OpenRPCDocument.json.utf8)))?.jsonBytes ?? Array("{}".utf8)
    }

    /// Handles one request as far as it can without waiting.
    package func respond(to item: RPCItem) -> Outcome {
        switch item {
        case .invalid(let id, let error):
            return .reply(RPCResponse.failure(id: id, error: error))
        case .request(let request):
            do {
                return try handle(request)
            } catch {
                return .reply(request.id.map { RPCResponse.failure(id: $0, error: error) })
            }
        }
    }

    /// Carries out `contact.invalidate`: here at once, and with a shared cache in it and on every
    /// host, within its timeout. The result says whether the fleet part was done (`shared`).
    func invalidate(_ params: InvalidateParams, id: JSONValue?) async -> [UInt8]? {
        let done: Invalidation
        switch params {
        case .key(let key): done = await lookup.invalidate(key)
        case .all:
            done = await lookup.invalidateAll()
            // The cache's own pages are unmapped already; this returns what it freed on the heap.
            // It walks every arena under its lock: on NIO's blocking pool, not a cooperative thread.
            try? await NIOThreadPool.singleton.runIfActive { GlibcHeap.releaseFreeMemory() }
        }
        return id.map { Self.success(id: $0, InvalidateResult(removed: done.removed, shared: done.fleet)) }
    }

    /// Carries out `daemon.reload` for a peer with uid `peerUID` (`nil`: unknown). Only root and
    /// the daemon's own user may: a reload re-reads the token, and any client of the socket
    /// asking for it in a loop would re-read it without end.
    func reload(id: JSONValue?, peerUID: UInt32?) async -> [UInt8]? {
        let own = geteuid()
        guard let peerUID, peerUID == 0 || peerUID == own else {
            let error = RPCError(
                .forbidden,
                message:
                    "Only root and the daemon's own user (uid \(own)) may reload it; run this as root, or use systemctl reload contactd"
            )
            return id.map { RPCResponse.failure(id: $0, error: error) }
        }
        guard let reloader else {
            return id.map { RPCResponse.failure(id: $0, error: .internalError) }
        }
        let report = await reloader.reload()
        return id.map { Self.success(id: $0, report.result) }
    }

    /// Finishes a lookup that needed the API (with tracing on, in a span: `tracedGet`).
    func fetch(_ pending: PendingLookup) async -> [UInt8]? {
        let result =
            lookup.tracing.isOn
            ? await tracedGet(pending)
            : await lookup.get(pending.key, maxAge: pending.maxAge, since: pending.receivedAt)
        log.record(pending.key, result)
        if case .failure(let error) = result { failures.count(error: RPCError(error)) }
        guard let id = pending.id else { return nil }
        return ContactReply.object(id: id, result)
    }

    /// The lookup in a span of its own, a child of the caller's `traceparent` when it gave one.
    private func tracedGet(_ pending: PendingLookup) async -> Result<LookupResult, LookupError> {
        let tracing = lookup.tracing
        let context = tracing.context(traceparent: pending.traceparent)
        return await tracing.span("contact.get", kind: .server, context: context) { span in
            span?.attributes["rpc.system"] = "jsonrpc"
            span?.attributes["rpc.method"] = "contact.get"
            span?.attributes["contactd.key.kind"] = pending.key.kindName
            let result = await lookup.get(pending.key, maxAge: pending.maxAge, since: pending.receivedAt)
            switch result {
            case .success(let found):
                span?.attributes["contactd.cache.status"] = found.status.description
                if let tier = found.tier { span?.attributes["contactd.cache.tier"] = tier.description }
            case .failure(let error):
                span?.fail(RPCError(error).reason)
            }
            return result
        }
    }

    private func handle(_ request: RPCRequest) throws(RPCError) -> Outcome {
        guard let method = RPCMethod(rawValue: request.method) else {
            throw .methodNotFound(request.method)
        }
        switch method {
        case .contactGet:
            let params: ContactGetParams
            do {
                params = try ContactGetParams(request.params)
            } catch {
                failures.count(error: error)
                throw error
            }
            var reply: [UInt8] = []
            switch hits.answer(
                key: params.key,
                maxAge: params.maxAge,
                id: request.id,
                traceparent: params.traceparent,
                into: &reply
            ) {
            case .wrote: return .reply(request.id == nil ? nil : reply)
            case .lookUp(let pending): return .fetch(pending)
            // Not returned for a key given as a value; kept total rather than trapping.
            case .parse:
                return .fetch(
                    PendingLookup(
                        id: request.id,
                        key: params.key,
                        maxAge: params.maxAge,
                        traceparent: params.traceparent
                    )
                )
            }
        case .contactInvalidate:
            return .invalidate(try InvalidateParams(request.params), id: request.id)
        case .cacheStats:
            try Self.expectNoParams(request.params)
            var stats = Self.statsReport(lookup.stats)
            stats.shared = sharedCache?.statsReport
            return reply(request, stats)
        case .cacheResetStats:
            try Self.expectNoParams(request.params)
            if let metrics {
                metrics.resetStatistics { lookup.resetStatistics() }
            } else {
                lookup.resetStatistics()
            }
            return reply(request, JSONObject())
        case .daemonStatus:
            try Self.expectNoParams(request.params)
            var report = status.report(stats: lookup.stats, upstreamFailure: lookup.upstreamFailure)
            report.sharedCache = sharedCache?.statusReport
            return reply(request, report)
        case .daemonPing:
            try Self.expectNoParams(request.params)
            return reply(request, "pong")
        case .daemonConfig:
            try Self.expectNoParams(request.params)
            return reply(request, configReport.withLockedValue { $0 })
        case .daemonMetrics:
            try Self.expectNoParams(request.params)
            let text = metrics.map { String(decoding: $0.exposition(), as: UTF8.self) } ?? ""
            return reply(request, MetricsText(contentType: DaemonMetrics.contentType, text: text))
        case .daemonReload:
            try Self.expectNoParams(request.params)
            return .reload(id: request.id)
        case .rpcDiscover:
            try Self.expectNoParams(request.params)
            guard let id = request.id else { return .reply(nil) }
            var out: [UInt8] = []
            RPCResponse.success(id: id, rawResult: discoverResult, into: &out)
            return .reply(out)
        }
    }

    /// What `daemon.config` answers from now on.
    func replaceConfigReport(_ report: DaemonConfig) {
        configReport.withLockedValue { $0 = report }
    }

    private func reply(_ request: RPCRequest, _ result: some Encodable) -> Outcome {
        .reply(request.id.map { Self.success(id: $0, result) })
    }

    /// The success response carrying `result`, encoded from its type in ContactdProtocol.
    private static func success(id: JSONValue, _ result: some Encodable) -> [UInt8] {
        guard let value = try? JSONValueEncoder().encode(result) else {
            // The results are plain data with no encoding that can fail; kept total all the same.
            return RPCResponse.failure(id: id, error: .internalError)
        }
        var out: [UInt8] = []
        RPCResponse.success(id: id, result: value, into: &out)
        return out
    }

    private static func expectNoParams(_ params: JSONValue?) throws(RPCError) {
        switch params {
        case nil: return
        case .object(let o) where o.members.isEmpty: return
        // Any method takes a `traceparent` (docs/protocol.md, "Tracing").
        case .object(let o) where o.members.count == 1 && o["traceparent"] != nil:
            _ = try parseTraceparent(o)
            return
        case .array(let a) where a.isEmpty: return
        default: throw .invalidParams("this method takes no params")
        }
    }
}
