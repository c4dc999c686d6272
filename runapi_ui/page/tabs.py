"""What each browser tab has going: its runs, the one its results show, its history.

A tab may start several runs at once. One event per tab watches them all (the first
run's, or the page load's) and writes the page; the others start their run and hand it
to that watcher. While it watches, the tab's history as last written lives here, so
that what another event does meanwhile (a star, a delete, a selection) is what the
watcher's next write builds on, not the stale copy it was started with. When its last
run ends the watcher stops and that copy is dropped: the browser holds the truth again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..runapi.errors import ValidationError
from ..runs.registry import Run, RunRegistry
from ..translations import ENGLISH
from .history_view import HistoryView

Entry = dict[str, Any]


@dataclass
class Tab:
    runs: list[str] = field(default_factory=list)  # run ids this tab started, newest first
    viewed: str | None = None  # the history entry the results show
    entries: list[Entry] | None = None  # the history as last written, while watched
    view: HistoryView = field(default_factory=HistoryView)  # the history's search and page
    index: list[Entry] | None = None  # what the history's list and search need of it
    watched: bool = False  # an event is watching this tab's runs
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a run joined or stopped
    # When its page loaded (its first event; monotonic): a run started before that is one
    # the page found going, not one it started (screen readers are not told it started).
    opened: float = field(default_factory=time.monotonic)
    # The page's language as its last event sent it: the watcher writes in it.
    language: str = ENGLISH

    def notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class TabFull(ValidationError):
    """The tab's images in flight, with this run's, would pass its cap."""

    def __init__(self, message: str, *, busy: int, cap: int) -> None:
        super().__init__(message, field="num_images")
        self.busy = busy
        self.cap = cap


@dataclass(frozen=True)
class TabLimits:
    """How much one tab may have in flight at once (on top of the per-visitor quotas)."""

    runs: int = 4
    images: int = 16

    def admit(self, in_flight: list[Run], images: int) -> None:
        """Raise, saying what to do, if `images` more would break the tab's caps."""
        if len(in_flight) >= self.runs:
            runs = f"{len(in_flight)} run{'s' if len(in_flight) != 1 else ''}"
            raise ValidationError(
                f"{runs} already in flight in this tab: wait for one to finish or stop one.",
                field="runs",
            )
        busy = sum(run.total for run in in_flight)
        if busy + images > self.images:
            raise TabFull(
                f"{busy} images already generating in this tab, and this tab may have "
                f"{self.images} at once: wait for a run to finish, stop one, or ask for fewer.",
                busy=busy,
                cap=self.images,
            )


class Tabs:
    """Every recent tab by its Gradio session, the least recently used forgotten first."""

    def __init__(self, registry: RunRegistry, *, max_tabs: int, max_runs: int) -> None:
        self.registry = registry
        self.max_tabs = max_tabs
        self.max_runs = max_runs
        self._tabs: OrderedDict[str, Tab] = OrderedDict()

    def get(self, session: str | None) -> Tab:
        """The tab of `session`; without one (a direct call), a tab of its own."""
        if session is None:
            return Tab()
        tab = self._tabs.pop(session, None) or Tab()
        self._tabs[session] = tab
        while len(self._tabs) > self.max_tabs:
            self._tabs.popitem(last=False)
        return tab

    def add(self, tab: Tab, run: Run, *, view: str | None = None) -> None:
        """`run` now belongs to `tab`, and its results show it (or entry `view`)."""
        tab.runs = [run.id, *tab.runs][: self.max_runs]
        tab.viewed = view or run.id
        tab.notify()

    def in_flight(self, tab: Tab) -> list[Run]:
        """The tab's runs still going, newest first."""
        runs = (self.registry.get(run_id) for run_id in tab.runs)
        return [run for run in runs if run is not None and not run.is_finished]

    def forget(self, session: str | None) -> None:
        if session is not None:
            self._tabs.pop(session, None)
