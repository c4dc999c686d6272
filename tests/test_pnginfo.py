"""PNG settings chunks: written, read back by us and by Pillow, pixels kept, bad files refused."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from runapi_ui.runapi.client import GenerationRequest
from runapi_ui.runapi.simulator import render_image
from runapi_ui.storage.pnginfo import (
    JSON_KEY,
    MAX_CHUNKS,
    MAX_FILE_BYTES,
    PARAMETERS_KEY,
    ImageSettings,
    ImageSettingsError,
    png_with_settings,
    read_settings,
)

PROMPT = 'A café sign reading "Ça va?", a fox\'s $HOME `tail` \\ and 🦊,\nsecond line'
SETTINGS = ImageSettings(
    model="imagen-4-ultra",
    prompt=PROMPT,
    negative_prompt="blurry, text",
    aspect_ratio="4:3",
    seed=42,
    task_id="tsk_0123",
    created="2025-06-01T12:00:00Z",
    source="RunAPI",
)


@pytest.fixture(scope="module")
def png() -> bytes:
    return render_image("a red fox in snow", "imagen-4-ultra", "4:3", 42)


def encoded(png: bytes, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.save(out, format=image_format, **options)
    return out.getvalue()


def decoded(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def chunk_list(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk) in file order, read independently of the module under test."""
    chunks, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack_from(">I", png, offset)
        end = offset + 12 + length
        chunks.append((png[offset + 4 : offset + 8], png[offset:end]))
        offset = end
    return chunks


def keyword_of(whole_chunk: bytes) -> bytes:
    return whole_chunk[8:].split(b"\0", 1)[0]


def foreign_png(png: bytes, text: str, *, zipped: bool = False, itxt: bool = False) -> bytes:
    """A PNG as another tool writes it: only a `parameters` chunk, through Pillow."""
    info = PngImagePlugin.PngInfo()
    if itxt:
        info.add_itxt(PARAMETERS_KEY, text, zip=zipped)
    else:
        info.add_text(PARAMETERS_KEY, text, zip=zipped)
    return encoded(png, "PNG", pnginfo=info)


# --- written and read back -------------------------------------------------------------


def test_settings_round_trip_with_the_image_own_size(png: bytes) -> None:
    stamped = png_with_settings(png, SETTINGS)
    settings = read_settings(stamped)
    assert settings.to_dict() == {**SETTINGS.to_dict(), "width": 1280, "height": 896}
    assert settings.from_playground


def test_pillow_shows_the_parameters_text_and_the_json(png: bytes) -> None:
    with Image.open(io.BytesIO(png_with_settings(png, SETTINGS))) as image:
        info, text = dict(image.info), dict(image.text)
    assert info[PARAMETERS_KEY] == (
        f"{PROMPT}\n"
        "Negative prompt: blurry, text\n"
        "Model: imagen-4-ultra, Aspect ratio: 4:3, Seed: 42, Size: 1280x896, Task: tsk_0123, "
        "Source: RunAPI"
    )
    assert json.loads(text[JSON_KEY]) == {**SETTINGS.to_dict(), "width": 1280, "height": 896}


def test_parameters_line_without_negative_prompt_or_seed(png: bytes) -> None:
    settings = ImageSettings(
        model="imagen-4-fast", prompt="a fox", aspect_ratio="auto", task_id="a,b", source="demo"
    )
    with Image.open(io.BytesIO(png_with_settings(png, settings))) as image:
        assert image.info[PARAMETERS_KEY] == (
            "a fox\nModel: imagen-4-fast, Aspect ratio: auto, Seed: random, Size: 1280x896, "
            'Task: "a,b", Source: demo'
        )


def test_png_input_keeps_every_other_chunk_byte_for_byte(png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "some editor")
    info.add_text(PARAMETERS_KEY, "an old prompt\nSteps: 20, Seed: 1, Size: 1x1")
    original = encoded(png, "PNG", pnginfo=info)
    stamped = png_with_settings(original, SETTINGS)
    ours = {JSON_KEY.encode(), PARAMETERS_KEY.encode()}

    def untouched(data: bytes) -> list[bytes]:
        return [
            whole
            for ctype, whole in chunk_list(data)
            if not (ctype in (b"tEXt", b"iTXt") and keyword_of(whole) in ours)
        ]

    assert untouched(stamped) == untouched(original)
    assert len(untouched(original)) == len(chunk_list(original)) - 1  # the old parameters
    assert decoded(stamped) == decoded(original)
    types = [ctype for ctype, _ in chunk_list(stamped)]
    assert types.index(b"iTXt") < types.index(b"IDAT")  # seen by readers that stop at pixels


@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        ("JPEG", {"quality": 80}),
        ("WEBP", {"quality": 70}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_jpeg_and_webp_become_png_with_the_same_pixels(
    png: bytes, image_format: str, options: dict[str, object]
) -> None:
    source = encoded(png, image_format, **options)
    stamped = png_with_settings(source, SETTINGS)
    assert stamped.startswith(b"\x89PNG\r\n\x1a\n")
    assert decoded(stamped) == decoded(source)
    assert read_settings(stamped).prompt == PROMPT


def test_transparent_webp_keeps_its_alpha(png: bytes) -> None:
    with Image.open(io.BytesIO(png)) as image:
        rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    out = io.BytesIO()
    rgba.save(out, format="WEBP", lossless=True)
    stamped = png_with_settings(out.getvalue(), SETTINGS)
    assert decoded(stamped) == decoded(out.getvalue())
    assert decoded(stamped)[0] == "RGBA"


def test_cmyk_jpeg_becomes_rgb_as_pillow_converts_it(png: bytes) -> None:
    with Image.open(io.BytesIO(png)) as image:
        cmyk = image.convert("CMYK")
    out = io.BytesIO()
    cmyk.save(out, format="JPEG")
    with Image.open(io.BytesIO(out.getvalue())) as image:
        expected = image.convert("RGB").tobytes()
    assert decoded(png_with_settings(out.getvalue(), SETTINGS))[::2] == ("RGB", expected)


def test_stamping_again_replaces_the_settings(png: bytes) -> None:
    first = png_with_settings(png, SETTINGS)
    again = png_with_settings(first, ImageSettings(prompt="a wolf", model="imagen-4"))
    assert read_settings(again).prompt == "a wolf"
    keywords = [keyword_of(whole) for ctype, whole in chunk_list(again) if ctype == b"iTXt"]
    assert sorted(keywords) == sorted([JSON_KEY.encode(), PARAMETERS_KEY.encode()])


def test_reads_from_a_path_as_str_or_path(png: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fox.png"
    path.write_bytes(png_with_settings(png, SETTINGS))
    assert read_settings(path) == read_settings(str(path)) == read_settings(path.read_bytes())


def test_settings_from_a_request() -> None:
    request = GenerationRequest(model="imagen-4", prompt="a fox", aspect_ratio="16:9", seed=7)
    settings = ImageSettings.from_request(request, task_id="t", source="demo", seed=8)
    assert (settings.model, settings.aspect_ratio, settings.seed, settings.source) == (
        "imagen-4",
        "16:9",
        8,
        "demo",
    )
    assert settings.created is not None and settings.created.endswith("Z")


# --- other tools' PNGs -------------------------------------------------------------------

A1111_TEXT = (
    "masterpiece, a fox\nin the snow\n"
    "Negative prompt: lowres,\nbad hands\n"
    'Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234, Size: 512x512, Model: "sd_xl, v1"'
)


@pytest.mark.parametrize(
    "writer",
    [{}, {"zipped": True}, {"itxt": True}, {"itxt": True, "zipped": True}],
    ids=["tEXt", "zTXt", "iTXt", "compressed-iTXt"],
)
def test_an_a1111_png_gives_prompt_negative_and_seed(png: bytes, writer: dict[str, bool]) -> None:
    settings = read_settings(foreign_png(png, A1111_TEXT, **writer))
    assert settings.prompt == "masterpiece, a fox\nin the snow"
    assert settings.negative_prompt == "lowres,\nbad hands"
    assert settings.seed == 1234
    assert (settings.model, settings.aspect_ratio, settings.source, settings.created) == (
        None,
        None,
        None,
        None,
    )
    assert (settings.width, settings.height) == (1280, 896)  # the file's, not the text's
    assert not settings.from_playground


def test_our_parameters_text_alone_is_read_back_in_full(png: bytes) -> None:
    settings = read_settings(foreign_png(png, SETTINGS.parameters_text(), itxt=True))
    assert (settings.prompt, settings.negative_prompt, settings.model) == (
        PROMPT,
        "blurry, text",
        "imagen-4-ultra",
    )
    assert (settings.aspect_ratio, settings.seed, settings.task_id, settings.source) == (
        "4:3",
        42,
        "tsk_0123",
        "RunAPI",
    )


def test_a_seed_out_of_range_or_random_is_none(png: bytes) -> None:
    text = "a fox\nSteps: 20, Seed: 4294967295, Size: 512x512"
    assert read_settings(foreign_png(png, text)).seed is None
    assert read_settings(foreign_png(png, "a fox\nModel: x, Seed: random, Size: 1x1")).seed is None


def test_a_single_line_of_text_is_all_prompt(png: bytes) -> None:
    assert read_settings(foreign_png(png, "Style: ink, Mood: calm, Light: dusk")).prompt == (
        "Style: ink, Mood: calm, Light: dusk"
    )


def test_damaged_json_falls_back_to_parameters(png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(JSON_KEY, "{not json")
    info.add_itxt(PARAMETERS_KEY, "a fox\nModel: imagen-4, Seed: 5, Size: 1x1")
    settings = read_settings(encoded(png, "PNG", pnginfo=info))
    assert (settings.prompt, settings.model, settings.seed) == ("a fox", "imagen-4", 5)


# --- from_dict ---------------------------------------------------------------------------


def test_from_dict_ignores_unknown_keys_and_unusable_values() -> None:
    settings = ImageSettings.from_dict(
        {
            "prompt": "a fox",
            "model": "dall-e",
            "aspect_ratio": "2:1",
            "seed": True,
            "width": -3,
            "height": "896",
            "source": "elsewhere",
            "negative_prompt": "  ",
            "task_id": 12,
            "future_field": {"x": 1},
        }
    )
    assert settings == ImageSettings(prompt="a fox", created=None, height=896)


def test_from_dict_without_a_prompt_is_an_error() -> None:
    with pytest.raises(ImageSettingsError, match="no prompt"):
        ImageSettings.from_dict({"model": "imagen-4"})


# --- bad files -----------------------------------------------------------------------------


def assert_refused(source: str | Path | bytes, *phrases: str) -> None:
    with pytest.raises(ImageSettingsError) as caught:
        read_settings(source)
    message = caught.value.message
    assert str(caught.value) == message
    for phrase in phrases:
        assert phrase in message, message
    # No Pillow (or OS) exception rides along to be printed as the cause.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_text_file_is_not_an_image() -> None:
    assert_refused(b"prompt: a fox\n", "not an image", "Drop a PNG")


def test_a_jpeg_is_not_a_png(png: bytes) -> None:
    assert_refused(encoded(png, "JPEG"), "a JPEG image, not a PNG", "Drop a PNG")
    assert_refused(encoded(png, "WEBP"), "a WEBP image, not a PNG")


def test_a_png_without_settings(png: bytes) -> None:
    assert_refused(png, "carries no generation settings", "Drop a PNG")


def test_a_png_with_other_text_only(png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    assert_refused(encoded(png, "PNG", pnginfo=info), "carries no generation settings")


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.truncate(MAX_FILE_BYTES + 1024)  # sparse: no 50 MB written
    assert_refused(path, "larger than 50 MiB")
    assert_refused(path.read_bytes(), "larger than 50 MiB")


def test_a_decompression_bomb_is_refused_by_its_header() -> None:
    # 100000x100000 pixels declared; the pixel data is a valid deflate stream of a few bytes.
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    bomb_text = chunk(b"iTXt", JSON_KEY.encode() + b"\0\0\0\0\0" + b'{"prompt": "boom"}')
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + bomb_text
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    assert_refused(bomb, "100000x100000 pixels", "decompression bomb")
    with pytest.raises(ImageSettingsError, match="100000x100000"):
        png_with_settings(bomb, SETTINGS)


def test_a_png_of_countless_tiny_chunks_is_refused(png: bytes) -> None:
    # Walking millions of empty chunks would hold a CPU for seconds.
    tiny = chunk(b"tIMx", b"")
    assert_refused(png[:33] + tiny * (MAX_CHUNKS + 10) + png[33:], f"over {MAX_CHUNKS} PNG chunks")


def test_a_truncated_png(png: bytes) -> None:
    assert_refused(png_with_settings(png, SETTINGS)[: len(png) // 2], "damaged or incomplete")
    assert_refused(b"\x89PNG\r\n\x1a\n", "damaged or incomplete")


def test_a_png_with_a_bad_checksum(png: bytes) -> None:
    stamped = bytearray(png_with_settings(png, SETTINGS))
    at = stamped.index(JSON_KEY.encode()) + 40
    stamped[at] ^= 0x01
    assert_refused(bytes(stamped), "damaged or incomplete", "iTXt chunk fails its checksum")


def test_garbled_json_alone_is_reported_as_damaged(png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(JSON_KEY, "[1, 2]")
    assert_refused(encoded(png, "PNG", pnginfo=info), "not a JSON object")


def test_a_zip_bomb_in_a_text_chunk(png: bytes) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PARAMETERS_KEY, "a" * (MAX_FILE_BYTES // 8), zip=True)  # ~6 MB, inflated
    assert_refused(encoded(png, "PNG", pnginfo=info), "text chunk is garbled")


@pytest.mark.parametrize("name", ["missing.png", "."], ids=["missing", "a-directory"])
def test_an_unreadable_path(tmp_path: Path, name: str) -> None:
    assert_refused(tmp_path / name, "could not be read", "Choose it again")


def test_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    assert_refused(tmp_path / "empty.png", "empty")


def test_stamping_junk_is_a_clear_error(png: bytes) -> None:
    for junk in (b"<html>502 Bad Gateway</html>", encoded(png, "JPEG")[:2000]):
        with pytest.raises(ImageSettingsError, match="could not be decoded"):
            png_with_settings(junk, SETTINGS)
