"""The processes the benchmark measures: the playground, bare Gradio apps, `python app.py`.

Each runs in a child process of its own, so its memory is its own and this process's
load (visitors, the simulator) does not share its interpreter.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
# Debian's Chromium, as the browser tests and the page figure drive it (never a
# downloaded one: `playwright install` needs the internet).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT = 120.0  # seconds: a cold start on a busy 2-core machine is slow, never this slow


def free_port() -> int:
    """A loopback port nothing listens on, for a server about to start.

    Picked below the kernel's ephemeral range: a port the kernel hands out (bind to 0)
    is one it may also give the next outgoing connection, and with thousands of those
    (the benchmark, the tests) one took a server's port before it could listen.
    """
    low = _first_ephemeral_port()
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)  # 12,000 ports to pick from
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: another
            return port
    raise OSError("no free loopback port below the ephemeral range")


def _first_ephemeral_port() -> int:
    """Where the kernel's range for outgoing connections starts (Linux's default where
    unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def with_children(process: psutil.Process) -> list[psutil.Process]:
    """A server process and its children: the app's RunAPI worker counts as the app."""
    return [process, *process.children()]


def cpu_seconds(process: psutil.Process) -> float:
    """A server's CPU time so far, with its children's (the app's RunAPI worker)."""
    members = with_children(process)
    return sum(times.user + times.system for times in (m.cpu_times() for m in members))


def child_environment(**extra: str) -> dict[str, str]:
    """This environment without RunAPI or Gradio settings, analytics off, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNAPI_", "GRADIO_"))}
    env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT), **extra)
    return env


def wait_for_page(url: str, process: subprocess.Popen[Any], timeout: float = START_TIMEOUT) -> None:
    """Until `url` answers 200, or the process dies, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_Server = TypeVar("_Server", bound="ChildServer")


class ChildServer:
    """A server in a child process that prints `ready <address> …` once it serves, and
    stops cleanly when its stdin closes."""

    name = "a server"

    def __init__(self, command: list[str]) -> None:
        self._command = command
        self._process: subprocess.Popen[str] | None = None
        self.addresses: list[str] = []  # what its ready line named

    def __enter__(self: _Server) -> _Server:
        self._process = subprocess.Popen(
            self._command,
            cwd=ROOT,
            env=child_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        stdout: IO[str] = self._process.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + START_TIMEOUT
        for line in stdout:
            if line.startswith("ready "):
                self.addresses = line.split()[1:]
                break
            if time.monotonic() > deadline:
                break
        if not self.addresses:
            stop(self._process)
            raise RuntimeError(f"{self.name} did not start: {' '.join(self._command)}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        if self._process.stdin:
            self._process.stdin.close()  # the child's cue to shut down cleanly
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop(self._process)

    @property
    def url(self) -> str:
        """Where it serves: the first address its ready line named."""
        return self.addresses[0]

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid


class SimulatorProcess(ChildServer):
    """RunAPI's simulator (`bench.simserver`) in a child process, configured by `fields`."""

    name = "the simulator"

    def __init__(self, **fields: Any) -> None:
        super().__init__([sys.executable, "-m", "bench.simserver", json.dumps(fields)])


class AppProcess(ChildServer):
    """The playground (`bench.appserver`) in a child process, with RunAPI at `backend_url`.

    `probe()` reads the child's own figures: RSS, threads, event-loop tasks, connections.
    """

    name = "the playground"

    def __init__(
        self,
        backend_url: str,
        *,
        max_concurrent_runs: int | None = None,
        deadline: float | None = None,
        sessions_kept: int | None = None,
        runs_kept: int | None = None,
        tracemalloc: bool = False,
    ) -> None:
        command = [sys.executable, "-m", "bench.appserver", "--base-url", backend_url]
        command += ["--port", str(free_port()), "--probe-port", str(free_port())]
        if max_concurrent_runs is not None:
            command += ["--max-concurrent-runs", str(max_concurrent_runs)]
        if deadline is not None:
            command += ["--deadline", str(deadline)]
        if sessions_kept is not None:
            command += ["--sessions-kept", str(sessions_kept)]
        if runs_kept is not None:
            command += ["--runs-kept", str(runs_kept)]
        if tracemalloc:
            command.append("--tracemalloc")
        super().__init__(command)

    @contextmanager
    def rss_samples(self) -> Iterator[list[int]]:
        """The child's RSS, sampled every 0.2 s while the block runs.

        Read from outside (`/proc`), not through the probe: the probe lists the app's
        event-loop tasks and connections, work that would slow the wave it measures.
        """
        samples: list[int] = []
        done = threading.Event()
        child = psutil.Process(self.pid)

        def sample() -> None:
            while not done.is_set():
                samples.append(sum(m.memory_info().rss for m in with_children(child)))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield samples
        finally:
            done.set()
            sampler.join()

    def probe(self, *, collect: bool = False, growth: bool = False) -> dict[str, Any]:
        """`collect`: after a full garbage collection; `growth` (with `tracemalloc`): also
        the allocation sites that grew most since the last such probe."""
        asked = [name for name, wanted in (("collect", collect), ("growth", growth)) if wanted]
        url = self.addresses[1] + ("?" + "&".join(asked) if asked else "")
        # Comparing two snapshots of the whole heap takes minutes on a busy machine.
        return json.loads(httpx.get(url, timeout=600 if growth else 60).text)


def seconds_to_first_page(command: list[str], port: int) -> float:
    """Start `command`, time it until http://127.0.0.1:`port`/ answers, then stop it."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_page(f"http://127.0.0.1:{port}/", process)
        return time.monotonic() - started
    finally:
        stop(process)


class BaselineProcess:
    """A bare Gradio app (`bench.baselines`) in a child process, for reference figures."""

    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.command = [sys.executable, "-m", "bench.baselines", kind, "--port", str(self.port)]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BaselineProcess:
        self._process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=child_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_page(self.url, self._process)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        stop(self._process)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid
