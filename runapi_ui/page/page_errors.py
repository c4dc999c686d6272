"""Errors as the page says them, in the visitor's language.

`errors.py`, `quota.py` and `access.py` write English messages that scripts and agents
get as they are. The page translates by what went wrong (the error's class, and for the
playground's own input checks the field): the same advice in the visitor's language,
with what identifies the case kept verbatim (RunAPI's own words, the HTTP status, the
request id to quote to RunAPI's support). An error this does not know keeps its English.
"""

from __future__ import annotations

from ..runapi.catalog import (
    MODELS,
    PROMPT_MAX_CHARS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_PROMPT_MAX_CHARS,
    REMIX_RESOLUTIONS,
    SEED_MAX,
)
from ..runapi.errors import (
    UNEXPECTED_MESSAGE,
    AuthenticationError,
    ConflictError,
    ImageDownloadError,
    InsufficientCreditsError,
    ModelUnavailableError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RunAPIError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)
from ..runapi.sources import (
    COUNT,
    GONE,
    MAX_SOURCE_BYTES,
    MAX_SOURCE_PIXELS,
    NOT_ACCEPTED,
    NOT_AN_IMAGE,
    TOO_LARGE,
    TOO_MANY_PIXELS,
    UNREADABLE,
    SourceRefused,
)
from ..runs.access import KeyMalformed, KeyRequired
from ..runs.playground import MAX_IMAGES
from ..runs.quota import LimitError, LimitsUnavailable, QuotaExceeded, ServerBusy
from ..storage.exports import EMPTY, TOO_MANY, UNWRITABLE, ExportError
from ..storage.exports import TOO_LARGE as ZIP_TOO_LARGE
from ..storage.pnginfo import ImageSettingsError
from ..translations import ENGLISH, date_time, text
from .tabs import TabFull

# RunAPI's answers, by class: each message says what happened ({answer}: the status and
# RunAPI's words) and what to do.
_ANSWERS: dict[type[RunAPIError], str] = {
    AuthenticationError: "error.key_refused",
    InsufficientCreditsError: "error.no_credits",
    ValidationError: "error.request_refused",  # from RunAPI (400/422): it has a status
    NotFoundError: "error.not_found",
    ConflictError: "error.conflict",
    ServerError: "error.runapi_trouble",
    RunAPIError: "error.runapi_answer",
}
# Failures that carry no status worth showing.
_FAILURES: dict[type[RunAPIError], str] = {
    NetworkError: "error.network",
    ImageDownloadError: "error.image_download",
}
# The playground's own input checks, by the field they name.
_FIELDS: dict[str, str] = {
    "prompt": "error.prompt",
    "negative_prompt": "error.negative_prompt",
    "model": "error.model",
    "aspect_ratio": "error.aspect_ratio",
    "seed": "error.seed",
    "num_images": "error.num_images",
    "runs": "error.tab_runs",
    "source_image_urls": "error.sources",
    "output_resolution": "error.output_resolution",
    "output_format": "error.output_format",
}
# Why a ZIP could not be built.
_EXPORTS: dict[str, str] = {
    EMPTY: "toast.zip_empty",
    TOO_MANY: "toast.zip_too_many",
    ZIP_TOO_LARGE: "toast.zip_too_large",
    UNWRITABLE: "toast.zip_unwritable",
}
# Why a remix's source image was refused.
_SOURCES: dict[str, str] = {
    COUNT: "error.sources_count",
    UNREADABLE: "error.source_unreadable",
    TOO_LARGE: "error.source_too_large",
    NOT_ACCEPTED: "error.source_format",
    TOO_MANY_PIXELS: "error.source_pixels",
    NOT_AN_IMAGE: "error.source_not_image",
    GONE: "error.sources_gone",
}
# What those messages may name: the rule that was broken, not the value.
_RULES: dict[str, object] = {
    "prompt_max": PROMPT_MAX_CHARS,
    "remix_prompt_max": REMIX_PROMPT_MAX_CHARS,
    "seed_max": SEED_MAX,
    "images_max": MAX_IMAGES,
    "sources_max": REMIX_MAX_SOURCES,
    "models": ", ".join(MODELS),
    "resolutions": ", ".join(REMIX_RESOLUTIONS),
    "formats": ", ".join(REMIX_FORMATS),
    "source_mb_max": MAX_SOURCE_BYTES // 2**20,
    "source_mp_max": MAX_SOURCE_PIXELS // 1_000_000,
}


