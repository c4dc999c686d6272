"""What every way in (the page, the API, the agents) does to generate: check, admit, run.

`Playground.start` turns a form's values into checked requests, picks whose key pays
(the key policy), admits the run under the shared-key limits, and starts it in the run
registry, detached from whoever asked. The page, `gradio_client`, the MCP tool and the
OpenAI-compatible endpoint all come through here, so the same rules hold for each.

It also keeps RunAPI's live prices (a `PriceBook` each for RunAPI and the demo simulator):
a run on a model RunAPI lists as under maintenance is refused here, before any create.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..runapi.catalog import DEFAULT_MODEL, MODELS, SEED_MAX
from ..runapi.client import RETRY_BASE_DELAY, AnyRequest, GenerationRequest, RunAPIClient
from ..runapi.errors import RunAPIError, TaskFailedError, ValidationError
from ..runapi.polling import DurationStats
from ..runapi.prices import PriceBook, PriceRefresher
from ..runapi.simulator import SIMULATED_SECONDS
from ..runapi.worker import TaskWorker
from ..storage.images import ImageStore
from .access import Backend, KeyPolicy, KeyRequired, KeySource
from .quota import Admission, LimitError, Limits, Visitor
from .registry import Run, RunRegistry, TaskClient
from .remixing import keep_sources, remix_requests
from .settings import Settings

MAX_IMAGES = 4
COMPARE_MODELS = ("imagen-4-fast", "imagen-4", "imagen-4-ultra")
# What may refuse a run before anything is sent; each has a user-facing `.message`.
Refusal = (RunAPIError, KeyRequired, LimitError)


class Playground:
    """Holds what outlives one request: settings, policy, limits, runs, learned durations."""

    def __init__(
        self,
        settings: Settings,
        store: ImageStore,
        demo_url: str | None,
        *,
        limits: Limits,
        live_durations: DurationStats | None = None,
        retry_base_delay: float = RETRY_BASE_DELAY,
    ) -> None:
        self.settings = settings
        self.retry_base_delay = retry_base_delay
        self.store = store
        self.demo_url = demo_url
        self.policy = KeyPolicy.from_settings(settings)
        self.limits = limits
        self.runs = RunRegistry(
            store,
            self.task_client_for,
            keep_seconds=settings.run_keep_seconds,
            max_finished=settings.runs_kept,
        )
        scale = settings.simulator_time_scale
        demo_priors = {model: seconds * scale for model, seconds in SIMULATED_SECONDS.items()}
        self._durations = {
            True: DurationStats(demo_priors),  # the simulator's timings
            False: live_durations or DurationStats(),  # RunAPI's, learned from every user's tasks
        }
        # RunAPI's traffic runs in a worker process, which learns into these same estimates.
        stats = {_stats_name(demo): durations for demo, durations in self._durations.items()}
        self.worker = TaskWorker(stats) if settings.worker else None
        self._prices = {False: PriceBook(settings.base_url)}
        if demo_url:
            self._prices[True] = PriceBook(demo_url)
        # Started by launch, stopped on close: tests read the books by hand instead.
        self.price_refresher = PriceRefresher(list(self._prices.values()))

    def durations(self, is_demo: bool) -> DurationStats:
        return self._durations[is_demo]

    def prices(self, is_demo: bool) -> PriceBook:
        """RunAPI's prices, or the demo simulator's for a demo backend."""
        return self._prices[is_demo]

    @property
    def shown_prices(self) -> PriceBook:
        """The prices a visitor sees before typing a key: the demo's when that means the demo."""
        return self._prices.get(self.policy.offers_demo, self._prices[False])

    def backend_for(self, typed_key: str | None) -> Backend:
        """Whose key pays: raises KeyRequired when nothing may serve this visitor."""
        return self.policy.backend_for(typed_key, self.demo_url)

    async def start(
        self,
        *,
        prompt: str,
        model: str = DEFAULT_MODEL,
        aspect_ratio: str = "1:1",
        negative_prompt: str | None = "",
        num_images: Any = 1,
        seed: Any = "",
        api_key: str | None = "",
        visitor: Visitor | None = None,
    ) -> Run:
        """Generate `num_images` images (seeds seed, seed+1, …); raises before sending if
        the input, the key or a limit says no."""
        count = checked_count(num_images)
        first = replace(
            checked_request(prompt, model, aspect_ratio, negative_prompt), seed=pick_seed(seed)
        )
        seeds = [((first.seed or 0) + i) % (SEED_MAX + 1) for i in range(count)]
        requests = [replace(first, seed=seed) for seed in seeds]
        return await self.start_requests(requests, api_key=api_key, visitor=visitor)

    async def start_compare(
        self,
        *,
        prompt: str,
        aspect_ratio: str = "1:1",
        negative_prompt: str | None = "",
        seed: Any = "",
        api_key: str | None = "",
        visitor: Visitor | None = None,
    ) -> Run:
        """One image from each Imagen 4 model, same prompt and seed, side by side."""
        base = checked_request(prompt, "imagen-4-fast", aspect_ratio, negative_prompt)
        base = replace(base, seed=pick_seed(seed))
        requests = [
            replace(base, model=name, aspect_ratio=nearest_ratio(name, aspect_ratio))
            for name in COMPARE_MODELS
        ]
        return await self.start_requests(requests, api_key=api_key, visitor=visitor, kind="compare")

    async def start_remix(
        self,
        *,
        prompt: str,
        sources: Sequence[str | Path],
        aspect_ratio: str = "auto",
        output_resolution: str = "1k",
        output_format: str = "png",
        num_images: Any = 1,
        api_key: str | None = "",
        visitor: Visitor | None = None,
    ) -> Run:
        """Remix 1-8 source image files into `num_images` images: the settings checked,
        then each source checked, cleaned and kept, before anything is sent."""
        count = checked_count(num_images)
        requests = remix_requests(
            prompt, aspect_ratio, output_resolution, output_format, count=count
        )
        self.backend_for(api_key)  # no key that may pay: refused before any work
        kept = await keep_sources(self.store, sources)
        return await self.start_requests(
            requests, api_key=api_key, visitor=visitor, kind="remix", sources=kept
        )

    async def start_requests(
        self,
        requests: Sequence[AnyRequest],
        *,
        api_key: str | None = "",
        visitor: Visitor | None = None,
        kind: str = "generate",
        task_ids: Sequence[str | None] | None = None,
        sources: Sequence[Path] = (),
    ) -> Run:
        """The one way a run begins: whose key, within which limits, then the registry.

        `task_ids` resumes tasks that already exist (nothing new is created or paid);
        `sources` are a remix's kept source files (remixing.py).
        """
        backend = self.backend_for(api_key)
        prices = self.prices(backend.is_demo)
        estimates = [estimate_usd(prices, request) for request in requests]
        admission: Admission | None = None
        if not task_ids:  # waiting on tasks that exist creates (and bills) nothing
            for model in dict.fromkeys(request.model for request in requests):
                prices.refuse_if_unavailable(model)  # before anything is created or counted
            admission = await self.limits.admit(
                visitor or Visitor(),
                model=[request.model for request in requests],
                prices=estimates,
                on_server_key=backend.source is KeySource.SERVER,
            )

        async def release(run: Run) -> None:
            if admission is not None:
                await admission.release(succeeded=len(run.images), failed=_unbilled(run))

        try:
            return self.runs.start(
                requests,
                backend,
                kind=kind,
                task_ids=task_ids,
                on_finish=release,
                sources=sources,
                estimates=[0.0] * len(requests) if backend.is_demo else estimates,
            )
        except BaseException:
            if admission is not None:
                await admission.release(failed=admission.images)
            raise

    def visitor(self, request: Any) -> Visitor:
        """Who is asking, for the quotas (the forwarded address only behind a known proxy)."""
        return self.limits.visitor(request) if request is not None else Visitor()

    def task_client_for(self, backend: Backend) -> TaskClient:
        """A run's client: in the RunAPI worker process, or in this one when that is off."""
        if self.worker is None:
            return self.client_for(backend)
        return self.worker.client(
            backend.api_key,
            backend.base_url,
            deadline=self.settings.deadline,
            stats=_stats_name(backend.is_demo),
            retry_base_delay=self.retry_base_delay,
        )

    def client_for(self, backend: Backend) -> RunAPIClient:
        """A client in this process (a balance check: one request, not worth a trip)."""
        return RunAPIClient(
            api_key=backend.api_key,
            base_url=backend.base_url,
            deadline=self.settings.deadline,
            retry_base_delay=self.retry_base_delay,
            durations=self._durations[backend.is_demo],
        )


