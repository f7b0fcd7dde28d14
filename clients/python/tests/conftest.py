"""Fixtures: a loopback stand-in for the get-contact API and the real contactd binary.

The daemon is the built one (``CONTACTD_BIN``, else ``.build/debug/contactd`` of this
repository): these tests are the Python client against the real server, not against a mock.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
TOKEN = "python-client-token"

JOHN = {
    "id": "c1d2e3f4-5678-9abc-def0-123456789abc", "phone_number": "+14155551234", "name": "John Smith",
    "email": "john@example.com", "company": "Example Ltd", "notes": "", "tags": ["customer", "vip"],
    "metadata": {"tier": 2}, "stats": {"total_calls": 5, "total_messages": 12, "last_contact": "2024-01-15T10:30:00Z"},
    "created_at": "2024-01-10T10:00:00Z", "updated_at": "2024-01-15T10:30:00Z",
    "x_favourite_colour": "teal",
}
# Numbers whose lookups the fake API answers in one way each.
UNAVAILABLE = "+15550000503"
RATE_LIMITED = "+15550000429"
REJECTED = "+15550000400"
GARBAGE = "+15550000666"
SLOW = "+15550000777"
UNKNOWN = "+15550000404"


def generated(number: str) -> Optional[dict]:
    """A contact for every +1555111NNNN."""
    match = re.fullmatch(r"\+1555111(\d{4})", number)
    if not match:
        return None
    return {"id": f"py-{match[1]}", "phone_number": number, "name": f"Contact {match[1]}"}


class FakeAPI:
    """POST /get-contact on 127.0.0.1; counts calls; ``reject_token`` makes it answer 401."""

    def __init__(self) -> None:
        self.calls = 0
        self.reject_token = False
        self.lock = threading.Lock()
        #: Bodies POSTed to /v1/traces: the fake is also an OTLP/HTTP trace collector.
        self.trace_exports: List[bytes] = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/traces":
                    with api.lock:
                        api.trace_exports.append(raw)
                    return self.reply(200, None, raw=b"")
                body = json.loads(raw)
                with api.lock:
                    api.calls += 1
                if api.reject_token or self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self.reply(401, {"error": "bad token"})
                number = body.get("phone_number") or ""
                if number == UNAVAILABLE:
                    return self.reply(503, {"error": "down"})
                if number == RATE_LIMITED:
                    return self.reply(429, {"error": "slow down"}, {"Retry-After": "7"})
                if number == REJECTED:
                    return self.reply(400, {"error": "bad number"})
                if number == GARBAGE:
                    return self.reply(200, None, raw=b"<html>not a contact</html>")
                if number == SLOW:
                    time.sleep(1.5)
                    return self.reply(200, {"id": "slow-1", "phone_number": SLOW, "name": "Slow"})
                if number == JOHN["phone_number"] or body.get("contact_id") == JOHN["id"]:
                    return self.reply(200, JOHN)
                contact = generated(number)
                if contact is None and str(body.get("contact_id", "")).startswith("py-"):
                    contact = generated("+1555111" + body["contact_id"][3:])
                return self.reply(200, contact) if contact else self.reply(404, {"error": "not found"})

            def reply(self, status: int, value: object, headers: Optional[Dict[str, str]] = None,
                      raw: Optional[bytes] = None) -> None:
                data = raw if raw is not None else json.dumps(value).encode()
                self.send_response(status)
                for name, text in (headers or {}).items():
                    self.send_header(name, text)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # The default backlog of 5 makes contactd's 16 pooled connects time out under a burst.
            request_queue_size = 128
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def contactd_binary() -> str:
    path = os.environ.get("CONTACTD_BIN") or str(REPOSITORY / ".build" / "debug" / "contactd")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: run `swift build` first, or set CONTACTD_BIN")
    return path


class Daemon:
    """The built contactd against a FakeAPI, in a directory of its own; READY=1 is awaited on a
    notify socket of the test's, not guessed with a sleep."""

    def __init__(self, api: FakeAPI, directory: str, arguments: List[str]) -> None:
        self.api = api
        self.directory = directory
        self.arguments = arguments
        self.socket_path = os.path.join(directory, "contactd.sock")
        self.process: Optional[subprocess.Popen] = None
        self.log = os.path.join(directory, "contactd.log")
        self.start()

    def start(self) -> None:
        notify_path = os.path.join(self.directory, "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        environment = {"PATH": "/usr/bin:/bin", "CONTACTD_API_TOKEN": TOKEN, "NOTIFY_SOCKET": notify_path}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [contactd_binary(), "--socket", self.socket_path, "--api-url", self.api.url,
                 "--retry-attempts", "1", "--breaker-failures", "1000", *self.arguments],
                env=environment, stdout=log, stderr=log)
        self.wait_for("READY=1", timeout=30)

    def wait_for(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.notify.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = self.notify.recv(65536).decode()
            except socket.timeout:
                raise RuntimeError(f"contactd sent no {state} within {timeout} s; log:\n{Path(self.log).read_text()}")
            if state in message.split("\n"):
                return

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(timeout=30) == 0
        self.notify.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.notify.close()


@pytest.fixture(scope="session")
def api() -> Iterator[FakeAPI]:
    fake = FakeAPI()
    yield fake
    fake.close()


@pytest.fixture
def make_daemon(api: FakeAPI) -> Iterator:
    """Starts daemons with extra flags; each is stopped (or killed) at the end of the test."""
    started: List[Daemon] = []
    directories: List[tempfile.TemporaryDirectory] = []

    def make(*arguments: str, fake: Optional[FakeAPI] = None) -> Daemon:
        directory = tempfile.TemporaryDirectory(prefix="cdpy-", dir="/tmp")
        directories.append(directory)
        daemon = Daemon(fake or api, directory.name, list(arguments))
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.kill()
    for directory in directories:
        directory.cleanup()


@pytest.fixture
def daemon(make_daemon) -> Daemon:
    return make_daemon()
