"""A visitor's source images, checked and cleaned before any byte leaves this machine.

    sources = check_sources(["/tmp/gradio/…/IMG_0042.jpg", ...])  # CPU-bound: use a thread

Each must be a real JPEG, PNG or WebP image that decodes, within a byte and a pixel
limit (a decompression bomb is refused before it is decoded). It is turned upright
from its EXIF orientation and re-encoded from its pixels alone: EXIF (GPS above all),
XMP, text chunks, comments and thumbnails never reach RunAPI. An ICC profile is
applied to the pixels (converted to sRGB) and then dropped with the rest.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .catalog import REMIX_MAX_SOURCES
from .errors import ValidationError

MAX_SOURCE_BYTES = 10 * 2**20  # RunAPI documents 10 MB for another model's sources
MAX_SOURCE_PIXELS = 50_000_000  # a 48 MP phone photo passes; a bomb does not
MAX_SIDE = 4096  # Imagen 4 Pro draws at most 4k: more pixels only cost upload time
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 92
_SRGB = ImageCms.createProfile("sRGB")
# Why a source was refused (the page words each in the visitor's language).
COUNT, UNREADABLE, TOO_LARGE, NOT_ACCEPTED, TOO_MANY_PIXELS, NOT_AN_IMAGE, GONE = (
    "count",
    "unreadable",
    "too large",
    "not accepted",
    "too many pixels",
    "not an image",
    "gone",
)


class SourceRefused(ValidationError):
    """A remix's source image refused: `reason` says why, `file_name` which one, and
    `size_mb` or `image_format` what was wrong where the reason has one."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        file_name: str = "",
        count: int = 0,
        size_mb: str = "",
        image_format: str = "",
    ) -> None:
        super().__init__(message, field="source_image_urls")
        self.reason = reason
        self.file_name = file_name
        self.count = count
        self.size_mb = size_mb
        self.image_format = image_format


@dataclass(frozen=True)
class SourceImage:
    """A checked source: only its pixels, re-encoded (JPEG, or PNG if it has alpha)."""

    file_name: str  # the visitor's name for it, for messages; never sent
    data: bytes
    mime_type: str  # "image/jpeg" or "image/png"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "png" if self.mime_type == "image/png" else "jpg"


def check_sources(paths: Sequence[str | Path]) -> tuple[SourceImage, ...]:
    """Each file at `paths` checked and cleaned, or a ValidationError naming the bad one."""
    check_source_count(paths)
    return tuple(read_source(Path(path)) for path in paths)


def check_source_count(paths: Sequence[object]) -> None:
    """A ValidationError unless there are 1 to REMIX_MAX_SOURCES sources."""
    if not 1 <= len(paths) <= REMIX_MAX_SOURCES:
        raise SourceRefused(
            f"A remix takes 1 to {REMIX_MAX_SOURCES} source images; {len(paths)} given. "
            + ("Add at least one image." if not paths else "Remove some images."),
            reason=COUNT,
            count=len(paths),
        )


def read_source(path: Path) -> SourceImage:
    """The file at `path`, checked and cleaned; its size is checked before it is read."""
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise _too_large(path.name, size)
        data = path.read_bytes()
    except OSError:
        raise SourceRefused(
            f"{path.name} could not be read. Choose the file again.",
            reason=UNREADABLE,
            file_name=path.name,
        ) from None
    return check_source(data, path.name)


def check_source(data: bytes, file_name: str) -> SourceImage:
    """`data` checked and cleaned, or a ValidationError that names `file_name`."""
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_large(file_name, len(data))
    try:
        # Pillow warns from 89 MP and refuses from 179 MP; here both refuse. (The filter
        # is process-wide, so a thread may miss it: our own pixel limit still holds.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ACCEPTED_FORMATS:
                    raise SourceRefused(
                        f"{file_name} is a {image.format} image; save it as JPEG, PNG or WebP "
                        "and add it again.",
                        reason=NOT_ACCEPTED,
                        file_name=file_name,
                        image_format=str(image.format),
                    )
                width, height = image.size
                if width * height > MAX_SOURCE_PIXELS:
                    raise _bomb(file_name, f"{width}x{height} pixels")
                image.load()
                return _cleaned(image, file_name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _bomb(file_name, "a hundred megapixels or more") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise SourceRefused(
            f"{file_name} is not an image that can be read (or it is damaged); choose a JPEG, "
            "PNG or WebP picture instead.",
            reason=NOT_AN_IMAGE,
            file_name=file_name,
        ) from None


def _cleaned(image: Image.Image, file_name: str) -> SourceImage:
    """The pixels alone, upright, in sRGB, at most MAX_SIDE on a side, freshly encoded.

    `image` is changed in place, and no step copies the pixels without a need (a 4 MB
    JPEG is ~11 MB of pixels a copy; five copies were the app's memory peak in a remix)."""
    ImageOps.exif_transpose(image, in_place=True)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    # CMYK stays CMYK until its profile (if any) has turned it into sRGB.
    pixels = image if image.mode in ("CMYK", mode) else image.convert(mode)
    icc = image.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            pixels = ImageCms.profileToProfile(pixels, profile, _SRGB, outputMode=mode)
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: the pixels as they are
    if pixels.mode != mode:
        pixels = pixels.convert(mode)
    pixels.thumbnail((MAX_SIDE, MAX_SIDE))
    # A fresh image with the pixels alone: no info, EXIF, XMP or text can ride along.
    clean = Image.new(mode, pixels.size)
    clean.paste(pixels)
    del pixels  # one copy less while the clean one is encoded
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, format="PNG", optimize=False, compress_level=6)
    else:
        clean.save(out, format="JPEG", quality=JPEG_QUALITY)
    data = out.getvalue()
    if len(data) > MAX_SOURCE_BYTES:  # a noisy 4096-pixel PNG can be: say what to do
        raise _too_large(file_name, len(data), cleaned=True)
    return SourceImage(
        file_name=file_name,
        data=data,
        mime_type="image/png" if has_alpha else "image/jpeg",
        width=clean.width,
        height=clean.height,
    )


def _too_large(file_name: str, size: int, *, cleaned: bool = False) -> SourceRefused:
    what = "Even re-encoded, it is" if cleaned else "It is"
    size_mb = f"{size / 2**20:.1f}"
    return SourceRefused(
        f"{file_name} is too large to remix. {what} {size_mb} MB; the limit is "
        f"{MAX_SOURCE_BYTES // 2**20} MB: save a smaller copy (fewer pixels, or JPEG) and add "
        "it again.",
        reason=TOO_LARGE,
        file_name=file_name,
        size_mb=size_mb,
    )


def _bomb(file_name: str, declared: str) -> SourceRefused:
    return SourceRefused(
        f"{file_name} declares {declared}, more than the {MAX_SOURCE_PIXELS // 1_000_000} MP "
        "a source may have, so it was not opened; save a smaller copy and add it again.",
        reason=TOO_MANY_PIXELS,
        file_name=file_name,
    )
