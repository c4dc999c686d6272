"""Quotas, the in-flight cap and the daily budget, in process memory and in a real Redis.

The Redis tests start Debian's `redis-server` on a free loopback port (no disk, stopped
after). Hour and day windows move on an injected clock: nothing here sleeps or times.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
import redis
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from starlette.requests import Request

from bench.processes import free_port
from runapi_ui.runs.quota import (
    HOUR,
    LEASE_MARGIN_SECONDS,
    Admission,
    Limits,
    LimitsUnavailable,
    MemoryStore,
    QuotaExceeded,
    QuotaStore,
    RedisStore,
    ServerBusy,
    Visitor,
    limits_from,
    trusted_proxies_from,
    visitor_from,
)
from runapi_ui.runs.settings import Settings
from tests.conftest import new_script_client

ROOT = Path(__file__).resolve().parent.parent
NO_DISK = ("--save", "", "--appendonly", "no")
START = datetime(2025, 3, 14, 13, 42, tzinfo=timezone.utc).timestamp()
ALICE = Visitor(session="session-a", address="8.8.8.8")
BOB = Visitor(session="session-b", address="9.9.9.9")


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RedisServer:
    """A throwaway `redis-server` on loopback: no snapshots, no append-only file."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [*("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"), *NO_DISK],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15  # readiness, not a measurement
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "redis-server did not start (install it: apt-get install redis-server)"
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[QuotaStore]:
    """Each test runs on both stores; on Redis, under keys of its own."""
    made: QuotaStore
    if request.param == "memory":
        made = MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(server.url, prefix=f"{{test-{uuid.uuid4().hex}}}:")
    yield made
    await made.aclose()


@pytest.fixture
def make_limits(store: QuotaStore, clock: Clock) -> Callable[..., Limits]:
    def make(**kwargs: Any) -> Limits:
        return Limits(store, clock=clock, **kwargs)

    return make


async def admit(limits: Limits, visitor: Visitor = ALICE, images: int = 1, **kw: Any) -> Admission:
    kw.setdefault("model", "imagen-4")
    kw.setdefault("on_server_key", True)
    return await limits.admit(visitor, images=images, **kw)


# -- The hourly quota per visitor ---------------------------------------------------------


async def test_a_quota_reached_says_when_to_come_back(make_limits, clock) -> None:
    limits = make_limits(images_per_hour=5)
    await admit(limits, images=2)  # 13:42
    clock.advance(10 * 60)
    await admit(limits, images=3)  # 13:52
    clock.now = datetime(2025, 3, 14, 14, 0, 20, tzinfo=timezone.utc).timestamp()

    with pytest.raises(QuotaExceeded) as one_more:
        await admit(limits, images=1)
    assert one_more.value.retry_at == START + HOUR  # the first image of 13:42 ages out
    assert one_more.value.message == (
        "You have used this server's 5 images an hour on its RunAPI key. You can generate "
        "1 more at 14:42 UTC (in 42 minutes), or enter your own RunAPI key to go on now."
    )
    with pytest.raises(QuotaExceeded) as three_more:
        await admit(limits, images=3)
    assert three_more.value.retry_at == START + 10 * 60 + HOUR  # the third must age out too
    assert "generate 3 more at 14:52 UTC (in 52 minutes)" in three_more.value.message

    await admit(limits, BOB, images=5)  # another visitor has an hour of their own


async def test_what_is_left_of_the_hour_is_offered(make_limits, clock) -> None:
    limits = make_limits(images_per_hour=5)
    await admit(limits, images=3)
    clock.advance(60)
    with pytest.raises(QuotaExceeded) as caught:
        await admit(limits, images=4)
    assert caught.value.message == (
        "You have 2 of this server's 5 images an hour left on its RunAPI key and asked for "
        "4: ask for 2 or fewer now, or for 4 at 14:42 UTC (in 59 minutes). Or enter your "
        "own RunAPI key."
    )
    await admit(limits, images=2)


