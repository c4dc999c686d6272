"""A local RunAPI: the same HTTP contract, drawn placeholder images, injectable faults.

It is the playground's demo mode and what every test and benchmark runs against. It
speaks both forms of the contract (the official SDK's paths and the guide's), so the
official SDK runs against it unmodified. It also serves Imagen 4 Pro's remix (whose
sources must be URLs its own file API issued, `POST /api/v1/files`, and not expired),
the public price schedules (with an ETag), and `usage` and `billing` in completed tasks.

    python -m runapi_ui.runapi.simulator --port 8787 --time-scale 0.2 --faults "rate_limit@status*2"

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
import base64
import binascii
import functools
import hashlib
import io
import json
import logging
import os
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any
from unicodedata import east_asian_width
from urllib.parse import urlsplit

import uvicorn
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .catalog import (
    MODELS,
    PRICES_AS_OF,
    PROMPT_MAX_CHARS,
    REMIX_ASPECT_RATIOS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_MODEL,
    REMIX_PRICE_CENTS,
    REMIX_PROMPT_MAX_CHARS,
    REMIX_RESOLUTIONS,
    SEED_MAX,
    image_size,
)

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
TARGETS = {"any", "create", "status", "image", "balance", "upload", "prices"}
SIM_MODELS = (*MODELS, REMIX_MODEL)

# How long each model takes at time scale 1. Deliberately not the client's priors
# (catalog.ModelInfo.typical_seconds): the client has to learn these.
SIMULATED_SECONDS = {
    "imagen-4-fast": 4.5,
    "imagen-4": 8.0,
    "imagen-4-ultra": 13.0,
    REMIX_MODEL: 18.0,
}
PRICE_CENTS = {name: round(info.price_usd * 100) for name, info in MODELS.items()}
# A model's price in cents: one figure, or one per output_resolution (remix).
DEFAULT_PRICES: dict[str, int | Mapping[str, int]] = {**PRICE_CENTS, REMIX_MODEL: REMIX_PRICE_CENTS}
SERVICE = "imagen-4"  # the price schedules' spelling (routes say imagen_4)
UPLOAD_MAX_BYTES = 10 * 2**20  # RunAPI documents 10 MB for another model's sources
SOURCE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
REMIX_LONG_SIDE = {"1k": 1024, "2k": 2048, "4k": 4096}
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
        if model and model not in SIM_MODELS:
            raise ValueError(
                f"unknown model {model!r} in fault {spec!r}; known: {', '.join(SIM_MODELS)}"
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
    upload_ttl_seconds: float = 3600.0  # how long a file API URL serves (RunAPI: ~1 hour)
    max_uploads: int = 200  # older uploads are forgotten
    # Live prices in cents, per model (remix: per output_resolution), over DEFAULT_PRICES.
    prices: Mapping[str, int | Mapping[str, int]] = field(default_factory=dict)
    # Per model: "active" (the default), "maintenance" or "disabled"; creates of a model
    # that is not active answer 503.
    catalog_status: Mapping[str, str] = field(default_factory=dict)
    prices_as_of: str = PRICES_AS_OF + "T00:00:00Z"
    usage_in_answers: bool = True  # completed tasks carry `usage`; off: `billing` alone
    refund_completed: bool = False  # completed tasks are refunded: nothing charged

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
    client_request_id: str | None = None  # its X-Client-Request-Id
    status: int | None = None  # the answer's status code (None: it failed before one)


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
    price_cents: int = 0  # at creation: what a completion charges
    charged: bool = False
    refunded: bool = False
    sources: tuple[bytes, ...] = ()  # a remix's source images, as fetched at creation

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def extension(self) -> str:
        return "jpg" if self.body.get("output_format") == "jpg" else "png"

    def picture(self) -> tuple[tuple[Any, ...], Callable[[], bytes]]:
        """What this task draws (a key: the same key, the same picture) and how."""
        body = self.body
        if self.model == REMIX_MODEL:
            digests = tuple(hashlib.sha256(data).hexdigest() for data in self.sources)
            options = (body["aspect_ratio"], body["output_resolution"], body["output_format"])
            key = (self.model, body["prompt"], digests, *options)
            return key, partial(render_remix, body["prompt"], self.sources, *options)
        key = (body["prompt"], self.model, body["aspect_ratio"], self.seed)
        return key, partial(render_image, *key)

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


def _invalid(errors: dict[str, list[str]]) -> JSONResponse:
    return _error(422, "Validation failed", errors=errors)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class _DirectUpload:
    """A prepared direct upload: what storage must receive, and what it did."""

    file_name: Any
    size: int
    checksum: str  # base64 MD5
    data: bytes | None = None


@dataclass
class SimUpload:
    """A file its file API took: exactly the bytes that reached the simulator."""

    token: str
    file_name: str
    data: bytes
    mime_type: str
    created_at: float  # monotonic
    created_wall: datetime
    ttl: float

    def expired(self, now: float) -> bool:
        return now >= self.created_at + self.ttl

    def answer(self, base_url: str) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "url": f"{base_url}uploads/{self.token}/{self.file_name}",
            "size_bytes": len(self.data),
            "mime_type": self.mime_type,
            "created_at": _iso(self.created_wall),
            "expires_at": _iso(self.created_wall + timedelta(seconds=self.ttl)),
        }


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
    status: int | None = None


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
        self._images: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._rendering: dict[tuple[Any, ...], asyncio.Future[bytes]] = {}
        # Every file its file API took, by token: tests read exactly what reached it.
        self.uploads: OrderedDict[str, SimUpload] = OrderedDict()
        self._direct: dict[str, _DirectUpload] = {}  # prepared direct uploads, by signed id
        routes = [
            Route("/api/v1/me/balance", self._answering(self._balance, "balance"), methods=["GET"]),
            Route(
                "/api/v1/tasks/{task_id}", self._answering(self._status, "status"), methods=["GET"]
            ),
            Route(
                "/files/{task_id}/{index:int}.{extension}",
                self._answering(self._image, "image"),
                methods=["GET"],
            ),
            Route("/api/v1/files", self._answering(self._upload, "upload"), methods=["POST"]),
            Route(
                "/api/v1/files/prepare",
                self._answering(self._prepare_upload, "upload"),
                methods=["POST"],
            ),
            Route(
                "/direct_uploads/{signed_id}",
                self._answering(self._put_upload, "upload"),
                methods=["PUT"],
            ),
            Route(
                "/api/v1/files/confirm",
                self._answering(self._confirm_upload, "upload"),
                methods=["POST"],
            ),
            Route(
                "/uploads/{token}/{name}",
                self._answering(self._uploaded, "image"),
                methods=["GET"],
            ),
            Route(
                "/api/v1/price_schedules",
                self._answering(self._price_schedules, "prices"),
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
                Route(
                    "/api/v1/imagen_4/remix_image",
                    self._answering(self._create_remix, "create"),
                    methods=["POST"],
                ),
                Route(
                    "/api/v1/imagen_4/remix_image/{task_id}",
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
                response: Response = await handler(call)
                call.status = response.status_code
            finally:
                self._record(call)
            client_request_id = request.headers.get("x-client-request-id")
            if client_request_id:  # echoed, as RunAPI does
                response.headers["X-Client-Request-Id"] = client_request_id
            return response

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
                client_request_id=request.headers.get("x-client-request-id"),
                status=call.status,
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

    async def _create_remix(self, call: _Call) -> Response:
        return await self._create(call, guide=False, remix=True)

    async def _create(self, call: _Call, *, guide: bool, remix: bool = False) -> Response:
        body = await _read_json(call.request)
        if body is _GONE:  # the client gave up mid-request: nobody to answer
            return Response(status_code=499)
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
        sources: tuple[bytes, ...] = ()
        if remix:
            errors, sources = self._validate_remix(body)
        else:
            errors = _validate(body)
        if errors or self._fault("invalid", call):
            return _invalid(
                errors or {"prompt": ["was rejected by the content policy (simulated)"]}
            )
        status = self.config.catalog_status.get(body["model"], "active")
        if status != "active":
            return JSONResponse(
                {"error": {"code": "model_unavailable", "message": f"{body['model']} is {status}"}},
                status_code=503,
            )

        idempotency_key = call.request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if idempotency_key:
            seen = self._idempotency.get((key, idempotency_key))
            if seen and seen[0] != fingerprint:
                return _error(409, "Idempotency-Key was already used with a different request")
            if seen and seen[1] in self.tasks:
                call.task_id = seen[1]
                return self._created(self.tasks[seen[1]], guide=guide)

        price = self.price_cents(body)
        if self._fault("no_credits", call) or self._balances[key] < price:
            return JSONResponse(
                {"error": {"code": "insufficient_credits", "message": "Insufficient credits"}},
                status_code=402,
            )
        task = self._new_task(call, body, price, sources)
        call.task_id = task.id
        if idempotency_key:
            self._idempotency[(key, idempotency_key)] = (fingerprint, task.id)
        self._forget_old_tasks()
        return self._answer_faults(call) or self._created(task, guide=guide)

    def price_cents(self, body: Mapping[str, Any]) -> int:
        """What a task with this (valid) body costs now, in cents."""
        price = {**DEFAULT_PRICES, **self.config.prices}[body["model"]]
        return price if isinstance(price, int) else price[body["output_resolution"]]

    def _new_task(
        self, call: _Call, body: dict[str, Any], price: int, sources: tuple[bytes, ...]
    ) -> SimTask:
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
            price_cents=price,
            refunded=self.config.refund_completed,
            sources=sources,
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
        }
        if task.model != REMIX_MODEL:  # a remix takes no seed
            body["seed"] = task.seed
        if status == "completed":
            if not task.charged and not task.refunded:
                task.charged = True  # failed generations are not charged
                self._balances[task.api_key] -= task.price_cents
                self._spent[task.api_key] = self._spent.get(task.api_key, 0) + task.price_cents
            url = f"{call.request.base_url}files/{task.id}/0.{task.extension}"
            body["images"] = [{"url": url, "origin_url": url}]
            body.update(self._costs(task))
        elif status == "failed":
            body["error"] = self.config.fail_reason
        elif self.config.progress_hints and not task.stuck:
            age = now - task.created_at
            body["progress"] = int(100 * min(1.0, age / task.duration))
            body["eta_seconds"] = max(0.0, task.duration - age)
        return self._answer_faults(call) or JSONResponse(
            body, headers={"x-request-id": uuid.uuid4().hex}
        )

    def _costs(self, task: SimTask) -> dict[str, Any]:
        """A completed task's `usage` (unless configured away) and `billing`, as RunAPI's."""
        cents = task.price_cents
        refund = {"amount_cents": cents, "reason": "refunded (simulated)"}
        costs: dict[str, Any] = {
            "billing": {
                "reservation": {"amount_cents": cents},
                "settlement": {
                    "charged_amount_cents": cents,
                    "amount_micro_cents": cents * 1_000_000,
                },
                "refund": refund if task.refunded else None,
            }
        }
        if self.config.usage_in_answers:
            costs["usage"] = {"cost": cents / 100, "generated_images": 1}
        return costs

    async def _image(self, call: _Call) -> Response:
        task = self.tasks.get(call.request.path_params["task_id"])
        params = call.request.path_params
        if (
            task is None
            or task.status(time.monotonic()) != "completed"
            or params["index"] != 0
            or params["extension"] != task.extension
        ):
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
        media_type = "image/jpeg" if task.extension == "jpg" else "image/png"
        if self._fault("image_truncated", call):
            return Response(data[: len(data) // 2], media_type=media_type)
        self.served_images[image_digest(data)] = task.id
        while len(self.served_images) > self.config.record_limit:
            self.served_images.popitem(last=False)
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=604800"})

    async def _rendered(self, task: SimTask) -> bytes:
        """Draw each picture once, off the event loop, however many ask for it at once.

        Keyed by what is drawn, not by task, and bounded: a demo that runs for days keeps
        only the latest pictures (an evicted one is drawn again, identically).
        """
        key, draw = task.picture()
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        drawing = self._rendering.get(key)
        if drawing is None:
            drawing = asyncio.ensure_future(asyncio.to_thread(draw))
            self._rendering[key] = drawing
            drawing.add_done_callback(lambda _: self._rendering.pop(key, None))
        # Shielded: one impatient client that disconnects must not cancel the others' picture.
        data = await asyncio.shield(drawing)
        self._images[key] = data
        while len(self._images) > self.config.image_cache:
            self._images.popitem(last=False)
        return data

    # --- files, remix sources and prices ----------------------------------------------

    async def _upload(self, call: _Call) -> Response:
        """`POST /api/v1/files` with a base64 source: the file, and a URL that lasts a while."""
        body = await _read_json(call.request)
        if body is _GONE:
            return Response(status_code=499)
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        source = body.get("source") if isinstance(body, dict) else None
        if not isinstance(source, dict) or source.get("type") != "base64":
            return _invalid(
                {"source": ["must be {type: base64, data} (the simulator fetches no URLs)"]}
            )
        try:
            data = base64.b64decode(str(source.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            return _invalid({"source": ["is not valid base64"]})
        if not data:
            return _invalid({"source": ["is empty"]})
        if len(data) > UPLOAD_MAX_BYTES:
            return _invalid({"source": [f"is larger than {UPLOAD_MAX_BYTES // 2**20} MB"]})
        upload = self._store_upload(data, body.get("file_name"))
        return self._answer_faults(call) or JSONResponse(
            upload.answer(str(call.request.base_url)), status_code=201
        )

    def _store_upload(self, data: bytes, name: Any) -> SimUpload:
        token = uuid.uuid4().hex
        image_format = _source_format(data)
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
            extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}.get(image_format or "", "bin")
            name = f"{token[:12]}.{extension}"
        upload = SimUpload(
            token=token,
            file_name=name,
            data=data,
            mime_type=SOURCE_FORMATS.get(image_format or "", "application/octet-stream"),
            created_at=time.monotonic(),
            created_wall=datetime.now(timezone.utc),
            ttl=self.config.upload_ttl_seconds,
        )
        self.uploads[token] = upload
        while len(self.uploads) > self.config.max_uploads:
            self.uploads.popitem(last=False)
        return upload

    # The official SDK's route for a local file: prepare, PUT to storage (no key), confirm.

    async def _prepare_upload(self, call: _Call) -> Response:
        body = await _read_json(call.request)
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        fields = body if isinstance(body, dict) else {}
        size, checksum = fields.get("byte_size"), fields.get("checksum")
        if not isinstance(size, int) or not 0 < size <= UPLOAD_MAX_BYTES:
            return _invalid({"byte_size": [f"must be from 1 to {UPLOAD_MAX_BYTES} bytes"]})
        if not isinstance(checksum, str) or not checksum:
            return _invalid({"checksum": ["must be the base64 MD5 of the file"]})
        signed_id = uuid.uuid4().hex
        self._direct[signed_id] = _DirectUpload(fields.get("filename"), size, checksum)
        headers = {"Content-Type": "application/octet-stream", "Content-MD5": checksum}
        upload_url = f"{call.request.base_url}direct_uploads/{signed_id}"
        return JSONResponse({"signed_id": signed_id, "upload_url": upload_url, "headers": headers})

    async def _put_upload(self, call: _Call) -> Response:
        """Storage's side: exactly the prepared size, checksum and headers; no key wanted."""
        pending = self._direct.get(call.request.path_params["signed_id"])
        data = await call.request.body()
        checksum = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        if pending is None or call.key is not None:
            return Response("Forbidden", status_code=403, media_type="text/plain")
        sent = (call.request.headers.get("content-md5"), checksum, len(data))
        if sent != (pending.checksum, pending.checksum, pending.size):
            return Response("BadDigest", status_code=400, media_type="text/plain")
        pending.data = data
        return Response(status_code=200)

    async def _confirm_upload(self, call: _Call) -> Response:
        body = await _read_json(call.request)
        denied = self._authenticate(call) or self._transport_faults(call)
        if denied:
            return denied
        signed_id = body.get("signed_id") if isinstance(body, dict) else None
        pending = self._direct.pop(signed_id, None) if isinstance(signed_id, str) else None
        if pending is None or pending.data is None:
            return _invalid({"signed_id": ["names no finished upload"]})
        upload = self._store_upload(pending.data, pending.file_name)
        return JSONResponse(upload.answer(str(call.request.base_url)), status_code=201)

    async def _uploaded(self, call: _Call) -> Response:
        upload = self.uploads.get(call.request.path_params["token"])
        if upload is None or upload.expired(time.monotonic()):
            return Response("Not Found", status_code=404, media_type="text/plain")
        return Response(upload.data, media_type=upload.mime_type)

    def _validate_remix(self, body: Any) -> tuple[dict[str, list[str]], tuple[bytes, ...]]:
        """RunAPI's checks of a remix, and its sources' bytes (fetched now, as RunAPI does)."""
        if not isinstance(body, dict):
            return {"body": ["must be a JSON object"]}, ()
        errors: dict[str, list[str]] = {}
        if body.get("model") != REMIX_MODEL:
            errors["model"] = [f"must be {REMIX_MODEL}"]
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            errors["prompt"] = ["can't be blank"]
        elif len(prompt) > REMIX_PROMPT_MAX_CHARS:
            errors["prompt"] = [f"is too long (maximum is {REMIX_PROMPT_MAX_CHARS} characters)"]
        for name, choices, default in (
            ("aspect_ratio", REMIX_ASPECT_RATIOS, "auto"),
            ("output_resolution", REMIX_RESOLUTIONS, "1k"),
            ("output_format", REMIX_FORMATS, "png"),
        ):
            if body.setdefault(name, default) not in choices:
                errors[name] = [f"must be one of {', '.join(choices)}"]
        for name in ("seed", "negative_prompt"):
            if name in body:
                errors[name] = ["is not a remix parameter"]
        urls = body.get("source_image_urls")
        if not isinstance(urls, list) or not 1 <= len(urls) <= REMIX_MAX_SOURCES:
            errors["source_image_urls"] = [f"must list 1 to {REMIX_MAX_SOURCES} image URLs"]
            return errors, ()
        sources, problems = [], []
        now = time.monotonic()
        for url in urls:
            upload = self.uploads.get(_upload_token(url))
            if upload is None:
                problems.append(f"{url!r} is not a file this service's file API issued")
            elif upload.expired(now):
                problems.append(f"{url!r} has expired: upload the file again")
            elif _source_format(upload.data) is None:
                problems.append(f"{url!r} is not a JPEG, PNG or WebP image")
            else:
                sources.append(upload.data)
        if problems:
            errors["source_image_urls"] = problems
        return errors, tuple(sources)

    async def _price_schedules(self, call: _Call) -> Response:
        """`GET /api/v1/price_schedules` (no key): the live prices, with an ETag."""
        faulty = self._transport_faults(call)
        if faulty:
            return faulty
        wanted = {
            name: call.request.query_params.get(name) for name in ("service", "action", "model")
        }
        schedules = [
            entry
            for entry in self._schedules()
            if all(value is None or entry[name] == value for name, value in wanted.items())
        ]
        body = json.dumps({"as_of": self.config.prices_as_of, "price_schedules": schedules})
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
        if call.request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return self._answer_faults(call) or Response(
            body, media_type="application/json", headers={"ETag": etag}
        )

    def _schedules(self) -> list[dict[str, Any]]:
        entries = []
        for model, price in {**DEFAULT_PRICES, **self.config.prices}.items():
            entry: dict[str, Any] = {
                "service": SERVICE,
                "action": "remix_image" if model == REMIX_MODEL else "text_to_image",
                "model": model,
                "pricing_status": "active",
                "catalog_status": self.config.catalog_status.get(model, "active"),
                "currency": "USD",
                "billing_unit": "image",
                "unit_price_cents": price if isinstance(price, int) else min(price.values()),
                "billing_config": None,
            }
            if not isinstance(price, int):
                entry["billing_config"] = {"key": "output_resolution", "overrides": dict(price)}
            entries.append(entry)
        return entries


