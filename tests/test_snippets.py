"""Copy as code: both snippets run as real programs against the simulator to an image."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEST_KEY
from PIL import Image

from runapi_ui.page.snippets import curl_snippet, python_snippet
from runapi_ui.runapi.catalog import image_size
from runapi_ui.runapi.client import SDK_CREATE_PATH, GenerationRequest
from runapi_ui.runapi.errors import ValidationError
from runapi_ui.runapi.files import FILES_PATH
from runapi_ui.runapi.remix import REMIX_PATH, RemixRequest
from runapi_ui.runapi.simulator import SimulatorServer
from tests.test_remix import logo_png, phone_photo

# Everything a shell or a Python literal could misread, plus text that does not print.
NASTY_PROMPT = (
    'It\'s a "quoted" $HOME and ${PATH} `whoami` $(id) \\ back\\slash \\n not a newline\n'
    "a real newline\ttab, naïve café 東京 🦊 \u202eRTL\u202c __BODY__ end"
)
NASTY = GenerationRequest(
    model="imagen-4-fast",
    prompt=NASTY_PROMPT,
    aspect_ratio="16:9",
    negative_prompt="no 'text', no \"$(rm -rf ~)\"",
    seed=7,
)
SNIPPETS = {"curl": curl_snippet, "python": python_snippet}
Snippet = Callable[[GenerationRequest, str], str]


def run_snippet(
    kind: str, text: str, workdir: Path, *, key: str | None = TEST_KEY, args: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run it as a visitor would: bash with a stock PATH (system python3 reads the JSON),
    or this venv's python (it has httpx), in an empty folder."""
    script = workdir / ("image.sh" if kind == "curl" else "image.py")
    script.write_text(text, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}
    if key is not None:
        env["RUNAPI_API_KEY"] = key
    command = ["bash", script.name] if kind == "curl" else [sys.executable, script.name]
    command += args
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def saved_image(workdir: Path, task_id: str) -> tuple[str | None, tuple[int, int]]:
    with Image.open(workdir / f"{task_id}.png") as image:
        image.load()
        return image.format, image.size


@pytest.mark.parametrize("kind", SNIPPETS)
def test_snippet_sends_the_exact_request_and_saves_the_image(
    kind: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = run_snippet(kind, SNIPPETS[kind](NASTY, simulator.url), tmp_path)
    assert result.returncode == 0, result.stderr

    (task,) = simulator.simulator.tasks.values()
    assert task.body == NASTY.validated().to_body()
    assert task.body["prompt"] == NASTY_PROMPT  # character for character
    assert saved_image(tmp_path, task.id) == ("PNG", image_size("16:9"))
    assert f"Saved {task.id}.png" in result.stdout
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix == ".png") == [
        f"{task.id}.png"
    ]

    seen = [(r.method, r.path, r.api_key) for r in simulator.simulator.requests]
    assert seen[0] == ("POST", SDK_CREATE_PATH, TEST_KEY)
    assert seen[1] == ("GET", f"{SDK_CREATE_PATH}/{task.id}", TEST_KEY)
    assert seen[-1] == ("GET", f"/files/{task.id}/0.png", None)  # no key to the image host


