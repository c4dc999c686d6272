"""A remix run's sources: kept on this server, uploaded on the run's own key when it starts.

    requests = remix_requests(prompt, "auto", "1k", "png", count=2)  # settings checked
    kept = await keep_sources(store, paths)  # checked, cleaned (sources.py) and stored
    run = await playground.start_requests(requests, kind="remix", sources=kept)

The run itself uploads `kept` through RunAPI's file API (files.py) with the key that pays
for it, then creates its tasks with the URLs it got (`upload_kept`). The sources live in
the image store (unguessable names, swept with the images), not as upload URLs, which
expire after about an hour: Run again, a day later, uploads them again. The URLs exist
only in the run's requests in memory; PNG info and the history hold the sources' number
and their previews, never a URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from .catalog import REMIX_PRICE_CENTS
from .errors import RunAPIError, ValidationError
from .files import UploadedFile
from .images import ImageStore
from .remix import RemixRequest
from .sources import SourceImage, check_sources

# Stands in for the sources while the settings are checked: the run sets the real URLs.
_NOT_YET_UPLOADED = ("https://runapi.invalid/not-yet-uploaded",)


class Uploader(Protocol):
    """What uploads a run's sources: its RunAPIClient, or one in the worker process."""

    async def upload_sources(self, sources: Sequence[SourceImage]) -> tuple[UploadedFile, ...]: ...


def remix_requests(
    prompt: Any, aspect_ratio: Any, output_resolution: Any, output_format: Any, *, count: int
) -> list[RemixRequest]:
    """`count` checked remix requests without source URLs yet, or a ValidationError."""
    if prompt is not None and not isinstance(prompt, str):
        raise ValidationError("The prompt must be text.", field="prompt")
    checked = RemixRequest(
        prompt=prompt or "",
        source_image_urls=_NOT_YET_UPLOADED,
        aspect_ratio=str(aspect_ratio),
        output_resolution=str(output_resolution),
        output_format=str(output_format),
    ).validated()
    return [replace(checked, source_image_urls=())] * count


async def keep_sources(store: ImageStore, paths: Sequence[str | Path]) -> tuple[Path, ...]:
    """Each file checked and cleaned (off the event loop), then kept in `store`; one bad
    file is a ValidationError naming it, and nothing is kept."""

    def keep() -> tuple[Path, ...]:
        sources = check_sources(paths)
        return tuple(
            store.keep(source.data, f"source_{index}", source.extension)
            for index, source in enumerate(sources, 1)
        )

    return await asyncio.to_thread(keep)


def kept_sources(store: ImageStore, untrusted: Sequence[object]) -> tuple[Path, ...]:
    """A history entry's sources as our own files, or a ValidationError if any is gone."""
    paths = tuple(store.resolve(path) for path in untrusted)
    if not paths or any(path is None for path in paths):
        raise ValidationError(
            "This remix's source images are no longer on this server: add them again in "
            "Remix mode.",
            field="source_image_urls",
        )
    return tuple(path for path in paths if path is not None)


async def upload_kept(client: Uploader, paths: Sequence[Path]) -> tuple[str, ...]:
    """Upload kept sources on `client`'s key; the URLs, in order, for the run's requests."""
    try:
        sources = await asyncio.to_thread(lambda: tuple(_read_kept(path) for path in paths))
    except OSError:
        raise RunAPIError(
            "The remix's source images are no longer on this server: add them again in Remix mode."
        ) from None
    return tuple(uploaded.url for uploaded in await client.upload_sources(sources))


def _read_kept(path: Path) -> SourceImage:
    """A kept source as it was stored: checked and cleaned when it was kept."""
    with Image.open(path) as image:
        width, height = image.size
    mime_type = "image/png" if path.suffix == ".png" else "image/jpeg"
    return SourceImage(path.name, path.read_bytes(), mime_type, width, height)


def price_usd(output_resolution: str) -> float:
    """RunAPI's published price of one remixed image at this resolution."""
    return REMIX_PRICE_CENTS.get(output_resolution, max(REMIX_PRICE_CENTS.values())) / 100
