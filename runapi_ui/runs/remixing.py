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
import base64
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..runapi.catalog import REMIX_MAX_SOURCES, REMIX_PRICE_CENTS
from ..runapi.errors import ValidationError
from ..runapi.files import UploadedFile
from ..runapi.remix import RemixRequest
from ..runapi.sources import GONE, MAX_SOURCE_BYTES, SourceRefused, check_source_count, read_source
from ..storage.images import ImageStore

# Stands in for the sources while the settings are checked: the run sets the real URLs.
_NOT_YET_UPLOADED = ("https://runapi.invalid/not-yet-uploaded",)


class Uploader(Protocol):
    """What uploads a run's sources: its RunAPIClient, or one in the worker process."""

    async def upload_kept(self, paths: Sequence[Path]) -> tuple[UploadedFile, ...]: ...


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
    file is a ValidationError naming it, and nothing is kept.

    One at a time, each kept as soon as it is cleaned: eight cleaned 4 MB sources held
    together, beside the pixels of the one being cleaned, were the app's peak."""

    def keep() -> tuple[Path, ...]:
        check_source_count(paths)
        kept: list[Path] = []
        try:
            for index, path in enumerate(paths, 1):
                source = read_source(Path(path))
                kept.append(store.keep(source.data, f"source_{index}", source.extension))
        except BaseException:
            for done in kept:  # a later one was bad: nothing is kept
                done.unlink(missing_ok=True)
            raise
        return tuple(kept)

    return await asyncio.to_thread(keep)


def kept_sources(store: ImageStore, untrusted: Sequence[object]) -> tuple[Path, ...]:
    """A history entry's sources as our own files, or a ValidationError if any is gone."""
    paths = tuple(store.resolve(path) for path in untrusted)
    if not paths or any(path is None for path in paths):
        raise SourceRefused(
            "This remix's source images are no longer on this server: add them again in "
            "Remix mode.",
            reason=GONE,
        )
    return tuple(path for path in paths if path is not None)


async def upload_kept(client: Uploader, paths: Sequence[Path]) -> tuple[str, ...]:
    """Upload kept sources on `client`'s key; the URLs, in order, for the run's requests."""
    return tuple(uploaded.url for uploaded in await client.upload_kept(paths))


def file_paths(files: Any) -> list[str]:
    """A gr.File's value (paths, or one path) as the list of paths it names."""
    if not isinstance(files, list):
        files = [] if files is None else [files]
    return [str(item) for item in files if isinstance(item, str | Path)]


_URL_QUERY = re.compile(r"(https?://[^\s'\"?#]+)[?#][^\s'\"]*")


def without_url_queries(text: str) -> str:
    """`text` with every URL's query string cut (a source URL RunAPI issued may be signed,
    and its answers may quote it): what a run keeps of an error, for the history."""
    return _URL_QUERY.sub(r"\1?…", text)


def price_usd(output_resolution: str) -> float:
    """RunAPI's published price of one remixed image at this resolution."""
    return REMIX_PRICE_CENTS.get(output_resolution, max(REMIX_PRICE_CENTS.values())) / 100


# --- sources an agent names: URLs or data URIs ----------------------------------------

FETCH_SECONDS = 20.0


async def fetch_sources(references: Any, folder: Path, *, public: bool) -> list[Path]:
    """Sources an agent names (http(s) URLs or `data:image/...;base64,` URIs) as files in
    `folder`, for `keep_sources` to check; a ValidationError names the bad one. A public
    server fetches only from public addresses (no reaching into its own network)."""
    if not isinstance(references, list | tuple) or not all(
        isinstance(item, str) for item in references
    ):
        raise ValidationError("images must be a list of URLs or data URIs.", field="images")
    if not 1 <= len(references) <= REMIX_MAX_SOURCES:
        raise ValidationError(
            f"A remix takes 1 to {REMIX_MAX_SOURCES} source images; {len(references)} given.",
            field="images",
        )
    paths = []
    async with httpx.AsyncClient(timeout=FETCH_SECONDS, follow_redirects=False) as http:
        for index, reference in enumerate(references):
            name = f"images[{index}]"
            data = await _fetched(http, reference.strip(), name, public=public)
            path = folder / name
            await asyncio.to_thread(path.write_bytes, data)
            paths.append(path)
    return paths


async def _fetched(http: httpx.AsyncClient, reference: str, name: str, *, public: bool) -> bytes:
    if reference.startswith("data:"):
        header, _, payload = reference.partition(",")
        if not header.endswith(";base64") or len(payload) > MAX_SOURCE_BYTES * 4 // 3 + 4:
            raise _bad_reference(name, "is not a base64 data URI within 10 MB")
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError:
            raise _bad_reference(name, "is not valid base64") from None
    url = urlsplit(reference)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise _bad_reference(name, "is neither an http(s) URL nor a data URI")
    if public and not await _is_public_host(url.hostname, url.port or 443):
        raise _bad_reference(name, "names a private address; give a public URL or a data URI")
    try:
        async with http.stream("GET", reference) as answer:
            if answer.status_code != 200:
                raise _bad_reference(name, f"could not be fetched (HTTP {answer.status_code})")
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > MAX_SOURCE_BYTES:
                    raise _bad_reference(name, "is larger than 10 MB")
            return bytes(data)
    except httpx.HTTPError as error:
        raise _bad_reference(name, f"could not be fetched ({type(error).__name__})") from None


async def _is_public_host(host: str, port: int) -> bool:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_global for info in infos)


def _bad_reference(name: str, problem: str) -> ValidationError:
    return ValidationError(f"{name} {problem}.", field="images")
