"""A local RunAPI: the same HTTP contract, drawn placeholder images, injectable faults.

It is the playground's demo mode and what every test and benchmark runs against. It
speaks both forms of the contract (the official SDK's paths and the guide's), so the
official SDK runs against it unmodified.

    python -m runapi_ui.simulator --port 8787 --time-scale 0.2 --faults "rate_limit@status*2"

Faults are `kind[@target][:model][*count|~probability]`, comma-separated (also from the
`RUNAPI_SIM_FAULTS` environment variable):

    bad_key         every request answers 401
    no_credits      creates answer 402
    rate_limit      429 with Retry-After (target: create, status, image, balance or any)
    server_error    502 with an HTML page, as a broken proxy sends (any target)
    drop            the connection is cut mid-answer; a create is dropped *after*
                    the task was made, which is what Idempotency-Key exists for
    status_garbage  200 with an HTML page instead of JSON, as a confused proxy sends
                    (a create is garbled after the task was made)
    invalid         creates answer 422 with an `errors` dict
    task_fail       tasks end as failed with a reason
    stuck           tasks stay processing forever
    image_404       image URLs answer 404
    image_garbage   image URLs answer bytes that are not an image
    image_truncated image URLs answer the first half of the picture, as a half-written
                    file in storage does (its length matches what is sent)
    image_bomb      image URLs answer a small PNG that declares 400 megapixels

`:model` limits a fault to one model's requests (`task_fail:imagen-4-ultra`,
`rate_limit@create:imagen-4*2`); `*N` applies it to the first N matching requests (or
tasks); `~P` to each with probability P; neither means every one.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import io
import json
import logging
import os
import random
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unicodedata import east_asian_width

import uvicorn
from PIL import Image, ImageDraw, ImageFont, ImageOps
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .catalog import MODELS, PROMPT_MAX_CHARS, SEED_MAX, image_size

FAULT_KINDS = {
    # kind: default target
    "bad_key": "any",
    "no_credits": "create",
    "rate_limit": "create",
    "server_error": "status",
    "drop": "status",
    "invalid": "create",
    "task_fail": "create",
    "stuck": "create",
    "status_garbage": "status",
    "image_404": "image",
    "image_garbage": "image",
    "image_truncated": "image",
    "image_bomb": "image",
}
TARGETS = {"any", "create", "status", "image", "balance"}

# How long each model takes at time scale 1. Deliberately not the client's priors
# (catalog.ModelInfo.typical_seconds): the client has to learn these.
SIMULATED_SECONDS = {"imagen-4-fast": 4.5, "imagen-4": 8.0, "imagen-4-ultra": 13.0}
PRICE_CENTS = {name: round(info.price_usd * 100) for name, info in MODELS.items()}
DEFAULT_FAIL_REASON = "The prompt was blocked by the safety filter (simulated)"


@dataclass
class Fault:
    kind: str
    target: str
    count: int | None = None  # the first N matches; None with no probability: every match
    probability: float | None = None
    model: str | None = None  # only this model's requests and tasks

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """`kind[@target][:model][*count|~probability]`, e.g. `rate_limit@status:imagen-4*2`."""
        text = spec.strip()
        count = probability = None
        if "*" in text:
            text, _, number = text.partition("*")
            count = int(number)
        elif "~" in text:
            text, _, number = text.partition("~")
            probability = float(number)
        text, _, model = text.partition(":")
        kind, _, target = text.partition("@")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        target = target or FAULT_KINDS[kind]
        if target not in TARGETS:
            raise ValueError(f"unknown fault target {target!r}; known: {', '.join(TARGETS)}")
        if model and model not in MODELS:
            raise ValueError(
                f"unknown model {model!r} in fault {spec!r}; known: {', '.join(MODELS)}"
            )
        return cls(kind, target, count, probability, model or None)

    def strikes(self, kind: str, target: str, model: str | None) -> bool:
        """Whether this fault is about such a request (before its count or chance)."""
        return (
            self.kind == kind
            and self.target in (target, "any")
            and (self.model is None or self.model == model)
        )


def parse_faults(specs: str | Iterable[str] | None) -> list[Fault]:
    if not specs:
        return []
    items = specs.split(",") if isinstance(specs, str) else specs
    return [Fault.parse(item) for item in items if item.strip()]


@dataclass
class SimulatorConfig:
    time_scale: float = 1.0  # multiplies every duration; 0 makes tasks finish at once
    jitter: float = 0.15  # ± fraction of a task's duration
    # (low, high) seconds per model at time scale 1, drawn evenly; None: SIMULATED_SECONDS
    # with `jitter`. A model left out keeps its SIMULATED_SECONDS.
    durations: Mapping[str, tuple[float, float]] | None = None
    progress_hints: bool = False  # status answers carry `progress` (%) and `eta_seconds`
    api_keys: frozenset[str] | None = None  # None: any non-empty key is accepted
    starting_balance_cents: int = 1000
    sdk_routes: bool = True  # POST /api/v1/imagen_4/text_to_image and its GET
    guide_routes: bool = True  # POST /v1/text_to_image
    guide_v1_status: bool = True  # GET /v1/tasks/{id}; off leaves /api/v1/tasks/{id} only
    location_header: bool = False  # answer creates 202 with Location and Retry-After
    retry_after_seconds: int = 1  # what a 429 asks for
    fail_reason: str = DEFAULT_FAIL_REASON
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None  # for the jitter and probabilistic faults
    record_limit: int = 5000  # requests (and served images) remembered for tests
    max_tasks: int = 100_000  # older tasks are forgotten, as a long-running demo must
    image_cache: int = 64  # rendered images kept; the same inputs draw the same image

    @classmethod
    def from_env(cls, **overrides: Any) -> SimulatorConfig:
        env = os.environ
        config = cls(
            time_scale=float(env.get("RUNAPI_SIM_TIME_SCALE", 1.0)),
            faults=parse_faults(env.get("RUNAPI_SIM_FAULTS")),
        )
        for name, value in overrides.items():
            setattr(config, name, value)
        return config


@dataclass(frozen=True)
class RecordedRequest:
    """What the simulator saw, for tests: which key, which path, which idempotency key."""

    method: str
    path: str
    api_key: str | None
    idempotency_key: str | None
    at: float  # monotonic: when it arrived
    body: dict[str, Any] | None = None  # a create's JSON body, as sent
    fault: str | None = None  # the fault that struck it, if one did
    task_id: str | None = None  # the task it made or asked about


@dataclass
class SimTask:
    id: str
    api_key: str
    body: dict[str, Any]
    seed: int
    created_at: float
    duration: float
    queued_for: float
    fails: bool
    stuck: bool
    charged: bool = False

    @property
    def model(self) -> str:
        return self.body["model"]

    def status(self, now: float) -> str:
        age = now - self.created_at
        if self.stuck:
            return "processing" if age >= self.queued_for else "pending"
        if age >= self.duration:
            return "failed" if self.fails else "completed"
        return "processing" if age >= self.queued_for else "pending"


class DroppedConnection(Exception):
    """Raised after the answer has started, which makes uvicorn cut the connection."""


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is DroppedConnection)


def _html_error_page(status: int) -> str:
    title = f"{status} Bad Gateway" if status == 502 else f"{status} Service Unavailable"
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><center>"
        f"<h1>{title}</h1></center><hr><center>cloudflare</center></body></html>"
    )


# What a confused proxy answers with a 200: a page, not the JSON that was asked for.
_GARBLED_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><p>Checking your browser before accessing the site.</p></body></html>"
)


def _bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 60-byte PNG whose header declares `width` x `height` pixels (400 MP by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


@dataclass
class _Call:
    """One request being answered: what is known of it so far, recorded when answered."""

    request: Request
    target: str
    arrived: float
    key: str | None = None
    model: str | None = None
    body: dict[str, Any] | None = None
    fault: str | None = None
    task_id: str | None = None


class RunAPISimulator:
    """The simulated service: state, routes and faults. `app` is its ASGI app."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        limit = self.config.record_limit
        self.tasks: OrderedDict[str, SimTask] = OrderedDict()
        self.requests: deque[RecordedRequest] = deque(maxlen=limit)
        # image_digest of every image served -> its task id: which task an image came from.
        self.served_images: OrderedDict[str, str] = OrderedDict()
        self._balances: dict[str, int] = {}
        self._spent: dict[str, int] = {}
        self._idempotency: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._fault_hits: dict[int, int] = {}
        self._random = random.Random(self.config.seed)
        self._images: OrderedDict[tuple[str, str, str, int], bytes] = OrderedDict()
        self._rendering: dict[tuple[str, str, str, int], asyncio.Future[bytes]] = {}
        routes = [
            Route("/api/v1/me/balance", self._answering(self._balance, "balance"), methods=["GET"]),
            Route(
                "/api/v1/tasks/{task_id}", self._answering(self._status, "status"), methods=["GET"]
            ),
            Route(
                "/files/{task_id}/{index:int}.png",
                self._answering(self._image, "image"),
                methods=["GET"],
            ),
        ]
        if self.config.sdk_routes:
            routes += [
                Route(
                    "/api/v1/imagen_4/text_to_image",
                    self._answering(self._create_sdk, "create"),
                    methods=["POST"],
                ),
                Route(
                    "/api/v1/imagen_4/text_to_image/{task_id}",
                    self._answering(self._status, "status"),
                    methods=["GET"],
                ),
            ]
        if self.config.guide_routes:
            routes.append(
                Route(
                    "/v1/text_to_image",
                    self._answering(self._create_guide, "create"),
                    methods=["POST"],
                )
            )
        if self.config.guide_v1_status:
            routes.append(
                Route(
                    "/v1/tasks/{task_id}", self._answering(self._status, "status"), methods=["GET"]
                )
            )
        # Unrouted requests are recorded too: a client probing a path this service
        # lacks (the SDK's create, the guide's status) must show up in `requests`.
        self.app = Starlette(routes=routes, exception_handlers={404: self._unrouted})

    def _answering(self, handler: Any, target: str) -> Any:
        """`handler(call)` as a route: every request is recorded once, with its outcome."""

        async def endpoint(request: Request) -> Response:
            call = _Call(
                request, target, time.monotonic(), key=_bearer(request.headers.get("authorization"))
            )
            try:
                return await handler(call)
            finally:
                self._record(call)

        return endpoint

    def _record(self, call: _Call) -> None:
        request = call.request
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                call.key,
                request.headers.get("idempotency-key"),
                call.arrived,
                body=call.body,
                fault=call.fault,
                task_id=call.task_id,
            )
        )

    async def _unrouted(self, request: Request, exc: Exception) -> Response:
        key = _bearer(request.headers.get("authorization"))
        self._record(_Call(request, "any", time.monotonic(), key=key))
        return Response("Not Found", status_code=404, media_type="text/plain")

    # --- faults ------------------------------------------------------------------

    def _fault(self, kind: str, call: _Call) -> bool:
        """Whether a configured fault of `kind` strikes this request (and count it)."""
        for index, fault in enumerate(self.config.faults):
            if not fault.strikes(kind, call.target, call.model):
                continue
            if fault.probability is not None:
                struck = self._random.random() < fault.probability
            else:
                hits = self._fault_hits.get(index, 0)
                struck = fault.count is None or hits < fault.count
                if struck:
                    self._fault_hits[index] = hits + 1
            if struck:
                call.fault = call.fault or kind
                return True
        return False

    def _transport_faults(self, call: _Call) -> Response | None:
        """The faults any route can meet before doing its work."""
        if self._fault("rate_limit", call):
            return JSONResponse(
                {"error": {"code": "rate_limited", "message": "Rate limit exceeded"}},
                status_code=429,
                headers={"Retry-After": str(self.config.retry_after_seconds)},
            )
        if self._fault("server_error", call):
            return Response(_html_error_page(502), status_code=502, media_type="text/html")
        return None

    def _answer_faults(self, call: _Call) -> Response | None:
        """The faults that strike an answer on its way back, after the work was done."""
        if self._fault("drop", call):
            return _Cut()
        if self._fault("status_garbage", call):
            return Response(_GARBLED_PAGE, media_type="text/html")
        return None

    # --- auth and accounts ---------------------------------------------------------

    def _authenticate(self, call: _Call) -> Response | None:
        """None if the call's key is accepted, else the 401 to answer."""
        allowed = self.config.api_keys
        known = bool(call.key) and (allowed is None or call.key in allowed)
        if not known or self._fault("bad_key", call):
            return JSONResponse(
                {"error": {"code": "unauthorized", "message": "Invalid or missing API key"}},
                status_code=401,
            )
        assert call.key is not None
        self._balances.setdefault(call.key, self.config.starting_balance_cents)
        return None

    async def _balance(self, call: _Call) -> Response:
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        assert call.key is not None
        balance = self._balances[call.key]
        bonus = min(balance, 100)
        return self._answer_faults(call) or JSONResponse(
            {
                "balance_cents": balance,
                "paid_balance_cents": balance - bonus,
                "bonus_balance_cents": bonus,
                "spent_cents_today": self._spent.get(call.key, 0),
                "spent_cents_total": self._spent.get(call.key, 0),
            }
        )

    # --- create --------------------------------------------------------------------

    async def _create_sdk(self, call: _Call) -> Response:
        return await self._create(call, guide=False)

    async def _create_guide(self, call: _Call) -> Response:
        return await self._create(call, guide=True)

    async def _create(self, call: _Call, *, guide: bool) -> Response:
        try:
            body = json.loads(await call.request.body() or b"null")
        except ClientDisconnect:  # the client gave up mid-request: nobody to answer
            return Response(status_code=499)
        except ValueError:
            body = _NOT_JSON
        if isinstance(body, dict):
            call.body = body
            call.model = body.get("model") if isinstance(body.get("model"), str) else None
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        key = call.key
        assert key is not None
        if body is _NOT_JSON:
            return _error(400, "Request body is not valid JSON")
        errors = _validate(body)
        if errors or self._fault("invalid", call):
            errors = errors or {"prompt": ["was rejected by the content policy (simulated)"]}
            return _error(422, "Validation failed", errors=errors)

        idempotency_key = call.request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if idempotency_key:
            seen = self._idempotency.get((key, idempotency_key))
            if seen and seen[0] != fingerprint:
                return _error(409, "Idempotency-Key was already used with a different request")
            if seen and seen[1] in self.tasks:
                call.task_id = seen[1]
                return self._created(self.tasks[seen[1]], guide=guide)

        if self._fault("no_credits", call) or self._balances[key] < PRICE_CENTS[body["model"]]:
            return JSONResponse(
                {"error": {"code": "insufficient_credits", "message": "Insufficient credits"}},
                status_code=402,
            )
        task = self._new_task(call, body)
        call.task_id = task.id
        if idempotency_key:
            self._idempotency[(key, idempotency_key)] = (fingerprint, task.id)
        self._forget_old_tasks()
        return self._answer_faults(call) or self._created(task, guide=guide)

    def _new_task(self, call: _Call, body: dict[str, Any]) -> SimTask:
        assert call.key is not None
        seed = body.get("seed")
        duration = self._duration(body["model"])
        task = SimTask(
            id=str(uuid.uuid4()),
            api_key=call.key,
            body=body,
            seed=self._random.randint(0, SEED_MAX) if seed is None else seed,
            created_at=time.monotonic(),
            duration=duration,
            queued_for=min(duration * 0.15, 1.5 * self.config.time_scale),
            fails=self._fault("task_fail", call),
            stuck=self._fault("stuck", call),
        )
        self.tasks[task.id] = task
        return task

    def _duration(self, model: str) -> float:
        """How long a new task of `model` takes, at this simulator's time scale."""
        ranges = self.config.durations or {}
        if model in ranges:
            low, high = ranges[model]
            seconds = self._random.uniform(low, high)
        else:
            jitter = self.config.jitter
            seconds = SIMULATED_SECONDS[model] * (1 + self._random.uniform(-jitter, jitter))
        return seconds * self.config.time_scale

    def _forget_old_tasks(self) -> None:
        """Keep the newest `max_tasks` tasks (and their idempotency keys): a demo runs for days."""
        while len(self.tasks) > self.config.max_tasks:
            self.tasks.popitem(last=False)
        while len(self._idempotency) > self.config.max_tasks:
            self._idempotency.popitem(last=False)

    def _created(self, task: SimTask, *, guide: bool) -> Response:
        # Each path answers in its own source's words: the guide's `task_id`, the SDK's `id`.
        body: dict[str, Any] = {"task_id" if guide else "id": task.id, "status": "pending"}
        headers = {"x-request-id": uuid.uuid4().hex}
        if guide:
            body["model"] = task.model
        else:
            headers["X-RunAPI-Task-Id"] = task.id
        if self.config.location_header:
            headers["Location"] = f"/api/v1/tasks/{task.id}"
            hint = round(task.duration * 0.6)
            if hint >= 1:
                headers["Retry-After"] = str(hint)
            return JSONResponse(body, status_code=202, headers=headers)
        return JSONResponse(body, headers=headers)

    # --- status and images -----------------------------------------------------------

    async def _status(self, call: _Call) -> Response:
        task = self.tasks.get(call.request.path_params["task_id"])
        if task is not None:  # recorded as about this task, whatever the answer turns out
            call.model, call.task_id = task.model, task.id
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        if task is None or task.api_key != call.key:
            return _error(404, "Task not found")
        now = time.monotonic()
        status = task.status(now)
        body: dict[str, Any] = {
            "id": task.id,
            "task_id": task.id,
            "status": status,
            "model": task.model,
            "seed": task.seed,
        }
        if status == "completed":
            if not task.charged:
                task.charged = True  # failed generations are not charged
                price = PRICE_CENTS[task.model]
                self._balances[task.api_key] -= price
                self._spent[task.api_key] = self._spent.get(task.api_key, 0) + price
            url = f"{call.request.base_url}files/{task.id}/0.png"
            body["images"] = [{"url": url, "origin_url": url}]
            body["usage"] = {"cost": PRICE_CENTS[task.model] / 100, "generated_images": 1}
        elif status == "failed":
            body["error"] = self.config.fail_reason
        elif self.config.progress_hints and not task.stuck:
            age = now - task.created_at
            body["progress"] = int(100 * min(1.0, age / task.duration))
            body["eta_seconds"] = max(0.0, task.duration - age)
        return self._answer_faults(call) or JSONResponse(
            body, headers={"x-request-id": uuid.uuid4().hex}
        )

    async def _image(self, call: _Call) -> Response:
        task = self.tasks.get(call.request.path_params["task_id"])
        index = call.request.path_params["index"]
        if task is None or task.status(time.monotonic()) != "completed" or index != 0:
            return Response("Not Found", status_code=404, media_type="text/plain")
        call.model, call.task_id = task.model, task.id
        faulty = self._transport_faults(call)
        if faulty:
            return faulty
        if self._fault("image_404", call):
            return Response(
                "<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="text/xml"
            )
        if self._fault("image_garbage", call):
            return Response(b"\x89PNG\r\n\x1a\n" + os.urandom(2048), media_type="image/png")
        if self._fault("image_bomb", call):
            return Response(_BOMB, media_type="image/png")
        if self._fault("drop", call):
            return _Cut()
        data = await self._rendered(task)
        if self._fault("image_truncated", call):
            return Response(data[: len(data) // 2], media_type="image/png")
        self.served_images[image_digest(data)] = task.id
        while len(self.served_images) > self.config.record_limit:
            self.served_images.popitem(last=False)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=604800"})

    async def _rendered(self, task: SimTask) -> bytes:
        """Draw each picture once, off the event loop, however many ask for it at once.

        Keyed by what is drawn, not by task, and bounded: a demo that runs for days keeps
        only the latest pictures (an evicted one is drawn again, identically).
        """
        body = task.body
        key = (body["prompt"], body["model"], body["aspect_ratio"], task.seed)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        drawing = self._rendering.get(key)
        if drawing is None:
            drawing = asyncio.ensure_future(asyncio.to_thread(render_image, *key))
            self._rendering[key] = drawing
            drawing.add_done_callback(lambda _: self._rendering.pop(key, None))
        # Shielded: one impatient client that disconnects must not cancel the others' picture.
        data = await asyncio.shield(drawing)
        self._images[key] = data
        while len(self._images) > self.config.image_cache:
            self._images.popitem(last=False)
        return data


def image_digest(png: bytes) -> str:
    """sha256 of a PNG's image data (its IDAT chunks): the same after metadata was added."""
    digest = hashlib.sha256()
    position = 8  # past the signature
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        if kind == b"IDAT":
            digest.update(png[position + 8 : position + 8 + length])
        position += 12 + length  # length, type, data, CRC
    return digest.hexdigest()


_BOMB = _bomb_png()
_NOT_JSON = object()


class _Cut(Response):
    """An answer that starts and is then cut off: the client sees a broken connection."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise DroppedConnection


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _validate(body: Any) -> dict[str, list[str]]:
    """RunAPI's checks, as `{"field": ["problem"]}`."""
    if not isinstance(body, dict):
        return {"body": ["must be a JSON object"]}
    errors: dict[str, list[str]] = {}
    model = MODELS.get(body.get("model"))  # type: ignore[arg-type]
    if model is None:
        errors["model"] = [f"must be one of {', '.join(MODELS)}"]
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = ["can't be blank"]
    elif len(prompt) > PROMPT_MAX_CHARS:
        errors["prompt"] = [f"is too long (maximum is {PROMPT_MAX_CHARS} characters)"]
    ratio = body.setdefault("aspect_ratio", "1:1")
    if model is not None and ratio not in model.aspect_ratios:
        errors["aspect_ratio"] = [f"must be one of {', '.join(model.aspect_ratios)}"]
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX
    ):
        errors["seed"] = [f"must be an integer from 0 to {SEED_MAX}"]
    negative = body.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        errors["negative_prompt"] = ["must be a string"]
    return errors


def render_image(prompt: str, model: str, aspect_ratio: str, seed: int) -> bytes:
    """A placeholder a person can tell apart: its prompt, model, ratio and seed on it.

    The same inputs always give the same picture.
    """
    width, height = image_size(aspect_ratio)
    rng = random.Random(f"{seed}")
    top = tuple(rng.randint(20, 140) for _ in range(3))
    bottom = tuple(rng.randint(90, 235) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = ImageOps.colorize(gradient, top, bottom).convert("RGB")  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(7):
        radius = rng.randint(min(width, height) // 12, min(width, height) // 4)
        x, y = rng.randint(0, width), rng.randint(0, height)
        color = (*(rng.randint(60, 255) for _ in range(3)), 90)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)

    title_font = placeholder_font(max(28, width // 22))
    small_font = placeholder_font(max(18, width // 48))
    lines = wrap_text(drawable(title_font, prompt), title_font, width * 4 // 5)
    if len(lines) > PROMPT_LINES:
        lines = lines[:PROMPT_LINES]
        lines[-1] += "…"
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=title_font, spacing=10, align="center")
    text_w, text_h = box[2] - box[0], box[3] - box[1]
    left, top_y = (width - text_w) // 2, (height - text_h) // 2
    pad = 28
    draw.rounded_rectangle(
        (left - pad, top_y - pad, left + text_w + pad, top_y + text_h + pad),
        radius=24,
        fill=(0, 0, 0, 120),
    )
    # The box's corner is not where the text starts: a font's ascent sits above its first line.
    origin = (left - box[0], top_y - box[1])
    draw.multiline_text(origin, text, font=title_font, fill="white", spacing=10, align="center")
    footer = f"{model}  ·  {aspect_ratio}  ·  {width}x{height}  ·  seed {seed}"
    draw.rectangle((0, height - 64, width, height), fill=(0, 0, 0, 140))
    draw.text((24, height - 48), footer, font=small_font, fill="white")
    draw.text((24, 20), "DEMO · RunAPI simulator", font=small_font, fill=(255, 255, 255, 230))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


# Debian's fonts-noto-cjk (`packages.txt` on Spaces): Chinese, Japanese, Korean, Latin,
# Greek and Cyrillic in one font. Its Traditional Chinese face: each face draws some
# shared characters in its own region's way, and our visitors write Traditional Chinese.
CJK_FONTS = (Path("/usr/share/fonts"), "NotoSansCJK*-Regular.tt[co]")
CJK_FACE = "Noto Sans CJK TC"
NOT_IN_ANY_FONT = "\U0010fffd"  # private use: every font draws its .notdef box for it
PROMPT_LINES = 6


@functools.cache
def _cjk_face() -> tuple[str, int] | None:
    """The Noto Sans CJK file and face to draw with, or None where it is not installed."""
    folder, pattern = CJK_FONTS
    faces = [
        (str(path), index)
        for path in sorted(folder.rglob(pattern))
        for index in range(_face_count(path))
    ]
    for path, index in faces:
        if ImageFont.truetype(path, 12, index=index).getname()[0] == CJK_FACE:
            return path, index
    return faces[0] if faces else None


def _face_count(path: Path) -> int:
    """How many faces a font file holds: a collection (.ttc) says so in its header."""
    with path.open("rb") as file:
        header = file.read(12)
    return int.from_bytes(header[8:12], "big") if header[:4] == b"ttcf" else 1


@functools.cache
def placeholder_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK at `size` where the system has it, else Pillow's own (Latin) font."""
    face = _cjk_face()
    if face is None:
        return ImageFont.load_default(size=size)  # type: ignore[return-value]
    return ImageFont.truetype(face[0], size, index=face[1])


def drawable(font: ImageFont.FreeTypeFont, text: str) -> str:
    """`text` without the characters `font` has no glyph for: they would be drawn as empty
    boxes ("tofu")."""
    return "".join(char for char in text if _has_glyph(font, char))


@functools.lru_cache(maxsize=8192)  # bounded: visitors' prompts may hold any character
def _has_glyph(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """A missing glyph is drawn as the font's .notdef glyph: compare with that."""
    return char.isspace() or _mask(font, char) != _notdef(font)


@functools.cache
def _notdef(font: ImageFont.FreeTypeFont) -> tuple[tuple[int, int], bytes]:
    return _mask(font, NOT_IN_ANY_FONT)


def _mask(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def wrap_text(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Lines at most `width` pixels wide, broken between words where there are spaces and
    between any two characters of scripts written without them (Chinese, Japanese)."""
    lines = [""]
    for token in _break_points(text):
        # A word wider than a line is broken between its characters.
        for piece in token if font.getlength(token) > width else [token]:
            if not lines[-1] or font.getlength(lines[-1] + piece) <= width:
                lines[-1] += piece
            else:
                lines.append(piece)
    return [line.strip() for line in lines if line.strip()]


def _break_points(text: str) -> list[str]:
    """`text` cut where a line may break: around each space and each wide (CJK) character."""
    tokens: list[str] = []
    for char in text:
        if tokens and not _breaks_around(char) and not _breaks_around(tokens[-1][-1]):
            tokens[-1] += char
        else:
            tokens.append(" " if char.isspace() else char)
    return tokens


def _breaks_around(char: str) -> bool:
    return char.isspace() or east_asian_width(char) in "WF"


class SimulatorServer:
    """The simulator on a real loopback socket, in a background thread.

    with SimulatorServer(SimulatorConfig(time_scale=0)) as sim:
        client = RunAPIClient(api_key="sk-test", base_url=sim.url)
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.simulator = RunAPISimulator(config)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.simulator.app,
                log_level="warning",
                access_log=False,
                timeout_keep_alive=30,
                backlog=2048,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def start(self) -> SimulatorServer:
        logging.getLogger("uvicorn.error").addFilter(_HideDrops())
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the RunAPI simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local RunAPI simulator for Imagen 4.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="multiply task durations (env RUNAPI_SIM_TIME_SCALE; default 1)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        help="kind[@target][:model][*count|~probability], comma-separated, e.g. "
        "'rate_limit@status*2,task_fail:imagen-4-ultra' (env RUNAPI_SIM_FAULTS); kinds: "
        + ", ".join(FAULT_KINDS),
    )
    parser.add_argument("--location", action="store_true", help="answer creates 202 + Location")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="status answers of running tasks carry `progress` (%%) and `eta_seconds`",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        "location_header": args.location,
        "progress_hints": args.progress,
    }
    if args.time_scale is not None:
        overrides["time_scale"] = args.time_scale
    if args.faults is not None:
        overrides["faults"] = parse_faults(args.faults)
    simulator = RunAPISimulator(SimulatorConfig.from_env(**overrides))
    logging.getLogger("uvicorn.error").addFilter(_HideDrops())
    print(f"RunAPI simulator on http://{args.host}:{args.port} (any non-empty key works)")
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
