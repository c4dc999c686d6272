"""Imagen 4 for agents, on the page's own server: an MCP tool and an OpenAI-style endpoint.

- `add_agent_tools(playground)` registers the MCP tool `generate_image` on the Blocks
  being built (Gradio serves it at `/gradio_api/mcp/` when launched with `mcp_server`).
- `agent_routes(playground)` is `POST /v1/images/generations`, answering like OpenAI's
  Images API, for Hermes Agent's image providers and anything using the `openai` package.

Both wait for the whole generation in one call and go through `Playground.start`, so the
key policy, demo mode and the limits are exactly the page's. A caller's
`Authorization: Bearer <RunAPI key>` (on MCP and on the endpoint alike) is the key it
spends; without one, the server's key or the demo applies as for a visitor who types none.

No `from __future__ import annotations` here: Gradio reads the tool's signature at run
time (its return annotation decides how many outputs the tool has).
"""

import asyncio
import base64
import hashlib
import io
import json
import logging
import math
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr
from gradio.context import get_blocks_context
from gradio.data_classes import FileData
from gradio.route_utils import get_root_url
from gradio_client.utils import encode_file_path
from mcp.server.lowlevel.server import request_ctx
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..runapi.catalog import (
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    MODELS,
    PROMPT_MAX_CHARS,
    REMIX_ASPECT_RATIOS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_MODEL,
    REMIX_PRICE_CENTS,
    REMIX_PROMPT_MAX_CHARS,
    REMIX_RESOLUTIONS,
    SEED_MAX,
)
from ..runapi.errors import (
    AuthenticationError,
    ImageDownloadError,
    InsufficientCreditsError,
    ModelUnavailableError,
    NetworkError,
    RateLimitError,
    RunAPIError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from ..runapi.prices import PriceBook
from ..runapi.sources import MAX_SOURCE_BYTES
from ..runs.access import KeyRequired
from ..runs.playground import MAX_IMAGES, Playground
from ..runs.quota import LimitError, LimitsUnavailable, QuotaExceeded, ServerBusy
from ..runs.registry import Run, RunStatus
from ..runs.remixing import fetch_sources
from ..runs.shared_runs import SharedRuns

log = logging.getLogger(__name__)

TOOL_NAME = "generate_image"  # Gradio names an MCP tool after its function
REMIX_TOOL_NAME = "remix_image"
IMAGES_PATH = "/v1/images/generations"
EDITS_PATH = "/v1/images/edits"
# Why a start can be refused before anything is sent; each has a user-facing `.message`.
REFUSALS = (RunAPIError, KeyRequired, LimitError)

# The tool's typed arguments, from the catalog (an agent sees them as enums).
_RATIOS = tuple(dict.fromkeys(ratio for info in MODELS.values() for ratio in info.aspect_ratios))
ModelName = Literal[tuple(MODELS)]  # type: ignore[valid-type]
RatioName = Literal[_RATIOS]  # type: ignore[valid-type]
RemixRatioName = Literal[REMIX_ASPECT_RATIOS]  # type: ignore[valid-type]
ResolutionName = Literal[REMIX_RESOLUTIONS]  # type: ignore[valid-type]
FormatName = Literal[REMIX_FORMATS]  # type: ignore[valid-type]
# One image slot: a Gradio file (sent to MCP as an image block plus its URL), or "" unused.
ImageSlot = FileData | str
# Fixed outputs, because Gradio turns each output into its own content blocks: a slot and
# its caption line per image, then a summary line.
ToolOutputs = tuple[(ImageSlot, str) * MAX_IMAGES + (str,)]  # type: ignore[misc]


# --- the MCP tool -------------------------------------------------------------------------


class ToolError(gr.Error):
    """A failure the MCP client sees as the tool's error text: the playground's message."""

    def __str__(self) -> str:  # gr.Error's is the message's repr, quotes and all
        return self.message


def tool_description(prices: PriceBook) -> str:
    """What an agent reads before calling the tool: what it is for, the models (at their
    live prices, and whether RunAPI serves them now), the wait."""
    models = "; ".join(
        f"{name} (${prices.price_usd(name):.2f} per image, {info.speed}, about "
        f"{info.typical_seconds:.0f} s{_unavailable(prices, name)})"
        for name, info in MODELS.items()
    )
    return (
        "Generate images from a text prompt with Google DeepMind's Imagen 4, through RunAPI. "
        "Imagen 4 is strong at photorealism, fine detail and lighting, and at legible text "
        "inside the image (signs, labels, posters, logos). "
        f"Models: {models}. The default is {DEFAULT_MODEL}. "
        f"A call waits until the images are ready, usually 5 to 20 seconds; up to {MAX_IMAGES} "
        "images per call are drawn in parallel and each is billed at its model's price. "
        "Returns each image, with a line giving its URL and one giving its model, aspect "
        f"ratio and seed, then a summary line. Prices: {prices.source}."
    )


def _unavailable(prices: PriceBook, model: str) -> str:
    words = prices.price(model).status_words
    return f", {words}: not available now" if words else ""


def _tool_arguments_doc() -> str:
    """The docstring Gradio reads the arguments' descriptions from (one line each; the
    tool's description is `tool_description`, given apart)."""
    fast_only = [r for r in MODELS["imagen-4-fast"].aspect_ratios if r not in ASPECT_RATIOS]
    return "\n".join(
        [
            "Generate images with Imagen 4.",
            "",
            "Args:",
            "    prompt: What to draw: subject, setting, style, lighting; put any text to "
            f"render in quotes. At most {PROMPT_MAX_CHARS} characters.",
            "    model: imagen-4-fast (cheapest, fastest), imagen-4 (balanced, the default) "
            "or imagen-4-ultra (best quality, slowest).",
            "    aspect_ratio: The image's shape: 1:1 square, 16:9 or 4:3 landscape, 9:16 or "
            f"3:4 portrait; {', '.join(fast_only)} (imagen-4-fast only) lets the model choose.",
            "    negative_prompt: What to leave out (optional; Imagen 4 may ignore it).",
            f"    seed: A whole number from 0 to {SEED_MAX} to make the images reproducible "
            "(the images of one call get seed, seed+1, ...); omit it for random seeds.",
            f"    num_images: How many images to draw, 1 to {MAX_IMAGES}; each one is billed.",
        ]
    )


def remix_description() -> str:
    """What an agent reads before calling `remix_image`."""
    prices = ", ".join(f"${cents / 100:.2f} at {res}" for res, cents in REMIX_PRICE_CENTS.items())
    return (
        "Make new images from 1 to 8 source images and a prompt with Imagen 4 Pro remix "
        "(imagen-4-pro-remix-image) through RunAPI: edit a photo ('make it golden hour'), "
        "combine sources ('put this mug on that table'), restyle. Sources are http(s) URLs "
        "or data URIs (JPEG, PNG or WebP, up to 10 MB); their metadata is stripped before "
        f"they are uploaded. Per image: {prices}. A call waits until the images are ready; "
        "returns each image with a caption line, then a summary line."
    )


def _remix_arguments_doc() -> str:
    return "\n".join(
        [
            remix_description(),
            "",
            "Args:",
            "    prompt: What to make of the sources: the change, the scene, the style. At "
            f"most {REMIX_PROMPT_MAX_CHARS} characters.",
            f"    images: 1 to {REMIX_MAX_SOURCES} source images, each an http(s) URL or a "
            "data:image/...;base64 URI.",
            "    aspect_ratio: The result's shape, e.g. 1:1, 16:9, 9:16, 21:9; auto follows "
            "the sources.",
            "    output_resolution: 1k, 2k or 4k (4k costs more).",
            "    output_format: png or jpg.",
            f"    num_images: How many images to make, 1 to {MAX_IMAGES}; each one is billed.",
        ]
    )


def add_agent_tools(playground: Playground) -> None:
    """Register the MCP tools `generate_image` and `remix_image` on the Blocks being
    built (call it inside the `with gr.Blocks()` block)."""

    async def generate_image(
        prompt: str,
        model: ModelName = DEFAULT_MODEL,
        aspect_ratio: RatioName = "1:1",
        negative_prompt: str = "",
        seed: int | None = None,
        num_images: int = 1,
        request: gr.Request | None = None,
    ) -> ToolOutputs:
        api_key = caller_key(request.headers if request is not None else {})
        with _refusals_as_tool_errors():
            check_login(playground, api_key)
            run = await playground.start(
                prompt=prompt,
                model=model,
                aspect_ratio=aspect_ratio,
                negative_prompt=negative_prompt,
                num_images=num_images,
                seed="" if seed is None else seed,
                api_key=api_key,
                visitor=playground.visitor(request),
            )
        return await _tool_answer(run)

    generate_image.__doc__ = _tool_arguments_doc()
    # Not queued: Gradio then hands MCP every output as its own content blocks, with or
    # without a progress token (queued, a multi-output tool called without a token comes
    # back as one text dump). Progress goes to the MCP client directly instead.
    prices = playground.shown_prices
    tool = gr.api(
        generate_image, api_name=TOOL_NAME, api_description=tool_description(prices), queue=False
    )
    # MCP clients list the tools again at will: the description follows the live prices.
    registered = get_blocks_context().fns[tool["id"]]

    def describe_again() -> None:
        registered.api_description = tool_description(prices)

    prices.on_change = describe_again

    async def remix_image(
        prompt: str,
        images: list[str],
        aspect_ratio: RemixRatioName = "auto",
        output_resolution: ResolutionName = "1k",
        output_format: FormatName = "png",
        num_images: int = 1,
        request: gr.Request | None = None,
    ) -> ToolOutputs:
        api_key = caller_key(request.headers if request is not None else {})
        with _refusals_as_tool_errors():
            check_login(playground, api_key)
            with tempfile.TemporaryDirectory() as folder:  # kept (cleaned) before it goes
                paths = await fetch_sources(images, Path(folder), public=playground.policy.public)
                run = await playground.start_remix(
                    prompt=prompt,
                    sources=paths,
                    aspect_ratio=aspect_ratio,
                    output_resolution=output_resolution,
                    output_format=output_format,
                    num_images=num_images,
                    api_key=api_key,
                    visitor=playground.visitor(request),
                )
        return await _tool_answer(run)

    remix_image.__doc__ = _remix_arguments_doc()
    gr.api(
        remix_image,
        api_name=REMIX_TOOL_NAME,
        api_description=remix_description(),
        queue=False,  # as generate_image: image blocks with or without a progress token
    )


ProgressReporter = Callable[[Run], Awaitable[None]]


def _mcp_progress_reporter() -> ProgressReporter | None:
    """Sends the run's progress as MCP notifications, when the caller asked for them
    (a progress token); None outside an MCP call or without a token."""
    try:
        context = request_ctx.get()
    except LookupError:  # called through Gradio's own API, not MCP
        return None
    token = context.meta.progressToken if context.meta is not None else None
    if token is None:
        return None

    async def report(run: Run) -> None:
        await context.session.send_progress_notification(
            token,
            round(run.fraction() * 100, 1),
            100.0,
            message=run.describe(),
            related_request_id=str(context.request_id),
        )

    return report


async def _follow(run: Run, report: ProgressReporter | None) -> None:
    """Wait for the run, reporting each change of its words; a cancelled caller stops it."""
    said = None
    try:
        async for current in run.updates():
            words = (current.describe(), round(current.fraction(), 3))
            if report is None or words == said:
                continue
            said = words
            try:
                await report(current)
            except Exception as error:  # progress is a courtesy: the images still matter
                log.info("progress notifications stopped: %s", error)
                report = None
    except asyncio.CancelledError:
        await run.stop()  # the caller went away: stop polling for good
        raise


@contextmanager
def _refusals_as_tool_errors() -> Iterator[None]:
    """A run that may not start (bad input, no key, a limit): the page's message, as an
    MCP tool error."""
    try:
        yield
    except REFUSALS as refusal:
        raise ToolError(refusal.message, print_exception=False) from None


async def _tool_answer(run: Run) -> ToolOutputs:
    """A started run followed to its end (progress to the MCP client), then its images."""
    await _follow(run, _mcp_progress_reporter())
    return _tool_outputs(run)


def _tool_outputs(run: Run) -> tuple[ImageSlot | str, ...]:
    """The images as Gradio files with caption lines, then a summary; or a ToolError."""
    if not run.images:
        raise ToolError(_failure_message(run), print_exception=False)
    slots: list[ImageSlot | str] = []
    for index in range(MAX_IMAGES):
        if index < len(run.images):
            image = run.images[index]
            file = FileData(path=str(image.path), orig_name=image.path.name, mime_type="image/png")
            size = f"{image.width}x{image.height}"
            caption = f"Image {index + 1} of {run.total}: {image.caption} · {size}"
            slots += [file, caption]
        else:
            slots += ["", ""]
    summary = run.describe()
    if run.errors:
        summary += f" · {len(run.errors)} failed: {_failure_message(run)}"
    return (*slots, summary)


def _failure_message(run: Run) -> str:
    if run.status is RunStatus.STOPPED:
        return "The generation was stopped before its images were ready. Call the tool again."
    messages = dict.fromkeys(error.message for error in run.errors)
    return " ".join(messages) or "No image came back. Try again."


def caller_key(headers: Any) -> str:
    """The RunAPI key a caller spends, or "" for none (the server's key or the demo).

    `X-RunAPI-Key`, else `Authorization: Bearer`. Not a key: `none` (clients such as the
    `openai` package and Hermes insist on sending one), and a Hugging Face token
    (`hf_…`), which opens a private Space and is never sent on to RunAPI.
    """
    key = (headers.get("x-runapi-key") or "").strip()
    if not key:
        scheme, _, bearer = (headers.get("authorization") or "").strip().partition(" ")
        key = bearer.strip() if scheme.lower() == "bearer" else ""
    return "" if key.lower() == "none" or key.startswith("hf_") else key


def check_login(playground: Playground, api_key: str) -> None:
    """Behind a login (`RUNAPI_UI_AUTH`), agents spend only their own key.

    Gradio's login guards the page, but neither its MCP server nor our own routes, and
    an agent cannot log in: without this, a keyless agent would spend the server's key
    (or the demo) that the login is there to protect.
    """
    if playground.settings.auth and not api_key:
        raise KeyRequired(
            "This server asks for a login, which agents cannot give: send your own RunAPI "
            "key (Authorization: Bearer <key>, or X-RunAPI-Key: <key>)."
        )


# --- the OpenAI-compatible endpoint ----------------------------------------------------


class InvalidRequest(Exception):
    """A request body OpenAI's API would refuse: 400, naming the parameter."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class ImagesRequest:
    """An OpenAI images request, read into the playground's terms."""

    prompt: str
    model: str
    aspect_ratio: str
    n: int
    response_format: str
    negative_prompt: str = ""
    seed: int | None = None

    def fingerprint(self) -> str:
        """What makes two requests the same generation (the answer's format does not)."""
        fields = (
            self.prompt,
            self.model,
            self.aspect_ratio,
            self.n,
            self.negative_prompt,
            self.seed,
        )
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def ratio_for_size(size: str, ratios: tuple[str, ...] = ASPECT_RATIOS, *, auto: str = "1:1") -> str:
    """OpenAI's `size` as the nearest of `ratios`; `auto` is `auto` (for text to image,
    square)."""
    if size.strip().lower() == "auto":
        return auto
    width, height = _size(size)
    wanted = math.log(width / height)
    fixed = [ratio for ratio in ratios if ratio != "auto"]
    return min(fixed, key=lambda ratio: abs(math.log(_ratio_value(ratio)) - wanted))


def resolution_for_size(size: str) -> str:
    """OpenAI's `size` as a remix's output resolution: by its longer side (`auto`: 1k)."""
    if size.strip().lower() == "auto":
        return "1k"
    side = max(_size(size))
    return "1k" if side <= 1024 else "2k" if side <= 2048 else "4k"


def _size(size: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", size)
    if not match or not int(match[1]) or not int(match[2]):
        raise InvalidRequest(
            "size", f"size must be WIDTHxHEIGHT (e.g. 1024x1024) or auto; got {size!r}."
        )
    return int(match[1]), int(match[2])


def _ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def model_for(name: str | None) -> str:
    """An Imagen 4 model by its name; any other name (`gpt-image-2`, `dall-e-3`) is the
    default model."""
    return name if name in MODELS else DEFAULT_MODEL


def images_request(body: Any) -> ImagesRequest:
    """The body of `POST /v1/images/generations`, checked field by field."""
    if not isinstance(body, dict):
        raise InvalidRequest(None, "The body must be a JSON object.")
    prompt = _field(body, "prompt", str, required=True)
    model = _field(body, "model", str)
    size = _field(body, "size", str) or "auto"
    explicit_ratio = _field(body, "aspect_ratio", str)
    n, response_format = _count_and_format(body, model)
    ratio = explicit_ratio if explicit_ratio else ratio_for_size(size)
    return ImagesRequest(
        prompt=prompt,
        model=model_for(model),
        aspect_ratio=ratio,
        n=n,
        response_format=response_format,
        negative_prompt=_field(body, "negative_prompt", str) or "",
        seed=_field(body, "seed", int),
    )


def _count_and_format(body: dict[str, Any], model: str | None) -> tuple[int, str]:
    """`n` and `response_format`, as generations and edits both read them."""
    n = _field(body, "n", int)
    n = 1 if n is None else n
    if not 1 <= n <= MAX_IMAGES:
        raise InvalidRequest("n", f"n must be from 1 to {MAX_IMAGES}; got {n}.")
    # OpenAI's own default differs by model: URLs from dall-e-*, base64 from gpt-image-*
    # (whose clients read `b64_json` and do not send the field); base64 for ours too.
    default_format = "url" if (model or "").startswith("dall-e") else "b64_json"
    response_format = _field(body, "response_format", str) or default_format
    if response_format not in ("url", "b64_json"):
        raise InvalidRequest(
            "response_format", f"response_format must be url or b64_json; got {response_format!r}."
        )
    _field(body, "quality", str)  # accepted for compatibility; the model decides quality
    return n, response_format


async def edits_request(request: Request) -> tuple[ImagesRequest, str, list[UploadFile]]:
    """The multipart body of `POST /v1/images/edits`: the request (its resolution from
    `size`) and the source files (`image`, or `image[]` as the `openai` package sends
    several)."""
    try:
        form = await request.form(max_files=REMIX_MAX_SOURCES + 1, max_fields=32)
    except Exception:  # Starlette's MultiPartException and friends: not a usable form
        raise InvalidRequest(
            None, "The body must be multipart/form-data with image files and a prompt."
        ) from None
    files = [
        item
        for name in ("image", "image[]")
        for item in form.getlist(name)
        if isinstance(item, UploadFile)
    ]
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if isinstance(fields.get("n"), str):
        n = fields["n"].strip()
        fields["n"] = int(n) if n.isdigit() else n  # a form's fields are text
    if not files:
        raise InvalidRequest("image", "Missing required parameter: image (1 to 8 files).")
    prompt = _field(fields, "prompt", str, required=True)
    model = _field(fields, "model", str)
    size = _field(fields, "size", str) or "auto"
    n, response_format = _count_and_format(fields, model)
    wanted = ImagesRequest(
        prompt=prompt,
        model=REMIX_MODEL,
        aspect_ratio=ratio_for_size(size, REMIX_ASPECT_RATIOS, auto="auto"),
        n=n,
        response_format=response_format,
    )
    return wanted, resolution_for_size(size), files


def _field(body: dict[str, Any], name: str, kind: type, *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(name, f"Missing required parameter: {name}.")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequest(name, f"{name} must be a {_JSON_TYPES[kind]}; got {value!r}.")
    return value


_JSON_TYPES = {str: "string", int: "whole number"}


@dataclass(frozen=True)
class ErrorKind:
    """How one kind of failure looks to an OpenAI client."""

    status: int
    type: str
    code: str


# By class, most specific first. A retry is invited only where nothing was sent to
# RunAPI (see `error_response`): everything else answers `x-should-retry: false`, since
# tasks that were created are paid for whether or not we waited for them.
_ERROR_KINDS: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (InvalidRequest, ErrorKind(400, "invalid_request_error", "invalid_request")),
    (ValidationError, ErrorKind(400, "invalid_request_error", "invalid_value")),
    (AuthenticationError, ErrorKind(401, "invalid_request_error", "invalid_api_key")),
    (KeyRequired, ErrorKind(401, "invalid_request_error", "missing_api_key")),
    (InsufficientCreditsError, ErrorKind(402, "insufficient_quota", "insufficient_quota")),
    (QuotaExceeded, ErrorKind(429, "rate_limit_error", "quota_exceeded")),
    (ServerBusy, ErrorKind(503, "server_error", "server_busy")),
    (LimitsUnavailable, ErrorKind(503, "server_error", "limits_unavailable")),
    (RateLimitError, ErrorKind(429, "rate_limit_error", "rate_limit_exceeded")),
    (TaskFailedError, ErrorKind(500, "server_error", "generation_failed")),
    (TaskTimeoutError, ErrorKind(504, "server_error", "timeout")),
    (ModelUnavailableError, ErrorKind(503, "server_error", "model_unavailable")),
    (ServerError, ErrorKind(502, "server_error", "upstream_error")),
    (NetworkError, ErrorKind(502, "server_error", "upstream_unreachable")),
    (ImageDownloadError, ErrorKind(502, "server_error", "image_download_failed")),
)
_INTERNAL = ErrorKind(500, "server_error", "internal_error")
_PARAMS = {"num_images": "n"}  # the playground's field names, in OpenAI's words
MAX_RETRY_AFTER = 60.0  # the `openai` package waits at most this long for a Retry-After


def error_kind(error: BaseException) -> ErrorKind:
    return next((kind for cls, kind in _ERROR_KINDS if isinstance(error, cls)), _INTERNAL)


def error_response(error: BaseException, *, message: str | None = None) -> JSONResponse:
    """OpenAI's error shape, `{"error": {message, type, param, code}}`, with its status."""
    kind = error_kind(error)
    param = getattr(error, "param", None) or getattr(error, "field", None)
    body = {
        "error": {
            "message": message or getattr(error, "message", None) or str(error),
            "type": kind.type,
            "param": _PARAMS.get(param, param),
            "code": kind.code,
        }
    }
    retry_at = getattr(error, "retry_at", None)
    retry_after = _seconds_until(retry_at)
    # Only our own limits refuse before anything reaches RunAPI: invite a retry when
    # waiting a little can help (a full server; a quota that frees up within a minute).
    retry = isinstance(error, ServerBusy) or (
        isinstance(error, QuotaExceeded) and retry_at is not None and retry_after <= MAX_RETRY_AFTER
    )
    headers = {"x-should-retry": "true" if retry else "false"}
    if retry_after:
        headers["retry-after"] = str(math.ceil(retry_after))
    return JSONResponse(body, status_code=kind.status, headers=headers)


def _seconds_until(unix_time: float | None) -> float:
    return 0.0 if unix_time is None else max(0.0, unix_time - time.time())


class ImagesEndpoint:
    """`POST /v1/images/generations`: one synchronous call for a whole generation."""

    def __init__(self, playground: Playground, shared: SharedRuns | None = None) -> None:
        self.playground = playground
        self.shared = shared or SharedRuns()

    async def generations(self, request: Request) -> Response:
        try:
            return await self._generations(request)
        except Exception as error:  # a bug of ours: say so in OpenAI's shape, never retry
            log.exception("unexpected failure in %s", IMAGES_PATH)
            return error_response(error, message=UNEXPECTED_AGENT_MESSAGE)

    async def _generations(self, request: Request) -> Response:
        try:
            wanted = images_request(await _json_body(request))
        except InvalidRequest as invalid:
            return error_response(invalid)

        def start(api_key: str) -> Awaitable[Run]:
            return self.playground.start(
                prompt=wanted.prompt,
                model=wanted.model,
                aspect_ratio=wanted.aspect_ratio,
                negative_prompt=wanted.negative_prompt,
                num_images=wanted.n,
                seed="" if wanted.seed is None else wanted.seed,
                api_key=api_key,
                visitor=self.playground.visitor(request),
            )

        return await self._shared_answer(request, wanted, (wanted.fingerprint(),), start)

    async def edits(self, request: Request) -> Response:
        """`POST /v1/images/edits`: a remix of the uploaded images, answered when done."""
        try:
            return await self._edits(request)
        except Exception as error:
            log.exception("unexpected failure in %s", EDITS_PATH)
            return error_response(error, message=UNEXPECTED_AGENT_MESSAGE)

    async def _edits(self, request: Request) -> Response:
        try:
            wanted, resolution, files = await edits_request(request)
        except InvalidRequest as invalid:
            return error_response(invalid)
        # The uploads are saved where the run's start reads them (it checks, cleans and
        # keeps them before anything is sent). The start removes the folder once done; this
        # request does if it never started (refused, or attached to an earlier attempt's run).
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="edits-"))
        started = False
        try:
            paths, sources_digest = await _saved_uploads(files, folder)

            async def start(api_key: str) -> Run:
                nonlocal started
                started = True
                try:
                    return await self.playground.start_remix(
                        prompt=wanted.prompt,
                        sources=paths,
                        aspect_ratio=wanted.aspect_ratio,
                        output_resolution=resolution,
                        num_images=wanted.n,
                        api_key=api_key,
                        visitor=self.playground.visitor(request),
                    )
                finally:
                    await asyncio.to_thread(shutil.rmtree, folder, True)

            what = (wanted.fingerprint(), resolution, sources_digest)
            return await self._shared_answer(request, wanted, what, start)
        finally:
            if not started:
                await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _shared_answer(
        self,
        request: Request,
        wanted: ImagesRequest,
        what: tuple[str, ...],
        start: Callable[[str], Awaitable[Run]],
    ) -> Response:
        """The answer of the run started by `start(api_key)`, or of the run a retry of the
        same request (`what` it asks for, by the same caller) already started: the
        `openai` package retries a dropped connection, and created tasks are paid."""
        api_key = caller_key(request.headers)
        idempotency_key = request.headers.get("idempotency-key", "").strip()
        # A different body under the same Idempotency-Key is a different run.
        key = (self._caller(api_key, request), *what, idempotency_key)
        try:
            check_login(self.playground, api_key)
            run = await self.shared.attach(
                key, lambda: start(api_key), explicit=bool(idempotency_key)
            )
        except REFUSALS as refusal:
            return error_response(refusal)
        answered = False
        try:
            if not await _finished_while_connected(run, request):
                log.info("agent run %s: the caller disconnected while waiting", run.id[:6])
                return Response(status_code=499)  # nobody reads it
            response = await self._answer(run, wanted, request)
            answered = response.status_code == 200
            return response
        finally:
            self.shared.detach(key, run, answered=answered)

    def _caller(self, api_key: str, request: Request) -> str:
        """Who is asking, for sharing runs: their key's hash, or as the quotas know them."""
        if api_key:
            return "key:" + hashlib.sha256(api_key.encode()).hexdigest()
        return "visitor:" + ",".join(self.playground.visitor(request).ids())

    async def _answer(self, run: Run, wanted: ImagesRequest, request: Request) -> Response:
        if not run.images:
            error = run.errors[0] if run.errors else RunAPIError("")
            return error_response(error, message=_failure_message(run))
        root = get_root_url(
            request, route_path=request.url.path, root_path=request.scope.get("root_path")
        )
        data = []
        for image in run.images:
            if wanted.response_format == "b64_json":
                data.append({"b64_json": await asyncio.to_thread(png_base64, image.path)})
            else:
                data.append({"url": file_url(root, image.path)})
        return JSONResponse({"created": int(time.time()), "data": data})


