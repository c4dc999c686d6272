"""Remix end to end: sources checked and cleaned, uploaded to the file API, remixed.

Against the simulator on a real loopback socket (fixtures in conftest.py), at time
scale 0. Source images are made here with Pillow: a phone photo with GPS EXIF and an
orientation, a PNG with alpha and text chunks, and the bad ones a visitor may pick.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import ExifTags, Image, PngImagePlugin

from runapi_ui.runapi.catalog import REMIX_MODEL, REMIX_PROMPT_MAX_CHARS
from runapi_ui.runapi.client import GenerationRequest
from runapi_ui.runapi.errors import ValidationError
from runapi_ui.runapi.files import upload_files, upload_sources
from runapi_ui.runapi.remix import REMIX_PATH, RemixRequest
from runapi_ui.runapi.sources import (
    MAX_SOURCE_BYTES,
    MAX_SOURCE_PIXELS,
    check_source,
    check_sources,
)

KEY = "sk-test-0123456789"  # make_client's default key
GPS_SECRET = "Photographed at home"
XMP_SECRET = b"<x:xmpmeta><rdf:Description dc:creator='Jane Doe'/></x:xmpmeta>"


def phone_photo(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """A JPEG as a phone writes it: landscape pixels, EXIF orientation 6 (rotate to
    portrait), GPS coordinates, a comment and XMP."""
    image = Image.new("RGB", size, (200, 40, 40))
    image.paste((30, 30, 220), (0, 0, size[0] // 2, size[1] // 4))  # marks the top left
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.ImageDescription] = GPS_SECRET
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 31.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 2.25)
    image.save(path, format="JPEG", exif=exif, xmp=XMP_SECRET, comment=b"Jane's phone")
    with Image.open(path) as written:  # the test's premise: the secrets are in the file
        assert written.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert XMP_SECRET in path.read_bytes()
    return path


def logo_png(path: Path) -> Path:
    """A PNG with alpha and text chunks (an author, XMP)."""
    image = Image.new("RGBA", (300, 200), (0, 160, 80, 128))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_itxt("XML:com.adobe.xmp", XMP_SECRET.decode())
    image.save(path, format="PNG", pnginfo=info)
    return path


def uploaded_bytes(server) -> list[bytes]:
    """What reached the file API, in the sources' order (they are sent at once, so they
    may arrive in any order; each is named source-<n>)."""
    uploads = sorted(server.simulator.uploads.values(), key=lambda upload: upload.file_name)
    return [upload.data for upload in uploads]


def api_requests(server) -> list:
    return [r for r in server.simulator.requests if not r.path.startswith(("/files/", "/uploads/"))]


# --- end to end ---------------------------------------------------------------------------


async def test_upload_and_remix_end_to_end(simulator, make_client, tmp_path) -> None:
    client = make_client(simulator)
    paths = [phone_photo(tmp_path / "IMG_0042 at home.jpg"), logo_png(tmp_path / "logo.png")]
    uploaded = await upload_files(client, paths)
    assert [f.file_name for f in uploaded] == [
        u.file_name for u in simulator.simulator.uploads.values()
    ]
    assert [f.mime_type for f in uploaded] == ["image/jpeg", "image/png"]

    request = RemixRequest(
        prompt="  the two of them on a poster  ",
        source_image_urls=tuple(f.url for f in uploaded),
        aspect_ratio="3:2",
    )
    result = await client.generate(request)

    assert result.model == REMIX_MODEL
    assert result.request == RemixRequest(
        prompt="the two of them on a poster",
        source_image_urls=request.source_image_urls,
        aspect_ratio="3:2",
    )
    (image,) = result.images
    assert (image.width, image.height, image.format) == (1024, 683, "PNG")
    task = simulator.simulator.tasks[result.task_id]
    assert task.body == {
        "model": REMIX_MODEL,
        "prompt": "the two of them on a poster",
        "source_image_urls": [f.url for f in uploaded],
        "aspect_ratio": "3:2",
        "output_resolution": "1k",
        "output_format": "png",
    }
    assert task.sources == tuple(uploaded_bytes(simulator)), "the remix drew what was uploaded"
    assert result.charged_usd == pytest.approx(0.18)
    paths_seen = [(r.method, r.path) for r in api_requests(simulator)]
    assert paths_seen == [
        ("POST", "/api/v1/files"),
        ("POST", "/api/v1/files"),
        ("POST", REMIX_PATH),
        ("GET", f"{REMIX_PATH}/{result.task_id}"),
    ]


async def test_a_4k_jpg_remix_costs_24_cents(simulator, make_client, tmp_path) -> None:
    client = make_client(simulator)
    (upload,) = await upload_files(client, [phone_photo(tmp_path / "a.jpg")])
    result = await client.generate(
        RemixRequest(
            prompt="poster",
            source_image_urls=(upload.url,),
            aspect_ratio="16:9",
            output_resolution="4k",
            output_format="jpg",
        )
    )
    (image,) = result.images
    assert (image.width, image.height, image.format) == (4096, 2304, "JPEG")
    assert image.url.endswith("/0.jpg")
    assert result.charged_usd == pytest.approx(0.24)


async def test_a_remix_waited_on_by_its_bare_id(simulator, make_client, tmp_path) -> None:
    client = make_client(simulator)
    (upload,) = await upload_files(client, [logo_png(tmp_path / "logo.png")])
    task = await client.submit(RemixRequest(prompt="p", source_image_urls=(upload.url,)))
    result = await make_client(simulator).wait(task.id, model=REMIX_MODEL)
    assert result.task_id == task.id and len(result.images) == 1
    assert api_requests(simulator)[-1].path == f"{REMIX_PATH}/{task.id}"


# --- what leaves the machine ------------------------------------------------------------


async def test_only_upright_pixels_reach_runapi(simulator, make_client, tmp_path) -> None:
    client = make_client(simulator)
    photo = phone_photo(tmp_path / "IMG_0042.jpg", size=(640, 480))
    await upload_files(client, [photo, logo_png(tmp_path / "logo.png")])
    jpeg, png = uploaded_bytes(simulator)

    with Image.open(io.BytesIO(jpeg)) as sent:
        assert sent.format == "JPEG"
        assert sent.size == (480, 640), "turned upright from its EXIF orientation"
        assert not sent.getexif(), "no EXIF at all: no GPS, no orientation left to apply twice"
        assert not {"exif", "xmp", "comment", "icc_profile"} & set(sent.info)
        # The top left of the upright picture is what the camera had at its bottom left.
        assert sent.convert("RGB").getpixel((470, 10))[2] > 150
    for secret in (b"Exif", XMP_SECRET, GPS_SECRET.encode(), b"Jane"):
        assert secret not in jpeg
        assert secret not in png
    with Image.open(io.BytesIO(png)) as sent:
        assert (sent.format, sent.mode, sent.size) == ("PNG", "RGBA", (300, 200))
        assert not sent.text and not {"exif", "xmp", "icc_profile"} & set(sent.info)
    # The visitor's file names are not sent either.
    names = sorted(upload.file_name for upload in simulator.simulator.uploads.values())
    assert names == ["source-1.jpg", "source-2.png"]


def test_an_icc_profile_is_applied_then_dropped() -> None:
    from PIL import ImageCms

    adobe_like = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 60, 30)).save(out, format="JPEG", icc_profile=adobe_like)
    source = check_source(out.getvalue(), "tagged.jpg")
    with Image.open(io.BytesIO(source.data)) as sent:
        assert "icc_profile" not in sent.info


# --- bad sources: refused before anything is sent ----------------------------------------


@pytest.mark.parametrize("count", [0, 9])
async def test_0_or_9_sources_are_refused_with_no_request(
    simulator, make_client, tmp_path, count
) -> None:
    client = make_client(simulator)
    paths = [logo_png(tmp_path / f"{i}.png") for i in range(count)]
    with pytest.raises(ValidationError, match="1 to 8 source images") as refused:
        await upload_files(client, paths)
    assert refused.value.field == "source_image_urls"
    urls = tuple(f"{simulator.url}/uploads/x{i}/a.png" for i in range(count))
    with pytest.raises(ValidationError, match="1 to 8 source images"):
        await client.generate(RemixRequest(prompt="p", source_image_urls=urls))
    assert not simulator.simulator.requests


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG file of `width` x `height` one-bit pixels."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        (
            "notes.png",
            lambda: b"shopping list: eggs, milk\n" * 40,
            "is not an image that can be read",
        ),
        ("truncated.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 100, "is not an image"),
        ("anim.gif", lambda: _encoded("GIF"), "is a GIF image; save it as JPEG, PNG or WebP"),
        ("bomb.png", lambda: bomb_png(15_000, 15_000), "a hundred megapixels or more"),
        (
            "huge.png",
            lambda: bomb_png(8_000, 7_000),
            "declares 8000x7000 pixels, more than the 50 MP",
        ),
        (
            "big.jpg",
            lambda: _encoded("JPEG") + b"\x00" * (MAX_SOURCE_BYTES + 2 * 2**20),
            "is too large to remix. It is 12.0 MB; the limit is 10 MB",
        ),
    ],
)
async def test_a_bad_source_is_named_and_nothing_is_uploaded(
    simulator, make_client, tmp_path, name, make, problem
) -> None:
    client = make_client(simulator)
    good = logo_png(tmp_path / "good.png")
    bad = tmp_path / name
    bad.write_bytes(make())
    with pytest.raises(ValidationError) as refused:
        await upload_files(client, [good, bad])
    message = refused.value.message
    assert message.startswith(f"{name} ") and problem in message, message
    assert refused.value.field == "source_image_urls"
    assert not simulator.simulator.requests and not simulator.simulator.uploads


def _encoded(image_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(out, format=image_format)
    return out.getvalue()


def test_webp_and_palette_sources_are_accepted() -> None:
    out = io.BytesIO()
    Image.new("RGB", (50, 40), "blue").save(out, format="WEBP")
    assert check_source(out.getvalue(), "a.webp").mime_type == "image/jpeg"
    out = io.BytesIO()
    Image.new("P", (50, 40)).save(out, format="PNG", transparency=0)
    assert check_source(out.getvalue(), "b.png").mime_type == "image/png"
    assert MAX_SOURCE_PIXELS >= 48_000_000, "a 48 MP phone photo is a fair source"


def test_check_sources_names_the_file_it_cannot_read(tmp_path) -> None:
    with pytest.raises(ValidationError, match=r"gone\.jpg could not be read"):
        check_sources([tmp_path / "gone.jpg"])


# --- the remix request -------------------------------------------------------------------


async def test_remix_prompt_limit_is_10000(simulator, make_client, tmp_path) -> None:
    client = make_client(simulator)
    (upload,) = await upload_files(client, [logo_png(tmp_path / "a.png")])
    longest = RemixRequest(prompt="x" * REMIX_PROMPT_MAX_CHARS, source_image_urls=(upload.url,))
    result = await client.generate(longest)
    assert len(simulator.simulator.tasks[result.task_id].body["prompt"]) == 10_000
    with pytest.raises(ValidationError, match="10001 characters; shorten it to at most 10000"):
        await client.submit(RemixRequest(prompt="x" * 10_001, source_image_urls=(upload.url,)))
    # RunAPI's own check, for a client that does not check first.
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        body = {"model": REMIX_MODEL, "prompt": "x" * 10_001, "source_image_urls": [upload.url]}
        answer = await http.post(REMIX_PATH, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 422 and "too long" in answer.json()["errors"]["prompt"][0]


async def test_text_prompt_limit_is_5000(simulator, make_client) -> None:
    client = make_client(simulator)
    result = await client.generate(GenerationRequest(prompt="y" * 5000))
    assert len(simulator.simulator.tasks[result.task_id].body["prompt"]) == 5000
    creates = len(simulator.simulator.requests)
    with pytest.raises(ValidationError, match="5001 characters; shorten it to at most 5000"):
        await client.submit(GenerationRequest(prompt="y" * 5001))
    assert len(simulator.simulator.requests) == creates


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"output_resolution": "8k"}, "output_resolution"),
        ({"output_format": "jpeg"}, "output_format"),
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"prompt": "  "}, "prompt"),
        ({"model": "imagen-4"}, "model"),
        ({"source_image_urls": ("/tmp/a.png",)}, "source_image_urls"),
    ],
)
async def test_remix_local_validation_sends_nothing(simulator, make_client, changes, field) -> None:
    client = make_client(simulator)
    fields = {"prompt": "p", "source_image_urls": (f"{simulator.url}/uploads/t/a.png",)}
    with pytest.raises(ValidationError) as refused:
        await client.submit(RemixRequest(**{**fields, **changes}))
    assert refused.value.field == field
    assert not simulator.simulator.requests


def test_the_simulator_checks_what_runapi_checks(simulator, tmp_path) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=simulator.url, headers=headers) as http:
        bad = {
            "model": REMIX_MODEL,
            "prompt": "p",
            "source_image_urls": ["https://elsewhere.example/a.png"],
            "output_resolution": "8k",
            "output_format": "jpeg",
            "aspect_ratio": "7:3",
            "seed": 3,
        }
        errors = http.post(REMIX_PATH, json=bad).json()["errors"]
        assert set(errors) == {
            "source_image_urls",
            "output_resolution",
            "output_format",
            "aspect_ratio",
            "seed",
        }
        assert "not a file this service's file API issued" in errors["source_image_urls"][0]
        nine = {"model": REMIX_MODEL, "prompt": "p", "source_image_urls": ["x"] * 9}
        assert "1 to 8" in http.post(REMIX_PATH, json=nine).json()["errors"]["source_image_urls"][0]
        # A text file uploaded to the file API (which takes any file) is no remix source.
        import base64

        text = base64.b64encode(b"not an image").decode()
        upload = http.post("/api/v1/files", json={"source": {"type": "base64", "data": text}})
        assert (
            upload.status_code == 201 and upload.json()["mime_type"] == "application/octet-stream"
        )
        body = {"model": REMIX_MODEL, "prompt": "p", "source_image_urls": [upload.json()["url"]]}
        problem = http.post(REMIX_PATH, json=body).json()["errors"]["source_image_urls"][0]
        assert "is not a JPEG, PNG or WebP image" in problem
        # The text-to-image path takes no remix model.
        text_create = http.post(
            "/api/v1/imagen_4/text_to_image", json={"model": REMIX_MODEL, "prompt": "p"}
        )
        assert text_create.status_code == 422 and "model" in text_create.json()["errors"]


async def test_an_expired_upload_is_refused_by_the_simulator(make_simulator, make_client, tmp_path):
    server = make_simulator(upload_ttl_seconds=0)
    client = make_client(server)
    (upload,) = await upload_files(client, [logo_png(tmp_path / "a.png")])
    with pytest.raises(ValidationError, match="has expired: upload the file again") as refused:
        await client.generate(RemixRequest(prompt="p", source_image_urls=(upload.url,)))
    assert refused.value.field == "source_image_urls"
    assert not server.simulator.tasks
    async with httpx.AsyncClient() as http:
        assert (await http.get(upload.url)).status_code == 404


async def test_a_live_upload_url_serves_the_uploaded_bytes(simulator, make_client, tmp_path):
    client = make_client(simulator)
    sources = check_sources([logo_png(tmp_path / "a.png")])
    (upload,) = await upload_sources(client, sources)
    async with httpx.AsyncClient() as http:
        assert (await http.get(upload.url)).content == sources[0].data
    assert upload.size_bytes == len(sources[0].data) and upload.expires_at
