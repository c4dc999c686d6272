"""An async client for RunAPI's Imagen 4 tasks: text to image, and remix (remix.py).

    async with RunAPIClient(api_key="...") as client:
        result = await client.generate(GenerationRequest(prompt="a red fox"), on_update=print)

RunAPI is a task API: create a task, poll its status, fetch its images. Its guide and
its official SDK disagree on the paths (see the contract doc), so creation tries the
SDK's path and falls back to the guide's, and status reads try each known place until
one answers. Answers are read tolerantly; requests are sent exactly.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
import os
import random
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from .catalog import DEFAULT_MODEL, MODELS, PROMPT_MAX_CHARS, REMIX_MODEL, SEED_MAX
from .errors import (
    CLIENT_REQUEST_ID_HEADER,
    ImageDownloadError,
    NetworkError,
    NotFoundError,
    RunAPIError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
    error_from_response,
    model_unavailable,
    parse_retry_after,
    unreadable_answer,
)
from .polling import DurationStats, PollPlan, expected_finish
from .remix import REMIX_PATH, RemixRequest, checked_prompt

if TYPE_CHECKING:
    from pathlib import Path

    from .files import UploadedFile

DEFAULT_BASE_URL = "https://runapi.ai"
SDK_CREATE_PATH = "/api/v1/imagen_4/text_to_image"
GUIDE_CREATE_PATH = "/v1/text_to_image"
GUIDE_STATUS_PATHS = ("/v1/tasks", "/api/v1/tasks")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT = 30.0  # seconds: a Retry-After longer than this is reported, not slept
RETRY_BASE_DELAY = 0.5  # seconds before the first retry, doubling after each
MAX_IMAGE_BYTES = 40 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # Imagen 4 draws at most ~1.6 MP; more is a decompression bomb

_DONE = {"completed", "succeeded", "success", "complete", "finished", "done"}
_FAILED = {"failed", "error", "errored", "canceled", "cancelled", "timeout", "timed_out"}
_QUEUED = {"pending", "queued", "waiting", "created", "submitted", "starting"}


class Phase(str, Enum):
    """Where a task stands, as a progress bar shows it."""

    SUBMITTED = "submitted"
    QUEUED = "queued"
    PROCESSING = "processing"
    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskUpdate:
    """One change of a task's phase, passed to `on_update` callbacks."""

    task_id: str
    phase: Phase
    elapsed: float  # seconds since the task was submitted
    model: str
    detail: str | None = None  # the failure reason, for FAILED


UpdateCallback = Callable[[TaskUpdate], Any]


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """What to draw. Checked by `validated()` before anything is sent."""

    # Where to create it, likeliest first: the official SDK's path, then the guide's.
    create_paths: ClassVar[tuple[str, ...]] = (SDK_CREATE_PATH, GUIDE_CREATE_PATH)

    model: str = DEFAULT_MODEL
    prompt: str
    aspect_ratio: str = "1:1"
    negative_prompt: str | None = None
    seed: int | None = None

    def validated(self) -> GenerationRequest:
        """This request with the prompt trimmed, or a ValidationError naming the field."""
        prompt = checked_prompt(self.prompt, PROMPT_MAX_CHARS)
        model = MODELS.get(self.model)
        if model is None:
            raise ValidationError(
                f"Unknown model {self.model!r}: choose one of {', '.join(MODELS)}.", field="model"
            )
        if self.aspect_ratio not in model.aspect_ratios:
            raise ValidationError(
                f"{model.name} does not take aspect ratio {self.aspect_ratio!r}: choose one of "
                f"{', '.join(model.aspect_ratios)}.",
                field="aspect_ratio",
            )
        seed = self.seed
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX
        ):
            raise ValidationError(
                f"The seed must be a whole number from 0 to {SEED_MAX}; got {seed!r}.",
                field="seed",
            )
        negative = (self.negative_prompt or "").strip() or None
        if negative and len(negative) > PROMPT_MAX_CHARS:
            raise ValidationError(
                f"The negative prompt is too long; shorten it to at most {PROMPT_MAX_CHARS} "
                "characters.",
                field="negative_prompt",
            )
        return replace(self, prompt=prompt, negative_prompt=negative)

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "aspect_ratio": self.aspect_ratio,
        }
        if self.negative_prompt:
            body["negative_prompt"] = self.negative_prompt
        if self.seed is not None:
            body["seed"] = self.seed
        return body


