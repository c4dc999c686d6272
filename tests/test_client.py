"""RunAPIClient against the simulator over real loopback sockets: no mocks of our code.

Fixtures (`make_simulator`, `simulator`, `make_client`) are in conftest.py. Simulators
run at time scale 0 (tasks finish at once) unless a test needs phases to be seen.
"""

from __future__ import annotations

import asyncio
import gc
import io
import statistics
import time
from collections.abc import Callable
from contextlib import aclosing
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from PIL import Image

from bench.processes import free_port
from runapi_ui.runapi.catalog import IMAGE_SIZES, MODELS, PROMPT_MAX_CHARS, SEED_MAX
from runapi_ui.runapi.client import (
    GUIDE_CREATE_PATH,
    SDK_CREATE_PATH,
    Balance,
    GenerationRequest,
    GenerationResult,
    Phase,
    RunAPIClient,
    TaskUpdate,
    _check_image,
)
from runapi_ui.runapi.errors import (
    AuthenticationError,
    ConflictError,
    ImageDownloadError,
    InsufficientCreditsError,
    ModelUnavailableError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RunAPIError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
    error_from_response,
    parse_retry_after,
)
from runapi_ui.runapi.polling import DurationStats
from runapi_ui.runapi.simulator import DEFAULT_FAIL_REASON, SimulatorServer, render_image
from runapi_ui.storage.pnginfo import _png_chunks

KEY = "sk-test-0123456789"  # make_client's default key
REQUEST = GenerationRequest(model="imagen-4-fast", prompt="a red fox in the snow")
# For tests with never-ending tasks: a regression then fails in seconds, not in 300.
STUCK_DEADLINE = 20.0


# --- helpers ---------------------------------------------------------------------


def seen(server: SimulatorServer) -> list[tuple[str, str]]:
    """(method, path) of every API request the simulator saw, image fetches left out."""
    return [
        (r.method, r.path) for r in server.simulator.requests if not r.path.startswith("/files/")
    ]


def status_requests(server: SimulatorServer, task_id: str | None = None) -> list[str]:
    return [
        r.path
        for r in server.simulator.requests
        if r.method == "GET"
        and not r.path.startswith(("/files/", "/api/v1/me"))
        and (task_id is None or r.path.endswith(f"/{task_id}"))
    ]


def creates(server: SimulatorServer) -> list:
    return [r for r in server.simulator.requests if r.method == "POST"]


def assert_hides(secret: str, *things: object) -> None:
    for thing in things:
        assert secret not in str(thing)
        assert secret not in repr(thing)
        if isinstance(thing, RunAPIError):
            assert secret not in (thing.detail or "")
            assert secret not in thing.message


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- success paths -----------------------------------------------------------------


async def test_every_model_and_ratio(simulator, make_client) -> None:
    client = make_client(simulator)
    combos = [(model, ratio) for model, info in MODELS.items() for ratio in info.aspect_ratios]
    assert ("imagen-4-fast", "auto") in combos
    results = await asyncio.gather(
        *(
            client.generate(
                GenerationRequest(
                    model=model, prompt=f"  a fox, {model} {ratio}  ", aspect_ratio=ratio
                )
            )
            for model, ratio in combos
        )
    )
    for (model, ratio), result in zip(combos, results, strict=True):
        assert result.model == model
        assert len(result.images) == 1
        image = result.images[0]
        expected = IMAGE_SIZES["1:1"] if ratio == "auto" else IMAGE_SIZES[ratio]
        assert (image.width, image.height) == expected
        assert image.format == "PNG"
        with Image.open(io.BytesIO(image.data)) as decoded:
            decoded.load()
            assert decoded.size == expected
        assert image.url.startswith(f"{simulator.url}/files/{result.task_id}/")
        sent = simulator.simulator.tasks[result.task_id].body
        assert sent == {"model": model, "prompt": f"a fox, {model} {ratio}", "aspect_ratio": ratio}
    assert len({r.task_id for r in results}) == len(combos) == len(simulator.simulator.tasks)


async def test_negative_prompt_and_seed_are_sent(simulator, make_client) -> None:
    client = make_client(simulator)
    request = GenerationRequest(
        model="imagen-4", prompt="a lighthouse", negative_prompt=" fog ", seed=SEED_MAX
    )
    result = await client.generate(request)
    body = simulator.simulator.tasks[result.task_id].body
    assert body["negative_prompt"] == "fog"
    assert body["seed"] == SEED_MAX
    assert result.request is not None and result.request.seed == SEED_MAX


async def test_boundary_inputs_are_accepted(simulator, make_client) -> None:
    client = make_client(simulator)
    request = GenerationRequest(prompt="x" * PROMPT_MAX_CHARS, seed=0)
    result = await client.generate(request)
    assert simulator.simulator.tasks[result.task_id].body["seed"] == 0


