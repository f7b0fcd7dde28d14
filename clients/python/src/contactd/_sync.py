"""The blocking client."""
from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _wire
from ._errors import ConnectionClosed, ContactdError, TimedOut
from ._types import LookupResult

_DEFAULT: Any = object()


class Client:
    """A connection to contactd for one thread at a time (calls from several threads take turns;
    for many calls at once use ``get_many`` or ``AsyncClient``).

    ``timeout`` (seconds, ``None`` for none) bounds each call, reconnecting included. After the
    daemon goes away (a restart, an upgrade), the next call reconnects with backoff within its
    timeout and a call cut off by the restart is sent once more, as every method is safe to repeat.
    The first connection is not retried: a wrong path fails at once.
    """

    def __init__(self, socket_path: str = _wire.DEFAULT_SOCKET, timeout: Optional[float] = 10.0,
                 reconnect: bool = True) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.reconnect = reconnect
        self._sock: Optional[socket.socket] = None
        self._buffer = b""
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._was_connected = False

    # -- Methods

    def get(self, phone_number: Optional[str] = None, contact_id: Optional[str] = None, *,
            max_age: Optional[float] = None, timeout: Optional[float] = _DEFAULT) -> LookupResult:
        """A contact by phone number or by id. Raises ``NotFound`` if the API has none."""
        params = _wire.lookup_params(phone_number, contact_id, max_age)
        return _wire.lookup_result(self.call("contact.get", params, timeout=timeout))

    def get_many(self, keys: Sequence[str], *, max_age: Optional[float] = None,
                 timeout: Optional[float] = _DEFAULT) -> List[Union[LookupResult, ContactdError]]:
        """Looks every key up at once on this connection (pipelined; a key starting with ``+`` is a
        phone number, any other an id). Returns a result or the error for each key, in order."""
        params: List[Optional[Dict[str, Any]]] = [_wire.key_params(key, max_age) for key in keys]
        answers: List[Union[LookupResult, ContactdError]] = []
        for reply in self._run("contact.get", params, timeout, idempotent=True):
            try:
                if isinstance(reply, ContactdError):
                    raise reply
                answers.append(_wire.lookup_result(_wire.result_of(reply)))
            except ContactdError as error:
                answers.append(error)
        return answers

    def invalidate(self, phone_number: Optional[str] = None, contact_id: Optional[str] = None, *,
                   timeout: Optional[float] = _DEFAULT) -> int:
        """Drops one cached entry; returns how many were removed (0 or 1)."""
        params = _wire.lookup_params(phone_number, contact_id, None)
        return _wire.removed_count(self.call("contact.invalidate", params, timeout=timeout))

    def invalidate_all(self, *, timeout: Optional[float] = _DEFAULT) -> int:
        """Empties the cache; returns how many entries were removed."""
        return _wire.removed_count(self.call("contact.invalidate", {"all": True}, timeout=timeout))

    def stats(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``cache.stats``: cache and API counters."""
        return dict(self.call("cache.stats", timeout=timeout))

    def status(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``daemon.status``: version, uptime, connections, readiness."""
        return dict(self.call("daemon.status", timeout=timeout))

    def config(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``daemon.config``: each setting's ``value`` and ``source`` (the token's source only)."""
        return dict(self.call("daemon.config", timeout=timeout))

    def reload(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``daemon.reload``: re-read the token and configuration; ``applied`` and ``after_restart``
        say what changed (root and the daemon's own user only, else :class:`Forbidden`)."""
        return dict(self.call("daemon.reload", timeout=timeout))

    def ping(self, *, timeout: Optional[float] = _DEFAULT) -> None:
        self.call("daemon.ping", timeout=timeout)

    def discover(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``rpc.discover``: the OpenRPC document."""
        return dict(self.call("rpc.discover", timeout=timeout))

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, *,
             timeout: Optional[float] = _DEFAULT) -> Any:
        """Any method, raw: its ``result``, or the error raised."""
        reply = self._run(method, [params], timeout, idempotent=method in _wire.IDEMPOTENT)[0]
        if isinstance(reply, ContactdError):
            raise reply
        return _wire.result_of(reply)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Connection

    def _run(self, method: str, params: List[Optional[Dict[str, Any]]], timeout: Optional[float], *,
             idempotent: bool) -> List[Union[Dict[str, Any], ContactdError]]:
        """Sends a request per params and returns each reply (or, for a batch, the error that cut
        it off), reconnecting and sending the unanswered ones once more when that is safe."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        # Replies received so far, by index: a batch cut off part-way sends only the rest again.
        done: Dict[int, Union[Dict[str, Any], ContactdError]] = {}
        retried = False
        with self._lock:
            while True:
                try:
                    self._connect(deadline)
                    self._exchange(method, params, deadline, done)
                    return [done[index] for index in range(len(params))]
                except ContactdError as error:
                    # Also after a timeout: it may have cut a line in half, and the replies it
                    # left behind would come first on this connection.
                    self._drop()
                    if not retried and self.reconnect and idempotent and _wire.retryable(error):
                        retried = True
                        continue
                    if len(params) == 1:
                        raise
                    return [done.get(index, error) for index in range(len(params))]

    def _connect(self, deadline: Optional[float]) -> None:
        if self._sock is not None:
            return
        delays = _wire.backoff_delays()
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_wire.remaining(deadline))
                sock.connect(self.socket_path)
            except socket.timeout:
                sock.close()
                raise TimedOut(f"no connection to {self.socket_path} within the timeout") from None
            except OSError as error:
                sock.close()
                time.sleep(_wire.reconnect_delay(self.socket_path, error, reconnect=self.reconnect,
                                                 was_connected=self._was_connected, delays=delays, deadline=deadline))
                continue
            self._sock = sock
            self._buffer = b""
            self._was_connected = True
            return

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._buffer = b""

    def _exchange(self, method: str, params: List[Optional[Dict[str, Any]]], deadline: Optional[float],
                  done: Dict[int, Union[Dict[str, Any], ContactdError]]) -> None:
        """Sends a request for each params not yet answered, then reads until each is."""
        assert self._sock is not None
        waiting: Dict[int, int] = {}
        unsent = [index for index in range(len(params)) if index not in done]
        try:
            while waiting or unsent:
                # Keep at most PIPELINE_WINDOW requests unanswered: reading as it writes, the
                # client never waits on a full socket that contactd waits on too.
                room = _wire.PIPELINE_WINDOW - len(waiting)
                if unsent and room >= _wire.PIPELINE_WINDOW // 2:
                    lines = []
                    for index in unsent[:room]:
                        request_id = next(self._ids)
                        waiting[request_id] = index
                        lines.append(_wire.encode(request_id, method, params[index]))
                    unsent = unsent[room:]
                    self._sock.settimeout(_wire.remaining(deadline))
                    self._sock.sendall(b"".join(lines))
                request_id, reply = _wire.decode(self._read_line(deadline))
                if request_id is None and "error" in reply:
                    # About the connection, not one request (too long a line, a refused peer):
                    # every request still waiting gets it; contactd closes the connection.
                    raise ContactdError.from_error_object(reply["error"])
                if isinstance(request_id, int) and request_id in waiting:
                    done[waiting.pop(request_id)] = reply
        except socket.timeout:
            raise TimedOut("no answer from contactd within the timeout") from None
        except OSError as error:
            raise ConnectionClosed(f"the connection to contactd broke: {error.strerror or error}") from None
        # A draining daemon answers shutting_down: those are sent once more, to its successor.
        draining = [index for index, reply in done.items() if _is_shutting_down(reply)]
        if draining:
            first = done[draining[0]]
            assert isinstance(first, dict)
            for index in draining:
                del done[index]
            raise ContactdError.from_error_object(first["error"])

    def _read_line(self, deadline: Optional[float]) -> bytes:
        assert self._sock is not None
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
                if line.strip():
                    return line
                continue
            self._sock.settimeout(_wire.remaining(deadline))
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionClosed("contactd closed the connection before answering")
            self._buffer += chunk


def _is_shutting_down(reply: Union[Dict[str, Any], ContactdError]) -> bool:
    if isinstance(reply, ContactdError):
        return False
    error = reply.get("error")
    return isinstance(error, dict) and isinstance(error.get("data"), dict) and \
        error["data"].get("reason") == "shutting_down"
