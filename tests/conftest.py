"""Shared fixtures and helpers: a real RunAPI simulator on loopback, fast clients for it,
the launched app, and Chromium.

- `make_simulator(**config)` starts a `SimulatorServer` and stops it after the test.
  Keyword arguments are `SimulatorConfig` fields; the defaults here are test-friendly
  (`time_scale=0`: tasks finish at once; `jitter=0`; `retry_after_seconds=0`) and
  `faults` may be given as the string `parse_faults` reads ("drop@create*1,task_fail").
  The server has `.url`, `.simulator.requests` (what it saw) and `.simulator.tasks`.
- `simulator`: one such server with the defaults.
- `make_client(server_or_url, api_key="sk-test", **kwargs)` (async tests only) makes a
  `RunAPIClient` that polls and retries fast: `fast_durations()` priors (0.05 s per
  model) and `retry_base_delay=FAST_RETRY_SECONDS`; other keyword arguments go to
  `RunAPIClient`.
  Every client it made is closed after the test.
- `start(settings, **options)` launches the real app on `settings.port` (pick it with
  `bench.processes.free_port`) and returns a `Served`; `launched_app(...)` does the same as
  a context manager that closes it. `options` go to `create_app`; polling and retries
  are fast.
  `script_client(url)` is gradio_client's `Client` for it, as a script would call it.
- `browser`: Debian's Chromium (`bench.processes.CHROMIUM` and its flags), one per test
  module. `visitor_page(browser, url)` is a fresh profile's tab with the form loaded and
  the page's load events answered (`settle`); `shot(page, name)` saves a screenshot into
  test-artifacts/. Every `expect` waits up to `WAIT_MS`, and `eventually(check, what)`
  waits as long for a plain Python condition: generous, as the machine is shared, and
  never a measure of speed (the benchmarks measure that).

Every test that uses `browser` (directly or through a fixture) is marked `browser`:
`python -m pytest -m "not browser"` runs the rest, the fast part.
"""

from __future__ import annotations

import os
import threading
import time

# Before anything imports gradio: no usage analytics from test runs (no network here).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gradio_client import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from bench.processes import CHROMIUM, CHROMIUM_FLAGS
from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runapi.client import RunAPIClient, shared_ssl_context
from runapi_ui.runapi.polling import DurationStats
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer, parse_faults
from runapi_ui.runs.settings import Settings

if TYPE_CHECKING:  # Gradio loads where an app is made: pytest's own process never needs it
    from runapi_ui.page.server import PlaygroundApp

TEST_KEY = "sk-test-0123456789"
FAST_PRIOR_SECONDS = 0.05
FAST_RETRY_SECONDS = 0.01  # the first retry's delay (production: RETRY_BASE_DELAY)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # git ignores it
DESKTOP = {"width": 1280, "height": 1000}
# How long a test waits for anything the server or the page does: a busy 2-core machine
# (CI's, or ours with both cores kept busy) took over 30 s to render a page that takes
# one here. Every expect, and every action and navigation of a page (`browser`), waits
# this long; a test that passes never waits it out.
WAIT_MS = 60_000
expect.set_options(timeout=WAIT_MS)

_TEST_DEFAULTS: dict[str, Any] = {"time_scale": 0.0, "jitter": 0.0, "retry_after_seconds": 0}


def fast_durations(seconds: float = FAST_PRIOR_SECONDS) -> DurationStats:
    """Duration priors that make a client poll at its floor (`MIN_STEP` apart) from the start."""
    return DurationStats({name: seconds for name in MODELS})


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    servers: list[SimulatorServer] = []

    def make(**config: Any) -> SimulatorServer:
        if isinstance(config.get("faults"), str):
            config["faults"] = parse_faults(config["faults"])
        server = SimulatorServer(SimulatorConfig(**{**_TEST_DEFAULTS, **config})).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(wait=False)


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator()


