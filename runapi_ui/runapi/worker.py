"""RunAPI's traffic in a process of its own, so the event loop serving visitors stays free.

Each image is a few exchanges with RunAPI (a create, a status request or two, the
download) and a check of the image. In the app's process they hold Python's one lock
alongside Gradio's own work, and with many visitors at once their starts and finishes
queued on one core while the machine's other core idled (`python -m bench` shows it).
Here a child process (`python -m runapi_ui.runapi.worker`) does them with the same
`RunAPIClient`, and the app only trades small messages with it.

- `TaskWorker` (in the app) starts the child as the app starts serving (or at first
  use), and again if it dies.
- `WorkerClient` is what a run holds instead of a `RunAPIClient`: `submit`, `wait`,
  `aclose`, answered by the child. A wait the child could not finish (it died) is taken
  up by a new one, by task id: a task RunAPI bills is not lost with a process.
- The child learns tasks' durations as an in-process client would, and tells the app
  each observation, so the app's progress bars read the same estimates.

Messages are pickles over a socket pair private to the two processes. A visitor's key
travels on it in memory, to the child that sends it to RunAPI, and nowhere else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .catalog import DEFAULT_MODEL
from .client import (
    RETRY_BASE_DELAY,
    AnyRequest,
    GenerationResult,
    RunAPIClient,
    Task,
    UpdateCallback,
)
from .errors import UNEXPECTED_MESSAGE, RunAPIError
from .files import UploadedFile
from .polling import DurationStats

log = logging.getLogger(__name__)

_LENGTH = 4  # bytes of big-endian length before each pickled message
_STOP_SECONDS = 5.0


class WorkerGone(RunAPIError):
    """The worker process ended while a call was waiting on it."""

    def __init__(self) -> None:
        super().__init__(
            "The playground's connection to RunAPI (a helper process) stopped unexpectedly. "
            "Your task may still finish at RunAPI: generate again, and if it repeats, "
            "report it with the server log."
        )


async def _receive(reader: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await reader.readexactly(_LENGTH), "big")
    return pickle.loads(await reader.readexactly(size))


def _send(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.writelines([len(data).to_bytes(_LENGTH, "big"), data])


# --- the app's side ---------------------------------------------------------------


class TaskWorker:
    """The child process that talks to RunAPI, and the calls waiting on it.

    `stats` are the app's learned durations by name; the child starts from a copy of
    each and reports every observation back into them.
    """

    def __init__(self, stats: Mapping[str, DurationStats]) -> None:
        self._stats = dict(stats)
        self._process: subprocess.Popen[bytes] | None = None
        self._link: socket.socket | None = None  # our end, until an event loop takes it
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._calls: dict[int, asyncio.Queue[tuple[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.generation = 0  # counts the children started: a new one knows no client

    @property
    def pending(self) -> int:
        """Calls waiting on the child right now."""
        return len(self._calls)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def new_id(self) -> int:
        return next(self._ids)

    def client(
        self,
        api_key: str,
        base_url: str,
        *,
        deadline: float,
        stats: str,
        retry_base_delay: float = RETRY_BASE_DELAY,
    ) -> WorkerClient:
        return WorkerClient(
            self,
            api_key,
            base_url,
            deadline=deadline,
            stats=stats,
            retry_base_delay=retry_base_delay,
        )

    def start(self) -> None:
        """Start the child now, before anyone needs it (an app about to serve: its first
        visitor need not wait for the child's imports)."""
        if self._process is None:
            self._link = self._spawn()

    async def connect(self) -> None:
        """Make sure a child is running and linked: started (or restarted) here if not."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:  # a new event loop (tests): a new child for it
                self.stop()
            self._loop, self._lock = loop, asyncio.Lock()
        assert self._lock is not None
        async with self._lock:
            if self._writer is None:
                await self._attach()

    async def _attach(self) -> None:
        try:
            self.start()
        except OSError as error:
            raise RunAPIError(
                f"The playground could not start its connection to RunAPI ({error}). Try "
                "again; if it repeats, the server's operator can set RUNAPI_UI_WORKER=off."
            ) from None
        link, self._link = self._link, None
        assert link is not None
        reader, writer = await asyncio.open_connection(sock=link)
        for name, stats in self._stats.items():
            _send(writer, ("stats", name, stats))
        self._writer = writer
        self.generation += 1
        self._reading = asyncio.get_running_loop().create_task(self._read(reader, writer))

    def _spawn(self) -> socket.socket:
        """Start the child (a fork and exec: milliseconds); our end of its link."""
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "runapi_ui.runapi.worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def begin(self, message: tuple[Any, ...]) -> tuple[int, asyncio.Queue[tuple[str, Any]]]:
        """Send a call (its id goes first, after the kind); its answers come on the queue."""
        assert self._writer is not None
        call_id = self.new_id()
        answers: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._calls[call_id] = answers
        _send(self._writer, (message[0], call_id, *message[1:]))
        return call_id, answers

    async def cancel(self, call_id: int, answers: asyncio.Queue[tuple[str, Any]]) -> None:
        """Stop a call in the child, and wait until it has stopped: after a Stop, no request
        of that call reaches RunAPI (within reason: a child that does not answer is let be)."""
        if call_id not in self._calls:
            return  # it has answered already
        self.tell(("cancel", call_id))
        with suppress(TimeoutError):
            async with asyncio.timeout(_STOP_SECONDS):
                while (await answers.get())[0] == "update":
                    pass

    def end(self, call_id: int) -> None:
        """The caller is done with a call: cancel it in the child if it has not answered."""
        if self._calls.pop(call_id, None) is not None:
            self.tell(("cancel", call_id))

    def tell(self, message: tuple[Any, ...]) -> None:
        """A message that needs no answer (lost with the child, which then needs none)."""
        if self._writer is not None and not self._writer.is_closing():
            _send(self._writer, message)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                kind, *fields = await _receive(reader)
                if kind == "observed":
                    name, model, after, by = fields
                    self._stats[name].observe(model, after, by)
                elif (answers := self._calls.get(fields[0])) is not None:
                    if kind != "update":  # the call's last answer
                        del self._calls[fields[0]]
                    answers.put_nowait((kind, fields[1]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child ended
        except Exception:
            log.exception("unreadable message from the RunAPI worker; a new one will start")
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
                for answers in self._calls.values():
                    answers.put_nowait(("gone", None))
                self._calls.clear()
                self.stop(wait=False)

    def stop(self, *, wait: bool = True) -> None:
        """End the child (what it was doing ends with it) and forget it; `wait=False` on
        the event loop: the child is reaped in a thread, not waited for there."""
        process, self._process = self._process, None
        writer, self._writer = self._writer, None
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if writer is not None and _running_loop() is self._loop:
            writer.close()  # otherwise its event loop is gone, or another thread's
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        if wait:
            _reap(process)
        else:
            threading.Thread(target=_reap, args=(process,), daemon=True).start()


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WorkerClient:
    """A run's `RunAPIClient`, living in the worker process: the same calls."""

    def __init__(
        self,
        worker: TaskWorker,
        api_key: str,
        base_url: str,
        *,
        deadline: float,
        stats: str,
        retry_base_delay: float,
    ) -> None:
        self._worker = worker
        self._opening = (api_key, base_url, deadline, stats, retry_base_delay)
        self._id = worker.new_id()
        self._opened_in: int | None = None  # the worker generation that knows this client

    def __repr__(self) -> str:
        return "WorkerClient(api_key=<hidden>)"

    async def submit(self, request: AnyRequest) -> Task:
        return await self._call("submit", request)

    async def upload_kept(self, paths: Sequence[Path]) -> tuple[UploadedFile, ...]:
        """A remix's kept sources, read and uploaded by the child on this client's key:
        only their paths cross over, not 8 sources' bytes in one message."""
        return await self._call("upload", tuple(paths))

    async def wait(
        self,
        task: Task | str,
        *,
        on_update: UpdateCallback | None = None,
        model: str = DEFAULT_MODEL,
    ) -> GenerationResult:
        try:
            return await self._call("wait", task, model, on_update=on_update)
        except WorkerGone:
            # The task runs on at RunAPI: a new worker waits on it by id.
            task_id = task.id if isinstance(task, Task) else task
            model = task.model if isinstance(task, Task) else model
            return await self._call("wait", task_id, model, on_update=on_update)

    async def aclose(self) -> None:
        if self._opened_in == self._worker.generation:
            self._worker.tell(("close", self._id))
        self._opened_in = None

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, kind: str, *fields: Any, on_update: UpdateCallback | None = None) -> Any:
        worker = self._worker
        await worker.connect()
        if self._opened_in != worker.generation:
            worker.tell(("open", self._id, *self._opening))
            self._opened_in = worker.generation
        call_id, answers = worker.begin((kind, self._id, *fields))
        try:
            while True:
                what, value = await answers.get()
                if what == "update":
                    if on_update is not None and asyncio.iscoroutine(outcome := on_update(value)):
                        await outcome
                elif what == "result":
                    return value
                elif what == "error":
                    raise value
                else:
                    raise WorkerGone()
        except asyncio.CancelledError:
            await worker.cancel(call_id, answers)
            raise
        finally:
            worker.end(call_id)


