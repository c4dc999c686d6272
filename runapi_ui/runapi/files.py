"""RunAPI's file API: how a local image becomes a source URL for a remix.

    uploaded = await upload_files(client, paths)  # checked and cleaned first (sources.py)
    request = RemixRequest(prompt="...", source_image_urls=tuple(f.url for f in uploaded))

`POST /api/v1/files` with the bytes as base64 (as the official SDK's FilesClient sends
a `source`) answers a URL that lasts about an hour: upload just before the remix.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .client import RunAPIClient
from .errors import RunAPIError
from .sources import SourceImage, check_sources

FILES_PATH = "/api/v1/files"


@dataclass(frozen=True)
class UploadedFile:
    """A file RunAPI holds for a while; `url` is what a remix names as a source."""

    url: str
    file_name: str | None = None
    size_bytes: int | None = None
    mime_type: str | None = None
    expires_at: str | None = None  # ISO 8601, as RunAPI wrote it

    @classmethod
    def from_answer(cls, body: Any) -> UploadedFile:
        """Read tolerantly (also wrapped in `data`); an answer without a URL is an error."""
        fields = body.get("data", body) if isinstance(body, dict) else {}
        fields = fields if isinstance(fields, dict) else {}
        url = fields.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise RunAPIError(
                "RunAPI took the image but its answer names no URL for it. Try again; if it "
                "persists, check RUNAPI_BASE_URL."
            )

        def text(name: str) -> str | None:
            value = fields.get(name)
            return value if isinstance(value, str) else None

        size = fields.get("size_bytes")
        return cls(
            url=url,
            file_name=text("file_name"),
            size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
            mime_type=text("mime_type"),
            expires_at=text("expires_at"),
        )


# One at a time: 32 MB of sources is bound by the link's bandwidth, not by round trips.
UPLOADS_AT_ONCE = 1


async def upload_source(client: RunAPIClient, source: SourceImage, index: int = 1) -> UploadedFile:
    """Upload one checked source. It goes as `source-<index>.<ext>`: the visitor's own
    file name (often a date, a place, a person) never leaves this machine."""
    body = {
        "source": {"type": "base64", "data": base64.b64encode(source.data).decode("ascii")},
        "file_name": f"source-{index}.{source.extension}",
    }
    return UploadedFile.from_answer(await client.request("POST", FILES_PATH, json=body))


async def upload_sources(
    client: RunAPIClient, sources: Sequence[SourceImage | Path]
) -> tuple[UploadedFile, ...]:
    """Upload the sources, UPLOADS_AT_ONCE at a time, in order; the first failure is
    raised and the rest are cancelled (and their errors retrieved, so asyncio logs none).
    A Path is a kept source (`read_kept`), read only when its turn comes.

    Not all at once, and not read ahead: each upload holds its source three times over
    while it is sent (the bytes, their base64, the JSON body), and eight sources of 4 MB
    sent together took the app and its worker ~300 MB above idle (`python -m bench
    --only uploads`)."""
    gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

    async def upload(source: SourceImage | Path, index: int) -> UploadedFile:
        async with gate:
            if isinstance(source, Path):
                source = await asyncio.to_thread(read_kept, source)
            return await upload_source(client, source, index)

    jobs = [asyncio.ensure_future(upload(source, index)) for index, source in enumerate(sources, 1)]
    try:
        return tuple(await asyncio.gather(*jobs))
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


def read_kept(path: Path) -> SourceImage:
    """A kept source as it was stored (checked and cleaned when it was kept), or a
    RunAPIError if it is gone."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        data = path.read_bytes()
    except OSError:
        raise RunAPIError(
            "The remix's source images are no longer on this server: add them again in Remix mode."
        ) from None
    mime_type = "image/png" if path.suffix == ".png" else "image/jpeg"
    return SourceImage(path.name, data, mime_type, width, height)


async def upload_files(
    client: RunAPIClient, paths: Sequence[str | Path]
) -> tuple[UploadedFile, ...]:
    """Check and clean every file first (off the event loop), then upload them all: one
    bad file (a ValidationError naming it) means nothing is sent."""
    sources = await asyncio.to_thread(check_sources, paths)
    return await upload_sources(client, sources)