@pytest.mark.parametrize("kind", SNIPPETS)
def test_snippet_polls_until_the_task_completes(
    kind: str, make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # imagen-4-fast takes 4.5 s at scale 1: 0.3 s here, so the first poll finds it pending.
    server = make_simulator(time_scale=0.3 / 4.5)
    request = GenerationRequest(model="imagen-4-fast", prompt="a fox", aspect_ratio="3:4")
    result = run_snippet(kind, SNIPPETS[kind](request, server.url), tmp_path)
    assert result.returncode == 0, result.stderr

    (task,) = server.simulator.tasks.values()
    polls = [r for r in server.simulator.requests if r.path == f"{SDK_CREATE_PATH}/{task.id}"]
    assert len(polls) == 2  # pending at once, completed 2 s later
    assert saved_image(tmp_path, task.id) == ("PNG", image_size("3:4"))


@pytest.mark.parametrize("kind", SNIPPETS)
@pytest.mark.parametrize("suffix", ["/", "/v1", "/api/v1/"])
def test_base_url_forms_reach_the_sdk_path(
    kind: str, suffix: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    request = GenerationRequest(prompt="a fox")
    text = SNIPPETS[kind](request, simulator.url + suffix)
    assert f"{simulator.url}{SDK_CREATE_PATH}" in text
    assert run_snippet(kind, text, tmp_path).returncode == 0
    assert len(simulator.simulator.tasks) == 1


@pytest.mark.parametrize("kind", SNIPPETS)
def test_a_failed_task_stops_with_its_reason(
    kind: str, make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    server = make_simulator(faults="task_fail")
    result = run_snippet(kind, SNIPPETS[kind](NASTY, server.url), tmp_path)
    assert result.returncode != 0
    assert f"The generation failed: {server.config.fail_reason}" in result.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("kind", SNIPPETS)
def test_a_rejected_key_is_reported_with_runapi_words(
    kind: str, make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    server = make_simulator(api_keys=frozenset({"sk-the-right-one"}))
    result = run_snippet(kind, SNIPPETS[kind](NASTY, server.url), tmp_path)
    assert result.returncode != 0
    assert "Invalid or missing API key" in result.stderr
    assert not server.simulator.tasks


@pytest.mark.parametrize("kind", SNIPPETS)
def test_no_key_in_the_environment_says_how_to_set_it(
    kind: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = run_snippet(kind, SNIPPETS[kind](NASTY, simulator.url), tmp_path, key=None)
    assert result.returncode != 0
    assert "Set RUNAPI_API_KEY to your RunAPI key first" in result.stderr
    assert not simulator.simulator.requests


@pytest.mark.parametrize("kind", SNIPPETS)
def test_no_key_value_is_ever_written(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with a key in this process's environment, the code only names the variable.
    monkeypatch.setenv("RUNAPI_API_KEY", TEST_KEY)
    text = SNIPPETS[kind](NASTY, "https://runapi.ai")
    assert TEST_KEY not in text
    assert "sk-" not in text
    reference = '$RUNAPI_API_KEY"' if kind == "curl" else 'os.environ["RUNAPI_API_KEY"]'
    assert reference in text


@pytest.mark.parametrize("kind", SNIPPETS)
def test_what_does_not_print_is_escaped(kind: str) -> None:
    text = SNIPPETS[kind](NASTY, "https://runapi.ai")
    assert "\u202e" not in text and "\t" not in text
    assert "\\u202e" in text and "\\t" in text
    assert "naïve café 東京 🦊" in text  # printable text stays readable


@pytest.mark.parametrize("kind", SNIPPETS)
def test_a_request_the_page_would_refuse_is_refused(kind: str) -> None:
    with pytest.raises(ValidationError, match="prompt"):
        SNIPPETS[kind](GenerationRequest(prompt="   "), "https://runapi.ai")


REMIX = RemixRequest(
    prompt=NASTY_PROMPT, source_image_urls=(), aspect_ratio="3:2", output_resolution="2k"
)


@pytest.mark.parametrize("kind", SNIPPETS)
def test_remix_snippet_uploads_the_named_files_then_remixes_them(
    kind: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    photo, logo = phone_photo(tmp_path / "photo.jpg"), logo_png(tmp_path / "logo.png")
    text = SNIPPETS[kind](REMIX, simulator.url)
    result = run_snippet(kind, text, tmp_path, args=[photo.name, logo.name])
    assert result.returncode == 0, result.stderr

    uploads = list(simulator.simulator.uploads.values())
    assert [upload.data for upload in uploads] == [photo.read_bytes(), logo.read_bytes()]
    (task,) = simulator.simulator.tasks.values()
    assert task.body["prompt"] == NASTY_PROMPT
    assert (task.body["aspect_ratio"], task.body["output_resolution"]) == ("3:2", "2k")
    assert len(task.body["source_image_urls"]) == 2
    assert "Uploaded 2 source image(s)." in result.stdout
    assert f"Saved {task.id}.png" in result.stdout
    seen = [(r.method, r.path, r.api_key) for r in simulator.simulator.requests]
    assert seen[:3] == [
        ("POST", FILES_PATH, TEST_KEY),
        ("POST", FILES_PATH, TEST_KEY),
        ("POST", REMIX_PATH, TEST_KEY),
    ]


@pytest.mark.parametrize("kind", SNIPPETS)
def test_remix_snippet_without_files_says_how_to_run_it(
    kind: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = run_snippet(kind, SNIPPETS[kind](REMIX, simulator.url), tmp_path)
    assert result.returncode != 0 and "IMAGE [IMAGE...] (1 to 8)" in result.stderr
    assert not simulator.simulator.requests


def test_remix_snippets_refuse_what_the_page_refuses(simulator: SimulatorServer) -> None:
    for snippet in SNIPPETS.values():
        with pytest.raises(ValidationError, match="resolution '8k'"):
            snippet(replace(REMIX, output_resolution="8k"), simulator.url)