UNEXPECTED_AGENT_MESSAGE = (
    "Something unexpected went wrong in the playground. Try again later, and if it repeats, "
    "report it with the server log."
)


async def _saved_uploads(files: list[UploadFile], folder: Path) -> tuple[list[Path], str]:
    """The uploaded files in `folder` (at most a byte over the source limit read of
    each: the check refuses anything larger), named as the caller named them; and a hash
    of their bytes in order, which a retry of the same request sends again."""
    paths = []
    digest = hashlib.sha256()
    for index, file in enumerate(files):
        name = Path(file.filename or "").name or f"image[{index}]"
        path = folder / str(index) / name  # a folder each: two may share a name
        path.parent.mkdir()
        data = await file.read(MAX_SOURCE_BYTES + 1)
        digest.update(len(data).to_bytes(8, "big"))  # with the lengths, no two lists alike
        digest.update(data)
        await asyncio.to_thread(path.write_bytes, data)
        paths.append(path)
    return paths, digest.hexdigest()


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise InvalidRequest(None, "The body is not valid JSON.") from None


async def _finished_while_connected(run: Run, request: Request) -> bool:
    """Wait for the run (its own deadline bounds it); False if the caller went away first."""
    async for _ in run.updates():
        if await request.is_disconnected():
            return False
    return True


def file_url(root_url: str, path: Path) -> str:
    """The absolute URL at which Gradio serves `path` (under the app's allowed image folder)."""
    return f"{root_url}/gradio_api/file={encode_file_path(path)}"


def png_base64(path: Path) -> str:
    """The image as base64 PNG, converting if RunAPI sent another format."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.save(out, format="PNG")
            data = out.getvalue()
    return base64.b64encode(data).decode("ascii")


def agent_routes(playground: Playground) -> list[BaseRoute]:
    """The routes to pass to `launch(app_kwargs={"routes": ...})`."""
    endpoint = ImagesEndpoint(playground)
    return [
        Route(IMAGES_PATH, endpoint.generations, methods=["POST"]),
        Route(EDITS_PATH, endpoint.edits, methods=["POST"]),
    ]