def page_message(language: str, error: BaseException) -> str:
    """What the page says of `error` (plain text: the caller escapes it)."""
    english = str(getattr(error, "message", error))
    if language == ENGLISH:
        return english  # the very words scripts and agents get
    message = _translated(language, error)
    if message is None:
        return english
    request_id = getattr(error, "client_request_id", None) or getattr(error, "request_id", None)
    if request_id:
        message += text(language, "error.request_id", request_id=request_id)
    return message


def _translated(language: str, error: BaseException) -> str | None:
    """The message in `language`, without the request id; None for an error not known."""
    if isinstance(error, (LimitError, KeyRequired, TabFull)):
        return _refusal(language, error)
    if isinstance(error, SourceRefused):
        return text(
            language,
            _SOURCES[error.reason],
            file=error.file_name,
            count=error.count,
            size_mb=error.size_mb,
            image_format=error.image_format,
            **_RULES,
        )
    if isinstance(error, ExportError):
        return text(language, _EXPORTS[error.reason], limit=error.limit)
    if isinstance(error, ImageSettingsError):
        # Its English says what the file is instead; here, what to do.
        return text(language, "toast.no_settings")
    if not isinstance(error, RunAPIError):
        return None
    if isinstance(error, ValidationError) and error.status is None:
        key = _FIELDS.get(error.field or "")
        # A source's English names the file and what is wrong with it: kept verbatim.
        return text(language, key, detail=error.message, **_RULES) if key else None
    if isinstance(error, TaskFailedError):
        return text(language, "error.task_failed", reason=error.reason)
    if isinstance(error, TaskTimeoutError):
        return text(language, "error.task_timeout", task_id=error.task_id)
    if isinstance(error, ModelUnavailableError):
        return text(language, "error.model_unavailable", model=error.model)
    if isinstance(error, RateLimitError):
        answer = _answer(language, error)
        if error.retry_after:
            return text(
                language, "error.rate_limited", answer=answer, seconds=f"{error.retry_after:.0f}"
            )
        return text(language, "error.rate_limited_moment", answer=answer)
    for kind, key in _FAILURES.items():
        if isinstance(error, kind):
            return text(language, key)
    if error.message == UNEXPECTED_MESSAGE:
        return text(language, "error.unexpected")
    if error.status is None:
        return None  # a message of the client's own, with no class of its own
    return text(language, _ANSWERS[_answer_class(error)], answer=_answer(language, error))


def _answer_class(error: RunAPIError) -> type[RunAPIError]:
    """The nearest class `_ANSWERS` names (RunAPIError at worst)."""
    return next(kind for kind in type(error).__mro__ if kind in _ANSWERS)


def _answer(language: str, error: RunAPIError) -> str:
    """The HTTP status, with what RunAPI said verbatim when it said something."""
    if error.detail:
        return text(language, "error.answer_said", status=error.status, detail=error.detail)
    return text(language, "error.answer", status=error.status)


def _refusal(language: str, error: LimitError | KeyRequired | TabFull) -> str:
    """The playground's refusals before anything is sent: limits, caps, keys."""
    if isinstance(error, TabFull):
        return text(language, "error.tab_images", busy=error.busy, cap=error.cap)
    if isinstance(error, KeyMalformed):
        return text(language, "key.malformed")
    if isinstance(error, KeyRequired):
        return text(language, "key.required")
    if isinstance(error, QuotaExceeded) and error.retry_at is not None:
        return text(language, "quota.used_up", when=date_time(language, error.retry_at))
    if isinstance(error, QuotaExceeded):
        return text(language, "quota.too_many")
    if isinstance(error, ServerBusy):
        return text(language, "quota.busy")
    if isinstance(error, LimitsUnavailable):
        return text(language, "quota.unavailable")
    return error.message
