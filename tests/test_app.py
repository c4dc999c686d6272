"""The playground's runs, its page handlers and its API, against real simulators over loopback.

Two simulators play two roles: the app's built-in one (demo mode) and a second one
standing in for RunAPI itself (`live`), which accepts only ALICE's and BOB's keys and
records which key each request carried. A run starts through `Playground.start` (the
seam every way in shares); the page's Generate is `PageHandlers.on_generate`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from bench.processes import free_port
from bench.visitors import queue_messages
from runapi_ui.page.handlers import PageHandlers, PageOutputs
from runapi_ui.page.server import IdleFirstQueues, PlaygroundApp
from runapi_ui.page.ui import ratio_choices
from runapi_ui.runapi.catalog import PROMPT_MAX_CHARS
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer
from runapi_ui.runs.access import DEMO_KEY
from runapi_ui.runs.playground import Playground
from runapi_ui.runs.quota import limits_from
from runapi_ui.runs.registry import Run
from runapi_ui.runs.settings import Settings, settings_from
from runapi_ui.storage.images import ImageStore
from runapi_ui.storage.pnginfo import read_settings
from tests.conftest import FAST_RETRY_SECONDS, fast_durations, launched_app, script_client

ALICE = "sk-alice-7f3a9c21d4"
BOB = "sk-bob-0b8e62f5aa"
LIVE_KEYS = frozenset({ALICE, BOB})


@pytest.fixture
def live(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return make_simulator(api_keys=LIVE_KEYS)


@pytest.fixture
async def make_playground(
    tmp_path: Path, make_simulator: Callable[..., SimulatorServer]
) -> AsyncIterator[Callable[..., tuple[Playground, SimulatorServer]]]:
    """A Playground (no quotas) whose demo backend is a fresh simulator; returns both.
    Runs still going at the end of the test are stopped."""
    made: list[Playground] = []

    def make(
        live: SimulatorServer | str | None = None,
        *,
        demo_config: dict[str, Any] | None = None,
        **settings: Any,
    ) -> tuple[Playground, SimulatorServer]:
        demo = make_simulator(api_keys=frozenset({DEMO_KEY}), **(demo_config or {}))
        url = live if isinstance(live, str) else (live.url if live else "http://127.0.0.1:9")
        config = Settings(base_url=url, simulator_time_scale=0.0, data_dir=tmp_path, **settings)
        playground = Playground(
            config,
            ImageStore(config.image_dir),
            demo.url,
            limits=limits_from(Settings(images_per_hour=0)),
            live_durations=fast_durations(),
            retry_base_delay=FAST_RETRY_SECONDS,
        )
        made.append(playground)
        return playground, demo

    yield make
    for playground in made:
        await playground.runs.aclose()


async def generated(playground: Playground, **overrides: Any) -> Run:
    """A finished run of the defaults below, started as every way in starts one."""
    arguments: dict[str, Any] = {"prompt": "a red fox in fresh snow", "model": "imagen-4-fast"}
    arguments.update(overrides)
    run = await playground.start(**arguments)
    return await asyncio.wait_for(run.finished(), 30)


async def click_generate(
    playground: Playground,
    *,
    page: PageHandlers | None = None,
    tab: str | None = None,
    **overrides: Any,
) -> list[PageOutputs]:
    """Every (results, history, tiles, summary, shown) the page yields for one Generate."""
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
    page = page or PageHandlers(playground)
    events = page.on_generate(**arguments, request=a_tab(tab))
    # The page's writes (not the feed's ticks between them, which leave the rest as is),
    # each history as the list the browser's JSON text holds.
    return [written(outputs) async for outputs in events if isinstance(outputs.history, str)]


def written(outputs: PageOutputs) -> PageOutputs:
    """The page's write with its history read back: the browser keeps it as a JSON text."""
    return outputs._replace(history=json.loads(outputs.history))


def a_tab(session: str | None) -> Any:
    """What Gradio passes a handler as its request: here only the tab's session counts."""
    return SimpleNamespace(session_hash=session) if session else None


async def failed_generate(playground: Playground, **overrides: Any) -> str:
    """The message of a Generate that made no image: a warning toast that stays (not an
    exception: the tab's other runs go on)."""
    with pytest.warns(UserWarning, match="^Generation failed: ") as caught:
        outputs = await click_generate(playground, **overrides)
    assert outputs[-1].results == [], "no image came"
    return str(caught[-1].message)


def api_requests(server: SimulatorServer) -> list[Any]:
    return [r for r in server.simulator.requests if r.path.startswith("/api")]


# --- runs and the page's handler -------------------------------------------------------


