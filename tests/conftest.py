"""Shared fixtures: a real RunAPI simulator on loopback, and fast clients for it.

- `make_simulator(**config)` starts a `SimulatorServer` and stops it after the test.
  Keyword arguments are `SimulatorConfig` fields; the defaults here are test-friendly
  (`time_scale=0`: tasks finish at once; `jitter=0`; `retry_after_seconds=0`) and
  `faults` may be given as the string `parse_faults` reads ("drop@create*1,task_fail").
  The server has `.url`, `.simulator.requests` (what it saw) and `.simulator.tasks`.
- `simulator`: one such server with the defaults.
- `make_client(server_or_url, api_key="sk-test", **kwargs)` (async tests only) makes a
  `RunAPIClient` that polls and retries fast: `fast_durations()` priors (0.05 s per
  model) and `retry_base_delay=0.01`; other keyword arguments go to `RunAPIClient`.
  Every client it made is closed after the test.
"""

from __future__ import annotations

import os

# Before anything imports gradio: no usage analytics from test runs (no network here).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from runapi_ui.catalog import MODELS
from runapi_ui.client import RunAPIClient
from runapi_ui.polling import DurationStats
from runapi_ui.simulator import SimulatorConfig, SimulatorServer, parse_faults

TEST_KEY = "sk-test-0123456789"
FAST_PRIOR_SECONDS = 0.05

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
        server.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator()


@pytest.fixture
async def make_client(make_simulator: object) -> AsyncIterator[Callable[..., RunAPIClient]]:
    clients: list[RunAPIClient] = []

    def make(server: SimulatorServer | str, api_key: str = TEST_KEY, **kwargs: Any) -> RunAPIClient:
        url = server if isinstance(server, str) else server.url
        kwargs.setdefault("durations", fast_durations())
        kwargs.setdefault("retry_base_delay", 0.01)
        client = RunAPIClient(api_key=api_key, base_url=url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
