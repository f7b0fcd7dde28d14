import HTTPResponder
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

extension FakeAPICore {
    /// Answers one request as the behaviour set says: now, after the delay, or when released
    /// (`hold`); `/fake/…` are the controls a script uses (`control`); an OpenTelemetry collector's OTLP/HTTP traces endpoint is kept for the test to
    /// decode (`traceExports`) and answered with an empty ExportTraceServiceResponse.
    func respond(to request: HTTPResponder.Request, on eventLoop: any EventLoop) -> EventLoopFuture<
        HTTPResponder.Answer
    > {
        if request.path.hasPrefix("/fake/") { return eventLoop.makeSucceededFuture(control(request)) }
        if request.head.method == .POST, request.head.uri == "/v1/traces" {
            recordTraces(Array(request.body.readableBytesView))
            return eventLoop.makeSucceededFuture(.reply(.ok, headers: [("content-type", "application/x-protobuf")]))
        }
        let (answer, delay, _, key) = answer(head: request.head, body: request.body)
        let promise = eventLoop.makePromise(of: HTTPResponder.Answer.self)
        let deliver: @Sendable () -> Void = {
            self.finished(key: key)
            switch answer {
            case .drop: promise.succeed(.reset)
            case .respond(let status, let headers, let text): promise.succeed(.text(status, text, headers: headers))
            }
        }
        if !park(deliver) {
            if delay > .zero {
                eventLoop.scheduleTask(in: delay) { deliver() }
            } else {
                deliver()
            }
        }
        return promise.futureResult
    }

    /// The controls for a process outside the test (`contactd-bench fake-api`, the systemd
    /// end-to-end test): `GET /fake/calls` is the number of API calls so far, `PUT /fake/outage`
    /// answers every call with 503 until `DELETE /fake/outage`.
    private func control(_ request: HTTPResponder.Request) -> HTTPResponder.Answer {
        switch (request.head.method, request.path) {
        case (.GET, "/fake/calls"):
            return .text(.ok, String(state.withLockedValue { $0.calls }))
        case (.PUT, "/fake/outage"):
            state.withLockedValue { $0.behavior = .status(503) }
            return .text(.ok, "outage\n")
        case (.DELETE, "/fake/outage"):
            state.withLockedValue { $0.behavior = .normal }
            return .text(.ok, "answering\n")
        default:
            return .text(.notFound, "controls: GET /fake/calls, PUT or DELETE /fake/outage\n")
        }
    }
}
