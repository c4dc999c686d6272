"""Remix for scripts and agents, end to end on the real app: gradio_client's `/remix`,
the MCP tool `remix_image`, and `POST /v1/images/edits` through the `openai` package.

One app with MCP on (demo remixes ~2 s; a live simulator for callers with a key).
"""

from __future__ import annotations

import base64
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from runapi_ui.runapi.catalog import REMIX_MODEL
from runapi_ui.storage.pnginfo import read_settings
from tests.conftest import script_client
from tests.test_agents import (
    ALICE,
    AgentApp,
    check_replays_by_idempotency_key,
    images_of,
    mcp_session,
    openai_client,
    running_app,
    text_of,
    timing_out_client,
)
from tests.test_remix import GPS_SECRET, logo_png, phone_photo


@pytest.fixture(scope="module")
def agent_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentApp]:
    with running_app(tmp_path_factory.mktemp("data"), simulator_time_scale=0.1) as app:
        yield app


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("sources")
    return [phone_photo(folder / "IMG_0042.jpg"), logo_png(folder / "logo.png")]


def remix_tasks(server) -> list:
    return [task for task in server.simulator.tasks.values() if task.model == REMIX_MODEL]


# --- gradio_client ------------------------------------------------------------------------


def test_remix_endpoint_takes_files_and_settings_and_returns_the_gallery(
    agent_app: AgentApp, sources: list[Path]
) -> None:
    with script_client(agent_app.url) as client:
        endpoint = client.view_api(return_format="dict")["named_endpoints"]["/remix"]
        result = client.predict(
            prompt="the logo on the red wall",
            images=[handle_file(str(path)) for path in sources],
            aspect_ratio="3:2",
            output_resolution="2k",
            output_format="jpg",
            num_images=2,
            api_key=ALICE,
            api_name="/remix",
        )
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "prompt",
        "images",
        "aspect_ratio",
        "output_resolution",
        "output_format",
        "num_images",
        "api_key",
    ]
    assert [item["caption"] for item in result] == [f"{REMIX_MODEL} · 3:2 · 2k"] * 2
    made = read_settings(result[0]["image"])
    assert (made.model, made.source_images, made.output_resolution) == (REMIX_MODEL, 2, "2k")
    bodies = [task.body for task in remix_tasks(agent_app.live)]
    assert len(bodies) == 2 and all(len(b["source_image_urls"]) == 2 for b in bodies)
    uploads = list(agent_app.live.simulator.uploads.values())
    assert len(uploads) == 2
    assert all(GPS_SECRET.encode() not in upload.data for upload in uploads)
    keyed = [r for r in agent_app.live.simulator.requests if "price_schedules" not in r.path]
    assert {r.api_key for r in keyed} == {ALICE}  # (price schedules are read with no key)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"output_resolution": "8k"}, "resolution '8k'"),
        ({"images": []}, "1 to 8 source images; 0 given"),
        ({"prompt": "x" * 10_001}, "at most 10000"),
    ],
)
def test_remix_endpoint_refuses_bad_input_with_the_reason(
    agent_app: AgentApp, sources: list[Path], change: dict, words: str
) -> None:
    before = len(remix_tasks(agent_app.demo))
    arguments = {"prompt": "p", "images": [handle_file(str(sources[1]))], **change}
    with script_client(agent_app.url) as client, pytest.raises(AppError, match=words):
        client.predict(**arguments, api_name="/remix")
    assert len(remix_tasks(agent_app.demo)) == before


# --- MCP --------------------------------------------------------------------------------


