"""The playground in a process of its own, as the benchmark and the soak drive it.

    python -m bench.appserver --port 7861 --base-url http://127.0.0.1:8787 --probe-port 7862

Serves the real app (`create_app` + `launch`) with RunAPI at `--base-url` (the
benchmark's simulator), every visitor typing a key of their own, no demo simulator and
no per-visitor quota, so its memory and its event loop hold the app alone. Beside it, a
probe answers `GET /` on `--probe-port` with what only this process can see: its RSS,
threads, the tasks on Gradio's event loop, and its open connections to RunAPI (RSS and
connections with those of its RunAPI worker process). With `--tracemalloc`, `GET
/?growth` also names the allocation sites that grew most since the last such call.
Prints one `ready <app url> <probe url>` line, then serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["RUNAPI_UI_IMAGES_PER_HOUR"] = "0"  # quotas off, whichever way they are read

import psutil

from bench.processes import with_children
from runapi_ui.page.server import PlaygroundApp, create_app, freeze_start_up, launch
from runapi_ui.runs.settings import Settings


def snapshot(app: PlaygroundApp, app_port: int, backend_port: int, collect: bool) -> dict[str, Any]:
    """What this process holds right now; `collect` runs a full garbage collection first,
    and times it."""
    pause = None
    if collect:
        started = time.perf_counter()
        gc.collect()
        pause = time.perf_counter() - started
    process = psutil.Process()
    worker = app.playground.worker
    family = with_children(process)  # RunAPI's traffic goes through the worker process
    tcp = [c for member in family for c in member.net_connections(kind="tcp")]
    connections = [
        c
        for c in tcp
        if c.raddr and c.raddr.port == backend_port and c.status == psutil.CONN_ESTABLISHED
    ]
    # Visitors' connections, by state: a CLOSE_WAIT is one the visitor closed and the app not.
    visitors = Counter(c.status for c in tcp if c.raddr and c.laddr.port == app_port)
    loop = app.blocks.server.servers[0].get_loop()  # Gradio's: where every run lives
    queues = dict(app.blocks._queue.pending_messages_per_session)  # a session's SSE messages

    async def tasks() -> list[str]:
        return [_kind(task) for task in asyncio.all_tasks()]

    kinds = asyncio.run_coroutine_threadsafe(tasks(), loop).result(timeout=10)
    return {
        "rss_bytes": sum(member.memory_info().rss for member in family),  # with the worker
        # A full collection stops the event loop for this long (None: none asked for).
        "full_collection_ms": None if pause is None else round(pause * 1000, 1),
        "threads": threading.active_count(),
        "event_loop_tasks": len(kinds),
        "event_loop_task_kinds": dict(Counter(kinds)),
        "connections_to_runapi": len(connections),
        "calls_waiting_on_the_worker": worker.pending if worker is not None else 0,
        "gradio_sessions": len(app.blocks.state_holder.session_data),
        # What else grows with sessions and runs, each to a bound of its own.
        "gradio_message_queues": len(queues),
        "gradio_messages_waiting": sum(queue.qsize() for queue in queues.values()),
        "runs_kept": len(app.playground.runs),
        "visitor_connections": dict(visitors),
    }


class Growth:
    """Where Python's allocations grew between two probes (tracemalloc snapshots): the
    sites that hold more at the second, by the bytes they added."""

    SITES = 12
    # Our own bookkeeping, not the app's.
    IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<unknown>")

    def __init__(self) -> None:
        self._last: tracemalloc.Snapshot | None = None

    def since_last(self) -> list[str]:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, pattern) for pattern in self.IGNORED]
        )
        last, self._last = self._last, snapshot
        if last is None:
            return []  # the first snapshot: what the next one is compared with
        grown = [s for s in snapshot.compare_to(last, "lineno") if s.size_diff > 0]
        return [
            f"{s.size_diff / 1024:+,.0f} KB in {s.count_diff:+,} blocks at "
            f"{s.traceback[0].filename}:{s.traceback[0].lineno}"
            for s in grown[: self.SITES]
        ]


def _kind(task: asyncio.Task) -> str:
    """What a task runs, e.g. `RunRegistry._execute`: enough to tell a leak's source."""
    coroutine = task.get_coro()
    return getattr(coroutine, "__qualname__", None) or type(coroutine).__name__


def serve_probe(
    app: PlaygroundApp, port: int, app_port: int, backend_port: int
) -> ThreadingHTTPServer:
    growth = Growth()

    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            figures = snapshot(app, app_port, backend_port, "collect" in self.path)
            if "growth" in self.path and tracemalloc.is_tracing():
                figures["python_growth"] = growth.since_last()
            body = json.dumps(figures).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # one line per probe would drown the log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Probe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--probe-port", type=int, required=True)
    parser.add_argument("--base-url", required=True, help="RunAPI's address (the simulator)")
    parser.add_argument(
        "--max-concurrent-runs",
        type=int,
        default=Settings.max_concurrent_runs,
        help="1 is Gradio's default concurrency",
    )
    parser.add_argument("--deadline", type=float, default=Settings.deadline)
    parser.add_argument("--sessions-kept", type=int, default=Settings.sessions_kept)
    parser.add_argument("--runs-kept", type=int, default=Settings.runs_kept)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="trace Python's allocations (slows the app)"
    )
    args = parser.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="bench-app-") as data_dir:
        settings = Settings(
            base_url=args.base_url,
            port=args.port,
            max_concurrent_runs=args.max_concurrent_runs,
            deadline=args.deadline,
            sessions_kept=args.sessions_kept,
            runs_kept=args.runs_kept,
            data_dir=Path(data_dir),
            images_per_hour=0,
            no_demo=True,  # every visitor brings a key: no idle demo simulator in this process
        )
        app = create_app(settings)
        try:
            url = launch(app, settings, block=False)
            freeze_start_up()  # as `python app.py` does
            backend_port = urlsplit(args.base_url).port or 80
            probe = serve_probe(app, args.probe_port, args.port, backend_port)
            print(f"ready {url} http://127.0.0.1:{args.probe_port}/", flush=True)
            sys.stdin.read()  # the benchmark closes it to stop us
            probe.shutdown()
        finally:
            app.close()


if __name__ == "__main__":
    main()
