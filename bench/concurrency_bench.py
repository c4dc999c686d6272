"""How the playground holds up when many generations run at once.

    python bench/concurrency_bench.py            # 1, then 20, then 50 at once
    python bench/concurrency_bench.py --runs 1 10

Starts `python app.py` in demo mode in its own process (so this load generator does not
share its interpreter), then drives the Generate endpoint over Gradio's queue protocol
directly (join, then read the event stream), one session per call, as browsers do. It
prints, for each batch size, the wall time of the whole batch as a ratio of one call's:
1.0 would be perfect overlap; N would mean the calls ran one after another. The demo
simulator runs inside the app and draws every image, so this overstates the app's own
cost against the real RunAPI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def generate_once(http: httpx.AsyncClient, url: str, fn_index: int) -> float:
    """One Generate call, as a browser makes it; returns its wall time."""
    session = uuid.uuid4().hex[:12]
    started = time.monotonic()
    form = ["a lighthouse at dusk", "imagen-4-fast", "1:1", "", 1, "", "", None]
    joined = await http.post(
        f"{url}/gradio_api/queue/join",
        json={"data": form, "fn_index": fn_index, "session_hash": session, "trigger_id": None},
    )
    joined.raise_for_status()
    async with http.stream(
        "GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}
    ) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise RuntimeError(f"a generation failed: {message.get('output')}")
                return time.monotonic() - started
    raise RuntimeError("the event stream ended before the generation did")


async def measure(url: str, batches: list[int]) -> None:
    limits = httpx.Limits(max_connections=max(batches) * 2 + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        config = (await http.get(f"{url}/config")).json()
        fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "generate")
        await generate_once(http, url, fn_index)  # warm up
        single = min([await generate_once(http, url, fn_index) for _ in range(3)])
        print(f"one generation alone: {single:.2f} s")
        print(
            f"{'at once':>8}  {'batch wall time':>16}  {'ratio to one':>12}  {'slowest call':>12}"
        )
        for size in batches:
            started = time.monotonic()
            times = await asyncio.gather(*(generate_once(http, url, fn_index) for _ in range(size)))
            wall = time.monotonic() - started
            print(f"{size:>8}  {wall:>14.2f} s  {wall / single:>12.2f}  {max(times):>10.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[20, 50], help="batch sizes")
    parser.add_argument("--time-scale", default="0.25", help="demo speed (imagen-4-fast ≈ 1 s)")
    args = parser.parse_args()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNAPI_", "GRADIO_"))}
    env.update(RUNAPI_SIM_TIME_SCALE=args.time_scale, GRADIO_ANALYTICS_ENABLED="False")
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = ""
        while "running on" not in line:
            line = app.stdout.readline()  # type: ignore[union-attr]
            if not line and app.poll() is not None:
                raise SystemExit("the app did not start")
        asyncio.run(measure(f"http://127.0.0.1:{port}", args.runs))
    finally:
        app.terminate()
        app.wait(timeout=20)


if __name__ == "__main__":
    main()
