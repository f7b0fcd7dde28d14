"""The blocking client against the real contactd."""
from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime, timezone

import pytest

import contactd
from conftest import GARBAGE, JOHN, RATE_LIMITED, REJECTED, SLOW, UNAVAILABLE, UNKNOWN


def test_a_miss_then_a_hit_with_the_contact_typed_and_unknown_members_kept(daemon, api) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        calls = api.calls
        first = client.get(phone_number="+1 (415) 555-1234")
        assert first.cache.status == "miss"
        contact = first.contact
        assert contact.id == JOHN["id"] and contact.name == "John Smith" and contact.phone_number == "+14155551234"
        assert contact.tags == ["customer", "vip"] and contact.metadata == {"tier": 2}
        assert contact.stats == contactd.ContactStats(5, 12, datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc))
        assert contact.created_at == datetime(2024, 1, 10, 10, 0, tzinfo=timezone.utc)
        assert contact.raw["x_favourite_colour"] == "teal", "a member the client does not know is kept"
        second = client.get(contact_id=JOHN["id"])
        assert second.cache.status == "hit" and second.cache.stale_reason is None
        assert second.contact == contact
        assert api.calls == calls + 1


def test_not_found_is_raised_and_cached(daemon, api) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        with pytest.raises(contactd.NotFound) as raised:
            client.get(phone_number=UNKNOWN)
        assert raised.value.reason == "not_found" and raised.value.code == -32001
        calls = api.calls
        with pytest.raises(contactd.NotFound):
            client.get(phone_number=UNKNOWN)
        assert api.calls == calls, "the not-found answer was cached"


def test_api_failures_raise_their_own_exceptions(daemon) -> None:
    with contactd.Client(daemon.socket_path, timeout=10) as client:
        with pytest.raises(contactd.UpstreamUnavailable) as unavailable:
            client.get(phone_number=UNAVAILABLE)
        assert unavailable.value.code == -32002
        with pytest.raises(contactd.RateLimited) as limited:
            client.get(phone_number=RATE_LIMITED)
        assert limited.value.retry_after == 7
        with pytest.raises(contactd.RejectedByApi) as rejected:
            client.get(phone_number=REJECTED)
        assert isinstance(rejected.value, contactd.InvalidParams)
        with pytest.raises(contactd.UpstreamBadResponse):
            client.get(phone_number=GARBAGE)


def test_invalid_keys_are_refused_by_the_daemon(daemon) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        with pytest.raises(contactd.InvalidPhoneNumber):
            client.get(phone_number="+0123")
        with pytest.raises(contactd.InvalidContactId):
            client.get(contact_id="has a space")
        with pytest.raises(contactd.InvalidParams):
            client.get(phone_number="+14155551234", max_age=-1)
        with pytest.raises(contactd.InvalidParams):
            client.get()
        with pytest.raises(contactd.MethodNotFound):
            client.call("contact.delete")
        with pytest.raises(contactd.RequestTooLarge):
            client.get(contact_id="x" * 70_000)
        client.ping()  # the client reconnected after the daemon closed that connection


def test_many_lookups_pipelined_on_one_connection_come_back_in_order(daemon, api) -> None:
    keys = [f"+1555111{index:04d}" for index in range(40)] + [UNKNOWN, "py-0003", "+0bad"]
    with contactd.Client(daemon.socket_path, timeout=10) as client:
        client.get(phone_number="+15551110003")  # one hit among the misses
        answers = client.get_many(keys)
        assert len(answers) == len(keys)
        for index in range(40):
            assert isinstance(answers[index], contactd.LookupResult), answers[index]
            assert answers[index].contact.phone_number == keys[index]
        assert answers[3].cache.status == "hit"
        assert isinstance(answers[40], contactd.NotFound)
        assert answers[41].contact.id == "py-0003" and answers[41].cache.status == "hit"
        assert isinstance(answers[42], contactd.InvalidPhoneNumber)
        assert client.status()["connections"] == 1


def test_stats_status_invalidate_ping_discover(daemon) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        client.get(phone_number=JOHN["phone_number"])
        assert client.stats()["entries"] >= 1
        assert client.status()["ready"] is True
        assert client.invalidate(contact_id=JOHN["id"]) == 1
        assert client.invalidate(phone_number=JOHN["phone_number"]) == 0
        client.get(phone_number=JOHN["phone_number"])
        assert client.invalidate_all() >= 1
        client.ping()
        assert client.discover()["openrpc"]


def test_one_client_rides_through_a_daemon_restart(daemon) -> None:
    client = contactd.Client(daemon.socket_path, timeout=10)
    assert client.get(phone_number=JOHN["phone_number"]).contact.name == "John Smith"
    daemon.restart()
    assert client.get(phone_number=JOHN["phone_number"]).contact.name == "John Smith"
    client.close()


def test_a_call_that_outlives_its_timeout_raises_timed_out_and_the_client_goes_on(daemon) -> None:
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        started = time.monotonic()
        with pytest.raises(contactd.TimedOut):
            client.get(phone_number=SLOW, timeout=0.3)
        assert time.monotonic() - started < 1.0
        client.ping()


def test_a_stopped_daemon_is_a_timeout_not_a_hang(daemon) -> None:
    client = contactd.Client(daemon.socket_path, timeout=0.5)
    client.ping()
    daemon.process.send_signal(signal.SIGSTOP)
    # SIGSTOP reaches each of the daemon's threads in its own time: wait until all have stopped.
    deadline = time.monotonic() + 5
    while not all(stopped(daemon.process.pid, thread) for thread in os.listdir(f"/proc/{daemon.process.pid}/task")):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    try:
        started = time.monotonic()
        with pytest.raises(contactd.TimedOut):
            client.ping()
        assert time.monotonic() - started < 2
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    client.close()


def stopped(pid: int, thread: str) -> bool:
    with open(f"/proc/{pid}/task/{thread}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def test_connect_errors_say_what_to_do(tmp_path) -> None:
    with pytest.raises(contactd.ConnectionFailed) as missing:
        contactd.Client(str(tmp_path / "none.sock"), timeout=5).ping()
    assert "is contactd.socket running?" in str(missing.value)


def test_a_draining_daemon_answers_shutting_down_to_a_client_that_does_not_reconnect(daemon) -> None:
    slow = contactd.Client(daemon.socket_path, timeout=10)
    plain = contactd.Client(daemon.socket_path, timeout=10, reconnect=False)
    plain.ping()
    outcome = {}
    calls = daemon.api.calls
    waiter = threading.Thread(target=lambda: outcome.setdefault("slow", slow.get(phone_number=SLOW)))
    waiter.start()
    # The slow miss is in flight once the API has been called for it.
    deadline = time.monotonic() + 5
    while daemon.api.calls == calls:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    daemon.process.send_signal(signal.SIGTERM)
    daemon.wait_for("STOPPING=1", timeout=10)
    with pytest.raises(contactd.ShuttingDown):
        plain.ping()
    waiter.join()
    assert outcome["slow"].contact.name == "Slow", "the request in flight was answered during the drain"


def test_config_shows_each_settings_source_and_never_the_token(make_daemon) -> None:
    daemon = make_daemon("--ttl", "2m")
    with contactd.Client(daemon.socket_path, timeout=5) as client:
        config = client.config()
    assert config["ttl"] == {"value": "2m", "source": "flag"}
    assert config["negative-ttl"]["source"] == "default"
    assert config["api-token"] == {"source": "environment"}
    assert "python-client-token" not in str(config)
