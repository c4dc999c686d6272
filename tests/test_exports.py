""" "Download all" ZIPs: names, contents, manifest, missing files, bounds, off the loop."""

from __future__ import annotations

import json
import re
import threading
import zipfile
from pathlib import Path

import pytest

from runapi_ui.runapi.simulator import render_image
from runapi_ui.storage import exports
from runapi_ui.storage.exports import (
    MANIFEST_NAME,
    MAX_EXPORT_IMAGES,
    ExportError,
    ExportItem,
    build_zip,
    build_zip_async,
    image_file_name,
)
from runapi_ui.storage.pnginfo import ImageSettings, png_with_settings, read_settings

FOX = ImageSettings(
    model="imagen-4",
    prompt="A red fox in snow!",
    aspect_ratio="16:9",
    seed=42,
    task_id="t-1",
    source="demo",
)
CAFE = ImageSettings(model="imagen-4-ultra", prompt="Café crème à Paris", aspect_ratio="1:1")


@pytest.fixture(scope="module")
def image_bytes() -> bytes:
    return render_image("a red fox in snow", "imagen-4", "1:1", 42)


def saved(directory: Path, name: str, data: bytes, settings: ImageSettings) -> ExportItem:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_with_settings(data, settings))
    return ExportItem(path=path, settings=settings)


def read_zip(path: Path) -> tuple[dict[str, bytes], dict, list[zipfile.ZipInfo]]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        files = {info.filename: archive.read(info) for info in archive.infolist()}
        infos = archive.infolist()
    return files, json.loads(files.pop(MANIFEST_NAME)), infos


def test_zip_holds_named_images_and_a_manifest(tmp_path: Path, image_bytes: bytes) -> None:
    items = [
        saved(tmp_path / "img", "a.png", image_bytes, FOX),
        saved(tmp_path / "img", "b.png", image_bytes, CAFE),
    ]
    path = build_zip(items, tmp_path / "out", title="Run of 12:04 — foxes")
    assert path.parent == tmp_path / "out"
    assert re.fullmatch(r"imagen-playground_run-of-12-04-foxes_[\w-]{22,}\.zip", path.name)

    files, manifest, infos = read_zip(path)
    assert list(files) == [
        "01_imagen-4_16x9_seed42_a-red-fox-in-snow.png",
        "02_imagen-4-ultra_1x1_cafe-creme-a-paris.png",
    ]
    assert (
        files["01_imagen-4_16x9_seed42_a-red-fox-in-snow.png"] == Path(items[0].path).read_bytes()
    )
    assert read_settings(files["02_imagen-4-ultra_1x1_cafe-creme-a-paris.png"]).prompt == (
        "Café crème à Paris"
    )
    assert {info.filename: info.compress_type for info in infos} == {
        "01_imagen-4_16x9_seed42_a-red-fox-in-snow.png": zipfile.ZIP_STORED,
        "02_imagen-4-ultra_1x1_cafe-creme-a-paris.png": zipfile.ZIP_STORED,
        MANIFEST_NAME: zipfile.ZIP_DEFLATED,
    }
    assert manifest["title"] == "Run of 12:04 — foxes"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created"])
    assert manifest["images"] == [
        {"file": "01_imagen-4_16x9_seed42_a-red-fox-in-snow.png", "settings": FOX.to_dict()},
        {"file": "02_imagen-4-ultra_1x1_cafe-creme-a-paris.png", "settings": CAFE.to_dict()},
    ]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [path.name]  # no .part left


def test_each_zip_gets_a_new_unguessable_name(tmp_path: Path, image_bytes: bytes) -> None:
    items = [saved(tmp_path, "a.png", image_bytes, FOX)]
    names = {build_zip(items, tmp_path / "out", title="same").name for _ in range(3)}
    assert len(names) == 3


def test_identical_images_still_get_distinct_names(tmp_path: Path, image_bytes: bytes) -> None:
    item = saved(tmp_path, "a.png", image_bytes, FOX)
    files, manifest, _ = read_zip(build_zip([item, item], tmp_path / "out", title="twins"))
    assert list(files) == [
        "01_imagen-4_16x9_seed42_a-red-fox-in-snow.png",
        "02_imagen-4_16x9_seed42_a-red-fox-in-snow.png",
    ]
    assert len(manifest["images"]) == 2


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"prompt": "../../etc/passwd", "model": "../x"}, "07_x_etc-passwd.webp"),
        ({"prompt": "C:\\Windows\\win.ini", "seed": 3}, "07_seed3_c-windows-win-ini.webp"),
        ({"prompt": "一只在雪中的红狐狸"}, "07_image.webp"),
        ({"prompt": "", "seed": True}, "07_image.webp"),
        ({"prompt": "x" * 300}, "07_" + "x" * 48 + ".webp"),
    ],
)
def test_names_are_ascii_bounded_and_cannot_climb_out(settings: dict, name: str) -> None:
    assert image_file_name(7, settings, ".WEBP") == name