async def test_demo_run_shows_each_image_as_it_lands_with_captions(make_playground) -> None:
    # Tasks that end 0.4, 1.3 and 1.7 s after they start (this seed's draws, after the
    # earlier run's): each image lands on its own, so each must show on its own.
    spread = {"durations": {"imagen-4-fast": (0.2, 1.8)}, "time_scale": 1.0, "seed": 8}
    playground, demo = make_playground(demo_config=spread)
    earlier = (await click_generate(playground, prompt="an earlier run"))[-1][1]
    outputs = await click_generate(
        playground, num_images=3, seed="7", aspect_ratio="16:9", history=earlier
    )

    counts = [len(results) for results, *_ in outputs]
    assert counts == sorted(counts) and {1, 2, 3} <= set(counts), (
        f"each image is shown the moment it lands: {counts}"
    )
    assert counts.count(3) == 1, f"the finished run is sent to the page once: {counts}"
    results, history, tiles, _, summary, shown, wait_again, *_ = outputs[-1]
    assert shown == history[0]["id"] and not wait_again.visible, "nothing is left to wait for"
    assert [entry["prompt"] for entry in history] == [
        "a red fox in fresh snow",
        "an earlier run",
    ], "the earlier run stays in the history, below the newest"
    assert len(tiles) == 2
    captions = sorted(caption for _, caption in results)
    assert captions == [f"Demo · imagen-4-fast · 16:9 · seed {seed}" for seed in (7, 8, 9)]
    for path, _ in results:
        with Image.open(path) as image:
            assert image.size == (1408, 768)
    assert "run-ok" in summary and "3 of 3 images" in summary and "seeds 7, 8, 9" in summary
    assert {r.api_key for r in api_requests(demo)} == {DEMO_KEY}


async def test_an_empty_seed_picks_a_random_one_and_shows_it(make_playground) -> None:
    playground, _ = make_playground()
    seeds = set()
    for _ in range(2):
        last = (await click_generate(playground))[-1]
        results, summary = last.results, last.summary
        seed = results[0][1].rsplit("seed ", 1)[1]
        assert f"seed {seed}" in summary
        seeds.add(seed)
    assert len(seeds) == 2


async def test_a_typed_key_goes_to_runapi_and_only_there(make_playground, live) -> None:
    playground, demo = make_playground(live)
    run = await generated(playground, api_key=f"  {ALICE} ")
    assert not run.images[0].caption.startswith("Demo"), "a real image is not captioned as a demo"
    assert api_requests(live) and {r.api_key for r in api_requests(live)} == {ALICE}
    assert all(r.api_key != ALICE for r in demo.simulator.requests)


async def test_the_server_key_is_used_when_none_is_typed(make_playground, live) -> None:
    playground, demo = make_playground(live, api_key=BOB)
    await generated(playground)
    assert {r.api_key for r in api_requests(live)} == {BOB}
    assert not demo.simulator.requests


async def test_demo_flag_forces_the_simulator_even_with_keys(make_playground, live) -> None:
    playground, demo = make_playground(live, api_key=BOB, demo=True)
    run = await generated(playground, api_key=ALICE)
    assert run.images[0].caption.startswith("Demo")
    assert not live.simulator.requests and demo.simulator.requests


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("prompt", "", "Enter a prompt"),
        ("prompt", "   \n ", "Enter a prompt"),
        ("prompt", "x" * (PROMPT_MAX_CHARS + 1), "shorten it"),
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
        await click_generate(playground, **{field: value, **model})
    assert phrase in caught.value.message
    assert caught.value.title == "Check your input"
    assert not demo.simulator.requests and not live.simulator.requests
    assert len(playground.runs) == 0, "a refused run must not be started"


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
        ("image_truncated", ALICE, "not a valid image"),
    ],
)
async def test_every_service_failure_says_what_happened_and_what_to_do(
    make_playground, make_simulator, faults: str, key: str, phrase: str
) -> None:
    live = make_simulator(api_keys=LIVE_KEYS, faults=faults)
    playground, _ = make_playground(live)
    message = await failed_generate(playground, api_key=key)
    assert phrase in message
    assert "Traceback" not in message and key not in message
    assert message.rstrip().endswith((".", ")")), "a whole sentence, with what to do"


async def test_a_timeout_names_the_task_so_it_can_be_resumed(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="stuck")
    playground, _ = make_playground(live, deadline=0.6)
    message = await failed_generate(playground, api_key=ALICE)
    (task_id,) = live.simulator.tasks
    assert task_id in message and "did not finish within" in message


async def test_an_unreachable_service_is_a_network_message(make_playground) -> None:
    playground, _ = make_playground(f"http://127.0.0.1:{free_port()}")
    assert "Could not reach RunAPI" in await failed_generate(playground, api_key=ALICE)


