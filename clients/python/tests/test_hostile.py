"""What broke the clients when two things met (issue #23, item 12): a pipeline larger than the
socket buffers, a timeout in the middle of a send, a reply nested too deeply to parse."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

import contactd
from conftest import JOHN


def test_get_many_with_ten_thousand_keys_does_not_deadlock(daemon) -> None:
    # Before, get_many wrote every request before reading a reply: past about 4,000 keys both
    # sides' buffers filled and it hung until its timeout.
    with contactd.Client(daemon.socket_path, timeout=60) as client:
        client.get(phone_number=JOHN["phone_number"])  # cached: the rest are hits, not API calls
        answers = client.get_many([JOHN["phone_number"]] * 10_000)
        assert len(answers) == 10_000
        assert all(isinstance(a, contactd.LookupResult) and a.contact.id == JOHN["id"] for a in answers)


class LineServer:
    """A Unix socket server speaking contactd's framing, for what contactd itself never does.

    ``first`` handles the first connection, ``rest`` every later one; each gets the socket."""

    def __init__(self, path: Path, first: Callable[[socket.socket], None], rest: Callable[[socket.socket], None]):
        self.path = str(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.handlers = [first]
        self.rest = rest
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            handler = self.handlers.pop(0) if self.handlers else self.rest
            threading.Thread(target=handler, args=(connection,), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def answer_pings(connection: socket.socket) -> None:
    """Answers each line as contactd would: a ping with pong, a line that is not JSON with a
    parse error (no id), which the client would raise."""
    buffer = b""
    with connection:
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    request = json.loads(line)
                    reply = {"jsonrpc": "2.0", "id": request["id"], "result": "pong"}
                except (ValueError, KeyError):
                    reply = {"jsonrpc": "2.0", "id": None,
                             "error": {"code": -32700, "message": "Parse error", "data": {"reason": "parse_error"}}}
                try:
                    connection.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:  # the client gave this connection up
                    return


@pytest.fixture
def server(tmp_path) -> Iterator[Callable[..., LineServer]]:
    servers = []

    def make(first: Callable[[socket.socket], None], rest: Callable[[socket.socket], None] = answer_pings) -> LineServer:
        made = LineServer(tmp_path / "fake.sock", first, rest)
        servers.append(made)
        return made

    yield make
    for made in servers:
        made.close()


def test_a_timeout_in_the_middle_of_a_send_does_not_poison_the_next_call(server) -> None:
    release = threading.Event()

    def stall_then_answer(connection: socket.socket) -> None:
        release.wait(10)  # not reading: the client's send fills the buffers and times out
        answer_pings(connection)

    fake = server(stall_then_answer)
    with contactd.Client(fake.path, timeout=0.5) as client:
        with pytest.raises(contactd.TimedOut):
            client.call("daemon.ping", None)  # connects
            client.get_many(["+14155551234"] * 50_000)
        release.set()
        # A new connection, not the half line left on the old one.
        assert client.call("daemon.ping", None, timeout=5) == "pong"


def nested_reply(connection: socket.socket) -> None:
    with connection:
        connection.recv(65536)
        connection.sendall(b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")


def test_a_reply_nested_too_deeply_is_a_bad_response_not_a_recursion_error(server) -> None:
    fake = server(nested_reply)
    with contactd.Client(fake.path, timeout=5) as client:
        with pytest.raises(contactd.ContactdError):
            client.call("daemon.ping", None)
        assert client.call("daemon.ping", None) == "pong"


def test_the_async_client_survives_a_reply_nested_too_deeply(server) -> None:
    fake = server(nested_reply)

    async def main() -> None:
        async with contactd.AsyncClient(fake.path, timeout=5) as client:
            with pytest.raises(contactd.ContactdError):
                await client.call("daemon.ping", None)
            assert await client.call("daemon.ping", None) == "pong"

    asyncio.run(main())
