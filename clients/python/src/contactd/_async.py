"""The asyncio client: one connection shared by every task, replies matched by id."""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _wire
from ._errors import ConnectionClosed, ContactdError, TimedOut
from ._types import LookupResult

_DEFAULT: Any = object()


class AsyncClient:
    """Like ``Client``, awaitable, and safe to share between tasks: concurrent calls are pipelined
    on one connection and each reply goes to the call it answers.

    ``timeout`` (seconds, ``None`` for none) bounds each call, reconnecting included; a cancelled
    call is abandoned (its reply, if it comes, is dropped). After the daemon goes away, calls
    reconnect with backoff within their timeout, and a call cut off by a restart is sent once more.
    """

    def __init__(self, socket_path: str = _wire.DEFAULT_SOCKET, timeout: Optional[float] = 10.0,
                 reconnect: bool = True) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.reconnect = reconnect
        self._ids = itertools.count(1)
        self._connection: Optional[_Connection] = None
        self._connecting: Optional[asyncio.Lock] = None
        self._was_connected = False

    # -- Methods

    async def get(self, phone_number: Optional[str] = None, contact_id: Optional[str] = None, *,
                  max_age: Optional[float] = None, timeout: Optional[float] = _DEFAULT) -> LookupResult:
        """A contact by phone number or by id. Raises ``NotFound`` if the API has none."""
        params = _wire.lookup_params(phone_number, contact_id, max_age)
        return _wire.lookup_result(await self.call("contact.get", params, timeout=timeout))

    async def get_many(self, keys: Sequence[str], *, max_age: Optional[float] = None,
                       timeout: Optional[float] = _DEFAULT) -> List[Union[LookupResult, ContactdError]]:
        """Looks every key up at once (a key starting with ``+`` is a phone number, any other an
        id). Returns a result or the error for each key, in order."""

        async def one(key: str) -> Union[LookupResult, ContactdError]:
            try:
                return _wire.lookup_result(await self.call("contact.get", _wire.key_params(key, max_age),
                                                           timeout=timeout))
            except ContactdError as error:
                return error

        return list(await asyncio.gather(*(one(key) for key in keys)))

    async def invalidate(self, phone_number: Optional[str] = None, contact_id: Optional[str] = None, *,
                         timeout: Optional[float] = _DEFAULT) -> int:
        params = _wire.lookup_params(phone_number, contact_id, None)
        return _wire.removed_count(await self.call("contact.invalidate", params, timeout=timeout))

    async def invalidate_all(self, *, timeout: Optional[float] = _DEFAULT) -> int:
        return _wire.removed_count(await self.call("contact.invalidate", {"all": True}, timeout=timeout))

    async def stats(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        return dict(await self.call("cache.stats", timeout=timeout))

    async def status(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        return dict(await self.call("daemon.status", timeout=timeout))

    async def config(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``daemon.config``: each setting's ``value`` and ``source`` (the token's source only)."""
        return dict(await self.call("daemon.config", timeout=timeout))

    async def reload(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        """``daemon.reload``: re-read the token and configuration; ``applied`` and ``after_restart``
        say what changed (root and the daemon's own user only, else :class:`Forbidden`)."""
        return dict(await self.call("daemon.reload", timeout=timeout))

    async def ping(self, *, timeout: Optional[float] = _DEFAULT) -> None:
        await self.call("daemon.ping", timeout=timeout)

    async def discover(self, *, timeout: Optional[float] = _DEFAULT) -> Dict[str, Any]:
        return dict(await self.call("rpc.discover", timeout=timeout))

    async def call(self, method: str, params: Optional[Dict[str, Any]] = None, *,
                   timeout: Optional[float] = _DEFAULT) -> Any:
        """Any method, raw: its ``result``, or the error raised."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        retried = False
        while True:
            try:
                connection = await self._connect(deadline)
                reply = await connection.exchange(next(self._ids), method, params, _wire.remaining(deadline))
                return _wire.result_of(reply)
            except ContactdError as error:
                if not retried and self.reconnect and method in _wire.IDEMPOTENT and _wire.retryable(error):
                    retried = True
                    if self._connection is not None and not isinstance(error, TimedOut):
                        # A draining daemon: leave it, its successor takes new connections.
                        await self._connection.close()
                    continue
                raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def aclose(self) -> None:
        """Closes the connection: the name asyncio code expects (``contextlib.aclosing``)."""
        await self.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- Connection

    async def _connect(self, deadline: Optional[float]) -> "_Connection":
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and self._connection.usable:
                return self._connection
            delays = _wire.backoff_delays()
            while True:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_unix_connection(self.socket_path, limit=1 << 20), _wire.remaining(deadline))
                except asyncio.TimeoutError:
                    raise TimedOut(f"no connection to {self.socket_path} within the timeout") from None
                except OSError as error:
                    await asyncio.sleep(_wire.reconnect_delay(
                        self.socket_path, error, reconnect=self.reconnect, was_connected=self._was_connected,
                        delays=delays, deadline=deadline))
                    continue
                self._connection = _Connection(reader, writer)
                self._was_connected = True
                return self._connection


class _Connection:
    """One socket: a writer shared by the calls, a reader task handing each reply to its call."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: Dict[int, "asyncio.Future[Dict[str, Any]]"] = {}
        self.failure: Optional[ContactdError] = None
        self.task = asyncio.get_running_loop().create_task(self._read())

    @property
    def usable(self) -> bool:
        return self.failure is None

    async def exchange(self, request_id: int, method: str, params: Optional[Dict[str, Any]],
                       timeout: Optional[float]) -> Dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        future: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            self.writer.write(_wire.encode(request_id, method, params))
            await asyncio.wait_for(self._send_and_wait(future), timeout)
            return future.result()
        except asyncio.TimeoutError:
            raise TimedOut("no answer from contactd within the timeout") from None
        except OSError as error:
            self._fail(ConnectionClosed(f"the connection to contactd broke: {error.strerror or error}"))
            raise self.failure from None  # type: ignore[misc]
        finally:
            self.pending.pop(request_id, None)

    async def _send_and_wait(self, future: "asyncio.Future[Dict[str, Any]]") -> None:
        await self.writer.drain()
        await asyncio.shield(future)

    async def _read(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    self._fail(ConnectionClosed("contactd closed the connection before answering"))
                    return
                if not line.strip():
                    continue
                request_id, reply = _wire.decode(line)
                if request_id is None and "error" in reply:
                    # About the connection (too long a line, a refused peer): every call waiting gets it.
                    self._fail(ContactdError.from_error_object(reply["error"]))
                    return
                future = self.pending.get(request_id) if isinstance(request_id, int) else None
                if future is not None and not future.done():
                    future.set_result(reply)
        except ContactdError as error:
            self._fail(error)
        except (OSError, ValueError) as error:
            self._fail(ConnectionClosed(f"the connection to contactd broke: {error}"))

    def _fail(self, error: ContactdError) -> None:
        if self.failure is None:
            self.failure = error
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self.failure)
        self.writer.close()

    async def close(self) -> None:
        self._fail(ConnectionClosed("the client closed the connection"))
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass
