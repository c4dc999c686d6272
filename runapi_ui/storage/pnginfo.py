"""Images that carry their settings: PNG text chunks written and read back.

    png = png_with_settings(image_bytes, ImageSettings(model="imagen-4", prompt="a red fox"))
    settings = read_settings(png)  # also from a path, e.g. a file dropped on the page

Each PNG gets two iTXt (UTF-8) chunks: `parameters`, human-readable in the spirit of
AUTOMATIC1111's so existing PNG-info readers show it, and `imagen-playground`, JSON with
every field, which is what `read_settings` trusts. A PNG from another tool that has only
an A1111-style `parameters` chunk yields what that text says (prompt, negative prompt,
seed); fields it lacks, or holds values the playground cannot use, are None.

PNG input is never re-encoded: its chunks are spliced, so its pixel data and every other
chunk stay byte-for-byte. JPEG and WebP input is decoded once and written as lossless PNG.
Both functions are CPU-bound and synchronous: call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple

from PIL import Image

from ..runapi.catalog import (
    ASPECT_RATIOS,
    MODELS,
    REMIX_ASPECT_RATIOS,
    REMIX_MAX_SOURCES,
    REMIX_MODEL,
    REMIX_RESOLUTIONS,
    SEED_MAX,
)
from ..runapi.client import MAX_IMAGE_PIXELS, AnyRequest
from ..runapi.remix import RemixRequest

JSON_KEY = "imagen-playground"
PARAMETERS_KEY = "parameters"
MAX_FILE_BYTES = 50 * 1024 * 1024  # Imagen 4's PNGs are a few MB; more is not ours
MAX_TEXT_BYTES = 1024 * 1024  # per text chunk once inflated, as Pillow's own cap
# A 50 MB PNG in libpng's 8 KiB IDATs has ~6,400 chunks; millions of empty ones would
# cost seconds of CPU to walk, so a file with more is refused.
MAX_CHUNKS = 20_000

Source = Literal["RunAPI", "demo"]
SOURCES: tuple[Source, ...] = ("RunAPI", "demo")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_OUR_KEYS = (JSON_KEY.encode(), PARAMETERS_KEY.encode())
# Modes a PNG stores as they are; anything else (CMYK JPEGs) must become RGB(A).
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "P", "RGB", "RGBA"}
# One `Key: value` pair of an A1111 parameters line; a value with a comma is JSON-quoted.
_PARAMETER = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


class ImageSettingsError(Exception):
    """A file's settings could not be read or written; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def utc_timestamp() -> str:
    """Now, as ISO-8601 UTC to the second: `2025-06-01T12:00:00Z`."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """How an image was made. Every field but `prompt` may be None: a file from another
    tool, or a value the playground cannot use (an unknown model, a seed out of range)."""

    prompt: str
    model: str | None = None
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    seed: int | None = None  # None: the service chose one
    task_id: str | None = None
    created: str | None = field(default_factory=utc_timestamp)  # ISO-8601 UTC, e.g. ...T12:00:00Z
    source: Source | None = None  # None: not made by the playground
    width: int | None = None
    height: int | None = None
    # A remix's: how many sources it drew from (never their URLs), and its resolution.
    source_images: int | None = None
    output_resolution: str | None = None

    @classmethod
    def from_request(
        cls,
        request: AnyRequest,
        *,
        task_id: str | None,
        source: Source,
        width: int | None = None,
        height: int | None = None,
        seed: int | None = None,
    ) -> ImageSettings:
        """The settings of one image of `request`. `seed` overrides the request's: the
        one the service reported, or seed+n for the n-th image of a run."""
        return cls(
            prompt=request.prompt,
            model=request.model,
            negative_prompt=request.negative_prompt,
            aspect_ratio=request.aspect_ratio,
            seed=request.seed if seed is None else seed,
            task_id=task_id,
            source=source,
            width=width,
            height=height,
            source_images=len(request.source_image_urls)
            if isinstance(request, RemixRequest)
            else None,
            output_resolution=getattr(request, "output_resolution", None),
        )

    @property
    def from_playground(self) -> bool:
        """Whether the playground made it (else: another tool's `parameters` text)."""
        return self.source is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSettings:
        """Tolerant: unknown keys are ignored; missing, mistyped or unusable values are
        None. Only a missing prompt is an error."""
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ImageSettingsError(
                "The image's settings are damaged: they hold no prompt. Use an image "
                "saved by the playground, or type the settings in."
            )
        source = data.get("source")
        return cls(
            prompt=prompt,
            model=_known(data.get("model"), (*MODELS, REMIX_MODEL)),
            negative_prompt=_text(data.get("negative_prompt")),
            aspect_ratio=_known(data.get("aspect_ratio"), (*ASPECT_RATIOS, *REMIX_ASPECT_RATIOS)),
            seed=_whole(data.get("seed"), 0, SEED_MAX),
            task_id=_text(data.get("task_id")),
            created=_text(data.get("created")),
            source=source if source in SOURCES else None,
            width=_whole(data.get("width"), 1, None),
            height=_whole(data.get("height"), 1, None),
            source_images=_whole(data.get("source_images"), 1, REMIX_MAX_SOURCES),
            output_resolution=_known(data.get("output_resolution"), REMIX_RESOLUTIONS),
        )

    def parameters_text(self) -> str:
        """The A1111-style text: prompt, `Negative prompt: …`, then one line of
        `Key: value` pairs (a value with a comma, quote or newline JSON-quoted)."""
        pairs = {
            "Model": self.model,
            "Aspect ratio": self.aspect_ratio,
            "Seed": None
            if self.model == REMIX_MODEL
            else "random"
            if self.seed is None
            else str(self.seed),
            "Remix of": f"{self.source_images} images" if self.source_images else None,
            "Resolution": self.output_resolution,
            "Size": f"{self.width}x{self.height}" if self.width and self.height else None,
            "Task": self.task_id,
            "Source": self.source,
        }
        line = ", ".join(f"{key}: {_quoted(value)}" for key, value in pairs.items() if value)
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        return "\n".join([*lines, line])


def png_with_settings(data: bytes, settings: ImageSettings) -> bytes:
    """`data` (PNG, JPEG or WebP) as a PNG carrying `settings` in its text chunks.

    The written width and height are the image's own, whatever `settings` says. Earlier
    `parameters` / `imagen-playground` chunks are replaced; all else of a PNG is kept.
    Raises ImageSettingsError for data that is not a usable image.
    """
    _check_byte_count(len(data))
    png = data if data.startswith(PNG_SIGNATURE) else _encode_png(data)
    chunks = _png_chunks(png)
    width, height = _checked_size(png)
    settings = replace(settings, width=width, height=height)
    stamp = _itxt_chunk(PARAMETERS_KEY, settings.parameters_text()) + _itxt_chunk(
        JSON_KEY, json.dumps(settings.to_dict(), ensure_ascii=False)
    )
    # Before the first IDAT: readers that stop at the pixel data (Pillow's open) see it.
    out = [png[: len(PNG_SIGNATURE)]]
    for chunk in chunks:
        if chunk.type == b"IDAT" and stamp:
            out.append(stamp)
            stamp = b""
        if not (chunk.type in _TEXT_CHUNKS and _keyword(png, chunk) in _OUR_KEYS):
            out.append(png[chunk.start : chunk.end])
    if stamp:
        raise _damaged("it holds no pixel data")
    return b"".join(out)


def read_settings(source: str | Path | bytes) -> ImageSettings:
    """The settings a PNG carries: ours (JSON) first, else an A1111-style `parameters`.

    `source` is a file's path or its bytes. Raises ImageSettingsError, whose message
    says what to do, for anything else: an unreadable path, a file over 50 MiB, a
    non-image, a JPEG or other non-PNG image, a damaged PNG, a PNG declaring more
    pixels than any Imagen image (refused before decoding), or one without settings.
    """
    data = source if isinstance(source, bytes) else _read_capped(Path(source))
    _check_byte_count(len(data))
    if not data.startswith(PNG_SIGNATURE):
        raise ImageSettingsError(_not_png_message(data))
    chunks = _png_chunks(data)
    width, height = _checked_size(data)
    texts = _texts(data, chunks)
    damage: ImageSettingsError | None = None
    if JSON_KEY in texts:
        try:
            settings = ImageSettings.from_dict(_json_object(texts[JSON_KEY]))
            return replace(settings, width=width, height=height)
        except ImageSettingsError as error:
            damage = error  # the parameters text may still hold them
    if PARAMETERS_KEY in texts:
        return replace(_from_parameters(texts[PARAMETERS_KEY]), width=width, height=height)
    if damage is not None:
        raise damage
    raise ImageSettingsError(
        "This PNG carries no generation settings. Drop a PNG saved or downloaded from "
        "Imagen Playground (or one from a tool that writes A1111-style `parameters`)."
    )


# --- reading a file -------------------------------------------------------------------


def _read_capped(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(MAX_FILE_BYTES + 1)  # one byte more tells "too large"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ImageSettingsError(
            f"The file {path.name!r} could not be read ({reason}). Choose it again."
        ) from None


def _check_byte_count(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ImageSettingsError(
            f"The file is larger than {MAX_FILE_BYTES // 2**20} MiB, far beyond any Imagen 4 "
            "image, so it was not read. Use the PNG the playground saved."
        )
    if size == 0:
        raise ImageSettingsError("The file is empty. Use the PNG the playground saved.")


def _not_png_message(data: bytes) -> str:
    """Whether the bytes are some other image or no image at all, as a message."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = f"a {image.format} image" if image.format else "an image"
    except Image.DecompressionBombError:
        kind = "an enormous image"
    except Exception:  # Pillow's format plugins raise many types on junk: all mean "not an image"
        return (
            "This file is not an image, so it carries no settings. Drop a PNG saved or "
            "downloaded from Imagen Playground."
        )
    return (
        f"This is {kind}, not a PNG: only PNGs carry settings. Drop a PNG saved or "
        "downloaded from Imagen Playground (its downloads are PNGs)."
    )


# --- PNG chunks -----------------------------------------------------------------------


class _Chunk(NamedTuple):
    type: bytes
    start: int  # offset of its length field
    end: int  # offset just past its CRC

    def data(self, png: bytes) -> bytes:
        return png[self.start + 8 : self.end - 4]


def _damaged(reason: str) -> ImageSettingsError:
    return ImageSettingsError(
        f"The file is damaged or incomplete ({reason}), so it cannot be read. Download "
        "or save the image again and use the new file."
    )


def _png_chunks(png: bytes) -> list[_Chunk]:
    """Every chunk up to IEND, each checked: length, type, CRC, IHDR first."""
    view = memoryview(png)
    chunks: list[_Chunk] = []
    offset = len(PNG_SIGNATURE)
    while True:
        if offset + 12 > len(png):
            raise _damaged("it ends before the PNG's last chunk")
        length, ctype = struct.unpack_from(">I4s", png, offset)
        end = offset + 12 + length
        if not ctype.isalpha() or end > len(png):
            raise _damaged("a chunk is cut off or garbled")
        (crc,) = struct.unpack_from(">I", png, end - 4)
        if zlib.crc32(view[offset + 4 : end - 4]) != crc:
            raise _damaged(f"its {ctype.decode('ascii')} chunk fails its checksum")
        if not chunks and (ctype != b"IHDR" or length != 13):
            raise _damaged("it has no PNG header chunk")
        chunks.append(_Chunk(ctype, offset, end))
        if ctype == b"IEND":
            return chunks
        if len(chunks) >= MAX_CHUNKS:
            raise ImageSettingsError(
                f"The file holds over {MAX_CHUNKS} PNG chunks, far more than any real image, "
                "so it was not read. Use the PNG the playground saved."
            )
        offset = end


def _checked_size(png: bytes) -> tuple[int, int]:
    """The IHDR's width and height; a decompression bomb is refused here, undecoded."""
    width, height = struct.unpack_from(">II", png, len(PNG_SIGNATURE) + 8)
    if not width or not height:
        raise _damaged("its header declares no pixels")
    if width * height > MAX_IMAGE_PIXELS:
        raise _oversized(f"{width}x{height} pixels")
    return width, height


def _oversized(what: str) -> ImageSettingsError:
    return ImageSettingsError(
        f"The image declares {what}, far beyond Imagen 4's sizes, so it was not opened "
        "(it may be a decompression bomb). Use an image the playground saved."
    )


def _keyword(png: bytes, chunk: _Chunk) -> bytes:
    return chunk.data(png).split(b"\0", 1)[0]


def _itxt_chunk(keyword: str, text: str) -> bytes:
    # keyword, NUL, uncompressed, method 0, no language tag, no translated keyword, text
    body = b"iTXt" + keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")
    return struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))


def _texts(png: bytes, chunks: list[_Chunk]) -> dict[str, str]:
    """Our two keys' texts from tEXt, zTXt or iTXt chunks; the last of a key wins, as
    in Pillow's `info`."""
    texts = {}
    for chunk in chunks:
        if chunk.type in _TEXT_CHUNKS and _keyword(png, chunk) in _OUR_KEYS:
            keyword, text = _text_of(chunk.type, chunk.data(png))
            texts[keyword] = text
    return texts


def _text_of(ctype: bytes, data: bytes) -> tuple[str, str]:
    keyword, _, rest = data.partition(b"\0")
    try:
        if ctype == b"tEXt":
            return keyword.decode(), rest.decode("latin-1")
        if ctype == b"zTXt":
            return keyword.decode(), _inflate(rest[1:]).decode("latin-1")
        compressed, rest = rest[:1] == b"\1", rest[2:]
        _language, _translated, text = rest.split(b"\0", 2)
        return keyword.decode(), (_inflate(text) if compressed else text).decode("utf-8")
    except (ValueError, zlib.error):  # a bad split, bad UTF-8, bad or oversized deflate
        raise _damaged(f"its {keyword.decode()!r} text chunk is garbled or too large") from None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk over the size cap")
    return text


def _encode_png(data: bytes) -> bytes:
    """A JPEG or WebP (any format Pillow reads) as a PNG with the same decoded pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _oversized(f"{width}x{height} pixels")
            image.load()
            extras = {key: image.info[key] for key in ("icc_profile", "exif") if key in image.info}
            if image.mode not in _PNG_MODES:  # e.g. CMYK: PNG has no such mode
                image = image.convert("RGBA" if image.has_transparency_data else "RGB")
            out = io.BytesIO()
            # Level 1: a 1408x768 photo-like JPEG converts in ~0.15 s against ~1.3 s at
            # Pillow's default 6, for a PNG ~17% larger; CPU is what a shared server lacks.
            image.save(out, format="PNG", compress_level=1, **extras)
    except ImageSettingsError:
        raise
    except Image.DecompressionBombError:
        raise _oversized("more pixels than Pillow will open") from None
    except Exception:  # Pillow's decoders raise many types on junk or truncated data
        raise ImageSettingsError(
            "The image could not be decoded: it is damaged, incomplete or not an image. "
            "Generate it again."
        ) from None
    return out.getvalue()


# --- values ---------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _damaged(f"its {JSON_KEY!r} settings are not a JSON object")
    return value


def _from_parameters(text: str) -> ImageSettings:
    """An A1111-style text, read as A1111 reads it: the last line holds the `Key: value`
    pairs when it has at least three; lines before are the prompt until one starts
    with `Negative prompt:`."""
    lines = text.strip().split("\n")
    pairs: dict[str, str] = {}
    if len(lines) > 1 and len(found := _PARAMETER.findall(lines[-1])) >= 3:
        pairs = {key.strip(): _unquoted(value) for key, value in found}
        lines.pop()
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if not negative and line.startswith("Negative prompt:"):
            negative.append(line.removeprefix("Negative prompt:").strip())
        else:
            (negative or prompt).append(line)
    if not "\n".join(prompt).strip():
        raise ImageSettingsError(
            "This PNG's `parameters` text holds no prompt, so there is nothing to fill in. "
            "Drop a PNG saved by Imagen Playground."
        )
    return ImageSettings.from_dict(
        {
            "prompt": "\n".join(prompt),
            "negative_prompt": "\n".join(negative) or None,
            "model": pairs.get("Model"),
            "aspect_ratio": pairs.get("Aspect ratio"),
            "seed": pairs.get("Seed"),
            "task_id": pairs.get("Task"),
            "source": pairs.get("Source"),
            "created": None,
        }
    )


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if re.search(r'[,"\n]', value) else value


def _unquoted(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            pass
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _known(value: Any, allowed: Any) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _whole(value: Any, low: int, high: int | None) -> int | None:
    """An int in [low, high] from an int or a digit string; anything else is None."""
    if isinstance(value, str) and re.fullmatch(r"\d+", value.strip(), re.ASCII):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= low and (high is None or value <= high) else None
