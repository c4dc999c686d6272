"""The playground's behaviour, apart from its layout: one generate handler and its helpers.

A generation picks its backend per call (the visitor's typed key, else the server's,
else the built-in simulator), runs N tasks at once through `RunAPIClient`, feeds a
progress bar, and adds each image to the session's gallery the moment it is ready.
"""

from __future__ import annotations

import asyncio
import html
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import httpx

from .catalog import DEFAULT_MODEL, MODELS, SEED_MAX
from .client import (
    GenerationRequest,
    GenerationResult,
    Phase,
    RunAPIClient,
    TaskUpdate,
)
from .errors import RunAPIError, ValidationError
from .polling import DurationStats
from .settings import Settings
from .simulator import SIMULATED_SECONDS

log = logging.getLogger(__name__)

DEMO_KEY = "demo-key"  # what the app sends its own simulator: not a secret
MAX_IMAGES = 4
PROGRESS_TICK = 0.25  # seconds between progress bar refreshes

GalleryItem = tuple[str, str]  # (image file path, caption)
T = TypeVar("T")

_PHASE_LABELS = {
    Phase.SUBMITTED: "Queued",
    Phase.QUEUED: "Queued",
    Phase.PROCESSING: "Generating",
    Phase.DOWNLOADING: "Downloading",
}
# How far along a task is, for the bar, at the start of each phase.
_PHASE_FLOOR = {Phase.SUBMITTED: 0.05, Phase.QUEUED: 0.08, Phase.PROCESSING: 0.12}
_FINAL = {Phase.COMPLETED, Phase.FAILED}
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


@dataclass(frozen=True)
class Backend:
    api_key: str = ""
    base_url: str = ""
    is_demo: bool = False


@dataclass(frozen=True)
class RunSummary:
    """What the status line says after a run."""

    text: str
    ok: bool = True


class RunProgress:
    """Folds every task's updates into one bar: a phase, the seconds, N of M done."""

    def __init__(self, total: int, durations: DurationStats, model: str) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._updates: dict[str, TaskUpdate] = {}
        self._window = durations.window(model)
        self._shown = 0.0

    def on_update(self, update: TaskUpdate) -> None:
        self._updates[update.task_id] = update

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fraction(self) -> float:
        """Share of the run done, never going backwards."""
        unfinished = [u for u in self._updates.values() if u.phase not in _FINAL]
        partial = sum(self._task_fraction(u) for u in unfinished)
        fraction = (self.done + self.failed + partial) / self.total
        self._shown = max(self._shown, min(fraction, 0.99))
        return self._shown

    def describe(self) -> str:
        waiting = [u.phase for u in self._updates.values() if u.phase not in _FINAL]
        if not self._updates and not self.failed:
            label = "Submitting"
        elif waiting:
            label = _PHASE_LABELS[min(waiting, key=list(Phase).index)]
        else:
            label = "Finishing"
        return f"{label} · {self.elapsed:.0f} s · {self.done} of {self.total} images done"

    def _task_fraction(self, update: TaskUpdate) -> float:
        if update.phase is Phase.DOWNLOADING:
            return 0.95
        expected = max(0.5, sum(self._window) / 2)
        floor = _PHASE_FLOOR.get(update.phase, 0.0)
        age = time.monotonic() - self.started
        return max(floor, min(0.9, 0.12 + 0.78 * age / expected))