def test_long_prompts_are_cut_at_a_word_boundary() -> None:
    prompt = "an extraordinarily detailed watercolour of a fox sleeping beneath birches at dawn"
    name = image_file_name(1, {"prompt": prompt}, ".png")
    assert name == "01_an-extraordinarily-detailed-watercolour-of-a-fox.png"
    assert image_file_name(1, {"prompt": "a"}, "../../x") == "01_a.png"


def test_a_missing_image_is_listed_not_fatal(tmp_path: Path, image_bytes: bytes) -> None:
    gone = saved(tmp_path, "gone.png", image_bytes, CAFE)
    Path(gone.path).unlink()
    kept = saved(tmp_path, "kept.png", image_bytes, FOX)
    files, manifest, _ = read_zip(build_zip([gone, kept], tmp_path / "out", title="t"))
    assert list(files) == ["02_imagen-4_16x9_seed42_a-red-fox-in-snow.png"]
    assert manifest["images"][0] == {"file": None, "settings": CAFE.to_dict(), "missing": True}
    assert manifest["images"][1]["file"] == "02_imagen-4_16x9_seed42_a-red-fox-in-snow.png"


def test_files_outside_images_root_are_not_read(tmp_path: Path, image_bytes: bytes) -> None:
    inside = saved(tmp_path / "images", "in.png", image_bytes, FOX)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship me")
    sneaky = [
        ExportItem(path=secret, settings={"prompt": "x"}),
        ExportItem(path=tmp_path / "images" / ".." / "secret.txt", settings={"prompt": "y"}),
    ]
    path = build_zip(
        [inside, *sneaky], tmp_path / "out", title="t", images_root=tmp_path / "images"
    )
    files, manifest, _ = read_zip(path)
    assert list(files) == ["01_imagen-4_16x9_seed42_a-red-fox-in-snow.png"]
    assert [entry.get("missing") for entry in manifest["images"]] == [None, True, True]
    assert b"do not ship me" not in path.read_bytes()


def test_dict_settings_go_to_the_manifest_as_given(tmp_path: Path, image_bytes: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(image_bytes)
    settings = {"prompt": "a fox", "model": "imagen-4", "seed": 9, "extra": {"elapsed": 4.2}}
    files, manifest, _ = read_zip(
        build_zip([ExportItem(path=str(path), settings=settings)], tmp_path / "out", title="d")
    )
    assert list(files) == ["01_imagen-4_seed9_a-fox.png"]
    assert manifest["images"][0]["settings"] == settings


def test_nothing_to_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="nothing to download yet"):
        build_zip([], tmp_path, title="t")


def test_too_many_images(tmp_path: Path) -> None:
    items = [
        ExportItem(path=tmp_path / f"{i}.png", settings=FOX) for i in range(MAX_EXPORT_IMAGES + 1)
    ]
    with pytest.raises(ExportError) as caught:
        build_zip(items, tmp_path / "out", title="t")
    assert f"{MAX_EXPORT_IMAGES + 1} images" in caught.value.message
    assert f"at most {MAX_EXPORT_IMAGES}" in caught.value.message
    assert "Download the current run instead" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_too_many_bytes(
    tmp_path: Path, image_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap's logic, without writing 400 MiB: lower it below two images' size.
    monkeypatch.setattr(exports, "MAX_EXPORT_BYTES", 3 * 2**20)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (2 * 2**20))
    items = [ExportItem(path=big, settings=FOX), ExportItem(path=big, settings=CAFE)]
    with pytest.raises(ExportError) as caught:
        build_zip(items, tmp_path / "out", title="t")
    assert "come to 4 MiB" in caught.value.message
    assert "at most 3 MiB" in caught.value.message
    assert build_zip(items[:1], tmp_path / "out", title="t").exists()


def test_an_unwritable_destination_is_a_clear_error(tmp_path: Path, image_bytes: bytes) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")
    items = [saved(tmp_path, "a.png", image_bytes, FOX)]
    with pytest.raises(ExportError, match="could not be written"):
        build_zip(items, blocker, title="t")


async def test_build_zip_async_runs_in_a_worker_thread(
    tmp_path: Path, image_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = []
    real_build_zip = exports.build_zip

    def recording_build_zip(*args: object, **kwargs: object) -> Path:
        threads.append(threading.get_ident())
        return real_build_zip(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(exports, "build_zip", recording_build_zip)
    items = (saved(tmp_path, f"{i}.png", image_bytes, FOX) for i in range(2))  # a generator
    path = await build_zip_async(items, tmp_path / "out", title="async")
    assert threads and threads[0] != threading.get_ident()
    assert len(read_zip(path)[0]) == 2
