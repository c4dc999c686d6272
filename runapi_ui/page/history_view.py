"""Finding things in the history: a search, filters and pages over the entries.

The history itself (`history.py`) is what is kept; this is what the page shows of it.
Search is a case-insensitive substring match on the prompt and negative prompt, so it
works for text without spaces (Chinese) as well as for words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..runapi.catalog import MODELS
from ..runs.history import INTERRUPTED, Entry
from ..runs.registry import RunStatus
from ..translations import ENGLISH, text

ALL = "all"
COMPARE = "compare"
REMIX = "remix"
KINDS = (COMPARE, REMIX)  # filtered by what kind of run, not by one model
STARRED = "starred"
PAGE_SIZE = 12  # three rows of four: a page that leaves the results in view

# The filters' choices as (label, value): a label is a translation key (the page shows it
# in its language), except a model's name, which reads the same in every language.
MODEL_CHOICES: list[tuple[str, str]] = [
    ("history_form.all_models", ALL),
    *((name, name) for name in MODELS),
    ("form.compare", COMPARE),
    ("form.mode.remix", REMIX),
]
STATUS_CHOICES: list[tuple[str, str]] = [
    ("history_form.any_status", ALL),
    ("history_form.starred", STARRED),
    ("history_form.status_running", RunStatus.RUNNING.value),
    ("history_form.status_done", RunStatus.DONE.value),
    ("history_form.status_partial", RunStatus.PARTIAL.value),
    ("history_form.status_failed", RunStatus.FAILED.value),
    ("history_form.status_stopped", RunStatus.STOPPED.value),
    ("history_form.status_interrupted", INTERRUPTED),
]


@dataclass(frozen=True)
class HistoryView:
    """Which entries the page lists, and which page of them."""

    query: str = ""
    model: str = ALL  # a model's name, a kind of run (COMPARE, REMIX), or ALL
    status: str = ALL  # a run status, STARRED, or ALL
    page: int = 0

    @classmethod
    def of(cls, query: Any, model: Any, status: Any, page: Any = 0) -> HistoryView:
        """From the page's controls, whatever the browser sent."""
        return cls(
            query=query.strip() if isinstance(query, str) else "",
            model=model if isinstance(model, str) else ALL,
            status=status if isinstance(status, str) else ALL,
            page=page if isinstance(page, int) and page >= 0 else 0,
        )

    @property
    def filtering(self) -> bool:
        return bool(self.query) or self.model != ALL or self.status != ALL

    def matches(self, entry: Entry) -> bool:
        if self.query:
            needle = self.query.casefold()
            text = f"{entry['prompt']}\n{entry.get('negative_prompt') or ''}".casefold()
            if needle not in text:
                return False
        if self.model in KINDS and entry["kind"] != self.model:
            return False
        if self.model not in (ALL, *KINDS) and (
            entry["kind"] in KINDS or entry["model"] != self.model
        ):
            return False
        if self.status == STARRED:
            return bool(entry.get("starred"))
        return self.status in (ALL, entry["status"])

    def listed(self, entries: list[Entry]) -> tuple[list[Entry], int, int]:
        """The entries on this page, the page's number and how many pages there are."""
        matching = [entry for entry in entries if self.matches(entry)]
        pages = max(1, -(-len(matching) // PAGE_SIZE))
        page = min(self.page, pages - 1)
        return matching[page * PAGE_SIZE : (page + 1) * PAGE_SIZE], page, pages

    def describe(self, entries: list[Entry], language: str = ENGLISH) -> str:
        """How many entries match, and where in them this page is."""
        matching = sum(1 for entry in entries if self.matches(entry))
        _, page, pages = self.listed(entries)
        one = len(entries) == 1
        if self.filtering:
            key = "history.matching_one" if one else "history.matching_many"
            line = text(language, key, matching=matching, count=len(entries))
        else:
            key = "history.count_one" if one else "history.count_many"
            line = text(language, key, count=len(entries))
        starred = sum(1 for entry in entries if entry.get("starred"))
        if starred:
            line += text(language, "history.starred", count=starred)
        if pages > 1:
            line += text(language, "history.page", page=page + 1, pages=pages)
        return line

    def turned(self, step: int, entries: list[Entry]) -> HistoryView:
        """The view `step` pages further (older), kept within the pages there are."""
        _, page, pages = self.listed(entries)
        return HistoryView(self.query, self.model, self.status, max(0, min(pages - 1, page + step)))