async def test_the_hour_rolls(make_limits, clock) -> None:
    limits = make_limits(images_per_hour=4)
    await admit(limits, images=2)  # T
    clock.advance(30 * 60)
    await admit(limits, images=2)  # T + 30 min
    clock.advance(30 * 60 - 1)  # T + 1 h - 1 s: all four still count
    with pytest.raises(QuotaExceeded):
        await admit(limits)
    clock.advance(1)  # T + 1 h: the first two have aged out, the later two have not
    await admit(limits, images=2)
    with pytest.raises(QuotaExceeded) as caught:
        await admit(limits)
    assert caught.value.retry_at == START + 30 * 60 + HOUR


async def test_a_new_session_or_address_does_not_start_a_new_hour(make_limits) -> None:
    limits = make_limits(images_per_hour=3)
    await admit(limits, Visitor(session="s1", address="8.8.8.8"), images=3)
    for same_visitor in (
        Visitor(session="s2", address="8.8.8.8"),  # reloaded the page
        Visitor(session="s1", address="1.1.1.1"),  # changed network, same tab
        Visitor(session=None, address="8.8.8.8"),  # a script without a session
    ):
        with pytest.raises(QuotaExceeded):
            await admit(limits, same_visitor)
    await admit(limits, Visitor(session="s3", address="1.1.1.1"), images=3)


async def test_with_login_the_quota_counts_per_user(make_limits) -> None:
    limits = make_limits(images_per_hour=2)
    await admit(limits, Visitor(session="s1", address="8.8.8.8", user="alice"), images=2)
    with pytest.raises(QuotaExceeded):
        await admit(limits, Visitor(session="s9", address="1.1.1.1", user="alice"))
    # Bob, behind the same office address, has his own hour.
    await admit(limits, Visitor(session="s2", address="8.8.8.8", user="bob"), images=2)


async def test_failed_images_are_given_back_to_the_hour(make_limits) -> None:
    limits = make_limits(images_per_hour=4)
    admission = await admit(limits, images=4)
    await admission.release(succeeded=1, failed=3)
    third = await admit(limits, images=3)
    with pytest.raises(QuotaExceeded):
        await admit(limits)
    # A cancelled run reports nothing back: its images stay charged (RunAPI may bill them).
    await third.release()
    with pytest.raises(QuotaExceeded):
        await admit(limits)


async def test_release_is_idempotent(make_limits) -> None:
    limits = make_limits(images_per_hour=4, max_images_in_flight=4)
    admission = await admit(limits, images=2)
    await admission.release(failed=2)
    await admission.release(failed=2)  # a second release gives nothing back twice
    assert admission.released
    await admit(limits, images=4)
    with pytest.raises(QuotaExceeded):
        await admit(limits)
    with pytest.raises(ValueError, match="for 2 images"):
        await admission.release(succeeded=2, failed=1)


async def test_visitors_on_their_own_key_have_no_hourly_quota(make_limits) -> None:
    limits = make_limits(images_per_hour=1, daily_spend_cap_usd=0.05)
    for _ in range(10):
        await admit(limits, images=4, on_server_key=False)


async def test_more_images_than_a_limit_allows_at_all(make_limits) -> None:
    limits = make_limits(images_per_hour=3, max_images_in_flight=2)
    with pytest.raises(QuotaExceeded) as caught:
        await admit(limits, images=4)
    assert caught.value.retry_at is None
    assert "at most 3 images an hour" in caught.value.message
    assert "ask for 3 or fewer" in caught.value.message
    with pytest.raises(ServerBusy, match="at most 2 images at once, and you asked for 3"):
        await admit(limits, images=3, on_server_key=False)


# -- The server's cap on images in flight -------------------------------------------------


