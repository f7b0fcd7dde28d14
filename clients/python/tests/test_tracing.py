"""The caller's OpenTelemetry trace context reaches contactd: a lookup made inside a span shows in
that span's trace among the spans contactd exports (to the fake API, which is also an OTLP/HTTP
collector). Needs opentelemetry-api, which scripts/test installs beside the client."""
from __future__ import annotations

import time

import pytest

import contactd
from conftest import generated

trace = pytest.importorskip("opentelemetry.trace", reason="opentelemetry-api is not installed")

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


def test_a_lookup_inside_a_span_passes_its_trace_context(make_daemon, api) -> None:
    daemon = make_daemon("--otlp-endpoint", api.url)
    number = "+15551110042"
    assert generated(number) is not None
    caller = trace.NonRecordingSpan(trace.SpanContext(TRACE_ID, SPAN_ID, is_remote=False,
                                                      trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
    with contactd.Client(daemon.socket_path) as client:
        with trace.use_span(caller):
            assert contactd._wire.traceparent() == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
            assert client.get(number).cache.status == "miss"
        # Outside the span: nothing is passed.
        assert contactd._wire.traceparent() is None
    # contactd sends its spans within a second or so; the trace id is in them as its 16 raw bytes,
    # and the caller's span id as the parent of contactd's own.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with api.lock:
            exported = b"".join(api.trace_exports)
        if TRACE_ID.to_bytes(16, "big") in exported and SPAN_ID.to_bytes(8, "big") in exported:
            break
        time.sleep(0.05)
    else:
        pytest.fail("contactd exported no span in the caller's trace within 30 s")
