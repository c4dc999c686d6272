"""Visitors of the running app, through `gradio_client` as any script would call it.

Each visitor is a session of its own (its own `Client`) with a RunAPI key of its own, so
the simulator can tell whose request is whose. `leave_mid_run` is a closed browser tab:
it joins the queue over Gradio's own protocol and drops the connection while it runs.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
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
        messages = queue_messages(self.client, ENDPOINT, **form, api_key=self.key)
        # Closing the messages closes the connection mid-run, as a closed tab does.
        with closing(messages):
            first = next(messages)  # the join: a tab that cannot even join is a failure
            with suppress(httpx.TransportError):  # a tab that is closing does not care
                for message in itertools.chain([first], messages):
                    if message["msg"] in ("process_starts", "process_completed"):
                        break
                time.sleep(after)

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self._downloads, ignore_errors=True)


def queue_messages(client: Client, endpoint: str, **arguments: Any) -> Iterator[dict[str, Any]]:
    """Join `endpoint` as a browser tab does (a session of its own, Gradio's own protocol)
    and yield each message the queue sends it, up to its answer; closing this generator
    closes the connection."""
    fn = client.endpoints[client._infer_fn_index(endpoint, None)]
    data = fn.insert_empty_state(*client_utils.construct_args(fn.parameters_info, (), arguments))
    session = uuid.uuid4().hex[:12]
    queue = client.src_prefixed + "queue"
    with httpx.Client(timeout=60) as http:
        http.post(
            f"{queue}/join",
            json={
                "data": list(data),
                "fn_index": fn.fn_index,
                "session_hash": session,
                "event_data": None,
                "trigger_id": None,
            },
        ).raise_for_status()
        with http.stream("GET", f"{queue}/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    yield message
                    if message["msg"] == "process_completed":
                        return


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