async def test_the_in_flight_cap_holds_under_a_burst(make_limits) -> None:
    limits = make_limits(max_images_in_flight=10, images_per_hour=0)
    visitors = [Visitor(session=f"s{i}", address="8.8.8.8") for i in range(40)]
    results = await asyncio.gather(
        *(admit(limits, v, on_server_key=i % 2 == 0) for i, v in enumerate(visitors)),
        return_exceptions=True,
    )
    admitted = [r for r in results if isinstance(r, Admission)]
    busy = [r for r in results if isinstance(r, ServerBusy)]
    assert (len(admitted), len(busy)) == (10, 30)
    assert busy[0].message == (
        "This server is generating 10 images right now, as many as it runs at once (10). "
        "Try again in a minute."
    )

    await asyncio.gather(*(a.release(succeeded=1) for a in admitted[:3]))
    results = await asyncio.gather(
        *(admit(limits, v, images=2) for v in visitors), return_exceptions=True
    )
    assert sum(isinstance(r, Admission) for r in results) == 1  # 7 + 2 fits once, 9 + 2 not
    assert sum(isinstance(r, ServerBusy) for r in results) == len(visitors) - 1


async def test_a_crashed_run_frees_its_slots_when_its_lease_ends(make_limits, clock) -> None:
    limits = make_limits(max_images_in_flight=2, lease_seconds=300 + LEASE_MARGIN_SECONDS)
    await admit(limits, images=2)  # never released: its process died
    with pytest.raises(ServerBusy):
        await admit(limits)
    clock.advance(300 + LEASE_MARGIN_SECONDS - 1)
    with pytest.raises(ServerBusy):
        await admit(limits)
    clock.advance(1)
    await admit(limits, images=2)


async def test_a_release_on_cancel_frees_the_slot(make_limits) -> None:
    limits = make_limits(max_images_in_flight=1)
    started = asyncio.Event()

    async def generation() -> None:
        admission = await admit(limits)
        try:
            started.set()
            await asyncio.Event().wait()  # a long run, until Stop
        finally:
            await admission.release()

    run = asyncio.create_task(generation())
    await started.wait()
    with pytest.raises(ServerBusy):
        await admit(limits)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await admit(limits)


# -- The daily budget on the server's key -------------------------------------------------


async def test_the_daily_budget(make_limits, clock) -> None:
    limits = make_limits(daily_spend_cap_usd=0.48)  # imagen-4 $0.08, fast $0.04, ultra $0.12
    await admit(limits, images=4)  # $0.32
    with pytest.raises(QuotaExceeded) as caught:
        await admit(limits, BOB, images=3)  # $0.24
    midnight = datetime(2025, 3, 15, tzinfo=timezone.utc).timestamp()
    assert caught.value.retry_at == midnight
    assert caught.value.message == (
        "This server's daily budget of $0.48 on its RunAPI key has $0.16 left today, less "
        "than the $0.24 these 3 images cost. It starts again at 00:00 UTC (in 10 h 18 min); "
        "meanwhile, enter your own RunAPI key to generate."
    )
    last = await admit(limits, BOB, images=2)  # $0.48
    with pytest.raises(QuotaExceeded, match="on its RunAPI key is spent for today"):
        await admit(limits, model="imagen-4-fast")
    await admit(limits, images=4, on_server_key=False)  # a visitor's own key: no budget

    await last.release(failed=2)  # $0.16 back: $0.32
    await admit(limits, model="imagen-4-ultra")  # $0.44
    with pytest.raises(QuotaExceeded, match=r"has \$0.04 left today, less than the \$0.08 this"):
        await admit(limits)
    await admit(limits, model="imagen-4-fast")  # $0.48
    with pytest.raises(QuotaExceeded, match="is spent for today"):
        await admit(limits, model="imagen-4-fast")

    clock.now = midnight
    await admit(limits, images=4)  # $0.32 of the new day
    await admit(limits, BOB, model="imagen-4-fast", images=4)  # $0.48


async def test_a_budget_too_small_for_one_request(make_limits) -> None:
    limits = make_limits(daily_spend_cap_usd=0.0)
    with pytest.raises(QuotaExceeded) as caught:
        await admit(limits, model="imagen-4-fast")
    assert caught.value.retry_at is None
    assert "more than this server's whole daily budget of $0.00" in caught.value.message
    await admit(limits, on_server_key=False)


# -- Who the visitor is -------------------------------------------------------------------


