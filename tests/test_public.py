"""Public deployments end to end: whose key pays, the limits on a shared key, and hygiene.

Everything runs for real on loopback: the app (`create_app` + `launch`, or `python app.py`
as a subprocess), Debian's Chromium through Playwright, and Debian's `redis-server`. Two
simulators play two roles: the app's built-in one (demo mode) and `live`, standing in for
RunAPI, which accepts only the keys below and records which key each request carried.

A share link needs the internet, so `--share` is checked on its policy and served as the
public deployment it is (`RUNAPI_UI_PUBLIC`, on loopback); a non-loopback host listens on
0.0.0.0 and is reached through 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError
from playwright.sync_api import Browser, BrowserContext, Page, expect

from bench.processes import free_port
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.runapi.catalog import PROMPT_MAX_CHARS
from runapi_ui.runapi.prices import SCHEDULES_PATH
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer, parse_faults
from runapi_ui.runs.access import DEMO_KEY, KeyPolicy, KeySource
from runapi_ui.runs.quota import HOUR
from runapi_ui.runs.settings import Settings
from runapi_ui.storage.pnginfo import read_settings
from tests.conftest import new_script_client, settle, shot, start
from tests.test_browser import STORED_IN_BROWSER, read_history
from tests.test_quota import redis_server

ROOT = Path(__file__).resolve().parent.parent
SERVER_KEY = "sk-server-5c1e0d7a93"  # the operator's RUNAPI_API_KEY
VISITOR_KEY = "sk-visitor-8b2f4e61c0"
OTHER_VISITOR_KEY = "sk-other-3d9a7f2b15"
WRONG_KEY = "sk-wrong-6e0c1b8d47"  # one RunAPI refuses
LIVE_KEYS = frozenset({SERVER_KEY, VISITOR_KEY, OTHER_VISITOR_KEY})
ALL_KEYS = (SERVER_KEY, VISITOR_KEY, OTHER_VISITOR_KEY, WRONG_KEY)
BALANCE_PATH = "/api/v1/me/balance"  # a key check: it spends nothing

# The hourly quota's refusal, past the visitor's whole hour (HH:MM is checked on its own).
COME_BACK = re.compile(
    r"2 images an hour on its RunAPI key\. You can generate 1 more at (\d\d:\d\d) UTC "
    r"\(in (?:\d+ minutes?|1 h)\), or enter your own RunAPI key to go on now\.$"
)
BUSY = (
    "This server is generating 3 images right now, as many as it runs at once (3). "
    "Try again in a minute."
)

__all__ = ["redis_server"]  # a fixture from another test module, used here

# --- serving the app ------------------------------------------------------------------


@dataclass
class Served:
    """A launched app, reached through 127.0.0.1 whatever interface it listens on."""

    app: PlaygroundApp
    url: str
    live: SimulatorServer

    @property
    def demo(self) -> SimulatorServer | None:
        return self.app.simulator

    def client(self, **kwargs: Any) -> Client:
        return new_script_client(self.url, **kwargs)

    def images(self, body: Any, api_key: str | None = None) -> httpx.Response:
        """`POST /v1/images/generations`, with `Authorization: Bearer` when a key is given."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.post(
            f"{self.url}/v1/images/generations", json=body, headers=headers, timeout=60
        )


@pytest.fixture
def live(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator(api_keys=LIVE_KEYS)


def _launched(live: SimulatorServer, data_dir: Path, **settings: Any) -> Served:
    """The app with the operator's key and `live` as RunAPI; `**settings` override."""
    config = Settings(
        **{
            "api_key": SERVER_KEY,
            "base_url": live.url,
            "port": free_port(),
            "simulator_time_scale": 0.0,
            "deadline": 30.0,
            "data_dir": data_dir,
            **settings,
        }
    )
    return Served(start(config).app, f"http://127.0.0.1:{config.port}", live)


@pytest.fixture
def serve(live: SimulatorServer, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Launch the app with the operator's key and `live` as RunAPI; `**settings` override."""
    served: list[Served] = []

    def start(**settings: Any) -> Served:
        served.append(_launched(live, tmp_path / f"data-{len(served)}", **settings))
        return served[-1]

    yield start
    for one in served:
        one.app.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], Page]]:
    """A fresh browser profile per call (a visitor of their own), closed after the test."""
    contexts: list[BrowserContext] = []

    def open_(url: str) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()


def loaded(page: Page) -> Page:
    settle(page)
    return page


def generate_on_page(page: Page, prompt: str, api_key: str | None = None) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    if api_key is not None:
        page.get_by_label("RunAPI key").fill(api_key)
    page.get_by_role("button", name="Generate").click()


