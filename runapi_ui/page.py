"""The page's handlers: start a run and watch it, restore history, reuse and resume entries.

Every handler that runs something starts a `Run` through `Playground` and then only
*watches* it, yielding the gallery, the history and the summary as images land. A page
reload ends the watching (Gradio closes the generator at its next yield) but not the
run: when the visitor comes back, `restore` finds the run by the id their history holds
and watches it again. Stop cancels the watched run for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from . import history as hist
from .api import ApiHandlers, started
from .catalog import MODELS
from .history import Entry
from .playground import Playground
from .runs import Run, RunStatus

GalleryItems = list[tuple[str, str]]
# What the run handlers return, in this order: results gallery, history (browser),
# history tiles, summary line, index of the entry shown, the Wait again button.
PageOutputs = tuple[GalleryItems, list[Entry], GalleryItems, str, int | None, Any]

STOP_GRACE_SECONDS = 5.0
FINAL_ENTRIES_KEPT = 256  # finished runs' entries (thumbnails inline: ~50 KB each), made once
SESSIONS_KEPT = 10_000  # tabs whose runs are remembered (a tab holds at most MAX_ENTRIES)


class PageHandlers:
    """The page's events, bound to one Playground."""

    def __init__(self, playground: Playground) -> None:
        self.playground = playground
        self.store = playground.store
        self.api = ApiHandlers(playground)
        self._sessions = SessionRuns(SESSIONS_KEPT, hist.MAX_ENTRIES)
        self._final: dict[str, Entry] = {}

    # --- running ---------------------------------------------------------------------

    async def on_generate(
        self,
        prompt: str,
        model: str,
        aspect_ratio: str,
        negative_prompt: str,
        num_images: int,
        seed: str,
        api_key: str,
        history: Any,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects it
    ) -> AsyncIterator[PageOutputs]:
        run = await self.api.start_generate(
            prompt,
            model,
            aspect_ratio,
            negative_prompt,
            num_images,
            seed,
            api_key,
            request,
            page=True,
        )
        async for outputs in self._watch(run, hist.clean(history), progress, request):
            yield outputs

    async def on_compare(
        self,
        prompt: str,
        aspect_ratio: str,
        negative_prompt: str,
        seed: str,
        api_key: str,
        history: Any,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[PageOutputs]:
        run = await self.api.start_compare(
            prompt, aspect_ratio, negative_prompt, seed, api_key, request, page=True
        )
        if aspect_ratio not in MODELS["imagen-4"].aspect_ratios:
            gr.Info(
                f"imagen-4 and imagen-4-ultra do not take {html.escape(aspect_ratio)}: they draw "
                "at 1:1, the nearest they take."
            )
        async for outputs in self._watch(run, hist.clean(history), progress, request):
            yield outputs

    async def on_run_again(
        self,
        history: Any,
        shown: int | None,
        api_key: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[PageOutputs]:
        """The shown entry's exact requests (seeds included), as a new run."""
        async for outputs in self._again(history, shown, api_key, request, progress, wait=False):
            yield outputs

    async def on_wait_again(
        self,
        history: Any,
        shown: int | None,
        api_key: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[PageOutputs]:
        """Wait on the shown entry's unfinished tasks by id: nothing is created or paid again."""
        async for outputs in self._again(history, shown, api_key, request, progress, wait=True):
            yield outputs

    async def on_load(
        self,
        history: Any,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[PageOutputs]:
        """On page load: show the history, settle what ended meanwhile, resume what runs."""
        entries, _ = await self._fresh(hist.clean(history), None)
        entries = [
            hist.interrupted(entry)
            if entry["status"] == hist.STILL_RUNNING
            and self.playground.runs.get(entry.get("run")) is None
            else entry
            for entry in entries
        ]
        yield self._outputs(entries)
        running = [
            self.playground.runs.get(entry.get("run"))
            for entry in entries
            if entry["status"] == hist.STILL_RUNNING
        ]
        for run in filter(None, running):
            async for outputs in self._watch(run, entries, progress, request):
                entries = outputs[1]
                yield outputs

    async def on_stop(
        self, history: Any, request: gr.Request
    ) -> tuple[list[Entry], GalleryItems, str]:
        """After Stop: record the stopped runs' final state (their images so far stay)."""
        entries = hist.clean(history)
        waiting = [
            run.finished()
            for entry in entries
            if entry["status"] == hist.STILL_RUNNING
            and (run := self.playground.runs.get(entry.get("run"))) is not None
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting), STOP_GRACE_SECONDS)
        entries, _ = await self._fresh(entries, getattr(request, "session_hash", None))
        return entries, self._tiles(entries), html_summary(entries[0]) if entries else ""

    async def _again(
        self,
        history: Any,
        shown: int | None,
        api_key: str,
        request: gr.Request,
        progress: gr.Progress,
        *,
        wait: bool,
    ) -> AsyncIterator[PageOutputs]:
        entries = hist.clean(history)
        entry = _entry_at(entries, shown)
        if wait:
            unfinished = hist.unfinished_tasks(entry)
            if not unfinished:
                raise gr.Error("This run has no unfinished task to wait for: use Run again.")
            requests, task_ids = [r for r, _ in unfinished], [t for _, t in unfinished]
        else:
            requests, task_ids = hist.requests_of(entry), None
            if not requests:
                raise gr.Error("That run cannot be run again: its settings are not valid.")
        start = self.playground.start_requests(
            requests,
            api_key=api_key,
            visitor=self.playground.visitor(request),
            kind=entry["kind"],
            task_ids=task_ids,
        )
        run = await started(start, page=True)
        into = entry if wait else None
        async for outputs in self._watch(run, entries, progress, request, into=into):
            yield outputs

    # --- history -----------------------------------------------------------------------

    def on_select_entry(self, history: Any, evt: gr.SelectData) -> tuple[Any, ...]:
        """A history tile was selected: show its images and put its settings in the form."""
        entries = hist.clean(history)
        entry = _entry_at(entries, evt.index)
        return (
            hist.gallery_items(entry, self.store),
            html_summary(entry),
            entries.index(entry),
            *_form_values(hist.controls_from(entry)),
            _wait_again_button(entry),
        )

    def on_select_image(
        self, history: Any, shown: int | None, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        """An image of the results was selected: its settings, its seed, in the form."""
        entry = _entry_at(hist.clean(history), shown)
        return _form_values(hist.controls_from(entry, image_index=evt.index))

    def on_clear(self, request: gr.Request) -> tuple[Any, ...]:
        self._sessions.forget(getattr(request, "session_hash", None))
        # `[]`, not None: Gradio does not write a None, and the old value would come back.
        return [], [], [], "", None, gr.Button(visible=False)

    # --- outputs -------------------------------------------------------------------------

    async def _watch(
        self,
        run: Run,
        entries: list[Entry],
        progress: gr.Progress,
        request: gr.Request | None,
        *,
        into: Entry | None = None,
    ) -> AsyncIterator[PageOutputs]:
        """Yield the page as `run` goes; Stop (a cancel) stops the run, a reload does not."""
        session = getattr(request, "session_hash", None)
        self._sessions.remember(session, run.id)
        if into is not None:  # Wait again: the entry now follows the new run
            entries, _ = hist.merge(entries, hist.combined(into, hist.entry_for(run)))
        durations = self.playground.durations(run.is_demo)
        tick = lambda run: progress(run.fraction(durations), run.describe())  # noqa: E731
        entries, _ = await self._fresh(entries, session, run)
        yield self._outputs(entries, run=run)  # the browser now holds the run's id
        async for _ in run.milestones(tick):
            # The browser learns each task id as it is made: after a server restart,
            # Wait again needs them.
            entries, _ = await self._fresh(entries, session, run)
            yield self._outputs(entries, run=run)
        entries, dropped = await self._fresh(entries, session, run)
        yield self._outputs(entries, run=run, dropped=dropped)
        _announce(run)

    async def _fresh(
        self, entries: list[Entry], session: str | None, watched: Run | None = None
    ) -> tuple[list[Entry], int]:
        """`entries` with every run this server knows of brought up to date: the one being
        watched, the runs this tab started (also from other events, which write the same
        history concurrently: the last write must lose none) and any entry still running."""
        ids = [entry.get("run") for entry in entries if entry["status"] == hist.STILL_RUNNING]
        mine = [watched.id] if watched is not None else []
        dropped = 0
        for run_id in dict.fromkeys([*mine, *self._sessions.runs(session), *ids]):
            run = self.playground.runs.get(run_id)
            if run is None:
                continue
            update = await self._entry_of(run)
            known = next((entry for entry in entries if entry.get("run") == run.id), None)
            entries, fell = hist.merge(entries, hist.combined(known, update) if known else update)
            dropped += fell
        return entries, dropped

    async def _entry_of(self, run: Run) -> Entry:
        """The run's entry; once it has ended, made once (thumbnails cost a decode)."""
        if not run.is_finished:
            return hist.entry_for(run)
        if run.id not in self._final:
            if len(self._final) >= FINAL_ENTRIES_KEPT:
                self._final.pop(next(iter(self._final)))
            self._final[run.id] = await hist.finished_entry(run)
        return self._final[run.id]

    def _outputs(
        self, entries: list[Entry], *, run: Run | None = None, dropped: int = 0
    ) -> PageOutputs:
        """The page for these entries, showing `run`'s (else the newest)."""
        shown = next((i for i, e in enumerate(entries) if run and e.get("run") == run.id), 0)
        entry = entries[shown] if entries else None
        if run is not None and not run.is_finished:
            # In request order, as the finished run shows them: nothing jumps at the end.
            results = [(str(j.image.path), j.image.caption) for j in run.jobs if j.image]
            summary = ""
        elif entry is not None:
            results = hist.gallery_items(entry, self.store)
            summary = html_summary(entry, dropped=dropped, total=hist.total_cost(entries))
        else:
            results, summary = [], ""
        return (
            results,
            entries,
            self._tiles(entries),
            summary,
            shown if entry is not None else None,
            _wait_again_button(entry),
        )

    def _tiles(self, entries: list[Entry]) -> GalleryItems:
        tiles = []
        for entry in entries:
            cover = hist.cover(entry, self.store)
            picture = cover[0] if cover else str(self.store.placeholder(entry["status"]))
            tiles.append((picture, hist.tile_caption(entry)))
        return tiles


def html_summary(entry: Entry, *, dropped: int = 0, total: float = 0.0) -> str:
    """The status line of an entry; its text is escaped (a prompt may hold HTML)."""
    images = sum(1 for job in entry["jobs"] if job.get("image"))
    seeds = sorted({job["seed"] for job in entry["jobs"] if job.get("seed") is not None})
    seed_text = ", ".join(map(str, seeds))
    what = "3 models" if entry["kind"] == "compare" else entry["model"]
    cost = "no charge (demo)" if entry["demo"] else f"${entry['cost']:.2f}"
    text = (
        f"{images} of {len(entry['jobs'])} images · {what} · {entry['aspect_ratio']} · "
        f"seed{'s' if len(seeds) > 1 else ''} {seed_text}"
    )
    if entry.get("duration") is not None:
        text += f" · {entry['duration']:.1f} s"
    text += f" · {cost}"
    ok = entry["status"] == RunStatus.DONE.value
    if not ok:
        text += f" · {entry['status']}"
        if entry.get("message"):
            text += f": {entry['message']}"
    if total:
        text += f" · ${total:.2f} spent in your history"
    if dropped:
        text += f" · the oldest {dropped} run(s) left the history (it keeps {hist.MAX_ENTRIES})"
    css_class = "run-ok" if ok else "run-failed"
    return f'<div class="run-summary {css_class}">{html.escape(text)}</div>'


def _announce(run: Run) -> None:
    """Toasts for what went wrong; a run with no image at all is an error."""
    messages = run.failures()
    if run.stopped or not messages:
        return
    if not run.images:
        # Stays until dismissed: the message says what to do, so it must not vanish.
        raise gr.Error(
            html.escape(messages[0]),
            title="Generation failed",
            duration=None,
            print_exception=False,
        )
    for message in messages:
        gr.Warning(html.escape(message), duration=30)


def _entry_at(entries: list[Entry], index: Any) -> Entry:
    if not isinstance(index, int) or not 0 <= index < len(entries):
        raise gr.Error("Select a run in the history first.")
    return entries[index]


def _form_values(controls: dict[str, Any]) -> tuple[Any, ...]:
    return (
        controls["prompt"],
        controls["model"],
        controls["aspect_ratio"],
        controls["negative_prompt"],
        controls["num_images"],
        controls["seed"],
    )


def _wait_again_button(entry: Entry | None) -> gr.Button:
    waitable = entry is not None and entry["status"] != hist.STILL_RUNNING
    return gr.Button(visible=waitable and bool(hist.unfinished_tasks(entry)))


class SessionRuns:
    """Which runs each tab started, so every write of its history includes them all."""

    def __init__(self, max_sessions: int, max_runs: int) -> None:
        self._runs: OrderedDict[str, list[str]] = OrderedDict()
        self.max_sessions = max_sessions
        self.max_runs = max_runs

    def remember(self, session: str | None, run_id: str) -> None:
        if session is None:
            return
        runs = self._runs.pop(session, [])
        self._runs[session] = [run_id, *runs][: self.max_runs]
        while len(self._runs) > self.max_sessions:
            self._runs.popitem(last=False)

    def runs(self, session: str | None) -> list[str]:
        return list(self._runs.get(session, [])) if session is not None else []

    def forget(self, session: str | None) -> None:
        if session is not None:
            self._runs.pop(session, None)