def starlette_request(
    peer: str, forwarded_for: str | None = None, extra: dict[str, str] | None = None
) -> Request:
    headers = [(b"host", b"playground.example")]
    if forwarded_for is not None:
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/images/generations",
        "query_string": b"",
        "headers": headers,
        "client": (peer, 51234),
    }
    return Request(scope)


def gradio_request(peer: str, forwarded_for: str | None, *, queued: bool) -> gr.Request:
    """As a handler sees it: wrapping Starlette's, or (queued) its pickled plain form."""
    request = gr.Request(starlette_request(peer, forwarded_for), session_hash="sess-1")
    return pickle.loads(pickle.dumps(request)) if queued else request


FORGED = "6.6.6.6"
SPACES = trusted_proxies_from(Settings(space_id="me/playground"))
SHARE = trusted_proxies_from(Settings(share=True))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "address"),
    [
        # Locally nobody's X-Forwarded-For is believed.
        ("127.0.0.1", FORGED, (), "127.0.0.1"),
        ("8.8.4.4", FORGED, (), "8.8.4.4"),
        # Behind the Spaces proxy: the right-most public address, past private hops.
        ("10.16.3.80", "8.8.4.4", SPACES, "8.8.4.4"),
        ("10.16.3.80", f"{FORGED}, 8.8.4.4", SPACES, "8.8.4.4"),
        ("10.16.3.80", f"{FORGED}, 8.8.4.4, 10.0.7.1", SPACES, "8.8.4.4"),
        ("10.16.3.80", "not-an-address, [2606:4700::1111]:443", SPACES, "2606:4700::1111"),
        ("10.16.3.80", "10.0.0.9", SPACES, "10.16.3.80"),  # nothing public: the peer
        ("10.16.3.80", None, SPACES, "10.16.3.80"),
        # A share link: Gradio's tunnel client connects from loopback; a LAN peer does not.
        ("127.0.0.1", f"{FORGED}, 1.1.1.1", SHARE, "1.1.1.1"),
        ("192.168.1.9", FORGED, SHARE, "192.168.1.9"),
    ],
)
@pytest.mark.parametrize("form", ["starlette", "gradio", "gradio-queued"])
def test_the_client_address(peer, forwarded_for, trusted, address, form) -> None:
    if form == "starlette":
        request: Any = starlette_request(peer, forwarded_for)
    else:
        request = gradio_request(peer, forwarded_for, queued=form == "gradio-queued")
    visitor = visitor_from(request, trusted)
    assert visitor.address == address
    assert visitor.session == (None if form == "starlette" else "sess-1")
    assert visitor.user is None


def test_the_logged_in_user_and_who_counts_when_nothing_is_known() -> None:
    request = gr.Request(starlette_request("8.8.8.8"), username="alice", session_hash="s")
    visitor = visitor_from(request)
    assert visitor == Visitor(session="s", address="8.8.8.8", user="alice")
    assert visitor.ids() == ("user:alice",)
    assert Visitor(session="s", address="8.8.8.8").ids() == ("session:s", "address:8.8.8.8")
    assert visitor_from(gr.Request()).ids() == ("anonymous",)


@pytest.mark.parametrize("queued", [False, True])
def test_the_mcp_relays_shared_session_identifies_nobody(queued) -> None:
    """Gradio's MCP server calls queued tools through its own gradio_client, one session
    for every MCP caller, copying the caller's headers (seen with gradio 6.31): behind a
    known proxy the caller is its forwarded address; elsewhere its address is lost (and
    uvicorn may have believed a copied, forged header), so all are one visitor."""
    relayed = gr.Request(
        starlette_request(FORGED, f"{FORGED}, 8.8.4.4", {"x-gradio-user": "mcp"}),
        session_hash="the-mcp-clients-session",
    )
    if queued:
        relayed = pickle.loads(pickle.dumps(relayed))
    assert visitor_from(relayed, SPACES) == Visitor(session=None, address="8.8.4.4")
    assert visitor_from(relayed).ids() == ("anonymous",)