# Either kind of task: both are submitted, waited on and downloaded alike.
AnyRequest = GenerationRequest | RemixRequest


@dataclass(frozen=True)
class Task:
    """A created task: its id, and the URLs where its status may be read, best first."""

    id: str
    model: str
    status_urls: tuple[str, ...]
    # Created here: when RunAPI most likely took it, halfway through the create exchange,
    # as status answers are timed (a busy event loop reads answers late, each by its own
    # amount). Waited on by id: when the wait began.
    submitted_at: float = field(default_factory=time.monotonic, compare=False)
    status: str = "pending"
    # The create answer's Retry-After, as a time: it counts from when the answer came.
    first_poll_at: float | None = None
    request: AnyRequest | None = None


@dataclass(frozen=True)
class GeneratedImage:
    url: str
    data: bytes
    width: int
    height: int
    format: str  # Pillow's name: "PNG", "JPEG", "WEBP"


@dataclass(frozen=True)
class GenerationResult:
    task_id: str
    model: str
    images: tuple[GeneratedImage, ...]
    elapsed: float
    request: AnyRequest | None = None
    # What RunAPI charged for the task, in USD, when its answer says (0.0 if refunded).
    charged_usd: float | None = None


@dataclass(frozen=True)
class Balance:
    """The account's credit, from `GET /api/v1/me/balance`; fields RunAPI left out are None."""

    balance_cents: int
    paid_balance_cents: int | None = None
    bonus_balance_cents: int | None = None
    spent_cents_today: int | None = None
    spent_cents_total: int | None = None

    @classmethod
    def from_answer(cls, body: Any) -> Balance:
        """Read tolerantly: also wrapped in `data`, cents as numeric strings, or a dollar
        `balance` when there is no `balance_cents`; an unreadable field is None."""
        fields = _unwrap(body)
        cents = _whole(fields.get("balance_cents"))
        if cents is None:
            cents = _whole(fields.get("balance"), scale=100)
        if cents is None:
            raise RunAPIError(
                "RunAPI's balance answer names no balance. Try again; if it persists, check "
                "RUNAPI_BASE_URL."
            )
        return cls(
            balance_cents=cents,
            paid_balance_cents=_whole(fields.get("paid_balance_cents")),
            bonus_balance_cents=_whole(fields.get("bonus_balance_cents")),
            spent_cents_today=_whole(fields.get("spent_cents_today")),
            spent_cents_total=_whole(fields.get("spent_cents_total")),
        )