async def test_after_a_failure_the_next_generate_works(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="task_fail*1")
    playground, _ = make_playground(live)
    await failed_generate(playground, api_key=ALICE)
    assert len((await click_generate(playground, api_key=ALICE))[-1].results) == 1


async def test_a_partial_failure_keeps_the_images_that_came(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="task_fail*1")
    playground, _ = make_playground(live)
    with pytest.warns(UserWarning, match="safety filter"):  # the page's warning toast
        outputs = await click_generate(playground, api_key=ALICE, num_images=3)
    results, summary = outputs[-1].results, outputs[-1].summary
    assert len(results) == 2
    assert "run-failed" in summary and "2 of 3 images" in summary and "safety filter" in summary


async def test_stopping_a_run_stops_its_polling_at_once(make_playground, make_simulator):
    live = make_simulator(api_keys=LIVE_KEYS, faults="stuck")
    playground, _ = make_playground(live)
    page = PageHandlers(playground)
    running = asyncio.ensure_future(
        click_generate(playground, page=page, tab="tab-1", api_key=ALICE, num_images=3)
    )
    # The simulator runs in another thread: there is no event to await, so look.
    while sum("/text_to_image/" in r.path for r in live.simulator.requests) < 6:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await page.on_stop(request=a_tab("tab-1"))
    seen = len(live.simulator.requests)
    await asyncio.sleep(1.0)  # polling steps are 0.2 s here: five would have come
    assert len(live.simulator.requests) == seen
    outputs = await asyncio.wait_for(running, 5)  # the page hears the run ended
    assert outputs[-1].history[0]["status"] == "stopped"


@pytest.mark.parametrize(
    ("model", "current", "offered", "sent_value"),
    [
        ("imagen-4-fast", "16:9", ["1:1", "16:9", "9:16", "4:3", "3:4", "auto"], None),
        ("imagen-4", "16:9", ["1:1", "16:9", "9:16", "4:3", "3:4"], None),
        ("imagen-4-ultra", "auto", ["1:1", "16:9", "9:16", "4:3", "3:4"], "1:1"),
    ],
)
def test_the_ratio_list_follows_the_model(model, current, offered, sent_value) -> None:
    """A ratio the new model takes is left alone (the page keeps whatever the visitor has
    picked since); one it lacks becomes 1:1."""
    radio = ratio_choices(model, current)
    assert [value for _, value in radio.choices] == offered
    update = radio._constructor_args[0]  # what Gradio sends the page: the arguments given
    assert update.get("value") == sent_value and ("value" in update) == (sent_value is not None)


# --- the app, launched, driven by gradio_client --------------------------------------


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str, SimulatorServer]]:
    """The real app on a real port; its demo tasks take ~1 s (imagen-4-fast)."""
    with SimulatorServer(SimulatorConfig(time_scale=0.05, api_keys=LIVE_KEYS)) as live:
        settings = Settings(
            base_url=live.url,
            port=free_port(),
            simulator_time_scale=0.25,
            deadline=60,
            data_dir=tmp_path_factory.mktemp("launched"),
        )
        with launched_app(settings) as app:
            yield app.app, app.url, live


def test_the_api_takes_keywords_and_returns_captioned_images(launched) -> None:
    _, url, _ = launched
    with script_client(url) as client:
        endpoint = client.view_api(return_format="dict")["named_endpoints"]["/generate"]
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
    parameters = [p["parameter_name"] for p in endpoint["parameters"]]
    assert parameters == [
        "prompt",
        "model",
        "aspect_ratio",
        "negative_prompt",
        "num_images",
        "seed",
        "api_key",
    ]
    assert sorted(item["caption"] for item in result) == [
        "Demo · imagen-4-fast · 9:16 · seed 11",
        "Demo · imagen-4-fast · 9:16 · seed 12",
    ]
    with Image.open(result[0]["image"]) as image:
        assert image.size == (768, 1408)


def test_a_script_may_send_numbers_where_text_goes(launched) -> None:
    """The endpoints skip Gradio's preprocessing (a worker-thread trip per field), so
    they make text of a number themselves, as Gradio's Textbox did: a prompt of 1984
    is the prompt "1984", not "The prompt must be text."."""
    _, url, _ = launched
    with script_client(url) as client:
        # On a key: the live simulator is quicker than the demo, and the words are the point.
        (item,) = client.predict(
            prompt=1984, negative_prompt=7, seed=3, api_key=ALICE, api_name="/generate"
        )
        (compared, *_) = client.predict(prompt=1985, seed=4, api_key=ALICE, api_name="/compare")
    made = read_settings(item["image"])
    assert (made.prompt, made.negative_prompt, made.seed) == ("1984", "7", 3)
    assert read_settings(compared["image"]).prompt == "1985"


