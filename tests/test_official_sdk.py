"""The unmodified official SDK (`runapi-imagen-4` 0.3.0) runs against the simulator.

At time scale 0 every task is done by the SDK's first status request (sent right after
the create), so its 2 s poll interval is never waited; runs go in a thread pool anyway.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from runapi_ui.runapi.catalog import IMAGE_SIZES, MODELS, REMIX_MODEL
from runapi_ui.runapi.remix import REMIX_PATH
from runapi_ui.runapi.simulator import PRICE_CENTS

runapi_imagen_4 = pytest.importorskip("runapi.imagen_4")
Imagen4Client = runapi_imagen_4.Imagen4Client

KEY = "sk-official-sdk"
COMBOS = [(model, ratio) for model, info in MODELS.items() for ratio in info.aspect_ratios]


def test_every_model_and_ratio(make_simulator) -> None:
    server = make_simulator(api_keys=frozenset({KEY}))

    def run(model: str, ratio: str):
        client = Imagen4Client(api_key=KEY, base_url=server.url)
        try:
            return client.text_to_image.run(
                model=model, prompt=f"a fox, {ratio}", aspect_ratio=ratio
            )
        finally:
            client._http.close()  # the SDK has no public close

    with ThreadPoolExecutor(max_workers=len(COMBOS)) as pool:
        results = list(pool.map(lambda combo: run(*combo), COMBOS))

    assert len({r.id for r in results}) == len(COMBOS)
    with httpx.Client() as http:
        for (model, ratio), result in zip(COMBOS, results, strict=True):
            assert result.status == "completed"
            task = server.simulator.tasks[result.id]
            assert (task.model, task.body["aspect_ratio"]) == (model, ratio)
            (image,) = result.images
            data = http.get(image.url).content
            with Image.open(io.BytesIO(data)) as decoded:
                decoded.load()
                assert decoded.size == IMAGE_SIZES.get(ratio, IMAGE_SIZES["1:1"])
    # One create and one status request per task: the SDK never had to wait.
    api = [r for r in server.simulator.requests if not r.path.startswith("/files/")]
    assert len(api) == 2 * len(COMBOS)
    assert {r.api_key for r in api} == {KEY}


def test_balance(make_simulator) -> None:
    server = make_simulator(api_keys=frozenset({KEY}), starting_balance_cents=1000)
    client = Imagen4Client(api_key=KEY, base_url=server.url)
    try:
        before = client.account.balance()
        assert before.balance_cents == 1000 and before.spent_cents_total == 0
        client.text_to_image.run(model="imagen-4-ultra", prompt="a mountain")
        after = client.account.balance()
        price = PRICE_CENTS["imagen-4-ultra"]
        assert after.balance_cents == 1000 - price
        assert after.spent_cents_today == after.spent_cents_total == price
        assert after.paid_balance_cents + after.bonus_balance_cents == after.balance_cents
    finally:
        client._http.close()


def test_a_wrong_key_is_the_sdks_authentication_error(make_simulator) -> None:
    from runapi.core.errors import AuthenticationError

    server = make_simulator(api_keys=frozenset({KEY}))
    client = Imagen4Client(api_key="sk-not-this-one", base_url=server.url)
    try:
        with pytest.raises(AuthenticationError):
            client.text_to_image.run(model="imagen-4", prompt="a")
    finally:
        client._http.close()


def test_files_client_and_remix_image(make_simulator, tmp_path) -> None:
    """The SDK's FilesClient uploads a base64 source; its remix_image.run completes."""
    from runapi.core.files import FilesClient

    server = make_simulator(api_keys=frozenset({KEY}))
    photo = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(photo, format="JPEG")
    files = FilesClient(api_key=KEY, base_url=server.url)
    client = Imagen4Client(api_key=KEY, base_url=server.url)
    try:
        upload = files.create(
            source=base64.b64encode(photo.getvalue()).decode("ascii"), file_name="fox.jpg"
        )
        assert upload.mime_type == "image/jpeg" and upload.size_bytes == len(photo.getvalue())
        result = client.remix_image.run(
            model=REMIX_MODEL,
            prompt="the fox as a poster",
            source_image_urls=[upload.url],
            aspect_ratio="4:5",
            output_resolution="1k",
            output_format="jpg",
        )
    finally:
        files._http.close()  # the SDK has no public close
        client._http.close()

    assert result.status == "completed"
    task = server.simulator.tasks[result.id]
    assert task.sources == (photo.getvalue(),)
    (image,) = result.images
    with httpx.Client() as http:
        data = http.get(image.url).content
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        assert (decoded.format, decoded.size) == ("JPEG", (819, 1024))
    assert [(r.method, r.path, r.api_key) for r in server.simulator.requests][:3] == [
        ("POST", "/api/v1/files", KEY),
        ("POST", REMIX_PATH, KEY),
        ("GET", f"{REMIX_PATH}/{result.id}", KEY),
    ]


def test_files_client_direct_upload_of_a_local_file(make_simulator, tmp_path) -> None:
    """A local file goes prepare → PUT to storage (without the key) → confirm."""
    from runapi.core.files import FilesClient

    server = make_simulator(api_keys=frozenset({KEY}))
    path = tmp_path / "fox.png"
    Image.new("RGB", (64, 48), "orange").save(path, format="PNG")
    files = FilesClient(api_key=KEY, base_url=server.url)
    try:
        upload = files.create(file=path)
    finally:
        files._http.close()

    (stored,) = server.simulator.uploads.values()
    assert stored.data == path.read_bytes() and stored.file_name == "fox.png"
    assert (upload.url, upload.mime_type) == (stored.answer(server.url + "/")["url"], "image/png")
    put = [r for r in server.simulator.requests if r.method == "PUT"]
    assert [(r.api_key, r.status) for r in put] == [(None, 200)], "storage never sees the key"
    assert [r.path for r in server.simulator.requests] == [
        "/api/v1/files/prepare",
        put[0].path,
        "/api/v1/files/confirm",
    ]
