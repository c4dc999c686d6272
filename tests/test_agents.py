"""The agents' ways in, driven by real clients over loopback: the `mcp` SDK against the
MCP tool, the `openai` package against the images endpoint.

The app runs for real (`create_app` + `launch`, MCP on). Two simulators play two roles:
the app's built-in one (demo mode, for callers without a key) and `live`, standing in
for RunAPI itself, which accepts only ALICE's and BOB's keys.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from bench.processes import free_port
from runapi_ui.agents.endpoints import (
    IMAGES_PATH,
    ImagesEndpoint,
    InvalidRequest,
    caller_key,
    images_request,
    model_for,
    ratio_for_size,
)
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.runapi.catalog import MODELS
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer, parse_faults
from runapi_ui.runs.settings import Settings
from tests.conftest import launched_app

ALICE = "sk-alice-7f3a9c21d4"
BOB = "sk-bob-0b8e62f5aa"
LIVE_KEYS = frozenset({ALICE, BOB})
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class AgentApp:
    app: PlaygroundApp
    url: str  # without a trailing slash
    live: SimulatorServer

    @property
    def demo(self) -> SimulatorServer:
        assert self.app.simulator is not None
        return self.app.simulator

    def creates(self, server: SimulatorServer) -> int:
        """How many tasks `server` has been asked to create so far."""
        return sum(1 for r in server.simulator.requests if r.method == "POST")

    def endpoint(self) -> ImagesEndpoint:
        """The images endpoint serving this app (for its run sharing's settings)."""
        for route in self.app.blocks.server_app.routes:
            if getattr(route, "path", None) == IMAGES_PATH:
                return route.endpoint.__self__
        raise AssertionError(f"{IMAGES_PATH} is not routed")


@contextmanager
def running_app(data_dir: Path, **overrides: Any) -> Iterator[AgentApp]:
    """The real app with MCP on; demo tasks take ~1 s (imagen-4-fast), live ones less.
    `overrides` are more Settings (or other values for these)."""
    with SimulatorServer(SimulatorConfig(time_scale=0.05, api_keys=LIVE_KEYS)) as live:
        settings = Settings(
            **{
                "base_url": live.url,
                "port": free_port(),
                "simulator_time_scale": 0.25,
                "deadline": 60,
                "mcp": True,
                "data_dir": data_dir,
                **overrides,
            }
        )
        with launched_app(settings) as app:
            yield AgentApp(app.app, app.url.rstrip("/"), live)


@pytest.fixture(scope="module")
def agent_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentApp]:
    with running_app(tmp_path_factory.mktemp("data")) as app:
        yield app


def with_faults(monkeypatch: pytest.MonkeyPatch, server: SimulatorServer, faults: str) -> None:
    """Give the (module-wide) simulator `faults` for this test only (every request meets
    them: counted faults would share their counts across tests)."""
    monkeypatch.setattr(server.simulator.config, "faults", parse_faults(faults))


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC), "not a PNG"
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# --- MCP ---------------------------------------------------------------------------------


