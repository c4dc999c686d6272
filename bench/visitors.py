"""Visitors of the running app, through `gradio_client` as any script would call it.

Each visitor is a session of its own (its own `Client`) with a RunAPI key of its own, so
the simulator can tell whose request is whose. `leave_mid_run` is a closed browser tab:
it joins the queue over Gradio's own protocol and drops the connection while it runs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
from gradio_client import Client
from gradio_client import utils as client_utils
from gradio_client.client import Job
from gradio_client.exceptions import AppError

ENDPOINT = "/generate"


@dataclass
class Outcome:
    """What one generation gave its visitor: image files, or the error message."""

    seconds: float
    images: list[str] = field(default_factory=list)  # local files, downloaded
    captions: list[str] = field(default_factory=list)
    error: str | None = None
    stopped: bool = False


class Visitor:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self._downloads = tempfile.mkdtemp(prefix="bench-visitor-")
        self.client = Client(url, verbose=False, download_files=self._downloads, ssl_verify=False)

    def submit(self, **form: Any) -> Job:
        """Start a generation (the form's fields by name) and return at once."""
        return self.client.submit(api_key=self.key, api_name=ENDPOINT, **form)

    def generate(self, **form: Any) -> Outcome:
        started = time.monotonic()
        return outcome(self.submit(**form), started)

    def leave_mid_run(self, after: float, **form: Any) -> None:
        """Join a generation like a browser tab, and close the tab `after` seconds into it."""
        endpoint = self.client.endpoints[self.client._infer_fn_index(ENDPOINT, None)]
        arguments = client_utils.construct_args(
            endpoint.parameters_info, (), {**form, "api_key": self.key}
        )
        session = uuid.uuid4().hex[:12]
        base = self.url.rstrip("/") + "/gradio_api/queue"
        with httpx.Client(timeout=60) as http:
            http.post(
                f"{base}/join",
                json={
                    "data": list(endpoint.insert_empty_state(*arguments)),
                    "fn_index": endpoint.fn_index,
                    "session_hash": session,
                    "event_data": None,
                    "trigger_id": None,
                },
            ).raise_for_status()
            with (
                suppress(httpx.TransportError),  # a tab that is closing does not care
                http.stream("GET", f"{base}/data", params={"session_hash": session}) as stream,
            ):
                for line in stream.iter_lines():
                    if line.startswith("data:") and json.loads(line[5:]).get("msg") in (
                        "process_starts",
                        "process_completed",
                    ):
                        break
                time.sleep(after)
            # Leaving the block closes the connection mid-run, as a closed tab does.

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self._downloads, ignore_errors=True)


def make_visitors(url: str, count: int, prefix: str) -> list[Visitor]:
    """`count` visitors with keys `sk-<prefix>-000`, … (each Client reads the app's config)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: Visitor(url, f"sk-{prefix}-{i:03d}"), range(count)))


def close_all(visitors: list[Visitor]) -> None:
    """Close every session at once: each waits up to a second for its heartbeat to stop."""
    if visitors:
        with ThreadPoolExecutor(len(visitors)) as pool:
            list(pool.map(Visitor.close, visitors))


def outcome(job: Job, started: float, *, stopped: bool = False) -> Outcome:
    """Wait for `job` and say how it ended; `stopped`: the visitor pressed Stop on it."""
    try:
        items = job.result()
    except AppError as error:  # the app's own message, as the page shows it
        return Outcome(time.monotonic() - started, error=error.message)
    except Exception as error:
        # After a Stop, gradio_client ends the job without data (or cancels it).
        seconds = time.monotonic() - started
        if stopped:
            return Outcome(seconds, stopped=True)
        return Outcome(seconds, error=f"(the app gave no answer: {error!r})")
    return Outcome(
        time.monotonic() - started,
        images=[item["image"] for item in items],
        captions=[item["caption"] for item in items],
    )
