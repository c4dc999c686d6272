""" "Download all": a ZIP of saved images, each named for what it is, plus manifest.json.

    path = await build_zip_async(items, out_dir, title="Run of 12:04", images_root=image_dir)

Names read like `01_imagen-4_16x9_seed42_a-red-fox-in-snow.png`: a position (so two
images alike in everything still differ), the model, ratio and seed, and an ASCII slug
of the prompt; nothing of a name comes from a path, so none can climb out of the ZIP.
`manifest.json` holds the title, the time and each image's settings and file name; an
image no longer on disk is listed there as missing. The ZIP's own name is unguessable,
because Gradio serves any file in its cache to whoever knows the name.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .pnginfo import ImageSettings, utc_timestamp

MAX_EXPORT_IMAGES = 200  # a long session's history; beyond it, download a run at a time
MAX_EXPORT_BYTES = 400 * 1024 * 1024  # about 130 Imagen 4 PNGs at their largest
PROMPT_SLUG_CHARS = 48
TITLE_SLUG_CHARS = 40
MANIFEST_NAME = "manifest.json"


# Why a ZIP could not be built (the page words each in the visitor's language).
EMPTY, TOO_MANY, TOO_LARGE, UNWRITABLE = "empty", "too many", "too large", "unwritable"


class ExportError(Exception):
    """A ZIP could not be built; the message says what to do, `reason` why."""

    def __init__(self, message: str, *, reason: str, limit: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.limit = limit  # what TOO_MANY and TOO_LARGE passed: images, MiB


@dataclass(frozen=True)
class ExportItem:
    """An image file the playground saved, and how it was made."""

    path: Path | str
    settings: ImageSettings | Mapping[str, Any]


def build_zip(
    items: Iterable[ExportItem],
    out_dir: Path,
    *,
    title: str,
    images_root: Path | None = None,
) -> Path:
    """Write the ZIP under `out_dir` (made if missing) and return its path.

    With `images_root`, only files inside it are read: a path that came back from the
    browser may have been edited to point anywhere, and is listed as missing instead.
    Raises ExportError with nothing to export, or past MAX_EXPORT_IMAGES images or
    MAX_EXPORT_BYTES bytes. Blocking: from async code use `build_zip_async`.
    """
    items = list(items)
    if not items:
        raise ExportError(
            "There is nothing to download yet: generate an image first.", reason=EMPTY
        )
    if len(items) > MAX_EXPORT_IMAGES:
        raise ExportError(
            f"That is {len(items)} images; one download holds at most {MAX_EXPORT_IMAGES}. "
            "Download the current run instead, or clear older history first.",
            reason=TOO_MANY,
            limit=MAX_EXPORT_IMAGES,
        )
    root = images_root.resolve() if images_root is not None else None
    files = [_readable_file(Path(item.path), root) for item in items]
    total = sum(size for _, size in filter(None, files))
    if total > MAX_EXPORT_BYTES:
        raise ExportError(
            f"These images come to {total / 2**20:.0f} MiB; one download holds at most "
            f"{MAX_EXPORT_BYTES // 2**20} MiB. Download the current run instead, or clear "
            "older history first.",
            reason=TOO_LARGE,
            limit=MAX_EXPORT_BYTES // 2**20,
        )

    name = f"imagen-playground_{_slug(title, TITLE_SLUG_CHARS) or 'images'}"
    zip_path = out_dir / f"{name}_{secrets.token_urlsafe(16)}.zip"
    partial = zip_path.with_name(zip_path.name + ".part")  # never served half-written
    width = max(2, len(str(len(items))))
    entries = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            for index, (item, found) in enumerate(zip(items, files, strict=True), start=1):
                settings = _settings_dict(item.settings)
                entry: dict[str, Any] = {"file": None, "settings": settings}
                path = found[0] if found else None
                source = _opened(path) if path else None
                if path is None or source is None:
                    entry["missing"] = True
                else:
                    entry["file"] = image_file_name(index, settings, path.suffix, width)
                    info = zipfile.ZipInfo.from_file(path, entry["file"])
                    # Images are already compressed: stored, not deflated again.
                    with source, archive.open(info, "w") as target:
                        shutil.copyfileobj(source, target)
                entries.append(entry)
            manifest = {"title": title, "created": utc_timestamp(), "images": entries}
            archive.writestr(
                MANIFEST_NAME,
                json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
                compress_type=zipfile.ZIP_DEFLATED,
            )
        os.replace(partial, zip_path)
    except OSError as exc:
        raise ExportError(
            f"The download could not be written ({exc.strerror or type(exc).__name__}). "
            "Try again; if it persists, the server's disk may be full.",
            reason=UNWRITABLE,
        ) from None
    finally:
        with suppress(OSError):  # gone after the rename, or its folder was never made
            partial.unlink(missing_ok=True)
    return zip_path


async def build_zip_async(
    items: Iterable[ExportItem],
    out_dir: Path,
    *,
    title: str,
    images_root: Path | None = None,
) -> Path:
    """`build_zip` in a worker thread, so the event loop keeps serving other visitors."""
    return await asyncio.to_thread(
        build_zip, list(items), out_dir, title=title, images_root=images_root
    )


def image_file_name(
    index: int, settings: Mapping[str, Any], suffix: str = ".png", width: int = 2
) -> str:
    """`01_imagen-4_16x9_seed42_a-red-fox-in-snow.png`: parts that are unknown are left out."""
    seed = settings.get("seed")
    parts = [
        f"{index:0{width}d}",
        _slug(str(settings.get("model") or ""), 20),
        _slug(str(settings.get("aspect_ratio") or "").replace(":", "x"), 10),
        f"seed{seed}" if isinstance(seed, int) and not isinstance(seed, bool) else "",
        _slug(str(settings.get("prompt") or ""), PROMPT_SLUG_CHARS) or "image",
    ]
    extension = suffix.lower().lstrip(".")
    if not re.fullmatch(r"[a-z0-9]{1,5}", extension):
        extension = "png"
    return "_".join(part for part in parts if part) + f".{extension}"


def _slug(text: str, limit: int) -> str:
    """Lowercase ASCII words joined by `-`, cut at a word boundary within `limit`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word[:limit]
        if len(longer) > limit:
            break
        slug = longer
    return slug


def _readable_file(path: Path, root: Path | None) -> tuple[Path, int] | None:
    """The file and its size, or None when it is gone, not a file, or outside `root`."""
    try:
        resolved = path.resolve()
        if root is not None and not resolved.is_relative_to(root):
            return None
        if not resolved.is_file():
            return None
        return resolved, resolved.stat().st_size
    except OSError:
        return None


def _opened(path: Path) -> BinaryIO | None:
    """The file opened for reading, or None if it went away since it was checked."""
    try:
        return path.open("rb")
    except OSError:
        return None


def _settings_dict(settings: ImageSettings | Mapping[str, Any]) -> dict[str, Any]:
    return settings.to_dict() if isinstance(settings, ImageSettings) else dict(settings)
