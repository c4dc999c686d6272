"""Where generated images live: unguessable files under one folder, and nothing else served.

Paths come back from the browser (its history), where a visitor can edit them, so a
path is only ever trusted after `resolve()` has checked it is one of our own files. Each
image's small preview (the history's tiles) is a file of the same folder, swept alike:
kept inline in the browser's history, previews made 93% of its bytes, and a page
unsealed and uploaded all of them at every load.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from ..runapi.client import AnyRequest, GeneratedImage
from ..runapi.remix import RemixRequest
from ..runapi.simulator import drawable, placeholder_font
from .pnginfo import ImageSettings, png_with_settings

log = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 192  # longest side: about 5 KB a preview
# A history tile without an image: a grey frame and a label of words (white on the
# label's grey: 7.6:1), on a transparent ground. PLACEHOLDER_LOOK names this look in the
# files' names: a page never gets an earlier look's file, and the sweep removes those.
PLACEHOLDER_SIDE = 384
PLACEHOLDER_FRAME = (124, 128, 146)  # 3:1 or more on white and on the dark theme's blocks
PLACEHOLDER_LABEL = (75, 85, 99)  # Tailwind's gray-600, the theme's neutral grey
PLACEHOLDER_LOOK = "labelled"
_PLACEHOLDER_PREFIX = f"placeholder-{PLACEHOLDER_LOOK}-"
_TOKEN_BYTES = 16  # 128 random bits in every file name
# What our own files are called: a readable prefix, then the random token (a remix's
# kept sources are `source_<n>_<token>.jpg` or `.png`, as sources.py encoded them).
_OUR_NAME = re.compile(r"^[a-z0-9.-]{1,40}_[0-9]{1,10}_[A-Za-z0-9_-]{20,}\.(png|webp|jpg)$")


@dataclass(frozen=True)
class SavedImage:
    """One generated image on disk, and how it was made."""

    path: Path
    request: AnyRequest
    task_id: str
    width: int
    height: int
    is_demo: bool
    created: float = field(default_factory=time.time)  # seconds since the epoch

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def seed(self) -> int | None:
        return self.request.seed

    @property
    def caption(self) -> str:
        request = self.request
        if isinstance(request, RemixRequest):
            caption = f"{request.model} · {request.aspect_ratio} · {request.output_resolution}"
        else:
            caption = f"{request.model} · {request.aspect_ratio} · seed {request.seed}"
        return f"Demo · {caption}" if self.is_demo else caption


class ImageStore:
    """Images under `folder`, named `<model>_<seed>_<random token>.png`."""

    def __init__(self, folder: Path, max_age_days: float = 7.0) -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_age_seconds = max_age_days * 86400

    async def save(
        self, image: GeneratedImage, request: AnyRequest, task_id: str, *, is_demo: bool
    ) -> SavedImage:
        """Write the image as a PNG that carries its settings, under a fresh unguessable
        name (off the event loop: it may mean re-encoding a JPEG or WebP)."""
        path = self.folder / f"{request.model}_{request.seed or 0}_{_token()}.png"
        settings = ImageSettings.from_request(
            request,
            task_id=task_id,
            source="demo" if is_demo else "RunAPI",
            width=image.width,
            height=image.height,
        )

        def write() -> None:
            path.write_bytes(png_with_settings(image.data, settings))

        await asyncio.to_thread(write)
        return SavedImage(path, request, task_id, image.width, image.height, is_demo)

    def keep(self, data: bytes, prefix: str, extension: str) -> Path:
        """Write `data` under a fresh unguessable name (swept with the images)."""
        path = self.folder / f"{prefix}_{_token()}.{extension}"
        path.write_bytes(data)
        return path

    def resolve(self, untrusted: object) -> Path | None:
        """`untrusted` as one of our existing files, or None: anything else is never served."""
        if not isinstance(untrusted, str) or not untrusted or "\x00" in untrusted:
            return None
        path = Path(untrusted)
        if not _OUR_NAME.match(path.name):
            return None
        if path.parent == self.folder:
            # As we wrote it: the folder is already resolved, so one lstat settles it (a
            # page redraws every history tile at each step of a run; a full resolve is an
            # lstat per path component).
            try:
                return path if stat.S_ISREG(path.lstat().st_mode) else None
            except OSError:
                return None
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if resolved.parent != self.folder or not resolved.is_file():
            return None
        return resolved

    def preview(self, image: Path) -> Path:
        """A small WebP of `image`, under a fresh unguessable name (swept with the images)."""
        return self.keep(thumbnail_webp(image), "preview_0", "webp")

    def thumbnail_file(self, data_url: object) -> Path | None:
        """A preview as an earlier version kept it, inline in the history (a data URL),
        as a file the gallery can show, or None."""
        if not isinstance(data_url, str) or not data_url.startswith("data:image/webp;base64,"):
            return None
        try:
            data = base64.b64decode(data_url.split(",", 1)[1], validate=True)
            with Image.open(io.BytesIO(data)) as thumb:
                if thumb.format != "WEBP" or max(thumb.size) > THUMBNAIL_PIXELS:
                    return None
        except (ValueError, OSError):
            return None
        # Named by content: showing the same entry again reuses the file.
        digest = hashlib.sha256(data).hexdigest()[:32]
        path = self.folder / f"thumbnail_0_{digest}.webp"
        if not path.exists():
            path.write_bytes(data)
        return path

    def placeholder(self, words: str) -> Path:
        """A tile for a history entry without an image (still running, failed, stopped,
        expired) that says so in `words`, in the page's language (Noto Sans CJK draws
        Chinese where it is installed, as for the demo's images).

        Its ground is transparent, so it sits on the page's own colour, light or dark;
        the words are white on a dark grey label, which reads on either."""
        digest = hashlib.sha256(words.encode()).hexdigest()[:16]
        path = self.folder / f"{_PLACEHOLDER_PREFIX}{digest}.png"
        if not path.exists():
            side, centre = PLACEHOLDER_SIDE, PLACEHOLDER_SIDE // 2
            image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
            draw = ImageDraw.Draw(image)
            draw.rounded_rectangle(
                (6, 6, side - 7, side - 7), radius=28, outline=PLACEHOLDER_FRAME, width=4
            )
            font = placeholder_font(38)
            text = drawable(font, words)
            left, top, right, bottom = draw.textbbox((centre, centre), text, font=font, anchor="mm")
            draw.rounded_rectangle(
                (left - 24, top - 16, right + 24, bottom + 16), radius=18, fill=PLACEHOLDER_LABEL
            )
            draw.text((centre, centre), text, fill="white", font=font, anchor="mm")
            image.save(path, format="PNG")
        return path

    def sweep(self) -> int:
        """Delete files older than the age limit, and tiles of an earlier look (drawn
        again in this one when asked for); return how many went."""
        cutoff = time.time() - self.max_age_seconds
        removed = 0
        for path in self.folder.iterdir():
            name = path.name
            outdated_tile = name.startswith("placeholder-") and not name.startswith(
                _PLACEHOLDER_PREFIX
            )
            try:
                if outdated_tile or (_OUR_NAME.match(name) and path.stat().st_mtime < cutoff):
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("swept %d images older than %.0f days", removed, self.max_age_seconds / 86400)
        return removed


def thumbnail_webp(path: Path) -> bytes:
    """A small WebP of the image, its shape kept."""
    with Image.open(path) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="WEBP", quality=60, method=4)
    return out.getvalue()


def _token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)