def data_uri(path: Path) -> str:
    kind = "png" if path.suffix == ".png" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def web(sources: list[Path]) -> Iterator[str]:
    """The sources' folder over HTTP on loopback (the app is local: it may fetch there)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(sources[0].parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_mcp_lists_remix_image_with_its_typed_arguments(agent_app: AgentApp) -> None:
    async with mcp_session(agent_app.url) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    tool = tools["remix_image"]
    assert "1 to 8 source images" in tool.description and "$0.24 at 4k" in tool.description
    properties = tool.inputSchema["properties"]
    assert list(properties) == [
        "prompt",
        "images",
        "aspect_ratio",
        "output_resolution",
        "output_format",
        "num_images",
    ]
    assert properties["images"]["type"] == "array"
    assert properties["output_resolution"]["enum"] == ["1k", "2k", "4k"]
    assert "21:9" in properties["aspect_ratio"]["enum"]
    assert "seed" not in properties and "negative_prompt" not in properties


@pytest.mark.parametrize("progress", [False, True], ids=["no-token", "progress-token"])
async def test_mcp_remix_image_takes_urls_and_data_uris_and_returns_image_blocks(
    agent_app: AgentApp, sources: list[Path], web: str, progress: bool
) -> None:
    messages: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    uploads = len(agent_app.demo.simulator.uploads)
    async with mcp_session(agent_app.url) as session:
        result = await session.call_tool(
            "remix_image",
            {
                "prompt": "the logo on the red wall",
                "images": [f"{web}/{sources[0].name}", data_uri(sources[1])],
                "aspect_ratio": "16:9",
                "num_images": 2,
            },
            progress_callback=on_progress if progress else None,
        )
    assert not result.isError, text_of(result)
    assert len(images_of(result)) == 2
    assert "Demo · imagen-4-pro-remix-image · 16:9 · 1k" in text_of(result)
    new = list(agent_app.demo.simulator.uploads.values())[uploads:]
    assert len(new) == 2 and all(GPS_SECRET.encode() not in upload.data for upload in new)
    if progress:
        assert messages and all("of 2 images done" in message for message in messages)


async def test_mcp_remix_image_refusals_are_tool_errors(agent_app: AgentApp) -> None:
    async with mcp_session(agent_app.url) as session:
        none = await session.call_tool("remix_image", {"prompt": "a cat", "images": []})
        bad = await session.call_tool(
            "remix_image", {"prompt": "a cat", "images": ["data:image/png;base64,bm90IGFu"]}
        )
        ftp = await session.call_tool("remix_image", {"prompt": "a cat", "images": ["ftp://x/y"]})
    assert none.isError and "1 to 8 source images; 0 given" in text_of(none)
    assert bad.isError and "images[0] is not an image that can be read" in text_of(bad)
    assert ftp.isError and "images[0] is neither an http(s) URL nor a data URI" in text_of(ftp)


# --- OpenAI's images.edit ---------------------------------------------------------------


def test_openai_images_edit_remixes_the_files_it_is_given(
    agent_app: AgentApp, sources: list[Path]
) -> None:
    uploads = len(agent_app.live.simulator.uploads)
    client = openai_client(agent_app)
    with sources[0].open("rb") as photo, sources[1].open("rb") as logo:
        answer = client.images.edit(
            image=[photo, logo],
            prompt="the logo on the red wall",
            n=2,
            size="1536x1024",
            response_format="b64_json",
        )
    assert len(answer.data) == 2
    made = read_settings(base64.b64decode(answer.data[0].b64_json))
    assert (made.model, made.aspect_ratio, made.source_images) == (REMIX_MODEL, "3:2", 2)
    assert made.output_resolution == "2k"
    new = list(agent_app.live.simulator.uploads.values())[uploads:]
    assert len(new) == 2 and all(GPS_SECRET.encode() not in upload.data for upload in new)


def test_openai_images_edit_with_one_image_answers_a_url(
    agent_app: AgentApp, sources: list[Path]
) -> None:
    with sources[1].open("rb") as logo:
        answer = openai_client(agent_app).images.edit(
            image=logo, prompt="in watercolour", response_format="url"
        )
    (item,) = answer.data
    served = httpx.get(item.url)
    assert served.status_code == 200 and read_settings(served.content).source_images == 1


def test_openai_images_edit_errors_are_openai_shaped(agent_app: AgentApp, tmp_path: Path) -> None:
    before = len(remix_tasks(agent_app.live))
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"shopping list\n" * 40)
    client = openai_client(agent_app, max_retries=0)
    with notes.open("rb") as file, pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(image=file, prompt="a cat")
    error = refused.value.body
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert "notes.png is not an image that can be read" in error["message"]
    with notes.open("rb") as file, pytest.raises(openai.BadRequestError) as bad_n:
        client.images.edit(image=file, prompt="a cat", n=9)
    assert bad_n.value.body["param"] == "n"
    logo = tmp_path / "logo.png"
    logo_png(logo)
    with pytest.raises(openai.AuthenticationError), logo.open("rb") as file:
        openai_client(agent_app, api_key="sk-wrong-key").images.edit(image=file, prompt="a cat")
    assert len(remix_tasks(agent_app.live)) == before


def test_openai_images_edit_retries_after_a_timeout_reuse_the_first_remix(
    agent_app: AgentApp, sources: list[Path]
) -> None:
    """Each attempt gives up while the remix (~1 s) runs; every retry attaches to the
    first run: one remix, its sources uploaded once."""
    tasks, uploads = len(remix_tasks(agent_app.live)), len(agent_app.live.simulator.uploads)
    with sources[0].open("rb") as photo, sources[1].open("rb") as logo:
        answer = timing_out_client(agent_app).images.edit(
            image=[photo, logo], prompt="an edit that times out"
        )
    assert len(answer.data) == 1 and answer.data[0].b64_json
    assert len(remix_tasks(agent_app.live)) - tasks == 1, "a retry paid for a second remix"
    assert len(agent_app.live.simulator.uploads) - uploads == 2


def test_openai_images_edit_idempotency_key_replays_and_a_plain_repeat_is_a_new_remix(
    agent_app: AgentApp, sources: list[Path]
) -> None:
    client = openai_client(agent_app)

    def edit(**kwargs: Any) -> str:
        with sources[1].open("rb") as logo:
            answer = client.images.edit(
                image=logo, prompt="a logo in gold", response_format="url", **kwargs
            )
        return answer.data[0].url

    check_replays_by_idempotency_key(edit, lambda: len(remix_tasks(agent_app.live)), "gold-1")