@pytest.fixture
async def make_client(make_simulator: object) -> AsyncIterator[Callable[..., RunAPIClient]]:
    clients: list[RunAPIClient] = []

    def make(server: SimulatorServer | str, api_key: str = TEST_KEY, **kwargs: Any) -> RunAPIClient:
        url = server if isinstance(server, str) else server.url
        kwargs.setdefault("durations", fast_durations())
        kwargs.setdefault("retry_base_delay", FAST_RETRY_SECONDS)
        client = RunAPIClient(api_key=api_key, base_url=url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# --- a launched app ---------------------------------------------------------------------


@dataclass
class Served:
    """A launched app and how it was started (a restart starts it the same way)."""

    app: PlaygroundApp
    url: str
    settings: Settings
    options: dict[str, Any] = field(default_factory=dict)  # create_app's other arguments

    @property
    def image_dir(self) -> Path:
        return self.app.playground.store.folder

    def restart(self) -> None:
        self.app.close()
        self.app, self.url = _launch(self.settings, self.options)


def _launch(settings: Settings, options: dict[str, Any]) -> tuple[PlaygroundApp, str]:
    from runapi_ui.page.server import create_app, launch

    fast = {"live_durations": fast_durations(), "retry_base_delay": FAST_RETRY_SECONDS}
    app = create_app(settings, **{**fast, **options})
    return app, launch(app, settings, block=False)


def start(settings: Settings, **options: Any) -> Served:
    """The real app served on `settings.port`, not blocking; `options` go to `create_app`
    (live polling and retries are fast unless they say otherwise). Close its `.app`."""
    return Served(*_launch(settings, options), settings, options)


@contextmanager
def launched_app(settings: Settings, **options: Any) -> Iterator[Served]:
    """`start`, closed when the block ends."""
    served = start(settings, **options)
    try:
        yield served
    finally:
        served.app.close()


def new_script_client(url: str, **options: Any) -> Client:
    """gradio_client's `Client` for the app at `url`, as a script makes one (`options` go
    to it), verifying TLS with this process's one context: gradio_client makes an httpx
    client for each request, and each would load the CA bundle again (22 ms of CPU)."""
    return Client(url, verbose=False, ssl_verify=shared_ssl_context(), **options)


@contextmanager
def script_client(url: str, **options: Any) -> Iterator[Client]:
    """`new_script_client`, closed when the block ends. Closed in the background:
    `Client.close()` waits a whole second for its heartbeat thread, which sits reading the
    app's event stream until the next heartbeat and then ends by itself (or when the app
    stops)."""
    client = new_script_client(url, **options)
    try:
        yield client
    finally:
        threading.Thread(target=client.close, daemon=True).start()


# --- Chromium ---------------------------------------------------------------------------


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): a process per core, as the browser tests keep each
    core busy with Chromium; twice as many without them (`-m "not browser"`), as the rest
    mostly wait on sockets and simulated tasks (on 2 cores: 58 s with four, 63 s with three).
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when it is set."""
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(chosen)
    cores = os.cpu_count() or 1
    return cores * 2 if "not browser" in (config.option.markexpr or "") else cores


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that drives Chromium, so `-m "not browser"` leaves them out."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module. Sync Playwright runs an event loop of its
    own in the test thread while it lives, where pytest-asyncio's tests would then fail:
    in a module with both, its async tests come before its first browser test."""
    assert Path(CHROMIUM).exists(), "install Chromium first: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        new_context = browser.new_context

        def patient_context(**options: Any) -> BrowserContext:
            context = new_context(**options)
            context.set_default_timeout(WAIT_MS)  # Playwright's own: 30 s
            return context

        browser.new_context = patient_context  # type: ignore[method-assign]
        yield browser
        browser.close()


# Gradio's status trackers show while an event the page waits on is pending (the load
# events that fill the form, the history and the feed); hidden, the page is settled.
SETTLED_JS = """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
  .every((tracker) => tracker.classList.contains("hide"))"""


def settle(page: Page) -> None:
    """Wait for the form to be there and the page's load events to have answered: a click
    before that races them (on a busy machine, the load's answer came after it)."""
    page.locator("#generate").wait_for(timeout=WAIT_MS)  # in any of the page's languages
    page.wait_for_function(SETTLED_JS, timeout=WAIT_MS)


def open_page(page: Page, url: str) -> None:
    """`url` in `page`, settled."""
    page.goto(url)
    settle(page)


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_MS / 1000) -> Any:
    """Wait for `check()` to be truthy (and return it); fail saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"never happened: {what}"
            return value
        time.sleep(0.1)


@contextmanager
def visitor_page(browser: Browser, url: str, **context_options: Any) -> Iterator[Page]:
    """A fresh browser profile (an empty localStorage) at `url`, desktop-sized unless
    `context_options` say otherwise; closed when the block ends."""
    context = browser.new_context(**{"viewport": DESKTOP, **context_options})
    try:
        page = context.new_page()
        open_page(page, url)
        yield page
    finally:
        context.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """A screenshot of `page` as test-artifacts/`name`.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)