def toast(page: Page, text: str) -> Any:
    return page.locator(".toast-body").filter(has_text=text)


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    """Wait for something to happen (a bound on waiting, not a measurement)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


# --- what each simulator saw -------------------------------------------------------------


class Traffic:
    """The requests each simulator receives from now on."""

    def __init__(self, served: Served) -> None:
        self._servers = {"live": served.live, "demo": served.demo}
        self._start = {name: len(_requests(server)) for name, server in self._servers.items()}

    def since(self, name: str) -> list[Any]:
        return _requests(self._servers[name])[self._start[name] :]

    def keys(self) -> dict[str, set[str | None]]:
        """The keys each simulator saw on generation requests (key checks aside)."""
        return {
            name: {r.api_key for r in self.since(name) if r.path != BALANCE_PATH}
            for name in self._servers
        }

    def creates(self) -> int:
        return sum(r.method == "POST" for name in self._servers for r in self.since(name))


def _requests(server: SimulatorServer | None) -> list[Any]:
    return list(server.simulator.requests) if server is not None else []


def spent_on(source: KeySource | None, visitor_key: str = VISITOR_KEY) -> dict[str, set]:
    """Which simulator a generation from `source` reaches, with which key."""
    return {
        KeySource.VISITOR: {"live": {visitor_key}, "demo": set()},
        KeySource.SERVER: {"live": {SERVER_KEY}, "demo": set()},
        KeySource.DEMO: {"live": set(), "demo": {DEMO_KEY}},
        None: {"live": set(), "demo": set()},  # asked for a key: nothing sent anywhere
    }[source]


def tasks_on(server: SimulatorServer, key: str) -> int:
    return sum(task.api_key == key for task in server.simulator.tasks.values())


# --- the key policy, every place, every way in ------------------------------------------

# where: (what makes it so, what is launched to stand for it, the reason the start-up names)
PLACES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "loopback": ({}, {}, "Key policy: local (loopback)"),
    "share": ({"share": True}, {"public": True}, "Key policy: public (RUNAPI_UI_PUBLIC=1)"),
    "space": (
        {"space_id": "me/space"},
        {"space_id": "me/space"},
        "Key policy: public (SPACE_ID is set (Hugging Face Spaces))",
    ),
    "host": (
        {"host": "0.0.0.0"},
        {"host": "0.0.0.0"},
        "Key policy: public (listening on 0.0.0.0, not loopback)",
    ),
}
KEYLESS_AT_START = {
    KeySource.SERVER: "visitors without a key of their own generate on this server's "
    "RUNAPI_API_KEY",
    KeySource.DEMO: "visitors bring their own RunAPI key; without one they get the demo",
    None: "visitors bring their own RunAPI key; without one they are asked for one",
}
COST_LINE = {
    KeySource.SERVER: "this server's key",
    KeySource.DEMO: "Demo: no charge.",
    None: "Enter your RunAPI key to generate.",
}
LOCAL = "Generations use this server's RunAPI key."
SHARED = "Without a key of your own, you generate on this server's RunAPI key, within its limits."
DEMO = "Without one you get the demo: placeholder images, no charge."
ASKED = "This server does not lend its own key."


@pytest.mark.parametrize(
    ("where", "opt_in", "no_demo", "keyless", "banner", "screenshot"),
    [
        pytest.param("loopback", False, False, KeySource.SERVER, LOCAL, None, id="loopback"),
        pytest.param("loopback", True, False, KeySource.SERVER, LOCAL, None, id="loopback-opt-in"),
        pytest.param("share", False, False, KeySource.DEMO, DEMO, None, id="share"),
        pytest.param("share", True, False, KeySource.SERVER, SHARED, None, id="share-opt-in"),
        pytest.param("space", False, False, KeySource.DEMO, DEMO, "public", id="space"),
        pytest.param("space", True, False, KeySource.SERVER, SHARED, "opt-in", id="space-opt-in"),
        pytest.param("host", False, False, KeySource.DEMO, DEMO, None, id="host"),
        pytest.param("host", True, False, KeySource.SERVER, SHARED, None, id="host-opt-in"),
        pytest.param("host", False, True, None, ASKED, "no-demo", id="host-no-demo"),
    ],
)
def test_whose_key_pays_through_every_way_in(
    where, opt_in, no_demo, keyless, banner, screenshot, serve, open_page, capsys
) -> None:
    makes_it, launched_as, start_up_reason = PLACES[where]
    choices = {"share_server_key": opt_in, "no_demo": no_demo}
    served = serve(**launched_as, **choices)
    policy = served.app.playground.policy
    assert policy.keyless_source is keyless
    if where == "share":  # a share link's policy is the public one served in its stead
        share = KeyPolicy.from_settings(Settings(api_key=SERVER_KEY, **makes_it, **choices))
        assert share.public_because == ("--share",)
        assert (share.keyless_source, share.page_note()) == (keyless, policy.page_note())
    start_up = capsys.readouterr().out
    assert f"* {start_up_reason}: {KEYLESS_AT_START[keyless]}" in start_up
    assert SERVER_KEY not in start_up

    # gradio_client: no key, then the visitor's own.
    client = served.client()
    traffic = Traffic(served)
    if keyless is None:
        with pytest.raises(AppError, match="Enter your RunAPI key to generate"):
            client.predict(prompt="A quiet harbour", api_name="/generate")
    else:
        (image,) = client.predict(prompt="A quiet harbour", api_name="/generate")
        assert image["caption"].startswith("Demo · ") == (keyless is KeySource.DEMO)
    assert traffic.keys() == spent_on(keyless)
    assert traffic.creates() == (0 if keyless is None else 1)
    traffic = Traffic(served)
    (image,) = client.predict(prompt="A quiet harbour", api_key=VISITOR_KEY, api_name="/generate")
    assert not image["caption"].startswith("Demo")
    assert (traffic.keys(), traffic.creates()) == (spent_on(KeySource.VISITOR), 1)

    # The OpenAI-style endpoint: no Bearer, then the visitor's own.
    traffic = Traffic(served)
    answer = served.images({"prompt": "A quiet harbour", "model": "imagen-4-fast"})
    if keyless is None:
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "missing_api_key"
    else:
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"]) == 1
    assert traffic.keys() == spent_on(keyless)
    traffic = Traffic(served)
    answer = served.images({"prompt": "A quiet harbour"}, api_key=VISITOR_KEY)
    assert answer.status_code == 200, answer.text
    assert traffic.keys() == spent_on(KeySource.VISITOR)

    # The page: the banner says whose key pays, the cost line agrees, the key field shows
    # wherever a visitor's own key changes something.
    page = loaded(open_page(served.url))
    expect(page.locator(".key-banner, .demo-banner")).to_contain_text(banner)
    expect(page.locator(".demo-banner")).to_have_count(1 if keyless is KeySource.DEMO else 0)
    cost = page.locator("#cost")
    expect(cost).to_contain_text(COST_LINE[keyless])
    if screenshot:
        shot(page, f"key-policy-{screenshot}")
    key_field = page.get_by_label("RunAPI key")
    if where == "loopback":
        expect(key_field).to_have_count(0)
    else:
        key_field.fill(VISITOR_KEY)
        expect(cost).to_contain_text("(1 × $0.08, your key)")


# --- limits on a shared key -------------------------------------------------------------


def _clock_times(earliest: float, latest: float) -> set[str]:
    """Every HH:MM (UTC) a quota admitted between `earliest` and `latest` may free at."""
    first, last = (math.ceil((moment + HOUR) / 60) for moment in (earliest, latest))
    return {
        datetime.fromtimestamp(minute * 60, timezone.utc).strftime("%H:%M")
        for minute in range(first, last + 1)
    }


def test_past_the_hourly_quota_a_visitor_is_told_when_to_come_back(serve, open_page) -> None:
    served = serve(public=True, share_server_key=True, images_per_hour=2)
    client = served.client()
    before = time.time()
    assert len(client.predict(prompt="A red kite", num_images=2, api_name="/generate")) == 2
    free_at = _clock_times(before, time.time())

    # The third image, from the same session or a new one at the same address.
    for caller in (client, served.client()):
        with pytest.raises(AppError) as refused:
            caller.predict(prompt="A red kite", api_name="/generate")
        come_back = COME_BACK.search(str(refused.value))
        assert come_back and come_back[1] in free_at, str(refused.value)
    answer = served.images({"prompt": "A red kite"})
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["code"] == "quota_exceeded" and COME_BACK.search(error["message"])

    page = loaded(open_page(served.url))
    generate_on_page(page, "A red kite")
    message = toast(page, "You can generate 1 more at")
    expect(message.get_by_text("You have used this server's 2 images an hour")).to_be_visible()
    page.wait_for_timeout(600)  # the toast's fade-in, for the picture only
    shot(page, "quota-reached", full_page=False)  # the viewport: where the toast is
    assert COME_BACK.search(message.inner_text().strip())

    # On their own key the visitor is not rationed: not on the API, the endpoint or the page.
    mine = client.predict(prompt="Mine", num_images=4, api_key=VISITOR_KEY, api_name="/generate")
    assert len(mine) == 4
    answer = served.images({"prompt": "A red kite", "n": 3}, api_key=VISITOR_KEY)
    assert answer.status_code == 200 and len(answer.json()["data"]) == 3
    generate_on_page(page, "A red kite on my key", api_key=VISITOR_KEY)
    expect(page.locator("#results img")).to_have_count(1)
    assert (tasks_on(served.live, SERVER_KEY), tasks_on(served.live, VISITOR_KEY)) == (2, 8)


def test_a_compare_is_counted_as_its_three_images(serve) -> None:
    served = serve(public=True, share_server_key=True, images_per_hour=2)
    with pytest.raises(AppError) as refused:
        served.client().predict(prompt="A lighthouse", api_name="/compare")
    assert "at most 2 images an hour on its RunAPI key, and you asked for 3" in str(refused.value)


def test_the_in_flight_cap_holds_under_a_burst(serve, live) -> None:
    """Eight calls at once against a cap of 3: the admitted tasks are held stuck at the
    simulator until every refusal is in, so which calls get in needs no timing."""
    served = serve(max_images_in_flight=3)
    live.config.faults = parse_faults("stuck")
    client = served.client()
    keys = [""] * 4 + [VISITOR_KEY] * 4  # the cap protects the server, whoever's key
    jobs = [
        client.submit(prompt=f"Burst {i}", api_key=key, api_name="/generate")
        for i, key in enumerate(keys)
    ]
    wait_until(
        lambda: sum(job.done() for job in jobs) == 5 and len(live.simulator.tasks) == 3,
        "three tasks running and five calls refused",
    )
    busy = served.images({"prompt": "One more"})
    assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
    assert busy.headers["x-should-retry"] == "true"

    live.config.faults = []
    for task in live.simulator.tasks.values():
        task.stuck = False  # the three running tasks finish now
    admitted, refused = [], []
    for job in jobs:
        try:
            admitted.append(job.result(timeout=30))
        except AppError as error:
            refused.append(str(error))
    assert [len(images) for images in admitted] == [1, 1, 1]
    assert refused == [BUSY] * 5
    assert len(client.predict(prompt="After the burst", api_name="/generate")) == 1  # freed
    assert len(live.simulator.tasks) == 4
    assert most_at_once(live) == 3


def most_at_once(server: SimulatorServer) -> int:
    """The most tasks running at once at `server`, each from its creation to the last
    request about it (its image's download)."""
    requests = list(server.simulator.requests)
    events = []
    for task in server.simulator.tasks.values():
        end = max(r.at for r in requests if task.id in r.path)
        events += [(task.created_at, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(events):  # at a tie, an end (-1) sorts before a start
        running += step
        peak = max(peak, running)
    return peak


# A subprocess app polls with RunAPI's own priors: the fastest model's are the shortest.
FAST = {"model": "imagen-4-fast", "api_name": "/generate"}


def test_two_app_processes_on_one_redis_share_a_quota(redis_server, live, tmp_path) -> None:
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"app-{port}.log" for port in ports]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNAPI_", "GRADIO_"))}
    processes = []
    for port, log in zip(ports, logs, strict=True):
        env = {
            **base_env,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
            "RUNAPI_UI_REDIS_URL": redis_server.url,
            "RUNAPI_API_KEY": SERVER_KEY,
            "RUNAPI_BASE_URL": live.url,
            "RUNAPI_SHARE_SERVER_KEY": "1",
            "RUNAPI_UI_PUBLIC": "1",
            "RUNAPI_UI_IMAGES_PER_HOUR": "3",
            "RUNAPI_UI_DATA_DIR": str(tmp_path / f"data-{port}"),
        }
        with log.open("w") as out:
            command = [sys.executable, "app.py", "--port", str(port)]
            processes.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        for process, log in zip(processes, logs, strict=True):
            wait_until(
                lambda log=log, process=process: (
                    "* Imagen Playground running on" in log.read_text()
                    or process.poll() is not None
                ),
                f"the app to start (log: {log})",
                seconds=60,
            )
            assert process.poll() is None, log.read_text()
            assert f"counted in Redis at {redis_server.url}" in log.read_text()
        first, second = (new_script_client(f"http://127.0.0.1:{port}") for port in ports)
        # One visitor (one address) on both processes at once: 2 + 1 images, and one on
        # their own key, which the quota does not count.
        with ThreadPoolExecutor(3) as pool:
            calls = [
                pool.submit(first.predict, prompt="Two here", num_images=2, **FAST),
                pool.submit(second.predict, prompt="One there", **FAST),
                pool.submit(second.predict, prompt="Mine", api_key=VISITOR_KEY, **FAST),
            ]
            assert [len(call.result(timeout=60)) for call in calls] == [2, 1, 1]
        # The fourth, whichever process serves it, and whatever address the client claims
        # (uvicorn believes no X-Forwarded-For unless the operator names a proxy).
        forged = new_script_client(
            f"http://127.0.0.1:{ports[1]}", headers={"X-Forwarded-For": "8.8.4.4"}
        )
        for client in (first, second, forged):
            with pytest.raises(AppError) as refused:
                client.predict(prompt="A fourth", **FAST)
            assert "You have used this server" in str(refused.value)
            assert "3 images an hour on its RunAPI key" in str(refused.value)
        assert (tasks_on(live, SERVER_KEY), tasks_on(live, VISITOR_KEY)) == (3, 1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
    with redis_server.client() as redis_client:
        stored = repr(redis_client.keys("*"))
    for log in logs:
        text = log.read_text()
        assert "Key policy: public (RUNAPI_UI_PUBLIC=1)" in text
        for key in ALL_KEYS:
            assert key not in text, f"a key is in the log {log.name}"
    assert not any(key in stored for key in ALL_KEYS)


def test_two_visitors_on_two_keys_at_once(serve, live) -> None:
    served = serve(public=True)
    live.config.time_scale = 0.1  # tasks of ~0.5 s, so the two visitors' runs overlap
    visitors = {VISITOR_KEY: "Visitor one's lighthouse", OTHER_VISITOR_KEY: "Visitor two's fox"}

    def through_api(key: str) -> list[bytes]:
        images = served.client().predict(
            prompt=visitors[key], num_images=2, api_key=key, api_name="/generate"
        )
        return [Path(image["image"]).read_bytes() for image in images]

    def through_endpoint(key: str) -> list[bytes]:
        answer = served.images({"prompt": visitors[key], "n": 2}, api_key=key)
        assert answer.status_code == 200, answer.text
        return [base64.b64decode(item["b64_json"]) for item in answer.json()["data"]]

    with ThreadPoolExecutor(4) as pool:
        calls = {
            (key, way): pool.submit(way, key)
            for key in visitors
            for way in (through_api, through_endpoint)
        }
        results = {call: future.result(timeout=60) for call, future in calls.items()}

    for (key, _), pngs in results.items():  # each visitor got their own images back
        assert [read_settings(png).prompt for png in pngs] == [visitors[key]] * 2
    tasks = list(live.simulator.tasks.values())
    assert len(tasks) == 8
    for task in tasks:  # each task made, polled and fetched on its own visitor's key
        assert visitors[task.api_key] == task.body["prompt"]
        about_it = [r for r in live.simulator.requests if task.id in r.path]
        assert about_it and {r.api_key for r in about_it} == {task.api_key}
    # Besides RunAPI's public price schedules, read with no key at all.
    prices = [r for r in live.simulator.requests if r.path == SCHEDULES_PATH]
    assert all(r.api_key is None for r in prices)
    assert {r.api_key for r in live.simulator.requests if r not in prices} == set(visitors)
    assert served.demo is not None
    assert all(r.path == SCHEDULES_PATH for r in served.demo.simulator.requests)


# --- hygiene: keys, HTML, bad input -----------------------------------------------------


def mcp_call(url: str, method: str, params: dict[str, Any], api_key: str | None = None) -> Any:
    """One JSON-RPC call to the app's MCP server (stateless streamable HTTP)."""
    headers = {"Accept": "application/json, text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = httpx.post(f"{url}/gradio_api/mcp/", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    events = [line[5:] for line in answer.text.splitlines() if line.startswith("data:")]
    return json.loads(events[-1])


def test_keys_stay_out_of_logs_pages_answers_and_the_browser(
    serve, open_page, caplog, capfd
) -> None:
    caplog.set_level(logging.DEBUG)
    served = serve(public=True, share_server_key=True, mcp=True)
    said: dict[str, str] = {}  # where -> what it said

    client = served.client()
    said["API, server's key"] = json.dumps(client.predict(prompt="Ours", api_name="/generate"))
    said["API, own key"] = json.dumps(
        client.predict(prompt="Mine", api_key=VISITOR_KEY, api_name="/generate")
    )
    for bad_key, problem in (
        (WRONG_KEY, "RunAPI did not accept the API key"),
        (f"{VISITOR_KEY} x", "spaces or unusual characters"),
    ):
        with pytest.raises(AppError, match=problem) as refused:
            client.predict(prompt="Mine", api_key=bad_key, api_name="/generate")
        said[f"API refusal: {problem}"] = str(refused.value)
    for key, answer_format in ((VISITOR_KEY, "b64_json"), (VISITOR_KEY, "url"), (WRONG_KEY, "url")):
        answer = served.images({"prompt": "Mine", "response_format": answer_format}, key)
        assert answer.status_code == (401 if key == WRONG_KEY else 200), answer.text
        said[f"endpoint, {answer_format}, {key}"] = f"{answer.headers}\n{answer.text}"
    said["MCP tool"] = json.dumps(
        mcp_call(served.url, "tools/call", {"name": "generate_image", "arguments": {"prompt": "A"}})
    )

    page = loaded(open_page(served.url))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.get_by_label("RunAPI key").fill(VISITOR_KEY)
    page.get_by_role("button", name="Check key").click()
    expect(page.locator("#key-status")).to_contain_text("Your key: balance $")
    generate_on_page(page, "A typed-key run")
    expect(page.locator("#results img")).to_have_count(1)
    # The run is over once its card says so: the history then holds it, ended.
    expect(page.locator("#runs-feed .run-card.is-going")).to_have_count(0)
    generate_on_page(page, "A wrong-key run", api_key=WRONG_KEY)
    expect(toast(page, "RunAPI did not accept the API key")).to_be_visible()
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("RunAPI key")).to_have_value("")
    expect(page.locator("#key-status")).to_contain_text("Key forgotten")
    secret = served.app.playground.settings.history_secret
    history = read_history(page, secret)
    assert [entry["prompt"] for entry in history] == ["A wrong-key run", "A typed-key run"]
    said["browser storage"] = page.evaluate(STORED_IN_BROWSER)
    said["browser history (decrypted)"] = json.dumps(history)
    said["page HTML"] = page.content()
    said["cookies"] = json.dumps(page.context.cookies())
    said["browser console"] = "\n".join(console)

    for path in ("/", "/config", "/gradio_api/info", "/gradio_api/mcp/schema"):
        answer = httpx.get(f"{served.url}{path}", timeout=10)
        assert answer.status_code == 200, path
        said[path] = answer.text
    images = served.app.playground.store.folder
    said["saved PNGs"] = repr([png.read_bytes() for png in images.glob("*.png")])
    captured = capfd.readouterr()
    said["logs"] = f"{caplog.text}\n{captured.out}\n{captured.err}"
    said["environment"] = json.dumps(dict(os.environ))

    assert "A typed-key run" in said["saved PNGs"]  # the searches below look somewhere real
    leaks = [(where, key) for where, text in said.items() for key in ALL_KEYS if key in text]
    assert leaks == []


SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'


def test_html_in_a_prompt_or_an_error_is_shown_as_text(serve, open_page) -> None:
    served = serve(api_key=None)  # the demo: the simulator's failure reason is ours to set
    assert served.demo is not None
    page = loaded(open_page(served.url))
    tiles = page.locator("#history .thumbnail-item")

    generate_on_page(page, SCRIPT)
    expect(page.locator("#summary")).to_contain_text("1 of 1 images")
    expect(tiles.first).to_contain_text(SCRIPT)

    # RunAPI's reason for a failure may quote the prompt: toast and summary show it as text.
    reason = f"RunAPI would not draw {IMG} {SCRIPT}"
    served.demo.config.fail_reason = reason
    served.demo.config.faults = parse_faults("task_fail")
    generate_on_page(page, IMG)
    expect(toast(page, "RunAPI would not draw")).to_contain_text(reason)
    expect(page.locator("#summary")).to_contain_text(f"failed: The generation failed: {reason}")
    expect(tiles).to_have_count(2)
    expect(tiles.first).to_contain_text(IMG)
    page.wait_for_timeout(600)  # the toast's fade-in, for the picture only
    shot(page, "html-as-text", full_page=False)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator('img[src="x"]').count() == 0
    injected = "[...document.scripts].some((s) => s.textContent.includes('__pwned'))"
    assert page.evaluate(f"() => {injected}") is False


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One public app sharing its key, for the bad-input cases (a served app per case
    would cost a second each)."""
    live = SimulatorServer(SimulatorConfig(time_scale=0.0, jitter=0.0, api_keys=LIVE_KEYS))
    live.start()
    served = _launched(live, tmp_path_factory.mktemp("guarded"), public=True, share_server_key=True)
    yield served
    served.app.close()
    live.stop()


@pytest.fixture(scope="module")
def guarded_client(guarded: Served) -> Client:
    return guarded.client()


LONG = "x" * (PROMPT_MAX_CHARS + 1)
SEED_RANGE = "Seed must be a whole number from 0 to 2147483647"
COUNT_RANGE = "Number of images must be a whole number from 1 to 4."


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"prompt": " \n\t "}, "Enter a prompt: it is empty.", id="blank-prompt"),
        pytest.param(
            {"prompt": LONG}, f"The prompt is {PROMPT_MAX_CHARS + 1} characters", id="long-prompt"
        ),
        pytest.param(
            {"negative_prompt": LONG}, "The negative prompt is too long", id="long-negative"
        ),
        pytest.param(
            {"prompt": "A fox\x00"}, "The prompt contains control characters", id="control"
        ),
        pytest.param(
            {"negative_prompt": "blur\x1b[31m"},
            "The negative prompt contains control characters",
            id="control-in-negative",
        ),
        pytest.param({"seed": "-1"}, SEED_RANGE, id="negative-seed"),
        pytest.param({"seed": "2147483648"}, SEED_RANGE, id="seed-too-big"),
        pytest.param({"seed": 7.5}, SEED_RANGE, id="fractional-seed"),
        pytest.param(
            {"num_images": 2.5},
            COUNT_RANGE,
            id="fractional-count",
        ),
        pytest.param({"num_images": 0}, COUNT_RANGE, id="no-images"),
        pytest.param({"num_images": 5}, COUNT_RANGE, id="five-images"),
        pytest.param({"num_images": "two"}, COUNT_RANGE, id="count-as-text"),
        pytest.param(
            {"model": "imagen-4-ultra", "aspect_ratio": "auto"},
            "imagen-4-ultra does not take aspect ratio",
            id="ratio-the-model-does-not-take",
        ),
        pytest.param(
            {"model": "imagen-5"},
            "choose one of imagen-4-fast, imagen-4, imagen-4-ultra",
            id="unknown-model",
        ),
    ],
)
def test_bad_input_through_the_api_is_refused_before_anything_is_sent(
    guarded, guarded_client, arguments, message
) -> None:
    traffic = Traffic(guarded)
    with pytest.raises(AppError) as refused:
        guarded_client.predict(**{"prompt": "A fox", **arguments}, api_name="/generate")
    assert message in str(refused.value)
    assert traffic.keys() == spent_on(None)


@pytest.mark.xfail(
    strict=True,
    reason="Gradio checks the number of inputs before the handler and, without show_error, "
    "answers a call missing its values with an error of null: no message at all",
)
def test_a_call_missing_its_values_is_told_which(guarded) -> None:
    traffic = Traffic(guarded)
    started = httpx.post(f"{guarded.url}/gradio_api/call/generate", json={"data": []})
    event = started.json()["event_id"]
    answer = httpx.get(f"{guarded.url}/gradio_api/call/generate/{event}", timeout=30).text
    assert traffic.keys() == spent_on(None)
    assert "event: error" in answer
    assert "prompt" in answer.lower()


def test_the_api_takes_every_ratio_its_model_takes(guarded_client) -> None:
    (image,) = guarded_client.predict(
        prompt="A fox", model="imagen-4-fast", aspect_ratio="auto", api_name="/generate"
    )
    assert image["caption"].startswith("imagen-4-fast · auto")


def test_api_refusals_read_as_plain_text(serve) -> None:
    served = serve(public=True, share_server_key=True, images_per_hour=1)
    client = served.client()
    client.predict(prompt="A fox", api_name="/generate")
    with pytest.raises(AppError) as refused:
        client.predict(prompt="A fox", api_name="/generate")
    assert "You have used this server's 1 image an hour" in str(refused.value)


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        pytest.param({"prompt": " \n "}, "prompt", "Enter a prompt", id="blank-prompt"),
        pytest.param(
            {"prompt": LONG},
            "prompt",
            f"The prompt is {PROMPT_MAX_CHARS + 1} characters",
            id="long",
        ),
        pytest.param(
            {"prompt": "A fox", "negative_prompt": LONG},
            "negative_prompt",
            "The negative prompt is too long",
            id="long-negative",
        ),
        pytest.param(
            {"prompt": "A fox\x07"}, "prompt", "contains control characters", id="control"
        ),
        pytest.param(
            {"prompt": "A fox", "negative_prompt": "\x1b[31m"},
            "negative_prompt",
            "contains control characters",
            id="control-in-negative",
        ),
        pytest.param(
            {"prompt": "A fox", "model": "imagen-4", "aspect_ratio": "auto"},
            "aspect_ratio",
            "imagen-4 does not take aspect ratio 'auto'",
            id="ratio",
        ),
        pytest.param({"prompt": "A fox", "seed": -1}, "seed", SEED_RANGE, id="negative-seed"),
        pytest.param({"prompt": "A fox", "seed": 2**31}, "seed", SEED_RANGE, id="seed-too-big"),
        pytest.param({"prompt": "A fox", "n": 0}, "n", "n must be from 1 to 4", id="no-images"),
        pytest.param({"prompt": "A fox", "n": 5}, "n", "n must be from 1 to 4", id="five"),
        pytest.param({"model": "imagen-4"}, "prompt", "Missing required parameter: prompt"),
        pytest.param({"prompt": 42}, "prompt", "prompt must be a string", id="prompt-number"),
        pytest.param({"prompt": "A fox", "n": "2"}, "n", "n must be a whole number", id="n-text"),
        pytest.param(
            {"prompt": "A fox", "seed": "7"}, "seed", "seed must be a whole number", id="seed-text"
        ),
        pytest.param(["A fox"], None, "The body must be a JSON object.", id="not-an-object"),
    ],
)
def test_bad_input_to_the_openai_endpoint_is_400_naming_the_parameter(
    guarded, body, param, message
) -> None:
    traffic = Traffic(guarded)
    answer = guarded.images(body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert message in error["message"]
    assert answer.headers["x-should-retry"] == "false"
    assert traffic.keys() == spent_on(None)


def test_a_body_that_is_not_json_is_400(guarded) -> None:
    traffic = Traffic(guarded)
    answer = httpx.post(
        f"{guarded.url}/v1/images/generations",
        content=b"prompt=A fox",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "The body is not valid JSON."
    assert traffic.keys() == spent_on(None)


# --- login -------------------------------------------------------------------------------


def test_with_a_login_the_page_asks_for_it_and_quotas_count_per_user(serve, open_page) -> None:
    served = serve(
        auth="alice:pw-alice,bob:pw-bob",
        public=True,
        share_server_key=True,
        images_per_hour=2,
        mcp=True,
    )
    page = open_page(served.url)
    expect(page.get_by_role("button", name="Login")).to_be_visible()
    expect(page.get_by_label("Prompt", exact=True)).to_have_count(0)
    shot(page, "login")
    for path in ("/config", "/gradio_api/info"):
        assert httpx.get(f"{served.url}{path}").status_code == 401, path
    started = httpx.post(f"{served.url}/gradio_api/call/generate", json={"data": ["A fox"]})
    assert started.status_code == 401
    with pytest.raises(AuthenticationError):
        served.client()

    alice = served.client(auth=("alice", "pw-alice"))
    assert len(alice.predict(prompt="Alice's", num_images=2, api_name="/generate")) == 2
    with pytest.raises(AppError, match="You can generate 1 more at"):
        alice.predict(prompt="Alice's third", api_name="/generate")
    # Alice again, in a browser of her own: the quota is hers, whatever the session.
    page.get_by_label("username").fill("alice")
    page.get_by_label("password").fill("pw-alice")
    page.get_by_role("button", name="Login").click()
    generate_on_page(loaded(page), "Alice's third, in the page")
    expect(toast(page, "You can generate 1 more at")).to_be_visible()
    # Bob, from the same address, has an hour of his own.
    bob = served.client(auth=("bob", "pw-bob"))
    assert len(bob.predict(prompt="Bob's", num_images=2, api_name="/generate")) == 2
    assert tasks_on(served.live, SERVER_KEY) == 4

    # The agents' ways in are not behind Gradio's login: reachable, but only on a key of
    # the caller's own.
    traffic = Traffic(served)
    answer = served.images({"prompt": "An agent's"})
    assert answer.status_code == 401
    assert "asks for a login" in answer.json()["error"]["message"]
    tools = mcp_call(served.url, "tools/list", {})["result"]["tools"]
    assert [tool["name"] for tool in tools] == ["generate_image", "remix_image"]
    call = {"name": "generate_image", "arguments": {"prompt": "An agent's"}}
    refused = mcp_call(served.url, "tools/call", call)["result"]
    assert refused["isError"] and "asks for a login" in json.dumps(refused)
    assert traffic.keys() == spent_on(None)
    answer = served.images({"prompt": "An agent's"}, api_key=VISITOR_KEY)
    assert answer.status_code == 200
    made = mcp_call(served.url, "tools/call", call, api_key=VISITOR_KEY)["result"]
    assert not made.get("isError") and any(block["type"] == "image" for block in made["content"])
    assert traffic.keys() == spent_on(KeySource.VISITOR)
    assert tasks_on(served.live, SERVER_KEY) == 4