@pytest.mark.parametrize("callback_kind", ["sync", "async"])
async def test_updates_arrive_in_order(make_simulator, make_client, callback_kind) -> None:
    # Ultra at time scale 0.05 runs 0.65 s: long enough to be seen processing.
    server = make_simulator(time_scale=0.05)
    client = make_client(server)
    updates: list[TaskUpdate] = []

    if callback_kind == "sync":
        on_update = updates.append
    else:

        async def on_update(update: TaskUpdate) -> None:
            await asyncio.sleep(0)
            updates.append(update)

    request = GenerationRequest(model="imagen-4-ultra", prompt="a castle", aspect_ratio="9:16")
    result = await client.generate(request, on_update=on_update)
    assert [u.phase for u in updates] == [
        Phase.SUBMITTED,
        Phase.QUEUED,
        Phase.PROCESSING,
        Phase.DOWNLOADING,
        Phase.COMPLETED,
    ]
    elapsed = [u.elapsed for u in updates]
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed)
    assert elapsed[-1] <= result.elapsed
    assert {(u.task_id, u.model) for u in updates} == {(result.task_id, "imagen-4-ultra")}
    duration = server.simulator.tasks[result.task_id].duration
    assert updates[2].elapsed < duration <= updates[3].elapsed + 0.05
    assert (result.images[0].width, result.images[0].height) == IMAGE_SIZES["9:16"]


async def test_wait_on_a_bare_task_id(simulator, make_client) -> None:
    task = await make_client(simulator).submit(
        GenerationRequest(model="imagen-4", prompt="a bridge", aspect_ratio="16:9")
    )
    # A fresh client, as after a page reload: only the id is known.
    result = await make_client(simulator).wait(task.id)
    assert result.task_id == task.id
    assert (result.images[0].width, result.images[0].height) == IMAGE_SIZES["16:9"]
    assert status_requests(simulator, task.id) == [f"{SDK_CREATE_PATH}/{task.id}"]


# --- the guide's paths, and the 202 + Location form ----------------------------------


async def test_guide_create_path_when_the_sdk_path_is_missing(make_simulator, make_client) -> None:
    server = make_simulator(sdk_routes=False)
    client = make_client(server)
    first = await client.generate(REQUEST)
    second = await client.generate(REQUEST)
    assert seen(server) == [
        ("POST", SDK_CREATE_PATH),  # 404 here: not this service's path
        ("POST", GUIDE_CREATE_PATH),
        ("GET", f"/v1/tasks/{first.task_id}"),
        # learned: straight to the guide's create for the next task
        ("POST", GUIDE_CREATE_PATH),
        ("GET", f"/v1/tasks/{second.task_id}"),
    ]
    assert set(server.simulator.tasks) == {first.task_id, second.task_id}


async def test_guide_status_falls_back_to_api_v1_tasks_and_remembers(
    make_simulator, make_client
) -> None:
    server = make_simulator(sdk_routes=False, guide_v1_status=False)
    client = make_client(server)
    first = await client.generate(REQUEST)
    second = await client.generate(REQUEST)
    assert seen(server) == [
        ("POST", SDK_CREATE_PATH),
        ("POST", GUIDE_CREATE_PATH),
        ("GET", f"/v1/tasks/{first.task_id}"),  # 404: this service has no /v1/tasks
        ("GET", f"/api/v1/tasks/{first.task_id}"),
        ("POST", GUIDE_CREATE_PATH),
        ("GET", f"/api/v1/tasks/{second.task_id}"),  # remembered: no probe this time
    ]
    # A bare id on this client goes to the remembered place first.
    again = await client.wait(second.task_id)
    assert again.task_id == second.task_id
    assert seen(server)[-1] == ("GET", f"/api/v1/tasks/{second.task_id}")


async def test_bare_id_on_a_guide_only_service(make_simulator, make_client) -> None:
    server = make_simulator(sdk_routes=False)
    task = await make_client(server).submit(REQUEST)
    result = await make_client(server).wait(task.id)
    assert result.task_id == task.id
    assert status_requests(server, task.id) == [
        f"{SDK_CREATE_PATH}/{task.id}",
        f"/v1/tasks/{task.id}",
    ]


async def test_202_with_location(make_simulator, make_client) -> None:
    server = make_simulator(location_header=True)
    result = await make_client(server).generate(REQUEST)
    assert status_requests(server) == [f"/api/v1/tasks/{result.task_id}"]