async def test_visitors_as_gradios_own_server_delivers_them(monkeypatch) -> None:
    """Through a real Gradio server on loopback: an API call and an MCP tool call (which
    Gradio relays through its own client), each with a forged X-Forwarded-For."""
    # uvicorn believes X-Forwarded-For from loopback peers unless told otherwise; the
    # app clears this so that `visitor_from` alone decides whom to believe.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")
    seen: list[gr.Request] = []

    def echo(text: str, request: gr.Request) -> str:
        """Echo the text.

        Args:
            text: any text
        """
        seen.append(request)
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(echo, box, box, api_name="echo")
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        mcp_server=True,
        quiet=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        api = new_script_client(url, headers={"X-Forwarded-For": FORGED})
        await asyncio.to_thread(api.predict, "hi", api_name="/echo")
        forwarded = httpx.AsyncClient(headers={"X-Forwarded-For": f"{FORGED}, 8.8.4.4"})
        async with (
            forwarded,
            streamable_http_client(f"{url}gradio_api/mcp/", http_client=forwarded) as streams,
            ClientSession(*streams[:2]) as session,
        ):
            await session.initialize()
            await session.call_tool("echo", {"text": "hi"})
    finally:
        demo.close()
    direct, relayed = seen
    assert direct.session_hash
    assert visitor_from(direct) == Visitor(session=direct.session_hash, address="127.0.0.1")
    assert visitor_from(relayed) == Visitor()  # one anonymous visitor for every MCP caller
    assert visitor_from(relayed, SPACES) == Visitor(address="8.8.4.4")


@pytest.mark.parametrize(
    ("settings", "proxy_trusted"),
    [
        (Settings(), False),
        (Settings(host="0.0.0.0"), False),
        (Settings(share=True), True),
        (Settings(space_id="me/pg"), True),
    ],
)
async def test_a_forged_forwarded_for_escapes_no_quota(settings, proxy_trusted) -> None:
    """Locally (and on a LAN), two requests from one peer are one visitor whatever they
    claim; behind a known proxy, the addresses it forwards are distinct visitors."""
    limits = limits_from(settings, clock=Clock())
    limits.images_per_hour = 1  # applied here even on the local deployments
    peer = "127.0.0.1" if settings.share else "10.16.3.80" if settings.space_id else "8.8.4.4"
    first = limits.visitor(gr.Request(starlette_request(peer, "1.1.1.1"), session_hash="a"))
    second = limits.visitor(gr.Request(starlette_request(peer, "9.9.9.9"), session_hash="b"))
    await admit(limits, first)
    if proxy_trusted:
        await admit(limits, second)
    else:
        with pytest.raises(QuotaExceeded):
            await admit(limits, second)


# -- Settings ----------------------------------------------------------------------------


def test_limits_from_settings() -> None:
    local = limits_from(Settings(images_per_hour=7, max_images_in_flight=30, deadline=100))
    assert isinstance(local.store, MemoryStore)
    assert local.images_per_hour == 0, "locally the operator is not rationed on their own key"
    assert (local.max_images_in_flight, local.lease_seconds) == (30, 100 + LEASE_MARGIN_SECONDS)
    assert local.trusted_proxies == ()

    public = limits_from(
        Settings(images_per_hour=7, space_id="me/pg", share_server_key=True, daily_spend_cap_usd=5)
    )
    assert public.images_per_hour == 7
    assert public.trusted_proxies == SPACES
    assert public.describe() == (
        "Limits: 7 images an hour per visitor on this server's key; at most 200 images in "
        "flight; a daily budget of $5.00 on this server's key; counted in this process."
    )
    with pytest.raises(ValueError, match=r"must be 0 \(no limit\) or more"):
        limits_from(Settings(images_per_hour=-1))


# -- Redis: shared, expiring, and a clear message when it is gone --------------------------


