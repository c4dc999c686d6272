"""The feed of a tab's runs: one card per run in flight (or just ended), with its own
progress, so several runs can go side by side and each is seen.

Each card says what it is (prompt, model, ratio), where it is ("Generating · 4 s · 1 of
4 images done") and how far along (a bar). The card of the run the results show is
marked, since Stop stops that one. Cards carry `data-run`, `data-state` and
`data-prompt`, which the page's script reads to tell a background tab that a run ended,
and `data-done` and `data-total` (images), and `data-resumed` on a run that started
before the page loaded, from which the screen reader's announcements (`screen_reader.py`)
tell each run's milestones.
"""

from __future__ import annotations

import html
import time

from ..runapi.client import Phase
from ..runapi.polling import DurationStats
from ..runs.registry import Run, RunStatus
from ..translations import ENGLISH, text
from .screen_reader import shortened

KEEP_ENDED_SECONDS = 20.0  # an ended run's card stays this long: its end is seen
MAX_CARDS = 8
PROMPT_CHARS = 80
# A card's first word: where its run is, or how it ended.
_PHASE_KEYS = {
    Phase.SUBMITTED: "feed.queued",
    Phase.QUEUED: "feed.queued",
    Phase.PROCESSING: "feed.generating",
    Phase.DOWNLOADING: "feed.downloading",
}
_ENDED_KEYS = {
    RunStatus.DONE: "feed.done",
    RunStatus.PARTIAL: "feed.partly_failed",
    RunStatus.FAILED: "feed.failed",
    RunStatus.STOPPED: "feed.stopped",
}


def render_feed(
    runs: list[Run],
    shown_run: str | None,
    durations: dict[bool, DurationStats],
    *,
    opened: float,
    language: str = ENGLISH,
) -> str:
    """The feed's HTML for these runs (newest first); empty when there is nothing to show.
    Runs started before `opened` (monotonic), when the page loaded, are marked resumed."""
    now = time.monotonic()
    cards = [
        run for run in runs if not run.is_finished or now - (run.ended or now) < KEEP_ENDED_SECONDS
    ][:MAX_CARDS]
    if not cards:
        return ""
    going = sum(1 for run in cards if not run.is_finished)
    if going > 1:
        head = text(language, "feed.head_many", count=going)
    elif going == 1:
        head = text(language, "feed.head_one")
    else:
        head = text(language, "feed.head_ended")
    body = "".join(
        _card(run, run.id == shown_run, durations[run.is_demo], run.started < opened, language)
        for run in cards
    )
    return f'<div class="runs-head">{html.escape(head)}</div><div class="run-cards">{body}</div>'


def progress_words(run: Run, language: str) -> str:
    """The card's words: a phase (or how it ended), the seconds, N of M images done."""
    phase = run.current_phase
    if run.is_finished:
        label = text(language, _ENDED_KEYS[run.status])
    elif phase is not None:
        label = text(language, _PHASE_KEYS[phase])
    else:
        label = text(language, "feed.finishing")
    return text(
        language,
        "feed.progress",
        phase=label,
        seconds=f"{run.elapsed:.0f}",
        done=len(run.images),
        total=run.total,
    )


def _card(run: Run, shown: bool, durations: DurationStats, resumed: bool, language: str) -> str:
    first = run.jobs[0].request
    prompt = " ".join(first.prompt.split())
    short = shortened(prompt, PROMPT_CHARS)
    what = text(language, "history.three_models") if run.kind == "compare" else first.model
    percent = round(run.fraction(durations) * 100)
    state = run.status.value
    classes = "run-card" + (" is-shown" if shown else "") + ("" if run.is_finished else " is-going")
    words = progress_words(run, language)
    shown_word = html.escape(text(language, "feed.shown"))
    marker = f'<span class="run-card-shown">{shown_word}</span> ' if shown else ""
    return (
        f'<article class="{classes}" data-run="{html.escape(run.id)}" '
        f'data-state="{html.escape(state)}" data-prompt="{html.escape(prompt)}" '
        f'data-done="{len(run.images)}" data-total="{run.total}"'
        f"{' data-resumed' if resumed else ''}>"
        f'<div class="run-card-title">{marker}<span class="run-card-prompt">'
        f"{html.escape(short)}</span></div>"
        f'<div class="run-card-meta">{html.escape(what)} · '
        f"{html.escape(first.aspect_ratio)} · {html.escape(words)}</div>"
        f'<progress max="100" value="{percent}" aria-label="{html.escape(short)}: '
        f'{percent}%"></progress></article>'
    )
