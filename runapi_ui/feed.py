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

from .polling import DurationStats
from .runs import Run
from .screen_reader import shortened

KEEP_ENDED_SECONDS = 20.0  # an ended run's card stays this long: its end is seen
MAX_CARDS = 8
PROMPT_CHARS = 80


def render_feed(
    runs: list[Run],
    shown_run: str | None,
    durations: dict[bool, DurationStats],
    *,
    opened: float,
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
        head = (
            f"{going} runs in flight. Stop stops the shown one (marked); "
            f"Stop all stops all {going}."
        )
    elif going == 1:
        head = "1 run in flight."
    else:
        head = "Recent runs."
    body = "".join(
        _card(run, run.id == shown_run, durations[run.is_demo], run.started < opened)
        for run in cards
    )
    return f'<div class="runs-head">{html.escape(head)}</div><div class="run-cards">{body}</div>'


def _card(run: Run, shown: bool, durations: DurationStats, resumed: bool) -> str:
    first = run.jobs[0].request
    prompt = " ".join(first.prompt.split())
    short = shortened(prompt, PROMPT_CHARS)
    what = "3 models" if run.kind == "compare" else first.model
    percent = round(run.fraction(durations) * 100)
    state = run.status.value
    classes = "run-card" + (" is-shown" if shown else "") + ("" if run.is_finished else " is-going")
    words = run.describe()
    marker = '<span class="run-card-shown">shown</span> ' if shown else ""
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