def estimate_usd(prices: PriceBook, request: AnyRequest) -> float:
    """One image's price for this request (a remix's varies with its resolution)."""
    resolution = getattr(request, "output_resolution", None)
    params = {"output_resolution": resolution} if resolution else {}
    return prices.price_usd(request.model, **params)


def _stats_name(is_demo: bool) -> str:
    return "demo" if is_demo else "live"


def _unbilled(run: Run) -> int:
    """Images RunAPI will not bill: failed tasks, and tasks never created. A stopped or
    timed-out task may still finish, and be billed, so it stays counted."""
    return sum(
        1
        for job in run.jobs
        if job.error is not None and (job.task_id is None or isinstance(job.error, TaskFailedError))
    )


def checked_count(num_images: Any) -> int:
    try:
        count = int(num_images if num_images is not None else 1)
    except (TypeError, ValueError):
        count = 0
    if isinstance(num_images, float) and not num_images.is_integer():
        count = 0
    if not 1 <= count <= MAX_IMAGES:
        raise ValidationError(
            f"Number of images must be a whole number from 1 to {MAX_IMAGES}.", field="num_images"
        )
    return count


def checked_request(
    prompt: Any, model: Any, aspect_ratio: Any, negative_prompt: Any
) -> GenerationRequest:
    """The form's values as a checked request, or a ValidationError naming the field."""
    for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"The {name.replace('_', ' ')} must be text.", field=name)
        if value and any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
            raise ValidationError(
                f"The {name.replace('_', ' ')} contains control characters: remove them.",
                field=name,
            )
    return GenerationRequest(
        prompt=prompt or "",
        model=model if isinstance(model, str) else repr(model),
        aspect_ratio=aspect_ratio if isinstance(aspect_ratio, str) else repr(aspect_ratio),
        negative_prompt=negative_prompt or None,
    ).validated()


def pick_seed(seed: Any) -> int:
    """The typed seed, or a random one; images of one run use seed, seed+1, …"""
    if seed is None or str(seed).strip() == "":
        return random.randint(0, SEED_MAX - MAX_IMAGES)
    try:
        value = float(str(seed).strip())
    except (TypeError, ValueError):
        value = -1.0
    if not value.is_integer() or not 0 <= value <= SEED_MAX:
        raise ValidationError(
            f"Seed must be a whole number from 0 to {SEED_MAX}, or empty for a random one.",
            field="seed",
        )
    return int(value)


def nearest_ratio(model: str, aspect_ratio: str) -> str:
    """`aspect_ratio` if `model` takes it, else the closest one it does (`auto` is square)."""
    ratios = MODELS[model].aspect_ratios
    if aspect_ratio in ratios:
        return aspect_ratio
    wanted = _as_number(aspect_ratio)
    return min((r for r in ratios if r != "auto"), key=lambda r: abs(_as_number(r) - wanted))


def _as_number(ratio: str) -> float:
    width, _, height = ratio.partition(":")
    try:
        return float(width) / float(height)
    except ValueError:
        return 1.0