async def test_redis_keys_all_expire(redis_server: RedisServer, clock: Clock) -> None:
    prefix = f"{{test-{uuid.uuid4().hex}}}:"
    store = RedisStore(redis_server.url, prefix=prefix)
    limits = Limits(store, images_per_hour=5, daily_spend_cap_usd=1.0, clock=clock)
    try:
        await admit(limits, images=2)
    finally:
        await limits.aclose()
    client = redis_server.client()
    keys = client.keys(f"{prefix}*")
    assert {key.decode().removeprefix(prefix).split(":")[0] for key in keys} == {
        "in-flight",
        "spend",
        "hour",
    }
    assert len(keys) == 4  # in flight, spend, and the visitor's session and address
    assert all(client.ttl(key) > 0 for key in keys)
    raw = b" ".join(keys)
    assert b"8.8.8.8" not in raw and b"session-a" not in raw, "visitor ids are hashed"
    client.close()


_WORKER = """
import asyncio, sys
from runapi_ui.runs.quota import Limits, LimitError, RedisStore, Visitor

url, prefix, per_hour, cap, on_server_key, attempts = sys.argv[1:]

async def main():
    limits = Limits(
        RedisStore(url, prefix), images_per_hour=int(per_hour), max_images_in_flight=int(cap)
    )
    visitor = Visitor(session="one-tab", address="8.8.8.8")
    # Warm up (connect, load the scripts) with an admission that leaves nothing behind.
    warm_up = await limits.admit(
        Visitor(session="warm-up"), model="imagen-4", images=1, on_server_key=False
    )
    await warm_up.release(failed=1)
    print("ready", flush=True)
    sys.stdin.readline()  # both processes start their burst on the same word
    async def attempt():
        try:
            return await limits.admit(
                visitor, model="imagen-4", images=1, on_server_key=on_server_key == "1"
            )
        except Exception as error:
            return error

    # Ten at a time, three times over: bursts that overlap the other process's.
    results = []
    for _ in range(int(attempts) // 10):
        results += await asyncio.gather(*(attempt() for _ in range(10)))
    await limits.aclose()
    admitted = sum(not isinstance(r, BaseException) for r in results)
    refused = sum(isinstance(r, LimitError) for r in results)
    print(admitted, refused, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("per_hour", "cap", "on_server_key", "expected"),
    [(25, 0, True, 25), (0, 25, False, 25)],
    ids=["hourly quota", "in-flight cap"],
)
def test_two_processes_share_one_quota_through_redis(
    redis_server: RedisServer, per_hour, cap, on_server_key, expected
) -> None:
    prefix = f"{{test-{uuid.uuid4().hex}}}:"
    args = [redis_server.url, prefix, str(per_hour), str(cap), "1" if on_server_key else "0"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, *args, "30"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        answers = [worker.communicate(timeout=30)[0].split() for worker in workers]
    finally:
        for worker in workers:
            worker.kill() if worker.poll() is None else None
    admitted = [int(answer[0]) for answer in answers]
    refused = [int(answer[1]) for answer in answers]
    assert sum(admitted) == expected, admitted
    assert sum(refused) == 60 - expected, "every other attempt was refused with a message"


def test_an_unreachable_redis_is_a_clear_start_up_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(LimitsUnavailable) as caught:
        limits_from(Settings(redis_url=url))
    message = caught.value.message
    assert message.startswith(f"Cannot reach Redis at redis://:***@127.0.0.1:{url.split(':')[3]}")
    assert "RUNAPI_UI_REDIS_URL" in message and "hunter2" not in message
    with pytest.raises(LimitsUnavailable, match="not a Redis URL"):
        limits_from(Settings(redis_url="http://127.0.0.1:6379"))


async def test_a_redis_gone_at_request_time_is_a_message(clock: Clock) -> None:
    server = RedisServer()
    try:
        limits = limits_from(Settings(redis_url=server.url, space_id="me/pg"), clock=clock)
        assert limits.describe().endswith(f"counted in Redis at {server.url}.")
        admission = await admit(limits)
    finally:
        server.stop()
    with pytest.raises(LimitsUnavailable) as caught:
        await admit(limits)
    assert caught.value.message.startswith("This server cannot check its usage limits")
    await admission.release(succeeded=1)  # logged, not raised: the lease ends by itself
    assert admission.released
    await limits.aclose()