@dataclass(frozen=True)
class _Answer:
    """A successful answer with its JSON body, and when its exchange began and ended."""

    response: httpx.Response
    body: Any
    sent_at: float  # monotonic, like everything timed here
    received_at: float

    @property
    def evaluated_at(self) -> float:
        """When the service most likely looked at the task: halfway through the exchange."""
        return (self.sent_at + self.received_at) / 2


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS settings every connection to RunAPI in this process uses: building them
    loads the CA bundle (~20 ms of CPU), and one context serves any number of clients."""
    return httpx.create_ssl_context()


def _api_root(base_url: str) -> str:
    """`https://runapi.ai`, also from Hermes' `https://runapi.ai/v1` or an `/api/v1` base."""
    root = base_url.strip().rstrip("/")
    for suffix in ("/api/v1", "/v1"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def _unwrap(body: Any) -> dict[str, Any]:
    """The task object, also when wrapped as `{"data": {...}}`."""
    if isinstance(body, dict) and "status" not in body and isinstance(body.get("data"), dict):
        return body["data"]
    return body if isinstance(body, dict) else {}


def _phase_of(status: str) -> Phase:
    status = status.strip().lower()
    if status in _DONE:
        return Phase.COMPLETED
    if status in _FAILED:
        return Phase.FAILED
    if status in _QUEUED:
        return Phase.QUEUED
    return Phase.PROCESSING  # an unknown status that is not terminal: still running


def _image_urls(task: dict[str, Any]) -> list[str]:
    images = task.get("images") or task.get("output") or task.get("result") or []
    if isinstance(images, dict):
        images = images.get("images") or [images]
    if isinstance(images, str):
        images = [images]
    urls = []
    for image in images if isinstance(images, list) else []:
        if isinstance(image, str):
            urls.append(image)
        elif isinstance(image, dict):
            url = image.get("url") or image.get("origin_url") or image.get("image_url")
            if isinstance(url, str):
                urls.append(url)
    if not urls and isinstance(task.get("image_url"), str):
        urls.append(task["image_url"])
    return urls


def _failure_reason(task: dict[str, Any]) -> str:
    error = task.get("error") or task.get("error_message") or task.get("failure_reason")
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    reason = str(error).strip().rstrip(".") if error else ""
    return reason or "the service gave no reason"


def _charged_usd(task: dict[str, Any]) -> float | None:
    """What a completed task cost in USD: nothing if refunded, else `usage.cost` (USD) or
    `billing.settlement.charged_amount_cents`; None when the answer does not say."""
    billing = task.get("billing") if isinstance(task.get("billing"), dict) else {}
    if billing.get("refund"):
        return 0.0
    usage = task.get("usage") if isinstance(task.get("usage"), dict) else {}
    cost = usage.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        return float(cost)
    settlement = billing.get("settlement") if isinstance(billing.get("settlement"), dict) else {}
    cents = _whole(settlement.get("charged_amount_cents"))
    return None if cents is None else cents / 100


def _check_image(data: bytes, url: str) -> GeneratedImage:
    """Check the whole image, so a truncated or fake body fails here, not in a browser.

    A PNG is checked chunk by chunk against its checksums (`verify()`: every byte read,
    none decoded, about 1/100 of a decode's CPU); other formats carry no such checksums,
    so they are decoded.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _broken_image(url, f"{width}x{height} pixels")
            image_format = image.format or "PNG"
            if image_format == "PNG":
                image.verify()
            else:
                image.load()
    except Image.DecompressionBombError:
        # Pillow refuses to open a body declaring hundreds of megapixels before our check
        # sees its size: the same broken image, said the same way.
        raise _broken_image(url, "hundreds of megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDownloadError(
            f"The image link returned data that is not a valid image ({exc}). Generate again; "
            "if it keeps happening, RunAPI's image storage may be having trouble."
        ) from None
    return GeneratedImage(url=url, data=data, width=width, height=height, format=image_format)


def _broken_image(url: str, declared: str) -> ImageDownloadError:
    return ImageDownloadError(
        f"The image at {url} is broken: it declares {declared}, far beyond Imagen 4's "
        "sizes, so it was not opened. Generate again."
    )


class RunAPIClient:
    """RunAPI's Imagen 4 tasks over one pooled `httpx.AsyncClient`.

    The key is only ever sent to the API's own origin (never to image hosts), and
    lives on this instance alone: two clients with two keys never mix.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        deadline: float = 300.0,
        request_timeout: float = 30.0,
        max_retries: int = 3,
        retry_base_delay: float = RETRY_BASE_DELAY,
        durations: DurationStats | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = (api_key if api_key is not None else os.environ.get("RUNAPI_API_KEY", "")).strip()
        if not key:
            raise ValueError("No RunAPI key: pass api_key= or set RUNAPI_API_KEY.")
        self._key = key
        self.base_url = _api_root(base_url or os.environ.get("RUNAPI_BASE_URL") or DEFAULT_BASE_URL)
        self.deadline = deadline
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.durations = durations or DurationStats()
        self._create_path: str | None = None  # learned: which create path this service has
        self._guide_status_path: str | None = None  # learned: which guide status path answers
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout, connect=10.0),
            verify=ssl_context or shared_ssl_context(),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "imagen-playground/0.1"},
            follow_redirects=False,
            event_hooks={"request": [stamp_request_id]},
        )

    def __repr__(self) -> str:
        return f"RunAPIClient(base_url={self.base_url!r}, api_key=<hidden>)"

    async def __aenter__(self) -> RunAPIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the public face ---------------------------------------------------------

    async def submit(self, request: AnyRequest) -> Task:
        """Create a task; retried with one Idempotency-Key, so it never runs twice.

        A 503 says RunAPI does not serve the model right now: ModelUnavailableError.
        """
        request = request.validated()
        body = request.to_body()
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        paths = request.create_paths
        if self._create_path in paths:
            paths = (self._create_path,)
        for path in paths:
            try:
                url = self.base_url + path
                answer = await self._send("POST", url, json=body, headers=headers)
            except NotFoundError:
                if path == paths[-1]:
                    raise
                continue
            except ServerError as error:
                if error.status == 503:
                    raise model_unavailable(request.model, "RunAPI answered 503", error) from None
                raise
            if len(request.create_paths) > 1:
                self._create_path = path  # learned: which of its paths this service has
            return self._task_from_create(answer, path, request)
        raise AssertionError("unreachable: the last path returns or raises")

    async def wait(
        self,
        task: Task | str,
        *,
        on_update: UpdateCallback | None = None,
        deadline: float | None = None,
        model: str = DEFAULT_MODEL,
    ) -> GenerationResult:
        """Poll until the task ends, then fetch its images (their URLs expire).

        `task` is what `submit` returned, or a bare task id; for an id, `model` says
        which model's durations to expect (and learn from), and the wait's start stands
        in for the submission, so the deadline counts from now.
        """
        submitted_here = isinstance(task, Task)
        if isinstance(task, str):
            task = Task(id=task, model=model, status_urls=self._status_urls_for_id(task, model))
        deadline_at = task.submitted_at + (self.deadline if deadline is None else deadline)
        notify = _Notifier(task, on_update)
        await notify(_phase_of(task.status))

        plan = PollPlan(self.durations, task.model, submitted_here=submitted_here)
        candidates = list(task.status_urls)
        answered = False
        hint: float | None = None  # the service's expected finish, seconds after submission
        poll_at = task.first_poll_at
        while True:
            if poll_at is None:
                poll_at = task.submitted_at + plan.next_poll(hint)
            await asyncio.sleep(max(0.0, min(poll_at, deadline_at) - time.monotonic()))
            try:
                answer = await self._send("GET", candidates[0], deadline_at=deadline_at)
            except NotFoundError:
                if answered or len(candidates) == 1:
                    raise
                candidates.pop(0)  # not this service's status path: try the next at once
                poll_at = time.monotonic()
                continue
            if not answered:
                answered = True
                self._remember_status_url(task.id, candidates[0])
            state = _unwrap(answer.body)
            phase = _phase_of(str(state.get("status", "")))
            evaluated = answer.evaluated_at - task.submitted_at
            if phase is Phase.COMPLETED:
                plan.done_at(evaluated)
                return await self._collect(task, state, notify, deadline_at)
            if phase is Phase.FAILED:
                reason = _failure_reason(state)
                await notify(Phase.FAILED, reason)
                raise TaskFailedError(
                    f"The generation failed: {reason}. Change the prompt or settings and "
                    "generate again (failed generations are not charged).",
                    task_id=task.id,
                    reason=reason,
                )
            await notify(phase)
            plan.running_at(evaluated)
            if answer.received_at >= deadline_at:
                raise TaskTimeoutError(
                    f"Task {task.id} did not finish within {deadline_at - task.submitted_at:.0f} s."
                    " It may still complete: wait on it again by its id, or generate again.",
                    task_id=task.id,
                )
            hint = expected_finish(state, answer.received_at - task.submitted_at)
            retry_after = parse_retry_after(answer.response.headers.get("retry-after"))
            # A Retry-After is the service's instruction: it wins over any plan.
            poll_at = None if retry_after is None else answer.received_at + retry_after

    async def request(self, method: str, path: str, *, json: Any = None) -> Any:
        """One JSON request to RunAPI's `path` with this client's key, retries and errors:
        the answer's body. A POST carries an Idempotency-Key, so retrying it is safe."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method.upper() == "POST" else None
        answer = await self._send(method, self.base_url + path, json=json, headers=headers)
        return answer.body

    async def upload_kept(self, paths: Sequence[Path]) -> tuple[UploadedFile, ...]:
        """A remix's kept sources (checked and cleaned) through RunAPI's file API, on this
        client's key, each read from its file when its turn comes."""
        from .files import upload_sources  # files.py builds on this module

        return await upload_sources(self, paths)

    async def balance(self) -> Balance:
        """The account's credit: a cheap way to check a key (a bad one is AuthenticationError)."""
        answer = await self._send("GET", f"{self.base_url}/api/v1/me/balance")
        return Balance.from_answer(answer.body)

    async def generate(
        self,
        request: AnyRequest,
        *,
        on_update: UpdateCallback | None = None,
        deadline: float | None = None,
    ) -> GenerationResult:
        """Submit, wait and fetch: one image's whole journey."""
        task = await self.submit(request)
        if on_update is not None:
            await _Notifier(task, on_update)(Phase.SUBMITTED)
        return await self.wait(task, on_update=on_update, deadline=deadline)

    async def generate_many(
        self,
        request: AnyRequest,
        n: int,
        *,
        on_update: UpdateCallback | None = None,
        deadline: float | None = None,
        return_exceptions: bool = False,
    ) -> AsyncIterator[GenerationResult | RunAPIError]:
        """Run `n` tasks at once and yield each result as it completes.

        A set seed is advanced by one per task so the images differ but stay
        reproducible. With `return_exceptions`, a failed task is yielded as its
        RunAPIError; otherwise the first failure cancels the rest and is raised.
        Closing the iterator early, or cancelling its consumer, cancels every task.
        """
        request = request.validated()
        seeded = isinstance(request, GenerationRequest) and request.seed is not None
        requests = [_nth_seed(request, i) if seeded else request for i in range(n)]
        jobs = [
            asyncio.ensure_future(self.generate(r, on_update=on_update, deadline=deadline))
            for r in requests
        ]
        pending = set(jobs)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    error = finished.exception()
                    if error is None:
                        yield finished.result()
                    elif return_exceptions and isinstance(error, RunAPIError):
                        yield error
                    else:
                        raise error
        finally:
            for job in pending:
                job.cancel()
            # All jobs, not just the pending: a raise leaves others of its `done` batch
            # unread, and asyncio would log their errors as "never retrieved".
            with suppress(asyncio.CancelledError):
                await asyncio.gather(*jobs, return_exceptions=True)

    # --- HTTP --------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        deadline_at: float | None = None,
    ) -> _Answer:
        """One request for a JSON answer, retried with jittered backoff on 429/5xx, on
        transport errors, and on a success whose body is not JSON (a proxy's glitch).

        Only idempotent requests come here: GETs, and creates that carry an
        Idempotency-Key. A `Retry-After` from the service wins over the backoff.
        """
        headers = {**(headers or {}), **self._auth_for(url)}
        attempt = 0
        while True:
            sent_at = time.monotonic()
            try:
                response = await self._http.request(method, url, json=json, headers=headers)
                if response.is_success:
                    body = _json_body(response)
                    if body is not _NOT_JSON:
                        return _Answer(response, body, sent_at, time.monotonic())
                    error: RunAPIError = unreadable_answer(response)
                    retryable = True
                else:
                    error = error_from_response(response)
                    retryable = response.status_code in RETRYABLE_STATUSES
                hint = parse_retry_after(response.headers.get("retry-after"))
            except httpx.TransportError as exc:
                error = NetworkError(
                    f"Could not reach RunAPI at {urlsplit(url).netloc} ({type(exc).__name__}). "
                    "Check your internet connection and RUNAPI_BASE_URL, then try again."
                )
                retryable, hint = True, None
            attempt += 1
            if not retryable or attempt > self.max_retries:
                raise error
            delay = self._backoff(attempt, hint)
            if delay > MAX_RETRY_WAIT:
                raise error  # a long wait is the user's call: the message says how long
            if deadline_at is not None and time.monotonic() + delay > deadline_at:
                raise error
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = min(8.0, self.retry_base_delay * 2 ** (attempt - 1))
        return base * (1 + random.random() * 0.5)

    def _auth_for(self, url: str) -> dict[str, str]:
        """The key goes to the API's origin only: image CDNs and redirects never see it."""
        if _origin(url) == _origin(self.base_url):
            return {"Authorization": f"Bearer {self._key}"}
        return {}

    # --- tasks -------------------------------------------------------------------

    def _task_from_create(self, answer: _Answer, path: str, request: AnyRequest) -> Task:
        response = answer.response
        state = _unwrap(answer.body)
        task_id = state.get("id") or state.get("task_id")
        task_id = task_id or response.headers.get("x-runapi-task-id")
        if not task_id:
            raise RunAPIError(
                "RunAPI accepted the request but its answer names no task id. "
                "Try again; if it persists, check RUNAPI_BASE_URL."
            )
        task_id = str(task_id)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        location = response.headers.get("location")
        if location:
            status_urls: tuple[str, ...] = (urljoin(str(response.url), location),)
        elif path == GUIDE_CREATE_PATH:
            status_urls = self._guide_status_urls(task_id)
        else:  # the SDK's paths keep a task's status under its create path
            status_urls = (f"{self.base_url}{path}/{task_id}",)
        return Task(
            id=task_id,
            model=request.model,
            status_urls=status_urls,
            status=str(state.get("status") or "pending"),
            submitted_at=answer.evaluated_at,
            first_poll_at=None if retry_after is None else answer.received_at + retry_after,
            request=request,
        )

    def _guide_status_urls(self, task_id: str) -> tuple[str, ...]:
        paths = [self._guide_status_path] if self._guide_status_path else GUIDE_STATUS_PATHS
        return tuple(f"{self.base_url}{path}/{task_id}" for path in paths)

    def _status_urls_for_id(self, task_id: str, model: str) -> tuple[str, ...]:
        """For a bare id: the places this client's service keeps status, likeliest first."""
        guide = self._guide_status_urls(task_id)
        if model == REMIX_MODEL:
            return (f"{self.base_url}{REMIX_PATH}/{task_id}", *guide)
        sdk = (f"{self.base_url}{SDK_CREATE_PATH}/{task_id}",)
        return guide + sdk if self._create_path == GUIDE_CREATE_PATH else sdk + guide

    def _remember_status_url(self, task_id: str, url: str) -> None:
        for path in GUIDE_STATUS_PATHS:
            if url == f"{self.base_url}{path}/{task_id}":
                self._guide_status_path = path

    async def _collect(
        self, task: Task, state: dict[str, Any], notify: _Notifier, deadline_at: float
    ) -> GenerationResult:
        urls = _image_urls(state)
        if not urls:
            raise TaskFailedError(
                "RunAPI reported the task complete but sent no image. Generate again.",
                task_id=task.id,
                reason="completed without images",
            )
        await notify(Phase.DOWNLOADING)
        images = await asyncio.gather(*(self._download(url, deadline_at) for url in urls))
        await notify(Phase.COMPLETED)
        return GenerationResult(
            task_id=task.id,
            model=task.model,
            images=tuple(images),
            elapsed=time.monotonic() - task.submitted_at,
            request=task.request,
            charged_usd=_charged_usd(state),
        )

    async def _download(self, url: str, deadline_at: float) -> GeneratedImage:
        """Stream the image with a size cap, then decode it off the event loop."""
        for attempt in range(self.max_retries + 1):
            try:
                data = await self._fetch_capped(url)
                break
            except httpx.TransportError:
                if attempt == self.max_retries:
                    raise ImageDownloadError(
                        "The connection broke while downloading the image. Generate again."
                    ) from None
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status not in RETRYABLE_STATUSES or attempt == self.max_retries:
                    raise ImageDownloadError(
                        f"The image could not be downloaded (HTTP {status}): its link may have "
                        "expired or the storage is unavailable. Generate again."
                    ) from None
                hint = parse_retry_after(exc.response.headers.get("retry-after"))
                delay = self._backoff(attempt + 1, hint)
                if time.monotonic() + delay > deadline_at:
                    raise ImageDownloadError(
                        f"The image could not be downloaded in time (HTTP {status}). "
                        "Generate again."
                    ) from None
                await asyncio.sleep(delay)
        return await asyncio.to_thread(_check_image, data, url)

    async def _fetch_capped(self, url: str) -> bytes:
        async with self._http.stream("GET", url, headers=self._auth_for(url)) as response:
            response.raise_for_status()
            declared = int(response.headers.get("content-length") or 0)
            if declared > MAX_IMAGE_BYTES:
                raise _too_large(url)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise _too_large(url)
                chunks.append(chunk)
        return b"".join(chunks)


