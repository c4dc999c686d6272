"""The playground's handler and its API, against real simulators over loopback.

Two simulators play two roles: the app's built-in one (demo mode) and a second one
standing in for RunAPI itself (`live`), which accepts only ALICE's and BOB's keys and
records which key each request carried.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from runapi_ui.playground import DEMO_KEY, Playground
from runapi_ui.server import PlaygroundApp, create_app, launch
from runapi_ui.settings import Settings
from runapi_ui.simulator import SimulatorConfig, SimulatorServer
from runapi_ui.ui import ratio_choices
from tests.conftest import fast_durations

ALICE = "sk-alice-7f3a9c21d4"
BOB = "sk-bob-0b8e62f5aa"
LIVE_KEYS = frozenset({ALICE, BOB})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator(api_keys=LIVE_KEYS)


@pytest.fixture
def make_playground(
    tmp_path: Path, make_simulator: Callable[..., SimulatorServer]
) -> Callable[..., tuple[Playground, SimulatorServer]]:
    """A Playground whose demo backend is a fresh simulator; returns both."""

    def make(
        live: SimulatorServer | str | None = None, **settings: Any
    ) -> tuple[Playground, SimulatorServer]:
        demo = make_simulator(api_keys=frozenset({DEMO_KEY}))
        url = live if isinstance(live, str) else (live.url if live else "http://127.0.0.1:9")
        config = Settings(base_url=url, simulator_time_scale=0.0, **settings)
        return Playground(config, tmp_path, demo.url, fast_durations()), demo

    return make


async def run(playground: Playground, **overrides: Any) -> list[tuple[Any, Any, Any]]:
    """Every (gallery, history, summary) the handler yields for one Generate click."""
    arguments: dict[str, Any] = {
        "prompt": "a red fox in fresh snow",
        "model": "imagen-4-fast",
        "aspect_ratio": "1:1",
        "negative_prompt": "",
        "num_images": 1,
        "seed": "",
        "api_key": "",
        "history": [],
    }
    arguments.update(overrides)
    return [output async for output in playground.generate(**arguments)]


# --- the handler ---------------------------------------------------------------------


async def test_demo_run_fills_the_gallery_newest_first_with_captions(make_playground) -> None:
    playground, demo = make_playground()
    earlier = [("earlier.png", "imagen-4 · 1:1 · seed 1")]
    outputs = await run(playground, num_images=3, seed="7", aspect_ratio="16:9", history=earlier)

    gallery, history, summary = outputs[-1]
    assert len(outputs) == 3, "each image is shown the moment it lands"
    assert gallery == history
    assert gallery[-1] == earlier[0], "earlier results stay below the newest"
    captions = sorted(caption for _, caption in gallery[:3])
    assert captions == [f"Demo · imagen-4-fast · 16:9 · seed {seed}" for seed in (7, 8, 9)]
    for path, _ in gallery[:3]:
        with Image.open(path) as image:
            assert image.size == (1408, 768)
    assert summary.ok and "3 of 3 images" in summary.text and "seeds 7, 8, 9" in summary.text
    assert {r.api_key for r in demo.simulator.requests if r.path.startswith("/api")} == {DEMO_KEY}


async def test_an_empty_seed_picks_a_random_one_and_shows_it(make_playground) -> None:
    playground, _ = make_playground()
    seeds = set()
    for _ in range(2):
        gallery, _, summary = (await run(playground))[-1]
        seed = gallery[0][1].rsplit("seed ", 1)[1]
        assert f"seed {seed}" in summary.text
        seeds.add(seed)
    assert len(seeds) == 2


async def test_a_typed_key_goes_to_runapi_and_only_there(make_playground, live) -> None:
    playground, demo = make_playground(live)
    outputs = await run(playground, api_key=f"  {ALICE} ")
    gallery = outputs[-1][0]
    assert not gallery[0][1].startswith("Demo"), "a real image is not captioned as a demo"
    api_requests = [r for r in live.simulator.requests if r.path.startswith("/api")]
    assert api_requests and {r.api_key for r in api_requests} == {ALICE}
    assert all(r.api_key != ALICE for r in demo.simulator.requests)


async def test_the_server_key_is_used_when_none_is_typed(make_playground, live) -> None:
    playground, demo = make_playground(live, api_key=BOB)
    await run(playground)
    assert {r.api_key for r in live.simulator.requests if r.path.startswith("/api")} == {BOB}
    assert not demo.simulator.requests


async def test_demo_flag_forces_the_simulator_even_with_keys(make_playground, live) -> None:
    playground, demo = make_playground(live, api_key=BOB, demo=True)
    outputs = await run(playground, api_key=ALICE)
    assert outputs[-1][0][0][1].startswith("Demo")
    assert not live.simulator.requests and demo.simulator.requests


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("prompt", "", "Enter a prompt"),
        ("prompt", "   \n ", "Enter a prompt"),
        ("prompt", "x" * 2001, "shorten it"),
        ("model", "imagen-5", "Unknown model"),
        ("aspect_ratio", "auto", "does not take aspect ratio"),
        ("num_images", 0, "Number of images"),
        ("num_images", 5, "Number of images"),
        ("seed", "-1", "Seed must be a whole number"),
        ("seed", "1.5", "Seed must be a whole number"),
        ("seed", "lucky", "Seed must be a whole number"),
        ("seed", str(2**31), "Seed must be a whole number"),
    ],
)
async def test_invalid_input_is_refused_before_anything_is_sent(
    make_playground, live, field: str, value: Any, phrase: str
) -> None:
    playground, demo = make_playground(live)
    model = {"model": "imagen-4"} if field == "aspect_ratio" else {}
    with pytest.raises(gr.Error) as caught:
        await run(playground, **{field: value, **model})
    assert phrase in caught.value.message
    assert caught.value.title == "Check your input"
    assert not demo.simulator.requests and not live.simulator.requests


@pytest.mark.parametrize(
    ("faults", "key", "phrase"),
    [
        ("", "sk-not-a-real-key", "did not accept the API key"),
        ("no_credits", ALICE, "does not have enough credits"),
        ("rate_limit@create", ALICE, "rate limiting"),
        ("server_error@status", ALICE, "HTTP 502: 502 Bad Gateway"),
        ("task_fail", ALICE, "blocked by the safety filter"),
        ("invalid", ALICE, "rejected by the content policy"),
        ("image_404", ALICE, "could not be downloaded"),
        ("image_garbage", ALICE, "not a valid image"),
    ],
)
async def test_every_service_failure_says_what_happened_and_what_to_do(
    make_playground, make_simulator, faults: str, key: str, phrase: str
) -> None:
    live = make_simulator(api_keys=LIVE_KEYS, faults=faults)
    playground, _ = make_playground(live)
    with pytest.raises(gr.Error) as caught:
        await run(playground, api_key=key)
    message = caught.value.message
    assert phrase in message
    assert "Traceback" not in message and key not in message
    assert message.rstrip().endswith((".", ")")), "a whole sentence, with what to do"


async def test_a_timeout_names_the_task_so_it_can_be_resumed(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="stuck")
    playground, _ = make_playground(live, deadline=0.6)
    with pytest.raises(gr.Error) as caught:
        await run(playground, api_key=ALICE)
    (task_id,) = live.simulator.tasks
    assert task_id in caught.value.message and "did not finish within" in caught.value.message


async def test_an_unreachable_service_is_a_network_message(make_playground) -> None:
    playground, _ = make_playground(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(gr.Error) as caught:
        await run(playground, api_key=ALICE)
    assert "Could not reach RunAPI" in caught.value.message


async def test_after_a_failure_the_next_generate_works(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="task_fail*1")
    playground, _ = make_playground(live)
    with pytest.raises(gr.Error):
        await run(playground, api_key=ALICE)
    assert len((await run(playground, api_key=ALICE))[-1][0]) == 1


async def test_a_partial_failure_keeps_the_images_that_came(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="task_fail*1")
    playground, _ = make_playground(live)
    gallery, _, summary = (await run(playground, api_key=ALICE, num_images=3))[-1]
    assert len(gallery) == 2
    assert not summary.ok and "2 of 3 images" in summary.text and "safety filter" in summary.text


async def test_stopping_a_run_stops_its_polling_at_once(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="stuck")
    playground, _ = make_playground(live)
    running = asyncio.ensure_future(run(playground, api_key=ALICE, num_images=3))
    # The simulator runs in another thread: there is no event to await, so look.
    while sum("/text_to_image/" in r.path for r in live.simulator.requests) < 6:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    seen = len(live.simulator.requests)
    await asyncio.sleep(1.0)  # polling steps are 0.2 s here: five would have come
    assert len(live.simulator.requests) == seen


@pytest.mark.parametrize(
    ("model", "current", "offered", "kept"),
    [
        ("imagen-4-fast", "16:9", ["1:1", "16:9", "9:16", "4:3", "3:4", "auto"], "16:9"),
        ("imagen-4", "16:9", ["1:1", "16:9", "9:16", "4:3", "3:4"], "16:9"),
        ("imagen-4-ultra", "auto", ["1:1", "16:9", "9:16", "4:3", "3:4"], "1:1"),
    ],
)
def test_the_ratio_list_follows_the_model(model, current, offered, kept) -> None:
    radio = ratio_choices(model, current)
    assert [value for _, value in radio.choices] == offered
    assert radio.value == kept


# --- the app, launched, driven by gradio_client --------------------------------------


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str, SimulatorServer]]:
    """The real app on a real port; its demo tasks take ~1 s (imagen-4-fast)."""
    live = SimulatorServer(SimulatorConfig(time_scale=0.05, api_keys=LIVE_KEYS)).start()
    settings = Settings(base_url=live.url, port=free_port(), simulator_time_scale=0.25, deadline=60)
    app = create_app(settings, live_durations=fast_durations())
    url = launch(app, settings, block=False)
    yield app, url, live
    app.close()
    live.stop()


def test_the_api_takes_keywords_and_returns_captioned_images(launched) -> None:
    _, url, _ = launched
    client = Client(url, verbose=False)
    parameters = [
        p["parameter_name"]
        for p in client.view_api(return_format="dict")["named_endpoints"]["/generate"]["parameters"]
    ]
    assert parameters == [
        "prompt",
        "model",
        "aspect_ratio",
        "negative_prompt",
        "num_images",
        "seed",
        "api_key",
    ]
    result = client.predict(
        prompt="a lighthouse at night",
        model="imagen-4-fast",
        aspect_ratio="9:16",
        negative_prompt="",
        num_images=2,
        seed=11,
        api_key="",
        api_name="/generate",
    )
    assert sorted(item["caption"] for item in result) == [
        "Demo · imagen-4-fast · 9:16 · seed 11",
        "Demo · imagen-4-fast · 9:16 · seed 12",
    ]
    with Image.open(result[0]["image"]) as image:
        assert image.size == (768, 1408)


def test_api_failures_arrive_with_the_pages_message(launched) -> None:
    _, url, _ = launched
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="Enter a prompt"):
        client.predict(prompt=" ", model="imagen-4", api_name="/generate")
    with pytest.raises(AppError, match="did not accept the API key"):
        client.predict(prompt="a cat", api_key="sk-unknown", api_name="/generate")


def test_twenty_concurrent_calls_finish_in_about_the_time_of_one(launched) -> None:
    _, url, _ = launched
    client = Client(url, verbose=False)

    def one() -> float:
        started = time.monotonic()
        client.predict(prompt="a cat", model="imagen-4-fast", api_name="/generate")
        return time.monotonic() - started

    one()  # warm up: the first call pays for connections and the poll schedule
    single = one()
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        durations = list(pool.map(lambda _: one(), range(20)))
    together = time.monotonic() - started
    assert len(durations) == 20
    # Served one at a time, twenty would take 20x; allow 3x for a busy 2-core machine.
    assert together < 3 * single + 1.0, (single, together)


def test_two_sessions_keys_never_mix_or_leak(launched, caplog, capfd) -> None:
    _, url, live = launched
    caplog.set_level(logging.DEBUG)
    before = len(live.simulator.requests)

    def session(key: str) -> list[dict[str, Any]]:
        return Client(url, verbose=False).predict(
            prompt=f"a portrait for {key[:6]}", num_images=2, api_key=key, api_name="/generate"
        )

    with ThreadPoolExecutor(2) as pool:
        alice, bob = pool.map(session, [ALICE, BOB])
    assert len(alice) == len(bob) == 2

    requests = list(live.simulator.requests)[before:]
    creates = [r for r in requests if r.method == "POST"]
    assert sorted(r.api_key for r in creates) == sorted([ALICE, ALICE, BOB, BOB])
    owners = {task_id: task.api_key for task_id, task in live.simulator.tasks.items()}
    for request in requests:
        task_id = request.path.rsplit("/", 1)[-1]
        if request.method == "GET" and task_id in owners:
            assert request.api_key == owners[task_id], "a status read with another's key"

    page = httpx.get(url).text + httpx.get(f"{url.rstrip('/')}/config").text
    logged = caplog.text + "".join(capfd.readouterr())
    for key in (ALICE, BOB):
        assert key not in page
        assert key not in logged
