"""Starting the playground as its README says: `python app.py`, flags, environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.processes import free_port
from runapi_ui.page.server import create_app, launch
from runapi_ui.runs.access import DEMO_KEY
from runapi_ui.runs.settings import Settings, settings_from

ROOT = Path(__file__).resolve().parent.parent


def test_app_py_prints_its_url_and_serves_the_playground(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNAPI_", "GRADIO_"))}
    env.update(
        RUNAPI_SIM_TIME_SCALE="0",
        GRADIO_ANALYTICS_ENABLED="False",
        RUNAPI_UI_DATA_DIR=str(tmp_path),
    )
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "running on" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/"
        assert line.startswith(f"* Imagen Playground running on {url}"), line
        assert "demo mode" in line
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "Imagen Playground" in page.text
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_share_that_cannot_start_is_one_line_and_serving_goes_on(capsys, tmp_path) -> None:
    settings = Settings(port=free_port(), share=True, simulator_time_scale=0.0, data_dir=tmp_path)
    app = create_app(settings)
    try:
        url = launch(app, settings, block=False)
        printed = capsys.readouterr().out.strip().splitlines()
        if app.blocks.share_url:  # a machine with internet gets its link
            assert printed[-1] == f"* Public share link: {app.blocks.share_url}"
        else:
            # Our start-up lines only (no Gradio output, no traceback), the failure last.
            assert all(line.startswith("* ") for line in printed), printed
            assert printed[0].startswith(f"* Imagen Playground running on {url}")
            assert printed[-1] == (
                "* Could not create a public share link (Gradio's share server is unreachable "
                "from here); serving locally only."
            )
            assert sum("share link" in line for line in printed) == 1
        assert httpx.get(url, timeout=10).status_code == 200
    finally:
        app.close()


def test_flags_win_over_the_environment() -> None:
    env = {
        "RUNAPI_API_KEY": " sk-server ",
        "RUNAPI_BASE_URL": "https://runapi.ai/v1",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7000",
        "RUNAPI_DEADLINE_SECONDS": "42",
    }
    settings = settings_from(["--port", "9000", "--demo", "--share"], env)
    assert settings.port == 9000 and settings.host == "0.0.0.0"
    assert settings.demo and settings.share and settings.deadline == 42
    assert settings.api_key == "sk-server" and settings.base_url == "https://runapi.ai/v1"
    assert not settings.server_has_key, "--demo uses the simulator whatever the key"
    assert "sk-server" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "flags", "server_key", "demo_possible"),
    [
        ({}, [], False, True),
        ({"RUNAPI_API_KEY": "sk-x"}, [], True, False),
        ({"RUNAPI_API_KEY": "sk-x"}, ["--demo"], False, True),
        ({"RUNAPI_API_KEY": "   "}, [], False, True),
    ],
)
def test_which_backend_a_visitor_gets(env, flags, server_key, demo_possible) -> None:
    settings = settings_from(flags, env)
    assert settings.server_has_key is server_key
    assert settings.may_run_demo is demo_possible


def test_the_shared_demo_key_never_runs_out_of_credit(tmp_path: Path) -> None:
    """Every demo visitor shares one key: a $10 simulated balance would end the demo
    for everyone after ~250 images."""
    app = create_app(Settings(simulator_time_scale=0.0, data_dir=tmp_path))
    try:
        assert app.simulator is not None
        balance = httpx.get(
            f"{app.simulator.url}/api/v1/me/balance",
            headers={"Authorization": f"Bearer {DEMO_KEY}"},
        ).json()["balance_cents"]
        images_at_ultra_price = balance // 12
        assert images_at_ultra_price > 10**9
    finally:
        app.close()