def _nth_seed(request: AnyRequest, offset: int) -> GenerationRequest:
    assert isinstance(request, GenerationRequest) and request.seed is not None
    return replace(request, seed=(request.seed + offset) % (SEED_MAX + 1))


def _too_large(url: str) -> ImageDownloadError:
    return ImageDownloadError(
        f"The image at {url} is larger than {MAX_IMAGE_BYTES // 2**20} MiB, far beyond what "
        "Imagen 4 produces, so it was not downloaded. Generate again."
    )


_NOT_JSON = object()


async def stamp_request_id(request: httpx.Request) -> None:
    """A fresh id on every request (retries too): RunAPI logs it, a visitor quotes it."""
    request.headers[CLIENT_REQUEST_ID_HEADER] = uuid.uuid4().hex


def _json_body(response: httpx.Response) -> Any:
    """The answer's JSON; {} for an empty body (a bare 202); `_NOT_JSON` for anything else."""
    if not response.content.strip():
        return {}
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def _whole(value: Any, *, scale: int = 1) -> int | None:
    """`value` (a number or a numeric string) times `scale`, rounded; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value) * scale
    except ValueError:
        return None
    return round(number) if math.isfinite(number) else None


class _Notifier:
    """Calls `on_update` once per phase change, sync or async callbacks alike."""

    def __init__(self, task: Task, on_update: UpdateCallback | None) -> None:
        self._task = task
        self._on_update = on_update
        self._last: Phase | None = None

    async def __call__(self, phase: Phase, detail: str | None = None) -> None:
        if self._on_update is None or phase is self._last:
            return
        self._last = phase
        update = TaskUpdate(
            task_id=self._task.id,
            phase=phase,
            elapsed=time.monotonic() - self._task.submitted_at,
            model=self._task.model,
            detail=detail,
        )
        outcome = self._on_update(update)
        if asyncio.iscoroutine(outcome):
            await outcome