class SlowCreate(httpx.AsyncHTTPTransport):
    """A create reaches the service 0.3 s after it was sent; its answer comes back at once."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            await asyncio.sleep(0.3)
        return await super().handle_async_request(request)


@pytest.mark.parametrize("uplink", [None, SlowCreate], ids=["fast", "slow create"])
async def test_202_retry_after_delays_the_first_poll(make_simulator, make_client, uplink) -> None:
    """Retry-After counts from when the answer came, not from when the task was taken
    (which a slow create puts well before the answer)."""
    # Ultra at 0.1 runs 1.3 s; the create answer says Retry-After: 1.
    server = make_simulator(location_header=True, time_scale=0.1)
    client = make_client(server, transport=uplink() if uplink else None)
    result = await client.generate(GenerationRequest(model="imagen-4-ultra", prompt="a"))
    create = creates(server)[0]
    polls = [r for r in server.simulator.requests if r.path == f"/api/v1/tasks/{result.task_id}"]
    assert polls and polls[0].at - create.at >= 1.0


# --- every error class ----------------------------------------------------------------


async def test_wrong_key_is_authentication_error(make_simulator, make_client) -> None:
    server = make_simulator(api_keys=frozenset({"sk-the-right-one"}))
    client = make_client(server, api_key="sk-wrong-secret-4242")
    with pytest.raises(AuthenticationError) as caught:
        await client.generate(REQUEST)
    assert caught.value.status == 401
    assert len(creates(server)) == 1  # a 401 is not retried
    assert not server.simulator.tasks
    assert_hides("sk-wrong-secret-4242", caught.value, client)


async def test_no_credits(make_simulator, make_client) -> None:
    server = make_simulator(faults="no_credits")
    with pytest.raises(InsufficientCreditsError) as caught:
        await make_client(server).generate(REQUEST)
    assert caught.value.status == 402
    assert len(creates(server)) == 1
    assert not server.simulator.tasks


async def test_service_side_validation_names_the_field(make_simulator, make_client) -> None:
    server = make_simulator(faults="invalid")
    with pytest.raises(ValidationError) as caught:
        await make_client(server).generate(REQUEST)
    assert caught.value.status == 422
    assert caught.value.field == "prompt"
    assert "content policy" in str(caught.value)
    assert len(creates(server)) == 1


async def test_rate_limited_after_retries(make_simulator, make_client) -> None:
    server = make_simulator(faults="rate_limit")
    with pytest.raises(RateLimitError) as caught:
        await make_client(server, max_retries=2).generate(REQUEST)
    assert caught.value.status == 429
    assert caught.value.retry_after == 0.0
    assert len(creates(server)) == 3
    assert len({r.idempotency_key for r in creates(server)}) == 1


async def test_html_bad_gateway_is_server_error(make_simulator, make_client) -> None:
    server = make_simulator(faults="server_error@create")
    with pytest.raises(ServerError) as caught:
        await make_client(server, max_retries=2).generate(REQUEST)
    error = caught.value
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)
    assert "<" not in str(error) and "html" not in str(error).lower()
    assert len(creates(server)) == 3


async def test_dead_port_is_network_error(make_client) -> None:
    port = free_port()
    client = make_client(f"http://127.0.0.1:{port}", max_retries=1)
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        await client.generate(REQUEST)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert time.monotonic() - started < 5
    assert_hides(KEY, caught.value)


async def test_persistent_drops_are_network_error(make_simulator, make_client) -> None:
    server = make_simulator(faults="drop@status")
    with pytest.raises(NetworkError):
        await make_client(server, max_retries=2).generate(REQUEST)
    assert len(status_requests(server)) == 3


async def test_failed_task(make_simulator, make_client) -> None:
    server = make_simulator(faults="task_fail*1")
    updates: list[TaskUpdate] = []
    with pytest.raises(TaskFailedError) as caught:
        await make_client(server).generate(REQUEST, on_update=updates.append)
    (task_id,) = server.simulator.tasks
    assert caught.value.task_id == task_id
    reason = DEFAULT_FAIL_REASON.rstrip(".")
    assert caught.value.reason == reason
    assert reason in str(caught.value)
    assert updates[-1].phase is Phase.FAILED and updates[-1].detail == reason


@pytest.mark.parametrize("where", ["call", "client"])
async def test_stuck_task_times_out(make_simulator, make_client, where) -> None:
    server = make_simulator(faults="stuck")
    if where == "call":
        client, kwargs = make_client(server), {"deadline": 0.6}
    else:
        client, kwargs = make_client(server, deadline=0.6), {}
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as caught:
        await client.generate(REQUEST, **kwargs)
    took = time.monotonic() - started
    (task_id,) = server.simulator.tasks
    assert caught.value.task_id == task_id
    assert 0.6 <= took < 1.2
    assert len(status_requests(server, task_id)) >= 2


async def test_deadline_bounds_retries_too(make_simulator, make_client) -> None:
    # Every status answer is 429 with Retry-After: 5; a 1 s deadline must not wait it out.
    server = make_simulator(faults="rate_limit@status", retry_after_seconds=5)
    started = time.monotonic()
    with pytest.raises((RateLimitError, TaskTimeoutError)):
        await make_client(server).generate(REQUEST, deadline=1.0)
    assert time.monotonic() - started < 1.5


async def test_a_long_retry_after_is_reported_not_slept(make_simulator, make_client) -> None:
    # A create answered 429 with Retry-After: 600 must not hang a user for ten minutes.
    server = make_simulator(faults="rate_limit@create", retry_after_seconds=600)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        await make_client(server).generate(REQUEST)
    assert time.monotonic() - started < 2.0
    assert caught.value.retry_after == 600 and "Wait 600 s" in caught.value.message
    assert len(creates(server)) == 1


@pytest.mark.parametrize("fault", ["image_404", "image_garbage", "image_truncated"])
async def test_bad_image(make_simulator, make_client, fault) -> None:
    server = make_simulator(faults=fault)
    with pytest.raises(ImageDownloadError):
        await make_client(server).generate(REQUEST)
    assert [r.path for r in server.simulator.requests if r.path.startswith("/files/")]


# --- local validation: nothing is sent --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   \n "}, "prompt"),
        ({"prompt": "x" * (PROMPT_MAX_CHARS + 1)}, "prompt"),
        ({"model": "imagen-5"}, "model"),
        ({"model": "imagen-4", "aspect_ratio": "auto"}, "aspect_ratio"),
        ({"model": "imagen-4-ultra", "aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"seed": -1}, "seed"),
        ({"seed": SEED_MAX + 1}, "seed"),
        ({"seed": True}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"negative_prompt": "y" * (PROMPT_MAX_CHARS + 1)}, "negative_prompt"),
    ],
)
async def test_local_validation_sends_nothing(simulator, make_client, changes, field) -> None:
    client = make_client(simulator)
    request = GenerationRequest(**{"model": "imagen-4-fast", "prompt": "a fox", **changes})
    with pytest.raises(ValidationError) as caught:
        await client.generate(request)
    assert caught.value.field == field
    with pytest.raises(ValidationError):
        await client.submit(request)
    with pytest.raises(ValidationError):
        async for _ in client.generate_many(request, 2):
            pass
    assert list(simulator.simulator.requests) == []
    assert simulator.simulator.tasks == {}


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "method", "path_prefix"),
    [
        ("rate_limit@status*2", "GET", f"{SDK_CREATE_PATH}/"),
        ("server_error@status*2", "GET", f"{SDK_CREATE_PATH}/"),
        ("drop@status*2", "GET", f"{SDK_CREATE_PATH}/"),
        ("rate_limit@create*2", "POST", SDK_CREATE_PATH),
        ("server_error@create*2", "POST", SDK_CREATE_PATH),
        ("rate_limit@image*2", "GET", "/files/"),
        ("server_error@image*2", "GET", "/files/"),
        ("drop@image*2", "GET", "/files/"),
    ],
)
async def test_transient_faults_are_retried(
    make_simulator, make_client, faults, method, path_prefix
) -> None:
    server = make_simulator(faults=faults)
    result = await make_client(server).generate(REQUEST)
    assert result.images[0].width == 1024
    assert len(server.simulator.tasks) == 1
    hits = [
        r
        for r in server.simulator.requests
        if r.method == method and r.path.startswith(path_prefix)
    ]
    assert len(hits) == 3  # two faulty answers, then the good one


async def test_retry_after_is_honoured(make_simulator, make_client) -> None:
    server = make_simulator(faults="rate_limit@create*1", retry_after_seconds=1)
    await make_client(server).generate(REQUEST)
    first, second = creates(server)
    assert second.at - first.at >= 1.0
    assert first.idempotency_key == second.idempotency_key


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    ahead = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= parse_retry_after(ahead) <= 30.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0
    response = httpx.Response(
        429,
        headers={"Retry-After": ahead},
        json={"error": "slow down"},
        request=httpx.Request("GET", "http://x"),
    )
    error = error_from_response(response)
    assert isinstance(error, RateLimitError) and 28.0 <= error.retry_after <= 30.0


# --- idempotency ---------------------------------------------------------------------------


async def test_dropped_create_is_retried_with_the_same_key(make_simulator, make_client) -> None:
    server = make_simulator(faults="drop@create*1")
    result = await make_client(server).generate(REQUEST)
    assert list(server.simulator.tasks) == [result.task_id]  # made once, not twice
    first, second = creates(server)
    assert first.idempotency_key and first.idempotency_key == second.idempotency_key


async def test_each_submit_has_its_own_idempotency_key(simulator, make_client) -> None:
    client = make_client(simulator)
    await client.submit(REQUEST)
    await client.submit(REQUEST)
    keys = [r.idempotency_key for r in creates(simulator)]
    assert len(set(keys)) == 2 and None not in keys
    assert len(simulator.simulator.tasks) == 2


async def test_a_task_is_timed_from_when_runapi_took_it_not_from_its_answer(
    simulator, make_client
) -> None:
    """A busy event loop reads answers late, each by its own amount: timed from the
    answer, a crowd's tasks would seem to start late and be polled late."""
    late_answers = 0.3  # seconds each answer waits before this client reads it

    class LateAnswers(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            await asyncio.sleep(late_answers)
            return response

    client = make_client(simulator, transport=LateAnswers())
    task = await client.submit(REQUEST)
    answer_read = time.monotonic()
    # Halfway through the exchange: at least half the answer's wait before it was read.
    assert task.submitted_at <= answer_read - late_answers / 2


async def test_same_idempotency_key_other_body_is_409(simulator) -> None:
    url = simulator.url + SDK_CREATE_PATH
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "key-1"}
    async with httpx.AsyncClient() as http:
        body = {"model": "imagen-4", "prompt": "a cat"}
        first = await http.post(url, json=body, headers=headers)
        again = await http.post(url, json=body, headers=headers)
        other = await http.post(url, json={**body, "prompt": "a dog"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409
    assert isinstance(error_from_response(other), ConflictError)
    assert len(simulator.simulator.tasks) == 1


# --- cancellation, deadlines, many at once --------------------------------------------------


async def test_cancelling_generate_stops_polling(make_simulator, make_client) -> None:
    server = make_simulator(faults="stuck")
    client = make_client(server, deadline=STUCK_DEADLINE)
    job = asyncio.create_task(client.generate(REQUEST))
    await until(lambda: len(status_requests(server)) >= 2)
    cancelled_at = time.monotonic()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert time.monotonic() - cancelled_at < 0.3
    await asyncio.sleep(0.05)  # a request already on the wire may still land
    count = len(status_requests(server))
    await asyncio.sleep(1.0)  # five poll intervals at this point of the task
    assert len(status_requests(server)) == count


async def assert_nothing_left_running(
    server: SimulatorServer, baseline: set[asyncio.Task], quiet_for: float
) -> None:
    """No stray asyncio task, and no status request reaches the service afterwards."""
    assert asyncio.all_tasks() == baseline
    await asyncio.sleep(0.05)
    count = len(status_requests(server))
    await asyncio.sleep(quiet_for)
    assert len(status_requests(server)) == count


async def test_cancelling_generate_many_leaves_no_tasks(make_simulator, make_client) -> None:
    server = make_simulator(faults="stuck")
    client = make_client(server, deadline=STUCK_DEADLINE)
    baseline = asyncio.all_tasks()

    async def consume() -> None:
        async for _ in client.generate_many(REQUEST, 3):
            pass

    job = asyncio.create_task(consume())
    await until(lambda: len({p.rsplit("/", 1)[1] for p in status_requests(server)}) == 3)
    cancelled_at = time.monotonic()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert time.monotonic() - cancelled_at < 0.3
    await assert_nothing_left_running(server, baseline, quiet_for=1.0)


async def test_closing_generate_many_early_cancels_the_rest(make_simulator, make_client) -> None:
    server = make_simulator(faults="stuck*2")  # two of three tasks never finish
    client = make_client(server, deadline=STUCK_DEADLINE)
    baseline = asyncio.all_tasks()
    async with aclosing(client.generate_many(REQUEST, 3)) as results:
        async for first in results:
            assert isinstance(first, GenerationResult)
            break
    await assert_nothing_left_running(server, baseline, quiet_for=0.6)


async def test_generate_many_seeds_follow_on(simulator, make_client) -> None:
    client = make_client(simulator)
    request = GenerationRequest(model="imagen-4", prompt="a kite", seed=SEED_MAX - 1)
    results = [r async for r in client.generate_many(request, 4)]
    assert len(results) == 4 and all(isinstance(r, GenerationResult) for r in results)
    assert len({r.task_id for r in results}) == 4
    expected = {SEED_MAX - 1, SEED_MAX, 0, 1}  # wraps within the valid range
    assert {r.request.seed for r in results} == expected
    assert {simulator.simulator.tasks[r.task_id].seed for r in results} == expected
    assert len({r.images[0].data for r in results}) == 4


async def test_generate_many_without_seed(simulator, make_client) -> None:
    results = [r async for r in make_client(simulator).generate_many(REQUEST, 4)]
    assert len({r.task_id for r in results}) == 4
    assert all("seed" not in simulator.simulator.tasks[r.task_id].body for r in results)


async def test_generate_many_returns_exceptions(make_simulator, make_client) -> None:
    server = make_simulator(faults="task_fail*1")
    out = [r async for r in make_client(server).generate_many(REQUEST, 4, return_exceptions=True)]
    assert len(out) == 4
    failures = [r for r in out if isinstance(r, TaskFailedError)]
    assert len(failures) == 1
    assert len([r for r in out if isinstance(r, GenerationResult)]) == 3
    assert server.simulator.tasks[failures[0].task_id].fails


async def test_generate_many_raises_the_first_failure(make_simulator, make_client) -> None:
    # Three tasks never finish; the fourth completes but its image is gone.
    server = make_simulator(faults="stuck*3,image_404*1")
    baseline = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(ImageDownloadError):
        async for _ in make_client(server, deadline=STUCK_DEADLINE).generate_many(REQUEST, 4):
            pass
    assert time.monotonic() - started < 2
    await assert_nothing_left_running(server, baseline, quiet_for=0.6)


async def test_generate_many_leaves_no_unretrieved_errors(make_simulator, make_client) -> None:
    # Every task fails at about the same moment, so several finish in one batch: the
    # ones not raised must still be read, or asyncio logs "exception was never retrieved".
    server = make_simulator(faults="task_fail")
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    try:
        for _ in range(4):
            with pytest.raises(TaskFailedError):
                async for _ in make_client(server).generate_many(REQUEST, 8):
                    pass
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


# --- keys and origins ---------------------------------------------------------------------


async def test_two_clients_two_keys(simulator, make_client) -> None:
    alpha = make_client(simulator, api_key="sk-alpha-1111")
    bravo = make_client(simulator, api_key="sk-bravo-2222")
    results = await asyncio.gather(
        *(client.generate(REQUEST) for client in (alpha, bravo, alpha, bravo))
    )
    owner = {
        r.task_id: key
        for r, key in zip(results, ["sk-alpha-1111", "sk-bravo-2222"] * 2, strict=True)
    }
    tasks = simulator.simulator.tasks
    assert {task_id: tasks[task_id].api_key for task_id in owner} == owner
    for request in simulator.simulator.requests:
        for task_id, key in owner.items():
            if task_id in request.path:
                assert request.api_key == key
    assert (
        sorted(r.api_key for r in creates(simulator))
        == ["sk-alpha-1111"] * 2 + ["sk-bravo-2222"] * 2
    )
    # One key cannot read the other's task.
    with pytest.raises(NotFoundError):
        await bravo.wait(results[0].task_id)


def test_repr_hides_the_key() -> None:
    client = RunAPIClient(api_key="sk-very-secret-99", base_url="http://127.0.0.1:9")
    assert_hides("sk-very-secret-99", client)
    assert "127.0.0.1:9" in repr(client)


def test_no_key_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("RUNAPI_API_KEY", raising=False)
    with pytest.raises(ValueError):
        RunAPIClient(api_key="   ")


def test_key_goes_to_the_api_origin_only() -> None:
    # The simulator's image links always share its origin, so the rule is checked here.
    client = RunAPIClient(api_key="sk-k", base_url="https://runapi.ai/v1")
    sent = {"Authorization": "Bearer sk-k"}
    assert client._auth_for("https://runapi.ai/api/v1/imagen_4/text_to_image") == sent
    assert client._auth_for("https://RUNAPI.ai:443/api/v1/tasks/1") == sent
    for url in (
        "http://runapi.ai/api/v1/tasks/1",  # other scheme
        "https://runapi.ai:8443/x",  # other port
        "https://cdn.runapi.ai/image.png",
        "https://runapi.ai.evil.example/x",
        "https://runapi.ai@evil.example/x",
        "https://storage.googleapis.com/bucket/image.png?src=https://runapi.ai",
    ):
        assert client._auth_for(url) == {}, url


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/api/v1", "/"])
async def test_hermes_style_base_url(simulator, make_client, suffix) -> None:
    client = make_client(simulator.url + suffix)
    assert client.base_url == simulator.url
    result = await client.generate(REQUEST)
    assert seen(simulator) == [
        ("POST", SDK_CREATE_PATH),
        ("GET", f"{SDK_CREATE_PATH}/{result.task_id}"),
    ]


# --- adaptive polling ------------------------------------------------------------------------


async def test_polling_learns_the_real_duration(make_simulator, make_client) -> None:
    # Ultra runs 1.0-1.2 s here; the client starts believing 3 s (prior: 1.5-4.5 s).
    server = make_simulator(durations={"imagen-4-ultra": (1.0, 1.2)}, time_scale=1.0, seed=7)
    durations = DurationStats({"imagen-4-ultra": 3.0})
    client = make_client(server, durations=durations)
    model = "imagen-4-ultra"
    prior_low, prior_high = durations.window(model)
    for _ in range(2):
        await asyncio.gather(
            *(client.generate(GenerationRequest(model=model, prompt="a hill")) for _ in range(4))
        )
    assert durations.observations(model) == 8
    real = [task.duration for task in server.simulator.tasks.values()]
    low, high = durations.window(model)
    middle = statistics.mean(real)
    assert abs((low + high) / 2 - middle) < abs((prior_low + prior_high) / 2 - middle) / 2, (
        "the learned window sits much nearer the real durations than the prior did"
    )
    # The SDK's schedule sends one request, then one per 2 s: two for each of these tasks.
    assert len(status_requests(server)) <= 2 * len(real)


async def test_a_bare_id_wait_learns_the_model_it_is_told(make_simulator, make_client) -> None:
    server = make_simulator(durations={"imagen-4-ultra": (1.0, 1.0)}, time_scale=1.0)
    task = await make_client(server).submit(GenerationRequest(model="imagen-4-ultra", prompt="a"))
    durations = DurationStats({"imagen-4-ultra": 0.05, "imagen-4": 0.05})
    result = await make_client(server, durations=durations).wait(task.id, model="imagen-4-ultra")
    assert result.task_id == task.id
    assert durations.observations("imagen-4-ultra") == 1
    assert durations.observations("imagen-4") == 0


async def test_a_bare_id_found_done_at_once_teaches_nothing(simulator, make_client) -> None:
    task = await make_client(simulator).submit(REQUEST)
    durations = DurationStats({"imagen-4-fast": 0.05})
    await make_client(simulator, durations=durations).wait(task.id, model="imagen-4-fast")
    assert durations.observations("imagen-4-fast") == 0, "it may have ended long before"


async def test_an_expected_finish_in_the_answer_places_the_next_poll(
    make_simulator, make_client
) -> None:
    # Status answers carry progress and eta_seconds; the client's prior says 0.05 s.
    server = make_simulator(
        durations={"imagen-4-ultra": (1.0, 1.0)}, time_scale=1.0, progress_hints=True
    )
    await make_client(server).generate(GenerationRequest(model="imagen-4-ultra", prompt="a"))
    (task,) = server.simulator.tasks.values()
    polls = [r for r in server.simulator.requests if r.method == "GET" and r.task_id == task.id]
    polls = [r for r in polls if not r.path.startswith("/files/")]
    assert len(polls) == 2, "one poll to read the hint, one when it said the task ends"
    assert polls[1].at >= task.created_at + task.duration


# --- answers that break on the way --------------------------------------------------------


async def test_a_status_answer_that_is_not_json_is_retried(make_simulator, make_client) -> None:
    server = make_simulator(faults="status_garbage@status*2")
    result = await make_client(server).generate(REQUEST)
    assert result.images[0].width == 1024
    assert [r.fault for r in server.simulator.requests if r.method == "GET"][:3] == [
        "status_garbage",
        "status_garbage",
        None,
    ]


async def test_a_create_answer_that_is_not_json_makes_one_task(make_simulator, make_client):
    server = make_simulator(faults="status_garbage@create*1")
    result = await make_client(server).generate(REQUEST)
    assert list(server.simulator.tasks) == [result.task_id]
    first, second = creates(server)
    assert first.idempotency_key == second.idempotency_key


async def test_answers_that_are_never_json_say_so(make_simulator, make_client) -> None:
    server = make_simulator(faults="status_garbage@status")
    with pytest.raises(RunAPIError) as caught:
        await make_client(server, max_retries=2).generate(REQUEST)
    message = caught.value.message
    assert "HTTP 200 with a body that is not JSON: Just a moment..." in message
    assert "try again in a minute" in message and "<" not in message
    assert len(status_requests(server)) == 3


async def test_a_decompression_bomb_is_a_broken_image(make_simulator, make_client) -> None:
    server = make_simulator(faults="image_bomb")
    with pytest.raises(ImageDownloadError) as caught:
        await make_client(server).generate(REQUEST)
    message = caught.value.message
    assert "is broken" in message and "megapixels" in message and "Generate again" in message
    assert not isinstance(caught.value.__cause__, Image.DecompressionBombError)


def test_a_png_cut_anywhere_is_refused_without_decoding_it() -> None:
    """The PNG check reads checksums, not pixels: every cut must still be caught,
    at a chunk's edge as in its middle, and a flipped byte too."""
    png = render_image("a lighthouse", "imagen-4-fast", "1:1", 7)
    edges = [chunk.start for chunk in _png_chunks(png)]  # after the signature, each chunk
    cuts = [*edges, edges[1] + 5, len(png) // 2, edges[-1] - 1]  # the last: before IEND
    for cut in cuts:
        with pytest.raises(ImageDownloadError, match="not a valid image"):
            _check_image(png[:cut], "https://example.test/a.png")
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF
    with pytest.raises(ImageDownloadError, match="not a valid image"):
        _check_image(bytes(flipped), "https://example.test/a.png")
    whole = _check_image(png, "https://example.test/a.png")
    assert (whole.width, whole.height, whole.format) == (1024, 1024, "PNG")


# --- the account ----------------------------------------------------------------------------


async def test_balance(make_simulator, make_client) -> None:
    server = make_simulator(starting_balance_cents=500)
    client = make_client(server)
    before = await client.balance()
    assert before == Balance(500, 400, 100, 0, 0)
    await client.generate(GenerationRequest(model="imagen-4-ultra", prompt="a"))
    after = await client.balance()
    assert after.balance_cents == 500 - 12 and after.spent_cents_total == 12


async def test_balance_with_a_wrong_key(make_simulator, make_client) -> None:
    server = make_simulator(api_keys=frozenset({"sk-right"}))
    with pytest.raises(AuthenticationError):
        await make_client(server, api_key="sk-wrong").balance()


async def test_balance_is_retried_like_any_read(make_simulator, make_client) -> None:
    server = make_simulator(faults="status_garbage@balance*1,rate_limit@balance*1")
    assert (await make_client(server).balance()).balance_cents == 1000
    assert len(server.simulator.requests) == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"balance_cents": 7}, Balance(7)),
        ({"data": {"balance_cents": "12", "spent_cents_today": 3.0}}, Balance(12, None, None, 3)),
        ({"balance": 1.5}, Balance(150)),
        ({"balance_cents": 9, "bonus_balance_cents": "n/a"}, Balance(9)),
    ],
)
def test_balance_answers_are_read_tolerantly(body, expected) -> None:
    assert Balance.from_answer(body) == expected


