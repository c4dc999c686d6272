"""What to remix: Imagen 4 Pro's request, drawn from 1 to 8 source images.

    urls = [f.url for f in await upload_sources(client, check_sources(paths))]  # files.py
    result = await client.generate(RemixRequest(prompt="...", source_image_urls=urls))

A remix goes through the client's task machinery (submit, wait, generate) like text to
image; only its body and its path differ. It takes no seed and no negative prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from .catalog import (
    REMIX_ASPECT_RATIOS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_MODEL,
    REMIX_PROMPT_MAX_CHARS,
    REMIX_RESOLUTIONS,
)
from .errors import ValidationError

REMIX_PATH = "/api/v1/imagen_4/remix_image"  # the official SDK's; status at {path}/{id}


def checked_prompt(prompt: str | None, limit: int, *, field: str = "prompt") -> str:
    """`prompt` trimmed, or a ValidationError: empty, or longer than `limit` characters."""
    text = (prompt or "").strip()
    if not text:
        raise ValidationError("Enter a prompt: it is empty.", field=field)
    if len(text) > limit:
        raise ValidationError(
            f"The prompt is {len(text)} characters; shorten it to at most {limit}.",
            field=field,
        )
    return text


def checked_choice(value: str, choices: tuple[str, ...], *, field: str, what: str) -> None:
    """A ValidationError naming `field` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValidationError(
            f"Imagen 4 Pro remix does not take {what} {value!r}: choose one of "
            f"{', '.join(choices)}.",
            field=field,
        )


@dataclass(frozen=True, kw_only=True)
class RemixRequest:
    """A remix of `source_image_urls` (URLs RunAPI's file API issued, valid ~1 hour)."""

    create_paths: ClassVar[tuple[str, ...]] = (REMIX_PATH,)
    # The model takes neither; None lets what shows any request (captions, history) read them.
    seed: ClassVar[None] = None
    negative_prompt: ClassVar[None] = None

    prompt: str
    source_image_urls: tuple[str, ...]
    aspect_ratio: str = "auto"
    output_resolution: str = "1k"
    output_format: str = "png"
    model: str = REMIX_MODEL

    def validated(self) -> RemixRequest:
        """This request with the prompt trimmed, or a ValidationError naming the field."""
        prompt = checked_prompt(self.prompt, REMIX_PROMPT_MAX_CHARS)
        if self.model != REMIX_MODEL:
            raise ValidationError(
                f"Unknown remix model {self.model!r}: the only one is {REMIX_MODEL}.",
                field="model",
            )
        urls = tuple(self.source_image_urls)
        if not 1 <= len(urls) <= REMIX_MAX_SOURCES:
            raise ValidationError(
                f"A remix takes 1 to {REMIX_MAX_SOURCES} source images; {len(urls)} given.",
                field="source_image_urls",
            )
        for url in urls:
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise ValidationError(
                    f"The source {url!r} is not a web address: upload the image first.",
                    field="source_image_urls",
                )
        checked_choice(
            self.aspect_ratio, REMIX_ASPECT_RATIOS, field="aspect_ratio", what="aspect ratio"
        )
        checked_choice(
            self.output_resolution,
            REMIX_RESOLUTIONS,
            field="output_resolution",
            what="resolution",
        )
        checked_choice(
            self.output_format, REMIX_FORMATS, field="output_format", what="output format"
        )
        return replace(self, prompt=prompt, source_image_urls=urls)

    def to_body(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "source_image_urls": list(self.source_image_urls),
            "aspect_ratio": self.aspect_ratio,
            "output_resolution": self.output_resolution,
            "output_format": self.output_format,
        }