# --- the child's side -------------------------------------------------------------


class _Child:
    """Serves the app's calls with one `RunAPIClient` per run, until the link closes."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._stats: dict[str, DurationStats] = {}
        self._clients: dict[int, RunAPIClient] = {}
        self._calls: dict[int, tuple[int, asyncio.Task[None]]] = {}  # id: (client, task)
        self._closing: set[asyncio.Task[None]] = set()

    def handle(self, kind: str, *fields: Any) -> None:
        if kind == "stats":
            name, stats = fields
            stats.listener = lambda *observed: self._answer(("observed", name, *observed))
            self._stats[name] = stats
        elif kind == "open":
            client_id, api_key, base_url, deadline, stats, retry_base_delay = fields
            self._clients[client_id] = RunAPIClient(
                api_key=api_key,
                base_url=base_url,
                deadline=deadline,
                retry_base_delay=retry_base_delay,
                durations=self._stats[stats],
            )
        elif kind == "submit":
            call_id, client_id, request = fields
            self._start(call_id, client_id, self._clients[client_id].submit(request))
        elif kind == "upload":
            call_id, client_id, paths = fields
            self._start(call_id, client_id, self._clients[client_id].upload_kept(paths))
        elif kind == "wait":
            call_id, client_id, task, model = fields

            def on_update(update: Any, call_id: int = call_id) -> None:
                self._answer(("update", call_id, update))

            waiting = self._clients[client_id].wait(task, on_update=on_update, model=model)
            self._start(call_id, client_id, waiting)
        elif kind == "cancel":
            if (call := self._calls.pop(fields[0], None)) is not None:
                call[1].cancel()
        elif kind == "close":
            closing = asyncio.get_running_loop().create_task(self._close(fields[0]))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    def _start(self, call_id: int, client_id: int, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._run(call_id, work))
        self._calls[call_id] = (client_id, task)

    async def _run(self, call_id: int, work: Any) -> None:
        try:
            answer = ("result", call_id, await work)
        except asyncio.CancelledError:
            answer = ("cancelled", call_id, None)  # the app waits for this before it goes on
        except RunAPIError as error:  # pickled as its message and fields: no frames go
            answer = ("error", call_id, error)
        except Exception:
            log.exception("unexpected failure in RunAPI's worker")
            answer = ("error", call_id, RunAPIError(UNEXPECTED_MESSAGE))
        self._calls.pop(call_id, None)
        self._answer(answer)

    def _answer(self, message: tuple[Any, ...]) -> None:
        if not self._writer.is_closing():
            _send(self._writer, message)

    async def _close(self, client_id: int) -> None:
        """Close a run's client once its calls (cancelled by now, if any were left) end."""
        calls = [task for owner, task in self._calls.values() if owner == client_id]
        await asyncio.gather(*calls, return_exceptions=True)
        if (client := self._clients.pop(client_id, None)) is not None:
            await client.aclose()

    async def aclose(self) -> None:
        for _, task in self._calls.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in self._calls.values()), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))


async def _serve(link: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=link)
    child = _Child(writer)
    try:
        while True:
            try:
                message = await _receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the app closed the link, or ended
            child.handle(*message)
    finally:
        await child.aclose()
        writer.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines are one per request
    with suppress(KeyboardInterrupt):  # Ctrl+C in the app's terminal reaches us too
        asyncio.run(_serve(socket.socket(fileno=int(sys.argv[1]))))


if __name__ == "__main__":
    main()