def test_a_balance_answer_without_a_balance_says_so() -> None:
    with pytest.raises(RunAPIError, match="names no balance"):
        Balance.from_answer({"currency": "USD"})


# --- request ids, costs and availability -------------------------------------------------


async def test_every_request_carries_a_fresh_client_request_id(simulator, make_client) -> None:
    client = make_client(simulator)
    await client.generate(REQUEST)
    await client.balance()
    await client.request("GET", "/api/v1/me/balance")
    ids = [r.client_request_id for r in simulator.simulator.requests]
    assert len(ids) == 5 and any(r.path.startswith("/files/") for r in simulator.simulator.requests)
    assert all(ids) and len(set(ids)) == len(ids)
    assert all(0 < len(i) <= 512 and i.isascii() and i.isprintable() for i in ids)


async def test_an_error_names_the_request_id_to_quote(make_simulator, make_client) -> None:
    server = make_simulator(api_keys=frozenset({"sk-the-right-one"}))
    with pytest.raises(AuthenticationError) as caught:
        await make_client(server).generate(REQUEST)
    (sent,) = server.simulator.requests
    error = caught.value
    assert error.client_request_id == sent.client_request_id
    assert error.message.endswith(f"(request id {sent.client_request_id})")
    assert str(error) == error.message


async def test_each_retry_has_its_own_request_id_and_the_last_is_named(
    make_simulator, make_client
) -> None:
    server = make_simulator(faults="rate_limit@create")
    with pytest.raises(RateLimitError) as caught:
        await make_client(server, max_retries=2).submit(REQUEST)
    ids = [r.client_request_id for r in server.simulator.requests]
    assert len(ids) == 3 == len(set(ids))
    assert f"(request id {ids[-1]})" in caught.value.message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, 0.08),  # usage.cost
        ({"usage_in_answers": False}, 0.08),  # billing.settlement.charged_amount_cents
        ({"refund_completed": True}, 0.0),  # refunded: nothing, whatever else it says
        ({"prices": {"imagen-4": 11}}, 0.11),  # what RunAPI charged, not the catalog
    ],
)
async def test_what_a_task_cost(make_simulator, make_client, config, expected) -> None:
    server = make_simulator(**config)
    client = make_client(server)
    result = await client.generate(GenerationRequest(model="imagen-4", prompt="a"))
    assert result.charged_usd == pytest.approx(expected)
    spent = (await client.balance()).spent_cents_total
    assert spent == round(expected * 100)


async def test_a_503_on_create_says_the_model_is_unavailable(make_simulator, make_client) -> None:
    server = make_simulator(catalog_status={"imagen-4-ultra": "maintenance"})
    client = make_client(server)
    with pytest.raises(ModelUnavailableError) as caught:
        await client.submit(GenerationRequest(model="imagen-4-ultra", prompt="a"))
    error = caught.value
    assert error.model == "imagen-4-ultra" and error.status == 503
    assert error.message.startswith("imagen-4-ultra is unavailable on RunAPI right now")
    assert "Choose another model" in error.message
    assert error.message.endswith(f"(request id {server.simulator.requests[-1].client_request_id})")
    assert not server.simulator.tasks
    assert (await client.generate(GenerationRequest(model="imagen-4", prompt="a"))).images
