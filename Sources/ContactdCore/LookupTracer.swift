import Tracing

/// Spans for the lookups that leave the hit path: the caller's lookup, the fetch, the shared
/// tier, each API attempt, a wait for another host's fetch (docs/operations.md, "Tracing").
///
/// Off (`tracer` `nil`, the default), every call runs its body at once with no span and no
/// task-local work; a hit never comes here either way. On, spans are children of the task's
/// current trace context (`ServiceContext.current`), which child tasks inherit: the fetch a miss
/// starts and its attempts join the first caller's trace.
package struct LookupTracer: Sendable {
    package let tracer: (any Tracer)?

    package init(_ tracer: (any Tracer)?) { self.tracer = tracer }

    package static let off = LookupTracer(nil)

    /// Whether spans are made: when not, callers take the plain path, with no closure around it.
    package var isOn: Bool { tracer != nil }

    /// Runs `body` inside a span named `name` (a child of `context`, or of the task's current
    /// context); `body` gets the span to set attributes on, `nil` when tracing is off.
    package func span<T: Sendable>(
        _ name: String,
        kind: SpanKind = .internal,
        context: ServiceContext? = nil,
        _ body: ((any Span)?) async -> T
    ) async -> T {
        guard let tracer else { return await body(nil) }
        let span = tracer.startSpan(name, context: context ?? ServiceContext.current ?? .topLevel, ofKind: kind)
        defer { span.end() }
        return await ServiceContext.withValue(span.context) { await body(span) }
    }

    /// The context a W3C `traceparent` names (the caller's span as the parent), or a new trace's
    /// when it is `nil` or cannot be read.
    package func context(traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let tracer, let traceparent else { return context }
        tracer.extract(["traceparent": traceparent], into: &context, using: TraceparentExtractor())
        return context
    }

    private struct TraceparentExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }
}

extension Span {
    /// Marks the span as failed with `reason` (the error's wire reason, e.g. `upstream_unavailable`).
    package func fail(_ reason: String) {
        attributes["error.type"] = reason
        setStatus(SpanStatus(code: .error, message: reason))
    }
}

extension ContactKey {
    /// Which kind of key, for a span: `phone` or `id`. Never the key itself: spans leave the host,
    /// and a number is personal data.
    package var kindName: String {
        switch self {
        case .phone: "phone"
        case .id: "id"
        }
    }
}
