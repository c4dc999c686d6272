"""Starting the playground: the demo simulator if needed, the page, the web server."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import gradio as gr
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ..agents.endpoints import agent_routes
from ..runapi.client import RETRY_BASE_DELAY
from ..runapi.polling import DurationStats
from ..runapi.simulator import SimulatorConfig, SimulatorServer
from ..runs.access import DEMO_KEY, AuthConfigError, KeyPolicy, auth_from
from ..runs.playground import Playground
from ..runs.quota import LimitsUnavailable, limits_from
from ..runs.settings import Settings
from ..storage.images import ImageStore
from .page_scripts import HEAD
from .screen_reader import HEAD as SCREEN_READER_HEAD
from .theme import ARIA_FIXES, playground_theme
from .ui import CSS, build_ui

ICON = Path(__file__).with_name("static") / "icon.png"  # the favicon and the installed app's
# Gradio's page names no icon: browsers would ask for /favicon.ico on their own, but a
# phone's home screen wants a link. Relative: the page may sit under a path prefix.
ICON_LINKS = (
    '<link rel="icon" type="image/png" href="favicon.ico">'
    '<link rel="apple-touch-icon" href="pwa_icon/192">'
)
DEMO_BALANCE_CENTS = 10**15
MCP_PATH = "/gradio_api/mcp"
AGENT_TOOLS = ("generate_image", "remix_image")


@dataclass
class PlaygroundApp:
    """The page and what it runs on; `close()` stops both."""

    blocks: gr.Blocks
    playground: Playground
    simulator: SimulatorServer | None

    def close(self) -> None:
        self.blocks.close()
        self.playground.price_refresher.stop()
        if self.playground.worker is not None:
            self.playground.worker.stop()
        if self.simulator is not None:
            self.simulator.stop()


def create_app(
    settings: Settings,
    *,
    simulator_config: SimulatorConfig | None = None,
    live_durations: DurationStats | None = None,
    retry_base_delay: float = RETRY_BASE_DELAY,
) -> PlaygroundApp:
    """Build the page; start the built-in simulator when a visitor may end up on it.

    Tests pass `simulator_config` (faults, speed), `live_durations` (fast polling) and
    `retry_base_delay` (fast retries).
    """
    simulator = None
    policy = KeyPolicy.from_settings(settings)
    if policy.offers_demo:
        config = simulator_config or SimulatorConfig.from_env(
            time_scale=settings.simulator_time_scale,
            api_keys=frozenset({DEMO_KEY}),
            # Every visitor shares the demo key: its credit must never run out.
            starting_balance_cents=DEMO_BALANCE_CENTS,
        )
        simulator = SimulatorServer(config).start()
    # Images live in a folder of our own, so they outlive Gradio's cache sweeps and a
    # restart (where the disk does); our own sweep removes them after `image_max_age_days`.
    store = ImageStore(settings.image_dir, settings.image_max_age_days)
    store.sweep()
    demo_url = simulator.url if simulator else None
    playground = Playground(
        settings,
        store,
        demo_url,
        limits=limits_from(settings),
        live_durations=live_durations,
        retry_base_delay=retry_base_delay,
    )
    return PlaygroundApp(build_ui(playground), playground, simulator)


def launch(app: PlaygroundApp, settings: Settings, *, block: bool = True) -> str:
    """Serve the page; return its local URL. A share link that fails is one line, not a crash."""
    app.blocks.queue(default_concurrency_limit=settings.max_concurrent_runs)
    bound_message_queues(app.blocks._queue, settings.sessions_kept)
    # Our images are served from where they are, as static files: otherwise Gradio hashes
    # and copies each one into its cache on the event loop (CPU every visitor waits on),
    # and the disk holds every image twice. Only our own unguessable names live there.
    gr.set_static_paths([app.playground.store.folder])
    if app.playground.worker is not None:
        app.playground.worker.start()  # its imports overlap Gradio's start, not a first run
    app.playground.price_refresher.start()  # in the background: the page never waits on it
    # Gradio's own launch lines (and its multi-line share-link failure) are replaced by
    # the lines printed below.
    with contextlib.redirect_stdout(io.StringIO()):
        app.blocks.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=settings.share,
            prevent_thread_lock=True,
            # Gradio runs at most max_threads events at once (40 by default), whatever the
            # concurrency limit says: the 41st visitor would wait for a whole generation.
            max_threads=settings.max_concurrent_runs,
            # The least recently used sessions past this lose their server-side state (here
            # only which history entry the results show), not their history or their runs.
            state_session_capacity=settings.sessions_kept,
            run_history=False,  # it would store event inputs, the key among them, in the browser
            footer_links=["api"],
            auth=auth_from(settings),
            ssr_mode=False,  # with SSR, Node fronts the server and hides our own routes
            app_kwargs={
                "routes": agent_routes(app.playground),  # /v1/images/generations
                "middleware": [Middleware(AgentToolsOnly)],
            },
            mcp_server=settings.mcp,
            theme=playground_theme(),
            css=CSS,
            # Our icons, the accessibility fixes, the page's own scripts (page_scripts.py)
            # and what screen readers hear (screen_reader.py).
            head=ICON_LINKS + ARIA_FIXES + HEAD + SCREEN_READER_HEAD,
            pwa=True,  # installable as an app: its manifest names the Blocks' title
            favicon_path=ICON,  # and takes its icons from here
            quiet=True,
        )
    url = app.blocks.local_url or f"http://{settings.host}:{settings.port}/"
    print(f"* Imagen Playground running on {url} ({_mode(settings)})", flush=True)
    print(f"* {app.playground.policy.describe()}", flush=True)
    print(f"* {app.playground.limits.describe()}", flush=True)
    print(f"* OpenAI-compatible images endpoint: {url}v1/images/generations", flush=True)
    if settings.mcp:
        print(f"* MCP server (generate_image, remix_image): {url}gradio_api/mcp/", flush=True)
    if settings.share:
        if app.blocks.share_url:
            print(f"* Public share link: {app.blocks.share_url}", flush=True)
        else:
            print(
                "* Could not create a public share link (Gradio's share server is unreachable "
                "from here); serving locally only.",
                flush=True,
            )
    if block:
        freeze_start_up()
        app.blocks.block_thread()
    return url


class IdleFirstQueues(OrderedDict[str, Any]):
    """Gradio's queues of stream messages, one per session, kept for at most `capacity`
    sessions, the least recently read first, never one with an event queued or running.

    Gradio keeps them for its last 2000 sessions, and a tab or script gone mid-run
    leaves its messages there unread, its events pending forever (the soak counted
    ~1,000 more messages a round). Gradio's own bound drops the first session to join,
    even one whose stream is open; an open stream reads its queue at least every 10 s,
    so here it stays among the recent ones, and a session's next event makes it a new
    queue."""

    def __init__(self, capacity: int, running: dict[str, Any]) -> None:
        super().__init__()
        self.capacity = capacity
        self._running = running  # Gradio's events queued or running, by id

    def __getitem__(self, session: str) -> Any:
        self.move_to_end(session)  # read by its stream: in use
        return super().__getitem__(session)

    def __setitem__(self, session: str, messages: Any) -> None:
        super().__setitem__(session, messages)
        if len(self) > self.capacity:
            busy = {event.session_hash for event in self._running.values()}
            idle = [key for key in self if key != session and key not in busy]
            for key in idle[: len(self) - self.capacity]:
                del self[key]


def bound_message_queues(queue: Any, capacity: int) -> None:
    """Swap Gradio's queue's per-session messages for `IdleFirstQueues` (before any
    session joins)."""
    queue.pending_messages_per_session = IdleFirstQueues(capacity, queue.event_ids_to_events)


def freeze_start_up() -> None:
    """For a process that serves one app until it exits: what start-up built (Gradio,
    its routes, our modules: about 220,000 objects) lives as long as the process, so it
    leaves the garbage collector's sight. A full collection, a pause every visitor's
    event waits through, then walks only what visitors made: 0.18 s became 0.05 s."""
    gc.collect()
    gc.freeze()


class AgentToolsOnly:
    """MCP clients see the agents' tool alone: Gradio offers every public endpoint as a
    tool, and `/generate` and `/compare` are there for gradio_client scripts. A client
    that asks for tools by name (`?tools=...`) still gets what it asks for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if "tools" not in query:
                extra = urlencode({"tools": ",".join(AGENT_TOOLS)}).encode()
                joined = b"&".join(filter(None, [scope.get("query_string", b""), extra]))
                scope = {**scope, "query_string": joined}
        await self.app(scope, receive, send)


def _mode(settings: Settings) -> str:
    if settings.demo:
        return "demo mode (--demo): images come from the built-in RunAPI simulator"
    if settings.server_has_key:
        return f"generating with RunAPI at {settings.base_url} using the configured key"
    return "demo mode until a visitor enters a RunAPI key; set RUNAPI_API_KEY to use yours"


def main(settings: Settings) -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # uvicorn believes X-Forwarded-For from loopback by default: a local client could then
    # forge its address past a quota. Operators behind their own proxy name it here.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines are one per request
    try:
        app = create_app(settings)
        auth_from(settings)  # a malformed RUNAPI_UI_AUTH stops the start, not the first visitor
    except (LimitsUnavailable, AuthConfigError, ValueError) as error:
        raise SystemExit(f"Imagen Playground cannot start: {error}") from None
    try:
        launch(app, settings)
    finally:
        app.close()
