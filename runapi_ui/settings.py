"""How the playground is configured: command-line flags over environment variables.

The server's own key (`RUNAPI_API_KEY`, e.g. a Space secret) is read here once and
kept on the Settings object that the app passes down: never written back to the
environment, never a module global.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .client import DEFAULT_BASE_URL


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
    simulator_time_scale: float = 0.6  # demo tasks take 60% of RunAPI's typical time

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
    args = parser.parse_args(argv)
    return Settings(
        api_key=(env.get("RUNAPI_API_KEY") or "").strip() or None,
        base_url=env.get("RUNAPI_BASE_URL") or DEFAULT_BASE_URL,
        demo=args.demo,
        host=args.host,
        port=args.port,
        share=args.share or env.get("GRADIO_SHARE", "").lower() in ("1", "true"),
        deadline=float(env.get("RUNAPI_DEADLINE_SECONDS", 300)),
        simulator_time_scale=float(env.get("RUNAPI_SIM_TIME_SCALE", 0.6)),
    )