def test_a_script_sees_progress_then_one_answer_with_every_image(launched) -> None:
    """Scripts get the bar's words as progress, and the images once, at the end: a
    gallery yielded image by image made gradio_client download 1+2+…+n+n files."""
    _, url, _ = launched
    with script_client(url) as client:
        messages = list(
            queue_messages(
                client, "/generate", prompt="a kite", model="imagen-4-fast", num_images=3, seed=5
            )
        )
    kinds = [message["msg"] for message in messages]
    assert "process_generating" not in kinds
    progress = [
        unit["desc"]
        for message in messages
        if message["msg"] == "progress"
        for unit in message["progress_data"]
    ]
    assert any("of 3 images done" in words for words in progress), progress
    # Each change of state once, without a tick of seconds: every message costs both sides.
    assert all(re.fullmatch(r"[A-Z][a-z]+ · [0-3] of 3 images done", w) for w in progress)
    assert len(progress) == len(set(progress)), progress
    # The end is the answer's to say: a last "Finishing" or "Done" would only cost.
    assert not [w for w in progress if w.startswith(("Finishing", "Done"))], progress
    (answer,) = (message for message in messages if message["msg"] == "process_completed")
    assert answer["success"]
    (gallery,) = answer["output"]["data"]
    assert [item["caption"] for item in gallery] == [
        f"Demo · imagen-4-fast · 1:1 · seed {seed}" for seed in (5, 6, 7)
    ]


def test_gradio_keeps_only_the_last_sessions_kept_sessions(tmp_path) -> None:
    """Gradio holds a copy of the page's config per session (~100 KB here), 10,000
    sessions by default, and their streams' messages, 2000; `sessions_kept`
    (RUNAPI_UI_SESSIONS_KEPT) bounds both."""
    settings = settings_from([], {"RUNAPI_UI_SESSIONS_KEPT": "3"})
    settings = replace(settings, port=free_port(), data_dir=tmp_path, simulator_time_scale=0)
    with launched_app(settings) as served:
        for visitor in range(5):  # each client is a session of its own
            with script_client(served.url) as client:
                client.predict(
                    prompt=f"visitor {visitor}", model="imagen-4-fast", api_name="/generate"
                )
        assert len(served.app.blocks.state_holder.session_data) == 3
        assert len(served.app.blocks._queue.pending_messages_per_session) == 3


def test_a_sessions_messages_go_when_least_recently_read_and_none_of_its_events_runs() -> None:
    running = {"an event": SimpleNamespace(session_hash="running")}  # Gradio's, by id
    queues = IdleFirstQueues(3, running)
    for session in ("running", "streaming", "gone"):
        queues[session] = []
    queues["streaming"]  # its stream reads it
    queues["joining"] = []
    assert list(queues) == ["running", "streaming", "joining"]


def test_api_failures_arrive_with_the_pages_message(launched) -> None:
    _, url, _ = launched
    with script_client(url) as client:
        with pytest.raises(AppError, match="Enter a prompt"):
            client.predict(prompt=" ", model="imagen-4", api_name="/generate")
        with pytest.raises(AppError, match="did not accept the API key"):
            client.predict(prompt="a cat", api_key="sk-unknown", api_name="/generate")


def test_twenty_concurrent_calls_all_reach_runapi_before_the_first_finishes(launched) -> None:
    """Twenty calls at once are served at once: RunAPI sees every create before any task
    ends. Served one at a time, the second create would come after the first finished.
    Timings belong in the benchmark (`python -m bench`); this asserts only the order."""
    _, url, live = launched
    simulator = live.simulator
    before = len(simulator.requests)
    # 60 s x the fixture's time scale of 0.05: each task takes 3 s.
    simulator.config.durations = {"imagen-4-fast": (60.0, 60.0)}
    try:
        with script_client(url) as client:
            jobs = [
                client.submit(
                    prompt=f"a cat, {i}", model="imagen-4-fast", api_key=ALICE, api_name="/generate"
                )
                for i in range(20)
            ]
            results = [job.result(timeout=60) for job in jobs]
    finally:
        simulator.config.durations = None
    assert all(len(images) == 1 for images in results)
    creates = [r for r in list(simulator.requests)[before:] if r.method == "POST"]
    tasks = [simulator.tasks[r.task_id] for r in creates if r.task_id]
    assert len(creates) == len(tasks) == 20
    first_finish = min(task.created_at + task.duration for task in tasks)
    assert max(create.at for create in creates) < first_finish


def test_two_sessions_keys_never_mix_or_leak(launched, caplog, capfd) -> None:
    _, url, live = launched
    caplog.set_level(logging.DEBUG)
    before = len(live.simulator.requests)

    def session(key: str) -> list[dict[str, Any]]:
        with script_client(url) as client:
            return client.predict(
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