class Playground:
    """Holds what outlives one request: settings, where images go, learned durations."""

    def __init__(
        self,
        settings: Settings,
        image_dir: Path,
        demo_url: str | None,
        live_durations: DurationStats | None = None,
    ) -> None:
        self.settings = settings
        self.image_dir = image_dir
        self.demo_url = demo_url
        self._ssl_context = httpx.create_ssl_context()  # shared by every run's client
        scale = settings.simulator_time_scale
        demo_priors = {model: seconds * scale for model, seconds in SIMULATED_SECONDS.items()}
        self._durations = {
            True: DurationStats(demo_priors),  # the simulator's timings
            False: live_durations or DurationStats(),  # RunAPI's, learned from every user's tasks
        }

    def backend_for(self, typed_key: str | None) -> Backend:
        """The visitor's key, else the server's, else the simulator."""
        typed = (typed_key or "").strip()
        if self.settings.demo or not (typed or self.settings.api_key):
            if self.demo_url is None:
                raise gr.Error("Enter your RunAPI key to generate.", title="Key needed")
            return Backend(DEMO_KEY, self.demo_url, is_demo=True)
        return Backend(typed or self.settings.api_key or "", self.settings.base_url)

    async def generate(
        self,
        prompt: str,
        model: str = DEFAULT_MODEL,
        aspect_ratio: str = "1:1",
        negative_prompt: str | None = "",
        num_images: int = 1,
        seed: str | int | None = "",
        api_key: str | None = "",
        history: list[GalleryItem] | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects it
    ) -> AsyncIterator[tuple[list[GalleryItem], list[GalleryItem], RunSummary]]:
        """Generate `num_images` images; yields (gallery, history, summary) as they land.

        The parameter names and defaults are the app's public API (`api_name="generate"`).
        """
        history = list(history or [])
        request, count = _checked_input(prompt, model, aspect_ratio, negative_prompt, num_images)
        request = replace(request, seed=_pick_seed(seed))
        backend = self.backend_for(api_key)
        durations = self._durations[backend.is_demo]
        run = RunProgress(count, durations, request.model)
        progress(0.0, desc=run.describe())

        new_items: list[GalleryItem] = []
        seeds: list[int] = []
        errors: list[RunAPIError] = []
        try:
            async with RunAPIClient(
                api_key=backend.api_key,
                base_url=backend.base_url,
                deadline=self.settings.deadline,
                durations=durations,
                ssl_context=self._ssl_context,
            ) as client:
                outcomes = client.generate_many(
                    request, count, on_update=run.on_update, return_exceptions=True
                )
                async with aclosing(outcomes):
                    async for outcome in _ticking(outcomes, PROGRESS_TICK):
                        if isinstance(outcome, GenerationResult):
                            run.done += 1
                            new_items = await self._saved(outcome, backend) + new_items
                            seeds.append(outcome.request.seed)  # type: ignore[union-attr]
                            summary = _summary(run, request, seeds, errors, backend)
                            yield new_items + history, new_items + history, summary
                        elif isinstance(outcome, RunAPIError):
                            run.failed += 1
                            errors.append(outcome)
                        progress(run.fraction(), desc=run.describe())
        except RunAPIError as error:  # e.g. a bad key: the very first request failed
            errors.append(error)
        except Exception:
            log.exception("unexpected failure in a generation")
            errors.append(
                RunAPIError(
                    "Something unexpected went wrong in the playground. Your earlier images "
                    "are kept; try again, and if it repeats, report it with the server log."
                )
            )
        log.info(
            "run: model=%s images=%d/%d failed=%d in %.1fs demo=%s",
            request.model,
            run.done,
            count,
            len(errors),
            run.elapsed,
            backend.is_demo,
        )
        if not new_items:
            message = errors[0].message if errors else "No image came back. Try again."
            # Stays until dismissed: the message says what to do, so it must not vanish.
            raise gr.Error(
                html.escape(message),
                title="Generation failed",
                duration=None,
                print_exception=False,
            )
        if errors:  # some images came: keep them, and say what happened to the others
            yield (
                new_items + history,
                new_items + history,
                _summary(run, request, seeds, errors, backend),
            )
            for message in dict.fromkeys(error.message for error in errors):
                gr.Warning(html.escape(message), duration=30)

    async def _saved(self, result: GenerationResult, backend: Backend) -> list[GalleryItem]:
        """Write the images under Gradio's cache, named so a download says what it is."""
        request = result.request
        assert request is not None
        items = []
        for index, image in enumerate(result.images):
            ratio = request.aspect_ratio.replace(":", "x")
            extension = _EXTENSIONS.get(image.format, "png")
            name = f"{request.model}_{ratio}_seed{request.seed}_{result.task_id[:8]}_{index}"
            path = self.image_dir / f"{name}.{extension}"
            await asyncio.to_thread(path.write_bytes, image.data)
            caption = f"{request.model} · {request.aspect_ratio} · seed {request.seed}"
            items.append((str(path), f"Demo · {caption}" if backend.is_demo else caption))
        return items


def _checked_input(
    prompt: str, model: str, aspect_ratio: str, negative_prompt: str | None, num_images: Any
) -> tuple[GenerationRequest, int]:
    """The form's values as a checked request and an image count, or a gr.Error saying
    what to fix."""
    try:
        count = int(num_images if num_images is not None else 1)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= MAX_IMAGES:
        raise _input_error(f"Number of images must be from 1 to {MAX_IMAGES}.")
    request = GenerationRequest(
        prompt=prompt or "",
        model=model,
        aspect_ratio=aspect_ratio,
        negative_prompt=negative_prompt or None,
    )
    try:
        return request.validated(), count
    except ValidationError as error:
        raise _input_error(error.message) from None


def _pick_seed(seed: Any) -> int:
    """The typed seed, or a random one; images of one run use seed, seed+1, …"""
    if seed is None or str(seed).strip() == "":
        return random.randint(0, SEED_MAX - MAX_IMAGES)
    try:
        value = float(str(seed).strip())
    except (TypeError, ValueError):
        value = -1.0
    if not value.is_integer() or not 0 <= value <= SEED_MAX:
        raise _input_error(
            f"Seed must be a whole number from 0 to {SEED_MAX}, or empty for a random one."
        )
    return int(value)


def _input_error(message: str) -> gr.Error:
    return gr.Error(html.escape(message), title="Check your input", print_exception=False)


def _summary(
    run: RunProgress,
    request: GenerationRequest,
    seeds: list[int],
    errors: list[RunAPIError],
    backend: Backend,
) -> RunSummary:
    model = MODELS[request.model]
    seeds = sorted(seeds)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    cost = "no charge (demo)" if backend.is_demo else f"≈ ${model.price_usd * len(seeds):.2f}"
    text = (
        f"{len(seeds)} of {run.total} images · {request.model} · {request.aspect_ratio} · "
        f"{seed_text} · {run.elapsed:.1f} s · {cost}"
    )
    if errors:
        text += f" · {len(errors)} failed: {errors[0].message}"
    return RunSummary(text, ok=not errors)


async def _ticking(source: AsyncIterator[T], every: float) -> AsyncIterator[T | None]:
    """`source`'s items, with a None whenever `every` seconds pass without one.

    The Nones let the caller refresh the progress bar while it waits.
    """
    pending = asyncio.ensure_future(anext(source))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(source))
    finally:
        if not pending.done():
            pending.cancel()
            # Let the source finish unwinding (it cancels its own tasks) before it is closed.
            await asyncio.wait({pending})
