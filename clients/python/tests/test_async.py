"""The asyncio client against the real contactd."""
from __future__ import annotations

import asyncio
import time

import pytest

import contactd
from conftest import JOHN, SLOW, UNKNOWN


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_miss_then_a_hit(daemon) -> None:
    async def main() -> None:
        async with contactd.AsyncClient(daemon.socket_path, timeout=5) as client:
            first = await client.get(phone_number=JOHN["phone_number"], max_age=0)
            assert first.cache.status == "miss" and first.contact.name == "John Smith"
            second = await client.get(contact_id=JOHN["id"])
            assert second.cache.status == "hit"
            assert second.contact.raw["x_favourite_colour"] == "teal"
            with pytest.raises(contactd.NotFound):
                await client.get(phone_number=UNKNOWN)
    run(main())


def test_aclose_closes_as_contextlib_aclosing_expects(daemon) -> None:
    import contextlib

    async def main() -> None:
        async with contextlib.aclosing(contactd.AsyncClient(daemon.socket_path, timeout=5)) as client:
            assert (await client.get(phone_number=JOHN["phone_number"])).contact.name == "John Smith"
        assert client._connection is None
    run(main())


def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(daemon) -> None:
    async def main() -> None:
        async with contactd.AsyncClient(daemon.socket_path, timeout=10) as client:
            numbers = [f"+1555111{index + 1000:04d}" for index in range(60)]
            results = await asyncio.gather(*(client.get(phone_number=number) for number in numbers),
                                           client.get(phone_number=SLOW))
            for number, result in zip(numbers, results):
                assert result.contact.phone_number == number
            assert results[-1].contact.name == "Slow"
            many = await client.get_many(numbers[:5] + [UNKNOWN])
            assert [answer.cache.status for answer in many[:5]] == ["hit"] * 5
            assert isinstance(many[5], contactd.NotFound)
            assert (await client.status())["connections"] == 1
    run(main())


def test_a_slow_call_times_out_and_a_cancelled_one_is_dropped_without_harm(daemon) -> None:
    async def main() -> None:
        async with contactd.AsyncClient(daemon.socket_path, timeout=5) as client:
            started = time.monotonic()
            with pytest.raises(contactd.TimedOut):
                await client.get(phone_number=SLOW, max_age=0, timeout=0.3)
            assert time.monotonic() - started < 1
            task = asyncio.ensure_future(client.get(phone_number=SLOW, max_age=0))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await client.ping()
            assert (await client.get(phone_number=JOHN["phone_number"])).contact.name == "John Smith"
    run(main())


def test_one_client_rides_through_a_daemon_restart(daemon) -> None:
    async def main() -> None:
        client = contactd.AsyncClient(daemon.socket_path, timeout=10)
        assert (await client.get(phone_number=JOHN["phone_number"])).contact.name == "John Smith"
        await asyncio.get_running_loop().run_in_executor(None, daemon.restart)
        assert (await client.get(phone_number=JOHN["phone_number"])).contact.name == "John Smith"
        await client.close()
    run(main())


def test_connect_errors_say_what_to_do(tmp_path) -> None:
    async def main() -> None:
        with pytest.raises(contactd.ConnectionFailed) as missing:
            await contactd.AsyncClient(str(tmp_path / "none.sock"), timeout=5).ping()
        assert "is contactd.socket running?" in str(missing.value)
    run(main())