def _upload_token(url: Any) -> str:
    """The token in a file API URL (`/uploads/<token>/<name>`), or "" for any other."""
    parts = urlsplit(url).path.split("/") if isinstance(url, str) else []
    return parts[2] if len(parts) == 4 and parts[1] == "uploads" else ""


def _source_format(data: bytes) -> str | None:
    """Pillow's name for `data` if it is a JPEG, PNG or WebP image that decodes, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.format if image.format in SOURCE_FORMATS else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


_GONE = object()
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


async def _read_json(request: Request) -> Any:
    """The request's JSON body; `_NOT_JSON` if it is not JSON; `_GONE` if the client left."""
    try:
        return json.loads(await request.body() or b"null")
    except ClientDisconnect:
        return _GONE
    except ValueError:
        return _NOT_JSON


def image_digest(png: bytes) -> str:
    """sha256 of a PNG's image data (its IDAT chunks): the same after metadata was added.
    Of anything else (a JPEG remix), sha256 of all of it."""
    if not png.startswith(b"\x89PNG"):
        return hashlib.sha256(png).hexdigest()
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


def render_remix(
    prompt: str,
    sources: tuple[bytes, ...],
    aspect_ratio: str,
    output_resolution: str,
    output_format: str,
) -> bytes:
    """A remix placeholder: the sources' thumbnails in a row, the prompt beneath them.

    `auto` follows the first source's shape; the long side is 1k, 2k or 4k pixels.
    """
    long_side = REMIX_LONG_SIDE[output_resolution]
    thumbnails = []
    for data in sources:
        with Image.open(io.BytesIO(data)) as source:
            thumbnails.append(ImageOps.exif_transpose(source).convert("RGB"))
    if aspect_ratio == "auto":
        ratio = thumbnails[0].width / thumbnails[0].height
    else:
        across, down = (int(part) for part in aspect_ratio.split(":"))
        ratio = across / down
    width, height = (
        (long_side, round(long_side / ratio))
        if ratio >= 1
        else (round(long_side * ratio), long_side)
    )
    rng = random.Random(prompt)
    top = tuple(rng.randint(20, 120) for _ in range(3))
    bottom = tuple(rng.randint(90, 220) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = ImageOps.colorize(gradient, top, bottom).convert("RGB")  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image, "RGBA")

    gap = max(8, width // 64)
    cell = min((width - gap * (len(thumbnails) + 1)) // len(thumbnails), height // 2)
    left = (width - len(thumbnails) * cell - (len(thumbnails) - 1) * gap) // 2
    for index, thumbnail in enumerate(thumbnails):
        thumbnail.thumbnail((cell, cell))
        x = left + index * (cell + gap) + (cell - thumbnail.width) // 2
        image.paste(thumbnail, (x, height // 8 + (cell - thumbnail.height) // 2))

    font = placeholder_font(max(18, width // 32))
    lines = wrap_text(drawable(font, prompt), font, width - 2 * gap)[:4]
    text = "\n".join(lines) + ("…" if len(lines) == 4 else "")
    draw.multiline_text(
        (width // 2, height // 8 + cell + gap * 3),
        text,
        font=font,
        fill="white",
        anchor="ma",
        align="center",
        spacing=8,
    )
    footer = f"{REMIX_MODEL}  ·  {len(sources)} sources  ·  {width}x{height}"
    draw.rectangle((0, height - 48, width, height), fill=(0, 0, 0, 140))
    draw.text((16, height - 38), footer, font=ImageFont.load_default(size=max(14, width // 64)))
    out = io.BytesIO()
    if output_format == "jpg":
        image.save(out, format="JPEG", quality=85)
    else:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


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

    def stop(self, *, wait: bool = True) -> None:
        """Stop serving. `wait=False` returns at once and the port closes a moment later
        (uvicorn looks every 0.1 s): for tests, which start and stop hundreds of these."""
        self._server.should_exit = True
        if wait:
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
