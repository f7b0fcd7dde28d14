"""Every reason contactd can send becomes its own exception, checked against the real daemon's
own error objects wherever a client can provoke them."""
from __future__ import annotations

import json
import os
import socket

import pytest

import contactd
from conftest import FakeAPI


def raw_reply(path: str, line: bytes) -> dict:
    """Sends one raw line and returns contactd's reply object."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, f"contactd closed the connection without answering {line[:60]!r}"
            data += chunk
    return json.loads(data.split(b"\n")[0])


@pytest.mark.parametrize("line, expected", [
    (b"{not json\n", contactd.ParseError),
    (b'{"jsonrpc":"1.0","id":1,"method":"daemon.ping"}\n', contactd.InvalidRequest),
    (b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"daemon.ping"}'] * 1001) + b"]\n", contactd.BatchTooLarge),
    (b'{"jsonrpc":"2.0","id":1,"method":"nope"}\n', contactd.MethodNotFound),
    (b'{"jsonrpc":"2.0","id":1,"method":"contact.get","params":{}}\n', contactd.InvalidParams),
])
def test_the_daemons_protocol_errors_map_to_their_classes(daemon, line, expected) -> None:
    reply = raw_reply(daemon.socket_path, line)
    error = contactd.ContactdError.from_error_object(reply["error"])
    assert type(error) is expected, reply
    assert error.reason == expected.reason and error.code == reply["error"]["code"]


def test_a_connection_over_the_limit_is_overloaded(make_daemon) -> None:
    daemon = make_daemon("--max-connections", "1")
    first = contactd.Client(daemon.socket_path, timeout=5)
    first.ping()
    with pytest.raises(contactd.Overloaded):
        contactd.Client(daemon.socket_path, timeout=5).ping()
    first.close()


def test_a_rejected_token_is_upstream_unauthorized(make_daemon) -> None:
    rejecting = FakeAPI()
    rejecting.reject_token = True
    try:
        daemon = make_daemon(fake=rejecting)
        with contactd.Client(daemon.socket_path, timeout=5) as client:
            with pytest.raises(contactd.UpstreamUnauthorized) as raised:
                client.get(phone_number="+15551110001")
            assert raised.value.code == -32003
    finally:
        rejecting.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_a_peer_that_is_not_allowed_is_forbidden(make_daemon) -> None:
    daemon = make_daemon("--allow-uid", "4242", "--socket-mode", "0666")
    os.chmod(os.path.dirname(daemon.socket_path), 0o755)
    child = os.fork()
    if child == 0:
        # As nobody: refused by contactd's peer check, not by the file's mode.
        try:
            os.setgid(65534)
            os.setuid(65534)
            contactd.Client(daemon.socket_path, timeout=5).ping()
            os._exit(1)
        except contactd.Forbidden:
            os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.WEXITSTATUS(status) == 0, "the client as uid 65534 did not get Forbidden"


def test_every_reason_has_a_class_and_unknown_ones_stay_readable() -> None:
    reasons = {"parse_error", "invalid_request", "request_too_large", "batch_too_large", "method_not_found",
               "invalid_params", "invalid_phone_number", "invalid_contact_id", "rejected_by_api", "internal_error",
               "not_found", "upstream_unavailable", "upstream_unauthorized", "rate_limited", "overloaded",
               "shutting_down", "forbidden", "upstream_bad_response"}
    assert set(contactd.SERVER_REASONS) == reasons
    # internal_error cannot be provoked from outside (it is a bug in contactd): its object here is
    # the one contactd sends (RPCError.internalError).
    internal = contactd.ContactdError.from_error_object(
        {"code": -32603, "message": "Internal error", "data": {"reason": "internal_error"}})
    assert type(internal) is contactd.InternalError
    newer = contactd.ContactdError.from_error_object(
        {"code": -32099, "message": "Something new", "data": {"reason": "brand_new_reason"}})
    assert type(newer) is contactd.ContactdError and newer.reason == "brand_new_reason"
    assert str(newer) == "Something new [brand_new_reason]"


def test_the_openrpc_document_agrees_with_what_the_client_decodes(daemon) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        document = client.discover()
    get = next(method for method in document["methods"] if method["name"] == "contact.get")
    cache = get["result"]["schema"]["properties"]["cache"]["properties"]
    assert tuple(cache["status"]["enum"]) == contactd.CACHE_STATUSES
    assert tuple(cache["stale_reason"]["enum"]) == contactd.STALE_REASONS
    documented = {reason.strip() for error in get["errors"] for reason in error["message"].split(",")}
    assert documented <= set(contactd.SERVER_REASONS), documented - set(contactd.SERVER_REASONS)
    for error in get["errors"]:
        for reason in error["message"].split(","):
            assert contactd.ContactdError.from_error_object(
                {"code": error["code"], "message": "m", "data": {"reason": reason.strip()}}).code == error["code"]
    methods = {method["name"] for method in document["methods"]}
    assert {"contact.get", "contact.invalidate", "cache.stats", "daemon.status", "daemon.ping", "rpc.discover"} <= methods
