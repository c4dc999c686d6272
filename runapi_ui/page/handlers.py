"""The page's handlers: start runs and watch them, and the history's reuse, stars and search.

Every click that runs something (Generate, Compare, Run again, Wait again) starts a
`Run` through `Playground` at once, also while other runs of the same tab are going, up
to the tab's caps. The tab's one watcher (`tabs.py`) then yields the page as any of its
runs moves: the feed of runs with their progress, the history, and the results of the
entry the visitor is looking at (the run last started, or the one they selected). A
page reload ends the watching, not the runs: the load finds them again by the ids the
history holds. Stop stops the shown run; Stop all, every run of the tab.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NamedTuple

import gradio as gr

from .. import translations
from ..runapi.catalog import (
    MODELS,
    REMIX_ASPECT_RATIOS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_RESOLUTIONS,
)
from ..runapi.errors import ValidationError
from ..runs import history as hist
from ..runs.history import Entry
from ..runs.playground import Playground, checked_count
from ..runs.registry import Run, RunStatus, change_events, milestone, next_change
from ..runs.remixing import file_paths, kept_sources
from ..translations import text
from .api import ApiHandlers, started
from .browser_store import unseal
from .feed import render_feed
from .history_view import HistoryView
from .page_errors import page_message
from .screen_reader import results_alts
from .tabs import Tab, TabLimits, Tabs

GalleryItems = list[tuple[str, str]]
GENERATE_MODE, REMIX_MODE = "Generate", "Remix"  # the form's modes
FEED_TICK = 0.5  # seconds between looks at the feed's clocks while nothing else happens
FINAL_ENTRIES_KEPT = 256  # finished runs' entries (~2 KB each, previews made), made once
TILES_KEPT = 20_000  # history tiles made (a file path and a caption each), made once


class PageOutputs(NamedTuple):
    """What the run handlers write, in the order of `ui.PAGE_OUTPUTS`."""

    results: Any  # the gallery of the shown entry
    history: Any  # the history, as the browser keeps it
    tiles: Any  # this page of the history, one tile a run
    listing: Any  # how many runs match, which page
    summary: Any  # the shown entry's status line
    shown: Any  # the shown entry's id
    wait_again: Any  # the Wait again button (only for an entry with tasks to wait for)
    star: Any  # the Star button, for the shown entry
    feed: Any  # the tab's runs with their progress
    stop_all: Any  # the Stop all button (only with two runs or more in flight)


SKIP = PageOutputs(*(gr.skip() for _ in PageOutputs._fields))


class PageHandlers:
    """The page's events, bound to one Playground."""

    def __init__(self, playground: Playground) -> None:
        self.playground = playground
        self.store = playground.store
        self.api = ApiHandlers(playground)
        settings = playground.settings
        # A tab past Gradio's own bound on sessions is gone from Gradio too.
        self.tabs = Tabs(
            playground.runs, max_tabs=settings.sessions_kept, max_runs=hist.MAX_ENTRIES
        )
        self._tile_cache: dict[str, tuple[str, str]] = {}
        self.tab_limits = TabLimits(runs=settings.tab_max_runs, images=settings.tab_max_images)
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
        language: str = translations.ENGLISH,
    ) -> AsyncIterator[PageOutputs]:
        tab = self._tab(request, language)
        start = self.api.generate_run(
            prompt, model, aspect_ratio, negative_prompt, num_images, seed, api_key, request
        )
        run = await self._admitted(tab, lambda: checked_count(num_images), start)
        async for outputs in self._begin(tab, run, history):
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
        language: str = translations.ENGLISH,
    ) -> AsyncIterator[PageOutputs]:
        tab = self._tab(request, language)
        start = self.api.compare_run(prompt, aspect_ratio, negative_prompt, seed, api_key, request)
        run = await self._admitted(tab, lambda: len(MODELS), start)
        if aspect_ratio not in MODELS["imagen-4"].aspect_ratios:
            gr.Info(text(tab.language, "toast.compare_square", ratio=html.escape(aspect_ratio)))
        async for outputs in self._begin(tab, run, history):
            yield outputs

    async def on_remix(
        self,
        prompt: str,
        sources: Any,
        aspect_ratio: str,
        output_resolution: str,
        output_format: str,
        num_images: int,
        api_key: str,
        history: Any,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> AsyncIterator[PageOutputs]:
        """Remix mode's button: the uploaded sources checked, kept, and remixed."""
        tab = self._tab(request, language)
        start = self.api.remix_run(
            prompt,
            sources,
            aspect_ratio,
            output_resolution,
            output_format,
            num_images,
            api_key,
            request,
        )
        run = await self._admitted(tab, lambda: checked_count(num_images), start)
        async for outputs in self._begin(tab, run, history):
            yield outputs

    def on_remix_this(
        self,
        history: Any,
        shown: str | None,
        picked: Any,
        sources: Any,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, Any]:
        """The selected result (else the shown run's first image) as one more source, and
        the form in Remix mode."""
        tab = self._tab(request, language)
        entry = _entry(self._entries(tab, history), shown, tab.language)
        images = [path for path, _ in self._results(entry, tab.language)]
        if not images:
            raise gr.Error(text(tab.language, "toast.no_image_yet"))
        current = file_paths(sources)
        if len(current) >= REMIX_MAX_SOURCES:
            raise gr.Error(text(tab.language, "toast.sources_full", count=REMIX_MAX_SOURCES))
        index = picked if isinstance(picked, int) and 0 <= picked < len(images) else 0
        gr.Info(text(tab.language, "toast.source_added", number=len(current) + 1))
        return [*current, images[index]], REMIX_MODE

    async def on_run_again(
        self,
        history: Any,
        shown: str | None,
        api_key: str,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> AsyncIterator[PageOutputs]:
        """The shown entry's exact requests (seeds included), as a new run."""
        tab = self._tab(request, language)
        async for outputs in self._again(tab, history, shown, api_key, request, wait=False):
            yield outputs

    async def on_wait_again(
        self,
        history: Any,
        shown: str | None,
        api_key: str,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> AsyncIterator[PageOutputs]:
        """Wait on the shown entry's unfinished tasks by id: nothing is created or paid again."""
        tab = self._tab(request, language)
        async for outputs in self._again(tab, history, shown, api_key, request, wait=True):
            yield outputs

    async def on_load(
        self,
        history: Any,
        query: Any,
        model: Any,
        status: Any,
        chosen_language: Any,
        request: gr.Request,
    ) -> AsyncIterator[PageOutputs]:
        """On page load: show the history (its newest entry in the results), settle what
        ended meanwhile, and resume every run still going."""
        # The language switch is set by another load event: its value is not here yet.
        language = translations.page_language(
            chosen_language, request.headers.get("accept-language")
        )
        tab = self._tab(request, language)
        tab.view = HistoryView.of(query, model, status)
        stored = hist.clean(history)
        # (a history of an earlier version, previews inline, is stored again without them)
        entries = [
            hist.interrupted(entry)
            if entry["status"] == hist.STILL_RUNNING
            and self.playground.runs.get(entry.get("run")) is None
            else entry
            for entry in hist.with_previews_on_disk(stored, self.store)
        ]
        running = [
            run
            for entry in reversed(entries)  # oldest first: the newest is added last, and shown
            if entry["status"] == hist.STILL_RUNNING
            and (run := self.playground.runs.get(entry.get("run"))) is not None
        ]
        for run in running:
            self.tabs.add(tab, run)
        tab.viewed = entries[0]["id"] if entries else None
        entries, _ = await self._fresh(entries, running)
        page = self._page(tab, entries)
        # The browser holds this history already: sent back, it would cost the page a
        # second copy to parse and to seal again (most of a full history's load time).
        yield page._replace(history=gr.skip()) if entries == stored else page
        if running and not tab.watched:
            async for outputs in self._watch(tab, running, entries):
                yield outputs

    def on_language(
        self, history: Any, request: gr.Request, language: str = translations.ENGLISH
    ) -> PageOutputs:
        """The visitor switched languages: what the handlers wrote, written again in it
        (a run's watcher writes in it from its next update on)."""
        tab = self._tab(request, language)
        return self._page(tab, self._entries(tab, history))._replace(history=gr.skip())

    async def on_stop(self, request: gr.Request, language: str = translations.ENGLISH) -> None:
        """Stop the shown run (or, if it has ended, the newest still going)."""
        tab = self._tab(request, language)
        going = self.tabs.in_flight(tab)
        if not going:
            gr.Info(text(tab.language, "toast.nothing_running"))
            return
        run = next((run for run in going if run.id == self._shown_run(tab)), going[0])
        await run.stop()
        tab.notify()
        others = len(going) - 1
        stopped = text(tab.language, "toast.stopped", prompt=html.escape(_short(run)))
        if others:
            key = "toast.others_go_on_one" if others == 1 else "toast.others_go_on_many"
            stopped += text(tab.language, key, count=others)
        gr.Info(stopped)

    async def on_stop_all(self, request: gr.Request, language: str = translations.ENGLISH) -> None:
        tab = self._tab(request, language)
        going = self.tabs.in_flight(tab)
        await asyncio.gather(*(run.stop() for run in going))
        tab.notify()
        gr.Info(text(tab.language, "toast.stopped_all", count=len(going)))

    # --- the history -------------------------------------------------------------------

    def on_select_entry(
        self,
        history: Any,
        query: Any,
        model: Any,
        status: Any,
        evt: gr.SelectData,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, ...]:
        """A history tile was selected: show its images and put its settings in the form."""
        tab = self._tab(request, language)
        entries = self._entries(tab, history)
        tab.view = _same_page(tab.view, HistoryView.of(query, model, status))
        listed, _, _ = tab.view.listed(tab.index if tab.index is not None else entries)
        index = evt.index if isinstance(evt.index, int) else -1
        if not 0 <= index < len(listed):
            raise gr.Error(text(tab.language, "toast.select_first"))
        entry = _entry(entries, listed[index]["id"], tab.language)
        tab.viewed = entry["id"]
        return (
            self._results(entry, tab.language),
            self._summary(entry, entries, tab.language),
            entry["id"],
            *_form_values(hist.controls_from(entry)),
            *_mode_values(entry),
            _wait_again_button(entry),
            _star_button(entry, tab.language),
        )

    def on_select_image(
        self,
        history: Any,
        shown: str | None,
        evt: gr.SelectData,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, ...]:
        """An image of the results was selected: its settings, its seed, in the form."""
        tab = self._tab(request, language)
        entry = _entry(self._entries(tab, history), shown, tab.language)
        return _form_values(hist.controls_from(entry, image_index=evt.index))

    def on_view(
        self,
        query: Any,
        model: Any,
        status: Any,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, Any]:
        """The search or a filter changed: the first page of what matches."""
        tab = self._tab(request, language)
        tab.view = HistoryView.of(query, model, status)
        return self._listing(tab)

    def on_newer(
        self, request: gr.Request, language: str = translations.ENGLISH
    ) -> tuple[Any, Any]:
        return self._turn(-1, request, language)

    def on_older(
        self, request: gr.Request, language: str = translations.ENGLISH
    ) -> tuple[Any, Any]:
        return self._turn(1, request, language)

    def _turn(self, step: int, request: gr.Request, language: str) -> tuple[Any, Any]:
        """A page of newer (-1) or older (+1) runs."""
        tab = self._tab(request, language)
        if tab.index is not None:
            tab.view = tab.view.turned(step, tab.index)
        return self._listing(tab)

    def _listing(self, tab: Tab) -> tuple[Any, Any]:
        """The tiles and the count line, from what the server knows of the tab's history:
        a search sends three words, not the history (up to 1.5 MB) it searches."""
        if tab.index is None:  # this server has not seen the tab's history (it restarted)
            return gr.skip(), text(tab.language, "history.reload_to_search")
        return self._tiles(tab), tab.view.describe(tab.index, tab.language)

    def on_star(
        self,
        history: Any,
        shown: str | None,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> PageOutputs:
        """Star the shown entry, or take its star away."""
        tab = self._tab(request, language)
        entries = self._entries(tab, history)
        entry = _entry(entries, shown, tab.language)
        entries = hist.starred(entries, entry["id"], not entry.get("starred"))
        return self._write(tab, entries)

    def on_delete(
        self,
        history: Any,
        removed: Any,
        shown: str | None,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, ...]:
        """Take the shown entry out of the history; the results then show the newest."""
        tab = self._tab(request, language)
        entries = self._entries(tab, history)
        entry = _entry(entries, shown, tab.language)
        if entry["status"] == hist.STILL_RUNNING:
            raise gr.Error(text(tab.language, "toast.delete_running"))
        entries = hist.without(entries, {entry["id"]})
        tab.viewed = entries[0]["id"] if entries else None
        prompt = html.escape(_short_prompt(entry["prompt"]))
        gr.Info(text(tab.language, "toast.deleted", prompt=prompt))
        return (*self._write(tab, entries), [*hist.removed_ids(removed), entry["id"]])

    def on_clear(
        self, history: Any, removed: Any, request: gr.Request, language: str = translations.ENGLISH
    ) -> tuple[Any, ...]:
        """Empty the history; runs still going stay in it, and in the results."""
        tab = self._tab(request, language)
        entries = self._entries(tab, history)
        running = [entry for entry in entries if entry["status"] == hist.STILL_RUNNING]
        gone = [entry["id"] for entry in entries if entry not in running]
        tab.viewed = running[0]["id"] if running else None
        tab.view = HistoryView()
        return (*self._write(tab, running), [*hist.removed_ids(removed), *gone])

    def on_sync(
        self,
        stored: Any,
        history: Any,
        removed: Any,
        request: gr.Request,
        language: str = translations.ENGLISH,
    ) -> tuple[Any, ...]:
        """Another tab of this browser wrote the history: merge what it stored into this
        tab's (its new runs, its stars, its deletions), so neither tab's write loses any."""
        tab = self._tab(request, language)
        secret = self.playground.settings.history_secret
        try:
            written = json.loads(stored) if isinstance(stored, str) else {}
        except ValueError:
            written = {}
        if not isinstance(written, dict):
            written = {}

        def values(kind: str) -> list[Any]:
            sealed = written.get(kind)
            return [unseal(raw, secret) for raw in sealed] if isinstance(sealed, list) else []

        theirs = [entry for value in values("history") for entry in hist.clean(value)]
        known = hist.removed_ids(removed)
        gone = known + [
            entry_id
            for value in values("removed")
            for entry_id in hist.removed_ids(value)
            if entry_id not in known
        ]
        mine = self._entries(tab, history)
        merged = hist.union(mine, theirs, set(gone))
        if merged == mine and gone == known:
            return (*SKIP, gr.skip())
        return (*self._write(tab, merged), gone[-hist.MAX_REMOVED :])

    # --- watching ------------------------------------------------------------------------

    async def _admitted(
        self, tab: Tab, count: Callable[[], int], start: Coroutine[Any, Any, Run]
    ) -> Run:
        """`start`, if the tab's caps let `count()` more images go; else the reason why."""

        async def admitted() -> Run:
            try:
                self.tab_limits.admit(self.tabs.in_flight(tab), count())
            except BaseException:
                start.close()  # never started: nothing to await
                raise
            return await start

        return await started(admitted(), language=tab.language)

    async def _again(
        self,
        tab: Tab,
        history: Any,
        shown: str | None,
        api_key: str,
        request: gr.Request,
        *,
        wait: bool,
    ) -> AsyncIterator[PageOutputs]:
        entry = _entry(self._entries(tab, history), shown, tab.language)
        if wait:
            unfinished = hist.unfinished_tasks(entry)
            if not unfinished:
                raise gr.Error(text(tab.language, "toast.nothing_to_wait_for"))
            requests, task_ids = [r for r, _ in unfinished], [t for _, t in unfinished]
        else:
            requests, task_ids = hist.requests_of(entry), None
            if not requests:
                raise gr.Error(text(tab.language, "toast.cannot_run_again"))
        sources = ()
        if entry["kind"] == "remix" and not wait:  # its kept sources, uploaded anew
            try:
                sources = kept_sources(self.store, hist.sources_of(entry))
            except ValidationError as error:
                message = html.escape(page_message(tab.language, error))
                raise gr.Error(message, print_exception=False) from None
        start = self.playground.start_requests(
            requests,
            api_key=api_key,
            visitor=self.playground.visitor(request),
            kind=entry["kind"],
            task_ids=task_ids,
            sources=sources,
        )
        run = await self._admitted(tab, lambda: len(requests), start)
        async for outputs in self._begin(tab, run, history, into=entry if wait else None):
            yield outputs

    async def _begin(
        self, tab: Tab, run: Run, history: Any, *, into: Entry | None = None
    ) -> AsyncIterator[PageOutputs]:
        """Show a run that just started; watch the tab's runs unless an event already does."""
        entries = self._entries(tab, history)
        if into is not None:  # Wait again: the entry now follows the new run
            entries, _ = hist.merge(entries, hist.combined(into, hist.entry_for(run)))
        self.tabs.add(tab, run, view=into["id"] if into else None)
        entries, dropped = await self._fresh(entries, [run])
        if tab.watched:
            tab.entries = entries  # what the tab's watcher writes next builds on
        yield self._page(tab, entries, dropped=dropped)  # the browser now holds the run's id
        if not tab.watched:
            async for outputs in self._watch(tab, [run], entries):
                yield outputs

    async def _watch(
        self, tab: Tab, runs: list[Run], entries: list[Entry]
    ) -> AsyncIterator[PageOutputs]:
        """Yield the page as the tab's runs go, until the last has ended: the whole page
        when a task is made, an image lands or a run ends; only the feed's clocks between.
        One such watcher per tab, whichever event started it; while it watches, the tab's
        history lives in `tab.entries` (and only then: a tab's history may be 1.5 MB)."""
        tab.watched = True
        tab.entries = entries
        watching = {run.id: run for run in runs}
        said: dict[str, tuple[object, ...]] = {}
        said_feed = None
        try:
            while True:
                events = [tab.changed, *change_events(self.tabs.in_flight(tab))]
                for run in self.tabs.in_flight(tab):
                    watching.setdefault(run.id, run)
                marks = {run_id: milestone(run) for run_id, run in watching.items()}
                moved = [
                    watching[run_id] for run_id, mark in marks.items() if said.get(run_id) != mark
                ]
                feed = self._feed(tab)
                if moved:
                    entries, dropped = await self._fresh(tab.entries or [], moved)
                    tab.entries = entries
                    shown = self._shown_run(tab)
                    results = any(run.id == shown for run in moved)
                    yield self._page(tab, entries, results=results, dropped=dropped, feed=feed)
                    for run in moved:
                        if run.is_finished:
                            _announce(run, tab.language)
                elif feed != said_feed:
                    yield SKIP._replace(feed=feed)
                said_feed = feed
                said.update(marks)
                for run_id, mark in marks.items():
                    if mark[-1]:  # the page has been told this run ended
                        del watching[run_id]
                if not watching and not self.tabs.in_flight(tab):
                    return
                await next_change(events, FEED_TICK)
        finally:
            tab.watched = False
            tab.entries = None

    async def _fresh(self, entries: list[Entry], runs: list[Run]) -> tuple[list[Entry], int]:
        """`entries` with these runs' entries brought up to date."""
        updates = []
        for run in runs:
            update = await self._entry_of(run)
            known = next((entry for entry in entries if entry.get("run") == run.id), None)
            updates.append(hist.combined(known, update) if known else update)
        return hist.merge(entries, *updates)

    async def _entry_of(self, run: Run) -> Entry:
        """The run's entry; once it has ended, made once (thumbnails cost a decode)."""
        if not run.is_finished:
            return hist.entry_for(run)
        if run.id not in self._final:
            if len(self._final) >= FINAL_ENTRIES_KEPT:
                self._final.pop(next(iter(self._final)))
            self._final[run.id] = await hist.finished_entry(run, self.store)
        return self._final[run.id]

    # --- outputs -------------------------------------------------------------------------

    def _tab(self, request: Any, language: object = None) -> Tab:
        """The request's tab; with `language`, the page's language as this event sent it."""
        tab = self.tabs.get(getattr(request, "session_hash", None))
        if language is not None:
            tab.language = translations.known(language)
        return tab

    def _entries(self, tab: Tab, history: Any) -> list[Entry]:
        """The tab's history: as last written while its runs are watched (other events
        may have written it since this one began), else as the browser sent it."""
        return tab.entries if tab.entries is not None else hist.clean(history)

    def _write(self, tab: Tab, entries: list[Entry]) -> PageOutputs:
        """The page after a change to the history itself (a star, a delete, a clear)."""
        if tab.entries is not None:
            tab.entries = entries
        return self._page(tab, entries)

    def _shown_run(self, tab: Tab) -> str | None:
        """The id of the run the results show (a new run's entry has the run's id)."""
        entry = hist.entry_with(tab.entries or [], tab.viewed)
        return entry.get("run") if entry else tab.viewed

    def _page(
        self,
        tab: Tab,
        entries: list[Entry],
        *,
        results: bool = True,
        dropped: int = 0,
        feed: str | None = None,
    ) -> PageOutputs:
        """The page for these entries; the results (unless `results` is False) show the
        tab's shown entry, else the newest."""
        entry = hist.entry_with(entries, tab.viewed) or (entries[0] if entries else None)
        tab.viewed = entry["id"] if entry else None
        tab.index = self._indexed(entries, tab.language)
        going = len(self.tabs.in_flight(tab))
        language = tab.language
        outputs = PageOutputs(
            results=self._results(entry, language) if entry else [],
            history=hist.for_browser(entries),
            tiles=self._tiles(tab),
            listing=tab.view.describe(tab.index, language),
            summary=self._summary(entry, entries, language, dropped=dropped) if entry else "",
            shown=tab.viewed,
            wait_again=_wait_again_button(entry),
            star=_star_button(entry, language),
            feed=self._feed(tab) if feed is None else feed,
            stop_all=gr.Button(
                value=text(language, "run.stop_all", count=going), visible=going > 1
            ),
        )
        if results:
            return outputs
        return outputs._replace(results=gr.skip(), summary=gr.skip(), wait_again=gr.skip())

    def _results(self, entry: Entry, language: str) -> GalleryItems:
        run = self.playground.runs.get(entry.get("run"))
        if run is not None and not run.is_finished:
            # In request order, as the finished run shows them: nothing jumps at the end.
            entry = hist.entry_for(run)
        return hist.gallery_items(entry, self.store, language)

    def _summary(
        self, entry: Entry, entries: list[Entry], language: str, *, dropped: int = 0
    ) -> str:
        alts = results_alts(entry)  # hidden: the results' alt text, written with them
        if entry["status"] == hist.STILL_RUNNING:
            return alts  # its card in the feed says how it goes
        summary = html_summary(
            entry,
            dropped=dropped,
            total=hist.total_cost(entries),
            language=language,
            message=self._failure_words(entry, language),
        )
        return summary + alts

    def _failure_words(self, entry: Entry, language: str) -> str:
        """What went wrong with the entry's run, in `language`: from its errors while this
        server knows the run; else the entry's own (English) message, as it was stored."""
        if entry["status"] == hist.INTERRUPTED:
            return text(language, "summary.interrupted")
        run = self.playground.runs.get(entry.get("run"))
        if run is None or not run.errors:
            return entry.get("message") or ""
        return page_failures(run, language)[0]

    def _feed(self, tab: Tab) -> str:
        runs = [run for run_id in tab.runs if (run := self.playground.runs.get(run_id))]
        durations = {demo: self.playground.durations(demo) for demo in (True, False)}
        return render_feed(
            runs, self._shown_run(tab), durations, opened=tab.opened, language=tab.language
        )

    def _tiles(self, tab: Tab) -> GalleryItems:
        listed, _, _ = tab.view.listed(tab.index or [])
        return [entry["tile"] for entry in listed]

    def _indexed(self, entries: list[Entry], language: str) -> list[Entry]:
        """What the history's list and search need of each entry: its words, model, kind,
        status, star and tile, not its images' previews (most of an entry's bytes)."""
        return [
            {
                **{key: entry.get(key) for key in hist.SEARCHED},
                "tile": self._tile(entry, language),
            }
            for entry in entries
        ]

    def _tile(self, entry: Entry, language: str) -> tuple[str, str]:
        """The entry's tile, made once for each state of it and language (its files are
        looked up)."""
        key = json.dumps(
            [
                language,
                entry["id"],
                entry["status"],
                entry["cost"],
                entry.get("duration"),
                entry.get("starred"),
            ]
        )
        tile = self._tile_cache.get(key)
        if tile is None:
            tile = (hist.cover(entry, self.store, language), hist.tile_caption(entry, language))
            if len(self._tile_cache) >= TILES_KEPT:
                self._tile_cache.pop(next(iter(self._tile_cache)))
            self._tile_cache[key] = tile
        return tile


def html_summary(
    entry: Entry,
    *,
    dropped: int = 0,
    total: float = 0.0,
    language: str = translations.ENGLISH,
    message: str | None = None,
) -> str:
    """The status line of an entry; its text is escaped (a prompt may hold HTML). What
    went wrong is `message` if given (in `language`), else the entry's own."""
    images = sum(1 for job in entry["jobs"] if job.get("image"))
    seeds = sorted({job["seed"] for job in entry["jobs"] if job.get("seed") is not None})
    seed_text = ", ".join(map(str, seeds))
    what = text(language, "history.three_models") if entry["kind"] == "compare" else entry["model"]
    cost = (
        text(language, "history.no_charge_demo")
        if entry["demo"]
        else hist.cost_text(entry["cost"], entry.get("charged"), language)
    )
    if entry["kind"] == "remix":  # no seed: its resolution and how many sources
        last = text(
            language,
            "summary.remix",
            resolution=entry.get("output_resolution"),
            count=len(hist.sources_of(entry)),
        )
    else:
        seeds_key = "summary.seeds" if len(seeds) > 1 else "summary.seed"
        last = text(language, seeds_key, seeds=seed_text)
    images_done = text(language, "summary.images", done=images, total=len(entry["jobs"]))
    line = f"{images_done} · {what} · {entry['aspect_ratio']} · {last}"
    if entry.get("duration") is not None:
        line += f" · {hist.seconds_text(entry['duration'], language)}"
    line += f" · {cost}"
    ok = entry["status"] == RunStatus.DONE.value
    if not ok:
        line += f" · {hist.status_words(entry['status'], language)}"
        said = entry.get("message") if message is None else message
        if said:
            line += text(language, "summary.because", message=said)
    if total:
        line += text(language, "summary.spent", dollars=f"{total:.2f}")
    if dropped:
        line += text(language, "summary.dropped", count=dropped, kept=hist.MAX_ENTRIES)
    css_class = "run-ok" if ok else "run-failed"
    return f'<div class="run-summary {css_class}">{html.escape(line)}</div>'


def page_failures(run: Run, language: str) -> list[str]:
    """`run.failures()` as the page says them: each distinct one once, a compare's named
    by model."""
    messages = [
        f"{job.request.model}: {page_message(language, job.error)}"
        if run.kind == "compare"
        else page_message(language, job.error)
        for job in run.jobs
        if job.error is not None
    ]
    return list(dict.fromkeys(messages))


def _announce(run: Run, language: str) -> None:
    """Toasts for what went wrong; a run with no image at all stays until dismissed (the
    message says what to do). Not an exception: other runs of the tab go on."""
    messages = page_failures(run, language)
    if run.stopped or not messages:
        return
    if not run.images:
        failed = text(language, "toast.generation_failed", message=html.escape(messages[0]))
        gr.Warning(failed, duration=None)
        return
    for message in messages:
        gr.Warning(html.escape(message), duration=30)


def _entry(entries: list[Entry], entry_id: Any, language: str) -> Entry:
    entry = hist.entry_with(entries, entry_id)
    if entry is None:
        raise gr.Error(text(language, "toast.select_first"))
    return entry


def _same_page(old: HistoryView, new: HistoryView) -> HistoryView:
    """`new`'s filters on `old`'s page when the filters did not change."""
    same = (old.query, old.model, old.status) == (new.query, new.model, new.status)
    return old if same else new


def _short_prompt(prompt: str, chars: int = 40) -> str:
    prompt = " ".join(prompt.split())
    return prompt if len(prompt) <= chars else prompt[: chars - 1] + "…"


def _short(run: Run) -> str:
    return _short_prompt(run.jobs[0].request.prompt)


def _form_values(controls: dict[str, Any]) -> tuple[Any, ...]:
    """The Generate form's values; a remix's settings leave it as it is but the prompt."""
    generate = controls["model"] in MODELS
    return (
        controls["prompt"],
        controls["model"] if generate else gr.skip(),
        controls["aspect_ratio"] if generate else gr.skip(),
        controls["negative_prompt"] if generate else gr.skip(),
        controls["num_images"],
        controls["seed"] if generate else gr.skip(),
    )


def _mode_values(entry: Entry) -> tuple[Any, ...]:
    """The mode, and a remix's settings, of a selected history entry."""
    if entry["kind"] != "remix":
        return (GENERATE_MODE, gr.skip(), gr.skip(), gr.skip())
    values = (
        entry["jobs"][0]["aspect_ratio"],
        entry.get("output_resolution"),
        entry.get("output_format"),
    )
    choices = (REMIX_ASPECT_RATIOS, REMIX_RESOLUTIONS, REMIX_FORMATS)
    # An entry comes from the browser: a value the controls lack leaves them as they are.
    kept = [
        value if value in allowed else gr.skip()
        for value, allowed in zip(values, choices, strict=True)
    ]
    return (REMIX_MODE, *kept)


def _wait_again_button(entry: Entry | None) -> gr.Button:
    waitable = entry is not None and entry["status"] != hist.STILL_RUNNING
    return gr.Button(visible=waitable and bool(hist.unfinished_tasks(entry)))


def _star_button(entry: Entry | None, language: str) -> gr.Button:
    if entry is None:
        return gr.Button(value=text(language, "history.star"), interactive=False)
    label = text(language, "history.unstar" if entry.get("starred") else "history.star")
    return gr.Button(value=label, interactive=True)
