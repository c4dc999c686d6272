"""How the playground is configured: command-line flags over environment variables.

The server's own key (`RUNAPI_API_KEY`, e.g. a Space secret) is read here once and
kept on the Settings object that the app passes down: never written back to the
environment, never a module global.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..runapi.client import DEFAULT_BASE_URL

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _default_data_dir() -> Path:
    return Path(tempfile.gettempdir()) / "imagen-playground"


@dataclass(frozen=True)
class Settings:
    api_key: str | None = field(default=None, repr=False)  # the server's key, if any
    base_url: str = DEFAULT_BASE_URL
    demo: bool = False  # force the built-in simulator, whatever keys exist
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    deadline: float = 300.0  # seconds a generation may take before it times out
    max_concurrent_runs: int = 100  # generations served at once across all users
    # One browser tab's runs side by side (within the per-visitor quotas).
    tab_max_runs: int = 4
    tab_max_images: int = 16
    # Gradio keeps a copy of the whole page's config for each recent session (~100 KB
    # here): its default of 10,000 sessions would let a busy Space grow by a gigabyte.
    sessions_kept: int = 1000
    simulator_time_scale: float = 0.6  # demo tasks take 60% of RunAPI's typical time
    # Results that last (history, resume).
    data_dir: Path = field(default_factory=_default_data_dir)  # images and ZIPs live here
    image_max_age_days: float = 7.0  # RunAPI keeps its image links about this long too
    history_secret: str = "imagen-playground-history"  # obfuscation only: it is in /config
    run_keep_seconds: float = 3600.0  # a finished run waits this long for its visitor
    runs_kept: int = 2000  # and at most this many finished runs wait, the oldest go first
    # Agents.
    mcp: bool = False  # serve the MCP tool at /gradio_api/mcp/
    # Public deployments.
    space_id: str | None = None  # set by Hugging Face Spaces
    public: bool = False  # behind the operator's own proxy: treat as public though on loopback
    share_server_key: bool = False  # the operator opts in to paying for visitors
    no_demo: bool = False  # a visitor without a key is asked for one instead of the demo
    images_per_hour: int = 20  # per visitor, on the server's key; 0 for no limit
    max_images_in_flight: int = 200  # per server (or per Redis), whoever's key
    daily_spend_cap_usd: float | None = None  # on the server's key, all visitors together
    redis_url: str | None = field(default=None, repr=False)  # shared quotas across replicas
    auth: str | None = field(default=None, repr=False)  # "user:pass[,user:pass]" or a file
    # RunAPI's traffic in a process of its own (runapi_ui/runapi/worker.py); off: in this one.
    worker: bool = True

    @property
    def image_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def server_has_key(self) -> bool:
        return bool(self.api_key) and not self.demo

    @property
    def may_run_demo(self) -> bool:
        """Without a server key, a visitor who types none gets the simulator."""
        return not self.server_has_key


def settings_from(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from command-line flags, falling back to the environment."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="app.py", description="Imagen Playground: Imagen 4 through RunAPI, in your browser."
    )
    parser.add_argument(
        "--host",
        default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to listen on (0.0.0.0 for every interface; env GRADIO_SERVER_NAME)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("GRADIO_SERVER_PORT", 7860)),
        help="port to listen on (env GRADIO_SERVER_PORT; default 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also serve on a temporary public gradio.live link"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the built-in RunAPI simulator even if a key is configured",
    )
    parser.add_argument(
        "--mcp",
        action="store_true",
        help="serve the generate_image tool to MCP clients at /gradio_api/mcp/ (env RUNAPI_UI_MCP)",
    )
    parser.add_argument(
        "--share-server-key",
        action="store_true",
        help="on a public deployment, let visitors without a key use RUNAPI_API_KEY "
        "(env RUNAPI_SHARE_SERVER_KEY)",
    )
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="ask visitors without a key for one instead of offering the demo",
    )
    args = parser.parse_args(argv)
    cap = env.get("RUNAPI_UI_DAILY_SPEND_CAP_USD", "").strip()
    return Settings(
        api_key=(env.get("RUNAPI_API_KEY") or "").strip() or None,
        base_url=env.get("RUNAPI_BASE_URL") or DEFAULT_BASE_URL,
        demo=args.demo,
        host=args.host,
        port=args.port,
        share=args.share or env.get("GRADIO_SHARE", "").lower() in _TRUE,
        deadline=float(env.get("RUNAPI_DEADLINE_SECONDS", 300)),
        simulator_time_scale=float(env.get("RUNAPI_SIM_TIME_SCALE", 0.6)),
        sessions_kept=int(env.get("RUNAPI_UI_SESSIONS_KEPT", Settings.sessions_kept)),
        tab_max_runs=int(env.get("RUNAPI_UI_TAB_RUNS", Settings.tab_max_runs)),
        tab_max_images=int(env.get("RUNAPI_UI_TAB_IMAGES", Settings.tab_max_images)),
        data_dir=Path(env.get("RUNAPI_UI_DATA_DIR") or _default_data_dir()),
        image_max_age_days=float(env.get("RUNAPI_UI_IMAGE_MAX_AGE_DAYS", 7)),
        history_secret=env.get("RUNAPI_UI_HISTORY_SECRET") or Settings.history_secret,
        mcp=args.mcp or env.get("RUNAPI_UI_MCP", "").lower() in _TRUE,
        space_id=env.get("SPACE_ID") or None,
        public=env.get("RUNAPI_UI_PUBLIC", "").lower() in _TRUE,
        share_server_key=args.share_server_key
        or env.get("RUNAPI_SHARE_SERVER_KEY", "").lower() in _TRUE,
        no_demo=args.no_demo or env.get("RUNAPI_UI_NO_DEMO", "").lower() in _TRUE,
        images_per_hour=int(env.get("RUNAPI_UI_IMAGES_PER_HOUR", 20)),
        max_images_in_flight=int(env.get("RUNAPI_UI_MAX_IMAGES_IN_FLIGHT", 200)),
        daily_spend_cap_usd=float(cap) if cap else None,
        redis_url=env.get("RUNAPI_UI_REDIS_URL") or None,
        auth=env.get("RUNAPI_UI_AUTH") or None,
        worker=env.get("RUNAPI_UI_WORKER", "on").lower() not in _FALSE,
    )
