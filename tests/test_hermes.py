"""Hermes Agent itself (`hermes-agent` from PyPI) gets Imagen 4 images from the app, both ways.

Hermes cannot share our virtual environment (its pydantic pin conflicts with gradio's
mcp extra, and it installs top-level packages named `tools`, `agent`, `plugins`), so it
runs from its own, `.hermes-venv/` (built by `.ci/hermes-venv`), as a subprocess with
`HERMES_HOME` set to a temporary folder holding its `config.yaml`. Its tools are
dispatched directly, the way its agent loop calls them: no LLM is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.test_agents import ALICE, BOB, AgentApp, running_app

HERMES_PYTHON = Path(__file__).resolve().parent.parent / ".hermes-venv" / "bin" / "python"
DEAD_PROXY = "http://127.0.0.1:9"  # anything Hermes tries to reach off loopback fails here

# Runs in Hermes' venv: dispatch one tool as its agent loop would; print what it answered.
DRIVER = """
import json, sys
from tools.registry import registry

mode, tool, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if mode == "mcp":
    from tools.mcp_tool import discover_mcp_tools, shutdown_mcp_servers
    discover_mcp_tools()
    try:
        result = registry.dispatch(tool, arguments)
    finally:
        shutdown_mcp_servers()
else:
    import tools.image_generation_tool  # registers image_generate
    result = registry.dispatch(tool, arguments)
print("RESULT " + (result if isinstance(result, str) else json.dumps(result)))
"""


@pytest.fixture(scope="module")
def agent_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentApp]:
    with running_app(tmp_path_factory.mktemp("data")) as app:
        yield app


def hermes(home: Path, config: str, mode: str, tool: str, arguments: dict[str, Any], **env: str):
    """Run the driver in Hermes' venv; return its tool's answer, parsed."""
    if not HERMES_PYTHON.exists():
        pytest.fail(
            f"Hermes Agent's venv is missing ({HERMES_PYTHON}): build it with "
            "`bash .ci/hermes-venv` (CI's .ci/run does)."
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(config)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # nothing of Hermes' lands in the real home
        "HERMES_HOME": str(home),
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "ALL_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        **env,
    }
    done = subprocess.run(
        [str(HERMES_PYTHON), "-c", DRIVER, mode, tool, json.dumps(arguments)],
        env=environment,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"Hermes failed:\n{done.stdout}\n{done.stderr}"
    answer = lines[-1].removeprefix("RESULT ")
    try:
        return json.loads(answer)
    except ValueError:
        return answer


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_hermes_image_tool_gets_imagen_4_through_the_openai_style_endpoint(
    agent_app: AgentApp, tmp_path: Path
) -> None:
    base_url = f"{agent_app.url}/v1"
    config = (
        "image_gen:\n"
        "  provider: deepinfra\n"
        "  deepinfra:\n"
        f"    base_url: {base_url}\n"
        "    model: imagen-4-fast\n"
    )
    before = len(agent_app.live.simulator.tasks)
    answer = hermes(
        tmp_path / "hermes",
        config,
        "image",
        "image_generate",
        {"prompt": "a lighthouse on a cliff at dusk", "aspect_ratio": "landscape"},
        DEEPINFRA_API_KEY=ALICE,  # the RunAPI key this call spends
        DEEPINFRA_BASE_URL=base_url,  # where its model catalog lookup goes (a 404 here)
    )
    assert answer["success"] is True, answer
    saved = Path(answer["image"])
    assert saved.is_file() and (tmp_path / "hermes") in saved.parents
    assert image_size(saved) == (1280, 896), "landscape (1536x1024) is drawn at 4:3"
    tasks = list(agent_app.live.simulator.tasks.values())[before:]
    assert [(task.api_key, task.body["model"]) for task in tasks] == [(ALICE, "imagen-4-fast")]


def test_hermes_openai_provider_gets_the_default_model_for_gpt_image_2(
    agent_app: AgentApp, tmp_path: Path
) -> None:
    """Hermes' `openai` provider always asks for gpt-image-2 and sends no response_format."""
    before = len(agent_app.live.simulator.tasks)
    answer = hermes(
        tmp_path / "hermes",
        "image_gen:\n  provider: openai\n",
        "image",
        "image_generate",
        {"prompt": "a watercolor map of a coastal town", "aspect_ratio": "portrait"},
        OPENAI_API_KEY=BOB,
        OPENAI_BASE_URL=f"{agent_app.url}/v1",
    )
    assert answer["success"] is True, answer
    saved = Path(answer["image"])
    assert saved.is_file() and (tmp_path / "hermes") in saved.parents
    assert image_size(saved) == (896, 1280), "portrait (1024x1536) is drawn at 3:4"
    tasks = list(agent_app.live.simulator.tasks.values())[before:]
    assert [(task.api_key, task.body["model"]) for task in tasks] == [(BOB, "imagen-4")]


def test_hermes_mcp_client_calls_generate_image_and_saves_the_image(
    agent_app: AgentApp, tmp_path: Path
) -> None:
    config = (
        "mcp_servers:\n"
        "  imagen:\n"
        f"    url: {agent_app.url}/gradio_api/mcp/\n"
        "    headers:\n"
        "      Authorization: Bearer ${RUNAPI_API_KEY}\n"
        "    timeout: 120\n"
    )
    answer = hermes(
        tmp_path / "hermes",
        config,
        "mcp",
        "mcp__imagen__generate_image",
        {"prompt": "a red fox in fresh snow", "model": "imagen-4-fast", "aspect_ratio": "9:16"},
        RUNAPI_API_KEY=BOB,
    )
    assert isinstance(answer, dict) and "result" in answer, answer
    text = answer["result"]
    media = [line.removeprefix("MEDIA:") for line in text.splitlines() if line.startswith("MEDIA:")]
    assert len(media) == 1, f"no image came back as a file: {text}"
    saved = Path(media[0])
    assert saved.is_file() and (tmp_path / "hermes") in saved.parents
    assert image_size(saved) == (768, 1408)
    assert "imagen-4-fast · 9:16" in text and "Demo" not in text, "BOB's key was not spent"
