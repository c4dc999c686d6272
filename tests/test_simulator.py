"""The simulator's own contract, spoken to with plain httpx (no RunAPIClient)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, PngImagePlugin

from bench.processes import free_port
from runapi_ui.runapi import simulator as simulator_module
from runapi_ui.runapi.catalog import IMAGE_SIZES, MODELS, PROMPT_MAX_CHARS, SEED_MAX
from runapi_ui.runapi.simulator import (
    PRICE_CENTS,
    SIMULATED_SECONDS,
    Fault,
    SimTask,
    SimulatorConfig,
    drawable,
    image_digest,
    parse_faults,
    placeholder_font,
    render_image,
    wrap_text,
)

KEY = "sk-sim-test"
CREATE = "/api/v1/imagen_4/text_to_image"
ROOT = Path(__file__).resolve().parent.parent


def auth(key: str = KEY, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def create(http: httpx.Client, body: dict, key: str = KEY, **headers: str) -> httpx.Response:
    return http.post(CREATE, json=body, headers=auth(key, **headers))


def finish(http: httpx.Client, task_id: str, key: str = KEY) -> dict:
    """Poll (time scale 0, so at once) until the task ends."""
    for _ in range(50):
        state = http.get(f"{CREATE}/{task_id}", headers=auth(key)).json()
        if state["status"] in ("completed", "failed"):
            return state
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} never ended: {state}")


@pytest.fixture
def http_for():
    clients: list[httpx.Client] = []

    def make(server) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- auth and validation ------------------------------------------------------------


def test_auth_with_a_key_list(make_simulator, http_for) -> None:
    http = http_for(make_simulator(api_keys=frozenset({KEY})))
    body = {"model": "imagen-4", "prompt": "a fox"}
    for headers in ({}, auth("sk-other"), {"Authorization": "Basic abc"}, auth("  x")):
        answer = http.post(CREATE, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert http.get("/api/v1/me/balance", headers=headers).status_code == 401
    assert create(http, body).status_code == 200
    assert http.get("/api/v1/me/balance", headers=auth()).status_code == 200


def test_any_key_without_a_key_list(simulator, http_for) -> None:
    http = http_for(simulator)
    body = {"model": "imagen-4", "prompt": "a fox"}
    assert http.post(CREATE, json=body).status_code == 401  # still needs *a* key
    assert create(http, body, key="anything-at-all").status_code == 200


def test_validation_errors_name_each_field(simulator, http_for) -> None:
    http = http_for(simulator)
    answer = create(http, {"model": "imagen-5", "prompt": " ", "seed": True})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "Validation failed"
    assert set(body["errors"]) == {"model", "prompt", "seed"}
    for problems in body["errors"].values():
        assert isinstance(problems, list) and all(isinstance(p, str) and p for p in problems)

    ratio = create(http, {"model": "imagen-4", "prompt": "a", "aspect_ratio": "auto"})
    assert ratio.status_code == 422 and set(ratio.json()["errors"]) == {"aspect_ratio"}
    too_long = create(http, {"model": "imagen-4", "prompt": "x" * (PROMPT_MAX_CHARS + 1)})
    assert "too long" in too_long.json()["errors"]["prompt"][0]
    for seed in (-1, SEED_MAX + 1, "7"):
        bad = create(http, {"model": "imagen-4", "prompt": "a", "seed": seed})
        assert set(bad.json()["errors"]) == {"seed"}
    not_json = http.post(CREATE, content=b"{oops", headers=auth())
    assert not_json.status_code == 400
    assert not simulator.simulator.tasks


def test_both_create_forms(simulator, http_for) -> None:
    http = http_for(simulator)
    sdk = create(http, {"model": "imagen-4", "prompt": "a"})
    assert set(sdk.json()) == {"id", "status"}  # the contract's SDK answer
    assert sdk.headers["x-runapi-task-id"] == sdk.json()["id"]
    guide = http.post(
        "/v1/text_to_image", json={"model": "imagen-4", "prompt": "a"}, headers=auth()
    )
    # The guide's answer, word for word: a client must read `task_id` itself.
    assert set(guide.json()) == {"task_id", "status", "model"}
    assert "x-runapi-task-id" not in guide.headers
    assert guide.json()["status"] == "pending"
    task_id = guide.json()["task_id"]
    for path in (f"{CREATE}/{task_id}", f"/v1/tasks/{task_id}", f"/api/v1/tasks/{task_id}"):
        assert http.get(path, headers=auth()).json()["id"] == task_id
    # Another key cannot see the task.
    assert http.get(f"/api/v1/tasks/{task_id}", headers=auth("sk-other")).status_code == 404


def test_route_switches_and_unrouted_requests_are_recorded(make_simulator, http_for) -> None:
    server = make_simulator(sdk_routes=False, guide_v1_status=False, location_header=True)
    http = http_for(server)
    assert create(http, {"model": "imagen-4", "prompt": "a"}).status_code == 404
    guide = http.post(
        "/v1/text_to_image", json={"model": "imagen-4", "prompt": "a"}, headers=auth()
    )
    assert guide.status_code == 202
    task_id = guide.json()["task_id"]
    assert guide.headers["location"] == f"/api/v1/tasks/{task_id}"
    assert http.get(f"/v1/tasks/{task_id}", headers=auth()).status_code == 404
    assert http.get(guide.headers["location"], headers=auth()).status_code == 200
    assert [(r.method, r.path, r.api_key) for r in server.simulator.requests] == [
        ("POST", CREATE, KEY),
        ("POST", "/v1/text_to_image", KEY),
        ("GET", f"/v1/tasks/{task_id}", KEY),
        ("GET", f"/api/v1/tasks/{task_id}", KEY),
    ]


# --- idempotency ----------------------------------------------------------------------


def test_idempotency(simulator, http_for) -> None:
    http = http_for(simulator)
    body = {"model": "imagen-4", "prompt": "a cat"}
    first = create(http, body, **{"Idempotency-Key": "k1"})
    again = create(http, body, **{"Idempotency-Key": "k1"})
    assert first.json()["id"] == again.json()["id"]
    assert len(simulator.simulator.tasks) == 1

    other_body = create(http, {**body, "prompt": "a dog"}, **{"Idempotency-Key": "k1"})
    assert other_body.status_code == 409
    # Keys are per account: another account's k1 is a new task.
    other_account = create(http, body, key="sk-someone-else", **{"Idempotency-Key": "k1"})
    assert other_account.json()["id"] != first.json()["id"]
    # No key: every create is a new task.
    assert create(http, body).json()["id"] != create(http, body).json()["id"]
    assert len(simulator.simulator.tasks) == 4
    recorded = [r.idempotency_key for r in simulator.simulator.requests if r.method == "POST"]
    assert recorded == ["k1", "k1", "k1", "k1", None, None]


def test_a_dropped_create_still_made_its_task(make_simulator, http_for) -> None:
    server = make_simulator(faults="drop@create*1")
    http = http_for(server)
    body = {"model": "imagen-4", "prompt": "a cat"}
    with pytest.raises(httpx.TransportError):
        create(http, body, **{"Idempotency-Key": "k2"})
    (task_id,) = server.simulator.tasks
    assert create(http, body, **{"Idempotency-Key": "k2"}).json()["id"] == task_id


# --- durations, images, balance -----------------------------------------------------------


def test_durations_are_ordered_by_model(make_simulator, http_for) -> None:
    server = make_simulator(time_scale=1.0, jitter=0.15, seed=3)
    http = http_for(server)
    by_model: dict[str, list[float]] = {name: [] for name in MODELS}
    for _ in range(5):
        for model in MODELS:
            task_id = create(http, {"model": model, "prompt": "a"}).json()["id"]
            by_model[model].append(server.simulator.tasks[task_id].duration)
    fast, standard, ultra = (by_model[m] for m in ("imagen-4-fast", "imagen-4", "imagen-4-ultra"))
    assert max(fast) < min(standard) and max(standard) < min(ultra)
    for model, seconds in by_model.items():
        nominal = SIMULATED_SECONDS[model]
        assert all(nominal * 0.85 <= s <= nominal * 1.15 for s in seconds)
        assert len(set(seconds)) > 1  # jitter is on


def test_time_scale_zero_finishes_at_once(simulator, http_for) -> None:
    http = http_for(simulator)
    task_id = create(http, {"model": "imagen-4-ultra", "prompt": "a"}).json()["id"]
    assert http.get(f"{CREATE}/{task_id}", headers=auth()).json()["status"] == "completed"


def test_task_phases_over_time() -> None:
    task = SimTask("t", KEY, {"model": "imagen-4"}, 1, 100.0, 8.0, 1.2, False, False)
    assert [task.status(100.0 + t) for t in (0, 1.0, 1.2, 7.9, 8.0, 60)] == [
        "pending",
        "pending",
        "processing",
        "processing",
        "completed",
        "completed",
    ]
    failing = SimTask("f", KEY, {"model": "imagen-4"}, 1, 0.0, 8.0, 1.2, True, False)
    assert failing.status(7.9) == "processing" and failing.status(8.0) == "failed"
    stuck = SimTask("s", KEY, {"model": "imagen-4"}, 1, 0.0, 8.0, 1.2, False, True)
    assert stuck.status(1e6) == "processing"


def test_same_seed_same_image(simulator, http_for) -> None:
    http = http_for(simulator)

    def image(seed: int | None, prompt: str = "a lighthouse") -> bytes:
        body = {"model": "imagen-4", "prompt": prompt, "aspect_ratio": "4:3"}
        if seed is not None:
            body["seed"] = seed
        state = finish(http, create(http, body).json()["id"])
        assert state["seed"] == seed if seed is not None else isinstance(state["seed"], int)
        return http.get(state["images"][0]["url"]).content

    first, again, other = image(42), image(42), image(43)
    assert first == again
    assert first != other
    assert image(42, "a windmill") != first
    with Image.open(io.BytesIO(first)) as decoded:
        assert decoded.format == "PNG" and decoded.size == IMAGE_SIZES["4:3"]


@pytest.mark.parametrize("ratio", [*IMAGE_SIZES, "auto"])
def test_image_sizes_per_ratio(ratio) -> None:
    data = render_image("a test pattern", "imagen-4-fast", ratio, seed=5)
    with Image.open(io.BytesIO(data)) as decoded:
        decoded.load()
        assert decoded.size == IMAGE_SIZES.get(ratio, IMAGE_SIZES["1:1"])


def test_image_urls_need_a_finished_task(make_simulator, http_for) -> None:
    server = make_simulator(faults="stuck")
    http = http_for(server)
    task_id = create(http, {"model": "imagen-4", "prompt": "a"}).json()["id"]
    assert http.get(f"/files/{task_id}/0.png").status_code == 404
    assert http.get("/files/no-such-task/0.png").status_code == 404


def test_balance_charges_completed_tasks_only(make_simulator, http_for) -> None:
    server = make_simulator(faults="task_fail*1,stuck@create*1", starting_balance_cents=500)
    http = http_for(server)
    fields = {
        "balance_cents",
        "paid_balance_cents",
        "bonus_balance_cents",
        "spent_cents_today",
        "spent_cents_total",
    }
    start = http.get("/api/v1/me/balance", headers=auth()).json()
    assert set(start) == fields and all(isinstance(v, int) for v in start.values())
    assert start["balance_cents"] == 500 and start["spent_cents_total"] == 0
    assert start["paid_balance_cents"] + start["bonus_balance_cents"] == 500

    stuck_and_failing = create(http, {"model": "imagen-4-ultra", "prompt": "a"}).json()["id"]
    ultra = create(http, {"model": "imagen-4-ultra", "prompt": "b"}).json()["id"]
    fast = create(http, {"model": "imagen-4-fast", "prompt": "c"}).json()["id"]
    assert finish(http, ultra)["status"] == "completed"
    assert finish(http, fast)["status"] == "completed"
    finish(http, fast)  # polled again: not charged twice
    state = http.get(f"{CREATE}/{stuck_and_failing}", headers=auth()).json()
    assert state["status"] == "processing"

    spent = PRICE_CENTS["imagen-4-ultra"] + PRICE_CENTS["imagen-4-fast"]
    after = http.get("/api/v1/me/balance", headers=auth()).json()
    assert after["balance_cents"] == 500 - spent
    assert after["spent_cents_total"] == after["spent_cents_today"] == spent
    # Another account's balance is untouched.
    assert http.get("/api/v1/me/balance", headers=auth("sk-b")).json()["balance_cents"] == 500


def test_failed_tasks_are_not_charged(make_simulator, http_for) -> None:
    server = make_simulator(faults="task_fail")
    http = http_for(server)
    state = finish(http, create(http, {"model": "imagen-4", "prompt": "a"}).json()["id"])
    assert state["status"] == "failed" and state["error"] == server.config.fail_reason
    assert "images" not in state
    balance = http.get("/api/v1/me/balance", headers=auth()).json()
    assert balance["spent_cents_total"] == 0 and balance["balance_cents"] == 1000


def test_out_of_credits_is_402(make_simulator, http_for) -> None:
    server = make_simulator(starting_balance_cents=PRICE_CENTS["imagen-4"] - 1)
    http = http_for(server)
    answer = create(http, {"model": "imagen-4", "prompt": "a"})
    assert answer.status_code == 402
    assert answer.json()["error"]["code"] == "insufficient_credits"
    assert create(http, {"model": "imagen-4-fast", "prompt": "a"}).status_code == 200


# --- faults -------------------------------------------------------------------------------


def test_fault_syntax() -> None:
    assert parse_faults(None) == [] and parse_faults("") == [] and parse_faults(" , ") == []
    assert parse_faults("rate_limit@status*2, task_fail,drop~0.25") == [
        Fault("rate_limit", "status", 2, None),
        Fault("task_fail", "create", None, None),
        Fault("drop", "status", None, 0.25),
    ]
    assert parse_faults(["image_404", "server_error@any"]) == [
        Fault("image_404", "image"),
        Fault("server_error", "any"),
    ]
    assert parse_faults("task_fail:imagen-4-ultra,rate_limit@create:imagen-4*2,image_bomb~0.5") == [
        Fault("task_fail", "create", model="imagen-4-ultra"),
        Fault("rate_limit", "create", 2, model="imagen-4"),
        Fault("image_bomb", "image", None, 0.5),
    ]
    for bad in (
        "explode",
        "rate_limit@moon",
        "rate_limit*x",
        "drop~often",
        "@status",
        "task_fail:imagen-5",
    ):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_counted_and_probable_faults(make_simulator, http_for) -> None:
    server = make_simulator(faults="rate_limit*2,server_error@status~1.0", retry_after_seconds=3)
    http = http_for(server)
    body = {"model": "imagen-4", "prompt": "a"}
    limited = [create(http, body) for _ in range(3)]
    assert [a.status_code for a in limited] == [429, 429, 200]
    assert limited[0].headers["retry-after"] == "3"
    assert limited[0].json()["error"]["code"] == "rate_limited"
    status = http.get(f"{CREATE}/{limited[2].json()['id']}", headers=auth())
    assert status.status_code == 502
    assert status.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in status.text


def test_bad_key_fault(make_simulator, http_for) -> None:
    http = http_for(make_simulator(faults="bad_key*1"))
    assert http.get("/api/v1/me/balance", headers=auth()).status_code == 401
    assert http.get("/api/v1/me/balance", headers=auth()).status_code == 200


def test_image_faults(make_simulator, http_for) -> None:
    server = make_simulator(faults="image_404*1,image_garbage*1")
    http = http_for(server)
    state = finish(http, create(http, {"model": "imagen-4", "prompt": "a"}).json()["id"])
    url = state["images"][0]["url"]
    assert http.get(url).status_code == 404
    garbage = http.get(url)
    assert garbage.status_code == 200 and garbage.content.startswith(b"\x89PNG")
    with pytest.raises((OSError, SyntaxError)), Image.open(io.BytesIO(garbage.content)) as broken:
        broken.load()
    with Image.open(io.BytesIO(http.get(url).content)) as good:
        good.load()


def test_faults_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("RUNAPI_SIM_FAULTS", "task_fail*1,rate_limit@status")
    monkeypatch.setenv("RUNAPI_SIM_TIME_SCALE", "0.25")
    config = SimulatorConfig.from_env(location_header=True)
    assert config.faults == [Fault("task_fail", "create", 1), Fault("rate_limit", "status")]
    assert config.time_scale == 0.25 and config.location_header is True
    assert SimulatorConfig.from_env(time_scale=0).time_scale == 0

    monkeypatch.delenv("RUNAPI_SIM_FAULTS")
    monkeypatch.delenv("RUNAPI_SIM_TIME_SCALE")
    assert SimulatorConfig.from_env() == SimulatorConfig()

    monkeypatch.setenv("RUNAPI_SIM_FAULTS", "no_such_fault")
    with pytest.raises(ValueError):
        SimulatorConfig.from_env()


# --- the command line ------------------------------------------------------------------------


def test_module_runs_as_a_server() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RUNAPI_SIM_FAULTS", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runapi_ui.runapi.simulator",
            "--port",
            str(port),
            "--time-scale",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                answer = httpx.post(
                    url + CREATE, json={"model": "imagen-4", "prompt": "a"}, headers=auth()
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert answer.status_code == 200
        task_id = answer.json()["id"]
        state = httpx.get(f"{url}{CREATE}/{task_id}", headers=auth()).json()
        assert state["status"] == "completed"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_faults_limited_to_one_model(make_simulator, http_for) -> None:
    server = make_simulator(faults="task_fail:imagen-4-ultra,rate_limit@create:imagen-4*2")
    http = http_for(server)
    answers = {
        model: [create(http, {"model": model, "prompt": "a"}) for _ in range(3)] for model in MODELS
    }
    assert [a.status_code for a in answers["imagen-4"]] == [429, 429, 200]
    assert [a.status_code for a in answers["imagen-4-fast"]] == [200, 200, 200]
    assert [a.status_code for a in answers["imagen-4-ultra"]] == [200, 200, 200]
    ended = {
        model: {finish(http, a.json()["id"])["status"] for a in found if a.status_code == 200}
        for model, found in answers.items()
    }
    assert ended == {
        "imagen-4-fast": {"completed"},
        "imagen-4": {"completed"},
        "imagen-4-ultra": {"failed"},
    }


def test_requests_record_the_create_body_their_fault_and_task(make_simulator, http_for) -> None:
    server = make_simulator(faults="rate_limit@create*1")
    http = http_for(server)
    body = {"model": "imagen-4", "prompt": "a lantern", "seed": 77}
    create(http, body)
    task_id = create(http, body).json()["id"]
    finish(http, task_id)
    limited, made, polled = list(server.simulator.requests)[:3]
    assert (limited.fault, limited.body, limited.task_id) == ("rate_limit", body, None)
    assert (made.fault, made.body["seed"], made.task_id) == (None, 77, task_id)
    assert (polled.method, polled.body, polled.task_id) == ("GET", None, task_id)


def test_status_garbage_is_a_200_page_not_json(make_simulator, http_for) -> None:
    server = make_simulator(faults="status_garbage@create*1,status_garbage@status*1")
    http = http_for(server)
    garbled = create(http, {"model": "imagen-4", "prompt": "a"}, **{"Idempotency-Key": "g1"})
    assert garbled.status_code == 200 and garbled.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        garbled.json()
    (task_id,) = server.simulator.tasks  # made before the answer was garbled
    again = create(http, {"model": "imagen-4", "prompt": "a"}, **{"Idempotency-Key": "g1"})
    assert again.json()["id"] == task_id
    status = http.get(f"{CREATE}/{task_id}", headers=auth())
    assert status.status_code == 200 and "<title>" in status.text
    assert http.get(f"{CREATE}/{task_id}", headers=auth()).json()["id"] == task_id


def test_image_bomb_is_a_tiny_png_declaring_400_megapixels(make_simulator, http_for) -> None:
    server = make_simulator(faults="image_bomb*1")
    http = http_for(server)
    state = finish(http, create(http, {"model": "imagen-4", "prompt": "a"}).json()["id"])
    bomb = http.get(state["images"][0]["url"])
    assert bomb.status_code == 200 and len(bomb.content) < 200
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb.content))
    with Image.open(io.BytesIO(http.get(state["images"][0]["url"]).content)) as good:
        good.load()


def test_duration_ranges_per_model(make_simulator, http_for) -> None:
    server = make_simulator(
        time_scale=0.5, jitter=0.0, durations={"imagen-4-fast": (3.0, 5.0)}, seed=4
    )
    http = http_for(server)
    for model in ("imagen-4-fast", "imagen-4"):
        for _ in range(20):
            create(http, {"model": model, "prompt": "a"})
    fast = [t.duration for t in server.simulator.tasks.values() if t.model == "imagen-4-fast"]
    standard = {t.duration for t in server.simulator.tasks.values() if t.model == "imagen-4"}
    assert all(1.5 <= d <= 2.5 for d in fast) and max(fast) - min(fast) > 0.5
    assert standard == {SIMULATED_SECONDS["imagen-4"] * 0.5}, "others keep their own figure"


def test_progress_hints_when_asked(make_simulator, http_for) -> None:
    plain = http_for(make_simulator(time_scale=1.0, jitter=0.0))
    task_id = create(plain, {"model": "imagen-4", "prompt": "a"}).json()["id"]
    assert "progress" not in plain.get(f"{CREATE}/{task_id}", headers=auth()).json()

    server = make_simulator(
        time_scale=1.0, durations={"imagen-4": (60.0, 60.0)}, progress_hints=True
    )
    http = http_for(server)
    task_id = create(http, {"model": "imagen-4", "prompt": "a"}).json()["id"]
    time.sleep(0.1)
    state = http.get(f"{CREATE}/{task_id}", headers=auth()).json()
    assert state["status"] in ("pending", "processing")
    assert state["progress"] == 0 and 59.0 < state["eta_seconds"] < 59.95


def test_images_are_drawn_once_per_picture_and_only_the_latest_kept(
    make_simulator, http_for
) -> None:
    server = make_simulator(image_cache=2)
    http = http_for(server)

    def image(seed: int) -> tuple[str, bytes]:
        body = {"model": "imagen-4-fast", "prompt": "a bell", "seed": seed}
        state = finish(http, create(http, body).json()["id"])
        return state["id"], http.get(state["images"][0]["url"]).content

    (first_id, first), (again_id, again) = image(1), image(1)
    assert first_id != again_id and first == again, "same inputs, same picture, another task"
    image(2)
    image(3)
    assert len(server.simulator._images) == 2
    assert image(1)[1] == first, "an evicted picture is drawn again, identically"
    assert server.simulator.served_images[image_digest(first)] in server.simulator.tasks


def test_old_tasks_are_forgotten(make_simulator, http_for) -> None:
    server = make_simulator(max_tasks=3)
    http = http_for(server)
    ids = [create(http, {"model": "imagen-4", "prompt": f"{i}"}).json()["id"] for i in range(5)]
    assert list(server.simulator.tasks) == ids[2:]
    assert http.get(f"{CREATE}/{ids[0]}", headers=auth()).status_code == 404


def test_an_image_digest_ignores_metadata_added_later() -> None:
    data = render_image("a kite", "imagen-4", "1:1", seed=3)
    with Image.open(io.BytesIO(data)) as image:
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "a kite, seed 3")
        tagged = io.BytesIO()
        image.save(tagged, format="PNG", pnginfo=info, compress_level=1)
    # Re-saved at the same settings, the pixels compress the same; only a chunk was added.
    assert tagged.getvalue() != data
    assert image_digest(tagged.getvalue()) == image_digest(data)
    assert image_digest(render_image("a kite", "imagen-4", "1:1", seed=4)) != image_digest(data)


HONG_KONG_PROMPT = "維多利亞港的夜景，霓虹燈倒映在水面上"


def test_the_placeholder_draws_chinese_without_empty_boxes() -> None:
    font = placeholder_font(64)
    assert font.getname()[0].startswith("Noto Sans CJK"), "apt-get install -y fonts-noto-cjk"
    # Every character is in the font's own character map (read by fontTools, not Pillow),
    # so it is drawn as itself, and none is dropped as undrawable.
    cmap = TTFont(font.path, fontNumber=font.index).getBestCmap()
    assert [c for c in HONG_KONG_PROMPT if ord(c) not in cmap] == []
    assert drawable(font, HONG_KONG_PROMPT) == HONG_KONG_PROMPT

    drawn, blank = (
        Image.open(io.BytesIO(render_image(prompt, "imagen-4", "1:1", 1))).convert("RGB")
        for prompt in (HONG_KONG_PROMPT, "")
    )
    assert ImageChops.difference(drawn, blank).getbbox() is not None, "no text was drawn"


def test_characters_the_font_lacks_are_left_out_not_drawn_as_boxes() -> None:
    with_emoji = render_image("a kite \U0001f600 over the sea", "imagen-4", "1:1", 2)
    assert with_emoji == render_image("a kite  over the sea", "imagen-4", "1:1", 2)


def test_without_a_cjk_font_chinese_is_left_out_not_drawn_as_boxes(monkeypatch, tmp_path):
    fonts_found = (simulator_module._cjk_face, placeholder_font)
    monkeypatch.setattr(simulator_module, "CJK_FONTS", (tmp_path, "*.ttc"))  # no font there
    for cached in fonts_found:
        cached.cache_clear()
    try:
        assert placeholder_font(40).getname()[0] != "Noto Sans CJK TC"
        mixed = render_image(f"{HONG_KONG_PROMPT} at night", "imagen-4", "1:1", 3)
        assert mixed == render_image("at night", "imagen-4", "1:1", 3)
    finally:
        for cached in fonts_found:
            cached.cache_clear()


def test_placeholder_lines_break_between_characters_or_words() -> None:
    font = placeholder_font(40)
    chinese = wrap_text(HONG_KONG_PROMPT * 3, font, 400)
    assert len(chinese) > 1 and "".join(chinese) == HONG_KONG_PROMPT * 3
    english = "a red fox curled up in fresh snow at dusk with a shallow depth of field"
    lines = wrap_text(english, font, 400)
    assert len(lines) > 1 and " ".join(lines) == english  # whole words on each line
    assert all(font.getlength(line) <= 400 for line in chinese + lines)