@asynccontextmanager
async def mcp_session(url: str, api_key: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/gradio_api/mcp/", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def images_of(result: CallToolResult) -> list[bytes]:
    return [base64.b64decode(c.data) for c in result.content if isinstance(c, ImageContent)]


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_mcp_lists_only_the_agent_tool_with_typed_described_arguments(agent_app) -> None:
    async with mcp_session(agent_app.url) as session:
        tools = (await session.list_tools()).tools

    names = [tool.name for tool in tools]
    assert names == ["generate_image", "remix_image"], "UI events must not be tools"
    tool = tools[0]
    for name, info in MODELS.items():
        assert f"{name} (${info.price_usd:.2f} per image" in tool.description
    assert "seconds" in tool.description and "Imagen 4" in tool.description
    schema = tool.inputSchema
    assert schema["required"] == ["prompt"]
    properties = schema["properties"]
    assert list(properties) == [
        "prompt",
        "model",
        "aspect_ratio",
        "negative_prompt",
        "seed",
        "num_images",
    ]
    assert properties["prompt"]["type"] == "string"
    assert properties["model"]["enum"] == list(MODELS)
    assert properties["model"]["default"] == "imagen-4"
    assert set(properties["aspect_ratio"]["enum"]) == {"1:1", "16:9", "9:16", "4:3", "3:4", "auto"}
    assert properties["num_images"]["type"] == "integer"
    for name, spec in properties.items():
        assert len(spec.get("description", "")) > 20, f"{name} has no usable description"


async def test_mcp_tool_returns_image_blocks_without_a_progress_token(agent_app) -> None:
    async with mcp_session(agent_app.url) as session:
        result = await session.call_tool(
            "generate_image",
            {
                "prompt": "a lighthouse at night",
                "model": "imagen-4-fast",
                "aspect_ratio": "16:9",
                "seed": 5,
                "num_images": 2,
            },
        )

    assert not result.isError, text_of(result)
    images = images_of(result)
    assert [png_size(image) for image in images] == [(1408, 768), (1408, 768)]
    text = text_of(result)
    captions = re.findall(r"Image \d of 2: (.*) · 1408x768", text)
    assert sorted(captions) == [
        "Demo · imagen-4-fast · 16:9 · seed 5",
        "Demo · imagen-4-fast · 16:9 · seed 6",
    ]
    urls = re.findall(r"Image URL: (\S+)", text)
    assert len(urls) == 2
    async with httpx.AsyncClient() as http:
        for url in urls:
            assert url.startswith(agent_app.url + "/gradio_api/file=")
            served = await http.get(url)
            assert served.status_code == 200 and png_size(served.content) == (1408, 768)
    assert "2 of 2 images done" in text


async def test_mcp_tool_reports_progress_when_asked(agent_app) -> None:
    messages: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append((progress, total, message))

    async with mcp_session(agent_app.url) as session:
        result = await session.call_tool(
            "generate_image",
            {"prompt": "a red fox in snow", "model": "imagen-4-fast", "num_images": 2},
            progress_callback=on_progress,
        )

    assert not result.isError, text_of(result)
    assert len(images_of(result)) == 2, "image blocks come back with a progress token too"
    assert messages, "no progress notification arrived"
    words = [message or "" for _, _, message in messages]
    assert all(re.fullmatch(r"\w[\w ]* · \d+ s · [0-2] of 2 images done", w) for w in words)
    assert any(w.startswith(("Queued", "Generating", "Downloading")) for w in words)
    progress = [value for value, _, _ in messages]
    assert progress == sorted(progress), "progress never goes backwards"
    assert all(total == 100.0 for _, total, _ in messages)


async def test_mcp_failures_are_tool_errors_with_the_playgrounds_message(agent_app) -> None:
    async with mcp_session(agent_app.url) as session:
        blank = await session.call_tool("generate_image", {"prompt": "   "})
        too_many = await session.call_tool("generate_image", {"prompt": "a cat", "num_images": 5})
    assert blank.isError and text_of(blank).startswith("Enter a prompt")
    assert too_many.isError and "1 to 4" in text_of(too_many)


async def test_mcp_spends_the_bearer_key_it_is_given(agent_app) -> None:
    before = len(agent_app.live.simulator.requests)
    async with mcp_session(agent_app.url, api_key=ALICE) as session:
        result = await session.call_tool(
            "generate_image", {"prompt": "a teapot", "model": "imagen-4-fast", "seed": 9}
        )
    assert not result.isError, text_of(result)
    assert "Image 1 of 1: imagen-4-fast · 1:1 · seed 9" in text_of(result), "not a demo image"
    seen = list(agent_app.live.simulator.requests)[before:]
    assert seen and {r.api_key for r in seen} == {ALICE}

    async with mcp_session(agent_app.url, api_key="sk-not-a-key") as session:
        rejected = await session.call_tool("generate_image", {"prompt": "a teapot"})
    assert rejected.isError and "did not accept the API key" in text_of(rejected)


# --- the OpenAI-compatible endpoint ------------------------------------------------------


def openai_client(agent_app: AgentApp, api_key: str = ALICE, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{agent_app.url}/v1", api_key=api_key, **kwargs)


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("1536x1024", "4:3"),
        ("1024x1536", "3:4"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("256x256", "1:1"),
        ("1920x1080", "16:9"),
        ("1000x1400", "3:4"),
        ("auto", "1:1"),
    ],
)
def test_openai_sizes_map_to_the_nearest_imagen_ratio(size: str, ratio: str) -> None:
    assert ratio_for_size(size) == ratio


def test_images_request_reads_openai_bodies_and_names_the_bad_parameter() -> None:
    wanted = images_request(
        {"prompt": "a cat", "model": "gpt-image-2", "size": "1536x1024", "quality": "medium"}
    )
    assert (wanted.model, wanted.aspect_ratio, wanted.n, wanted.response_format) == (
        "imagen-4",
        "4:3",
        1,
        "b64_json",
    )
    assert images_request({"prompt": "a", "model": "dall-e-3"}).response_format == "url"
    assert (
        images_request({"prompt": "a", "size": "1536x1024", "aspect_ratio": "9:16"}).aspect_ratio
        == "9:16"
    )
    assert model_for("imagen-4-ultra") == "imagen-4-ultra" and model_for(None) == "imagen-4"
    for body, param in [
        ({}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "a", "n": 0}, "n"),
        ({"prompt": "a", "n": True}, "n"),
        ({"prompt": "a", "size": "big"}, "size"),
        ({"prompt": "a", "response_format": "png"}, "response_format"),
        ({"prompt": "a", "seed": "x"}, "seed"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            images_request(body)
        assert caught.value.param == param


def test_the_callers_key_comes_from_its_headers_but_never_a_hugging_face_token() -> None:
    assert caller_key({"authorization": f"Bearer {ALICE}"}) == ALICE
    assert caller_key({"authorization": "bearer  sk-x "}) == "sk-x"
    assert caller_key({"authorization": "Basic dXNlcjpwYXNz"}) == ""
    assert caller_key({}) == ""
    # A private Space is opened with a Hugging Face token: it is not a RunAPI key.
    assert caller_key({"authorization": "Bearer hf_abcdef"}) == ""
    assert caller_key({"authorization": "Bearer hf_abcdef", "x-runapi-key": BOB}) == BOB
    # What a client that insists on a key sends for "use the server's key or the demo".
    assert caller_key({"authorization": "Bearer none"}) == ""


def test_openai_url_answers_point_at_images_this_server_serves(agent_app) -> None:
    answer = openai_client(agent_app).images.generate(
        model="imagen-4-fast",
        prompt="a glass of water",
        n=2,
        size="1536x1024",
        response_format="url",
    )
    assert len(answer.data) == 2 and answer.created > 0
    for image in answer.data:
        assert image.b64_json is None and image.url is not None
        assert image.url.startswith(f"{agent_app.url}/gradio_api/file=")
        served = httpx.get(image.url)
        assert served.status_code == 200
        assert png_size(served.content) == (1280, 896), "1536x1024 is drawn at 4:3"


def test_openai_b64_json_without_a_key_uses_the_demo_and_the_default_model(agent_app) -> None:
    before = len(agent_app.demo.simulator.tasks)
    # No Authorization header at all (the `openai` package always sends one).
    answer = httpx.post(
        f"{agent_app.url}/v1/images/generations",
        json={
            "model": "gpt-image-2",
            "prompt": "a paper boat",
            "size": "1024x1792",
            "response_format": "b64_json",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    (image,) = answer.json()["data"]
    assert "url" not in image
    assert png_size(base64.b64decode(image["b64_json"])) == (768, 1408)
    new_tasks = list(agent_app.demo.simulator.tasks.values())[before:]
    assert [task.body["model"] for task in new_tasks] == ["imagen-4"]


def test_openai_with_the_key_none_uses_the_demo(agent_app) -> None:
    before = agent_app.creates(agent_app.demo)
    answer = openai_client(agent_app, api_key="none").images.generate(prompt="a kite")
    assert png_size(base64.b64decode(answer.data[0].b64_json)) == (1024, 1024)
    assert agent_app.creates(agent_app.demo) - before == 1


def test_openai_an_explicit_aspect_ratio_wins_over_size(agent_app) -> None:
    answer = openai_client(agent_app).images.generate(
        model="imagen-4-fast",
        prompt="a tall cactus",
        size="1024x1024",
        response_format="b64_json",
        extra_body={"aspect_ratio": "3:4", "seed": 77},
    )
    assert png_size(base64.b64decode(answer.data[0].b64_json)) == (896, 1280)


def test_openai_a_rejected_key_is_401_in_openais_shape(agent_app) -> None:
    client = openai_client(agent_app, api_key="sk-not-a-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.images.generate(model="imagen-4-fast", prompt="a cat")
    error = caught.value
    assert error.status_code == 401 and error.code == "invalid_api_key"
    assert "did not accept the API key" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}


def test_openai_rejected_prompts_are_400_naming_the_parameter(agent_app, monkeypatch) -> None:
    client = openai_client(agent_app)
    with pytest.raises(openai.BadRequestError) as blank:
        client.images.generate(model="imagen-4", prompt="  ")
    assert blank.value.param == "prompt" and "Enter a prompt" in blank.value.message
    with pytest.raises(openai.BadRequestError) as too_many:
        client.images.generate(model="imagen-4", prompt="a cat", n=5)
    assert too_many.value.param == "n"

    # RunAPI itself refuses the request (422 with an errors dict).
    with_faults(monkeypatch, agent_app.live, "invalid@create")
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="imagen-4-fast", prompt="a cat")
    assert "RunAPI rejected the request" in refused.value.message
    assert refused.value.response.headers["x-should-retry"] == "false"


def test_a_failed_generation_is_not_retried_into_a_second_paid_task(agent_app, monkeypatch) -> None:
    """The `openai` package retries a 5xx twice, unless told a retry cannot help."""
    with_faults(monkeypatch, agent_app.live, "task_fail")
    before = agent_app.creates(agent_app.live)
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(agent_app).images.generate(model="imagen-4-fast", prompt="a cat")
    assert "The generation failed" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert agent_app.creates(agent_app.live) - before == 1


def timing_out_client(agent_app: AgentApp) -> openai.OpenAI:
    """A client whose every attempt gives up after 0.3 s, sooner than the task takes: the
    package drops the connection and retries (up to 5 times)."""
    return openai_client(agent_app, api_key=BOB, timeout=0.3, max_retries=5)


def check_replays_by_idempotency_key(
    call: Callable[..., str], paid: Callable[[], int], idempotency_key: str
) -> None:
    """`call(**kwargs)` makes the same request (kwargs for the client), answering its first
    image's URL; `paid()` counts what was paid for so far. The same key gives the same
    image and pays once; without a key, a repeat after its answer arrived is a new run."""
    before = paid()
    key = {"extra_headers": {"Idempotency-Key": idempotency_key}}
    assert call(**key) == call(**key), "the same key must give the same image"
    assert paid() - before == 1
    assert call() != call(), "a delivered answer is not replayed without a key"
    assert paid() - before == 3


def test_the_openai_packages_retries_after_a_timeout_reuse_the_first_task(agent_app) -> None:
    """Each attempt gives up while the task takes ~0.65 s (ultra here); every retry
    attaches to the first run."""
    before = agent_app.creates(agent_app.live)
    answer = timing_out_client(agent_app).images.generate(
        model="imagen-4-ultra", prompt="a call that times out"
    )
    assert len(answer.data) == 1 and answer.data[0].b64_json
    assert agent_app.creates(agent_app.live) - before == 1, "a retry paid for a second task"


def test_an_idempotency_key_replays_and_a_plain_repeat_is_a_new_generation(agent_app) -> None:
    client = openai_client(agent_app, api_key=BOB)

    def generate(**kwargs: Any) -> str:
        answer = client.images.generate(
            model="imagen-4-fast", prompt="a blue cube", response_format="url", **kwargs
        )
        return answer.data[0].url

    check_replays_by_idempotency_key(generate, lambda: agent_app.creates(agent_app.live), "cube-1")


def test_a_caller_that_disconnects_stops_its_polling(agent_app, monkeypatch) -> None:
    monkeypatch.setattr(agent_app.endpoint().shared, "grace_seconds", 0.2)
    with_faults(monkeypatch, agent_app.live, "stuck")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{agent_app.url}/v1/images/generations",
            json={"model": "imagen-4-fast", "prompt": "a task that never ends"},
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=httpx.Timeout(30, read=0.5),
        )
    (task_id,) = [
        task_id
        for task_id, task in agent_app.live.simulator.tasks.items()
        if task.body["prompt"] == "a task that never ends"
    ]

    def polls() -> int:
        requests = agent_app.live.simulator.requests
        return sum(1 for r in requests if r.method == "GET" and r.path.endswith(task_id))

    time.sleep(1.0)  # the server notices the caller is gone, the grace passes
    count = polls()
    assert count >= 1, "the run never polled: nothing to stop"
    time.sleep(2.5)  # longer than the client's longest wait between two polls (2 s)
    assert polls() == count, "the run kept polling for a caller that left"


async def test_many_agent_calls_at_once_each_get_their_own_images(agent_app) -> None:
    client = openai.AsyncOpenAI(base_url=f"{agent_app.url}/v1", api_key=ALICE)
    prompts = [f"a numbered card {i}" for i in range(6)]
    answers = await asyncio.gather(
        *(
            client.images.generate(model="imagen-4-fast", prompt=p, response_format="url")
            for p in prompts
        )
    )
    urls = [answer.data[0].url for answer in answers]
    assert len(set(urls)) == len(prompts)


async def test_behind_a_login_agents_must_bring_their_own_key(tmp_path: Path) -> None:
    """Gradio's login guards neither its MCP server nor our route, and agents cannot log
    in: keyless, they would spend what the login protects."""
    with running_app(tmp_path, auth="carol:a-long-password") as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            body = {"prompt": "a locked door", "model": "imagen-4-fast"}
            refused = await http.post("/v1/images/generations", json=body)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "missing_api_key"
            assert "your own RunAPI key" in refused.json()["error"]["message"]
            own_key = await http.post(
                "/v1/images/generations", json=body, headers={"X-RunAPI-Key": ALICE}
            )
            assert own_key.status_code == 200, own_key.text
        async with mcp_session(app.url) as session:
            keyless = await session.call_tool("generate_image", {"prompt": "a locked door"})
        assert keyless.isError and "your own RunAPI key" in text_of(keyless)
        assert app.creates(app.demo) == 0, "a keyless agent reached the demo"
