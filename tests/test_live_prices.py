"""Live prices, availability and real costs in the app, against simulators over loopback.

The app's price books read the simulators' `price_schedules` (tests refresh them by hand;
a launched app does it in the background, as the browser tests show). The simulator bills
each completed task at its own prices and says so (`usage`, `billing`), so a price that
differs from the built-in table tells an estimate from a charge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import gradio as gr
import pytest
from playwright.sync_api import Browser, Page, expect

from bench.processes import free_port
from runapi_ui.agents.endpoints import tool_description
from runapi_ui.page.handlers import html_summary
from runapi_ui.page.server import PlaygroundApp
from runapi_ui.page.ui import cost_estimate, model_choices
from runapi_ui.runapi.catalog import MODELS, PRICES_AS_OF
from runapi_ui.runapi.errors import ModelUnavailableError
from runapi_ui.runapi.simulator import SimulatorConfig, SimulatorServer, parse_faults
from runapi_ui.runs import history as hist
from runapi_ui.runs.access import DEMO_KEY
from runapi_ui.runs.playground import Playground
from runapi_ui.runs.quota import LimitError, limits_from
from runapi_ui.runs.settings import Settings
from runapi_ui.storage.images import ImageStore
from tests import test_app
from tests.conftest import WAIT_MS, fast_durations, start, visitor_page
from tests.test_app import ALICE, LIVE_KEYS, click_generate, generated

make_playground = test_app.make_playground  # a fixture: a Playground and its demo simulator

# Not the built-in table's ($0.04, $0.08, $0.12): what shows must have come from RunAPI.
OTHER_PRICES = {"imagen-4-fast": 5, "imagen-4": 9, "imagen-4-ultra": 15}


def creates(server: SimulatorServer) -> list[object]:
    return [r for r in server.simulator.requests if r.method == "POST"]


# --- the price books ---------------------------------------------------------------------


async def test_live_prices_show_in_the_choices_the_estimate_and_the_agents_description(
    make_playground, make_simulator
) -> None:
    live_server = make_simulator(api_keys=LIVE_KEYS, prices=OTHER_PRICES)
    playground, _ = make_playground(live_server)
    prices = playground.prices(False)
    assert "imagen-4 ($0.08 per image" in tool_description(prices), "the table until read"
    await prices.refresh()

    labels = {name: label for label, name in model_choices(prices)}
    assert labels["imagen-4"] == MODELS["imagen-4"].label_at(0.09)
    assert labels["imagen-4-ultra"] == MODELS["imagen-4-ultra"].label_at(0.15)
    estimate = cost_estimate(playground, "imagen-4", 2, ALICE)
    assert estimate.startswith("Estimated cost: $0.18 (2 × $0.09, your key)")
    assert "Compare 3 models: $0.29" in estimate and "RunAPI's live prices (as of" in estimate
    assert "imagen-4 ($0.09 per image" in tool_description(prices)


async def test_unreadable_prices_fall_back_to_the_built_in_table_as_of_its_date(
    make_playground, make_simulator
) -> None:
    live_server = make_simulator(
        api_keys=LIVE_KEYS, prices=OTHER_PRICES, faults="server_error@prices"
    )
    playground, _ = make_playground(live_server)
    with pytest.raises(Exception, match="502"):
        await playground.prices(False).refresh()

    estimate = cost_estimate(playground, "imagen-4", 1, ALICE)
    assert estimate.startswith("Estimated cost: $0.08 (1 × $0.08")
    assert f"RunAPI's published prices as of {PRICES_AS_OF}" in estimate
    assert f"published prices as of {PRICES_AS_OF}" in tool_description(playground.prices(False))


# --- availability ------------------------------------------------------------------------


async def test_a_model_under_maintenance_is_shown_so_and_refused_before_any_create(
    make_playground, make_simulator
) -> None:
    live_server = make_simulator(
        api_keys=LIVE_KEYS, catalog_status={"imagen-4-ultra": "maintenance"}
    )
    playground, demo = make_playground(live_server)
    await playground.prices(False).refresh()
    labels = {name: label for label, name in model_choices(playground.prices(False))}
    assert labels["imagen-4-ultra"].endswith(" · under maintenance")
    assert labels["imagen-4"] == MODELS["imagen-4"].choice_label

    with pytest.raises(ModelUnavailableError, match="under maintenance") as caught:
        await playground.start(prompt="a lighthouse", model="imagen-4-ultra", api_key=ALICE)
    assert "imagen-4-ultra" in caught.value.message
    # The page says it too, as for any refusal; a compare (one model of three) likewise.
    with pytest.raises(gr.Error, match="under maintenance"):
        await click_generate(playground, model="imagen-4-ultra", api_key=ALICE)
    with pytest.raises(ModelUnavailableError):
        await playground.start_compare(prompt="a lighthouse", api_key=ALICE)
    assert creates(live_server) == [] and creates(demo) == []
    assert len(playground.runs) == 0
    # The other models still run.
    run = await generated(playground, model="imagen-4", api_key=ALICE)
    assert run.images and len(creates(live_server)) == 1


async def test_a_503_from_runapi_says_the_model_is_unavailable_right_now(
    make_playground, make_simulator
) -> None:
    # The schedule was not read (or not yet): the create's 503 is what says so.
    live_server = make_simulator(api_keys=LIVE_KEYS, catalog_status={"imagen-4": "disabled"})
    playground, _ = make_playground(live_server)
    run = await generated(playground, model="imagen-4", api_key=ALICE)
    assert not run.images
    (message,) = run.failures()
    assert "imagen-4" in message and "unavailable" in message.lower(), message
    assert re.search(r"request id \S+|X-Client-Request-Id", message, re.IGNORECASE), message


# --- real costs --------------------------------------------------------------------------


@pytest.mark.parametrize("usage_in_answers", [True, False])  # usage.cost, or billing alone
async def test_what_runapi_charged_is_the_runs_cost_on_the_page_and_in_the_history(
    make_playground, make_simulator, usage_in_answers: bool
) -> None:
    # RunAPI bills $0.05 for imagen-4-fast; the app's table (not refreshed) says $0.04.
    live_server = make_simulator(
        api_keys=LIVE_KEYS, prices=OTHER_PRICES, usage_in_answers=usage_in_answers
    )
    playground, _ = make_playground(live_server)
    outputs = await click_generate(playground, num_images=2, api_key=ALICE)
    entry = outputs[-1].history[0]
    assert entry["cost"] == pytest.approx(0.10) and entry["charged"] is True
    assert "$0.10 charged" in outputs[-1].summary
    assert "$0.10 charged" in hist.tile_caption(entry)
    assert hist.clean([entry]) == [entry]


async def test_a_refunded_task_costs_nothing(make_playground, make_simulator) -> None:
    live_server = make_simulator(api_keys=LIVE_KEYS, refund_completed=True)
    playground, _ = make_playground(live_server)
    outputs = await click_generate(playground, api_key=ALICE)
    entry = outputs[-1].history[0]
    assert (entry["cost"], entry["charged"]) == (0.0, True)
    assert "$0.00 charged" in outputs[-1].summary


async def test_without_a_charge_the_cost_is_the_live_estimate(make_playground, make_simulator):
    live_server = make_simulator(api_keys=LIVE_KEYS, prices=OTHER_PRICES)
    playground, _ = make_playground(live_server)
    await playground.prices(False).refresh()
    run = await generated(playground, model="imagen-4", num_images=2, api_key=ALICE)
    for job in run.jobs:
        job.charged_usd = None  # as a task whose answer said nothing of its cost
    entry = hist.entry_for(run)
    assert (entry["cost"], entry["charged"]) == (pytest.approx(0.18), False)
    assert "≈$0.18 estimated" in html_summary(entry)


def test_entries_stored_before_real_costs_still_read_as_estimates() -> None:
    old_job = {"model": "imagen-4", "aspect_ratio": "1:1", "seed": 1, "image": {"path": "x"}}
    old = {
        **{"id": "r1", "run": "r1", "kind": "compare", "created": 1.0, "prompt": "a fox"},
        **{"negative_prompt": "", "model": "imagen-4", "aspect_ratio": "1:1", "num_images": 1},
        **{"demo": False, "status": "done", "message": "", "duration": 3.0, "cost": 0.08},
        "jobs": [{**old_job, "seconds": 3.0}],
    }
    assert hist.clean([old]) == [old]
    assert "≈$0.08 estimated" in hist.tile_caption(old)
    assert "≈$0.08 estimated" in html_summary(old)
    assert hist.run_cost(old["jobs"], demo=False) == {"cost": 0.08, "charged": False}
    forged = {**old, "charged": "yes", "jobs": [{**old_job, "cost": "free"}]}
    assert hist.clean([forged]) == []


async def test_the_daily_budget_counts_at_live_prices(make_simulator, tmp_path: Path) -> None:
    # $0.17 a day: two imagen-4 images fit at the table's $0.08, not at RunAPI's $0.09.
    live_server = make_simulator(api_keys=LIVE_KEYS, prices=OTHER_PRICES)
    settings = Settings(
        base_url=live_server.url,
        api_key=ALICE,
        data_dir=tmp_path,
        images_per_hour=0,
        daily_spend_cap_usd=0.17,
    )
    playground = Playground(
        settings,
        ImageStore(settings.image_dir),
        None,
        limits=limits_from(settings),
        live_durations=fast_durations(),
    )
    await playground.prices(False).refresh()
    with pytest.raises(LimitError, match=r"\$0\.18"):
        await playground.start(prompt="a lighthouse", model="imagen-4", num_images=2)
    assert creates(live_server) == []


# --- in a browser: the launched app reads the prices by itself ---------------------------


class Launched:
    """Starts the app with a demo simulator of a given config; `.demo` is that simulator."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.apps: list[PlaygroundApp] = []

    def __call__(self, live_url: str = "http://127.0.0.1:9", **demo_config: object) -> str:
        """The app's URL; RunAPI is `live_url` (by default unreachable: only the demo serves)."""
        settings = Settings(
            base_url=live_url,
            port=free_port(),
            simulator_time_scale=0.0,
            data_dir=self.data_dir,
            images_per_hour=0,
        )
        config = SimulatorConfig(time_scale=0.0, jitter=0.0, api_keys=frozenset({DEMO_KEY}))
        for name, value in demo_config.items():
            setattr(config, name, parse_faults(value) if name == "faults" else value)
        served = start(settings, simulator_config=config)
        self.apps.append(served.app)
        return served.url

    @property
    def demo(self) -> SimulatorServer:
        simulator = self.apps[-1].simulator
        assert simulator is not None
        return simulator


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    starter = Launched(tmp_path)
    yield starter
    for app in starter.apps:
        app.close()


@pytest.fixture
def page_at(browser: Browser) -> Iterator[Callable[[str], Page]]:
    """A fresh browser profile's tab at a URL, the page's form loaded; closed after the test."""
    with ExitStack() as pages:
        yield lambda url: pages.enter_context(visitor_page(browser, url))


def model_label(model: str, cents: int, *, status: str = "") -> str:
    label = MODELS[model].label_at(cents / 100)
    return f"{label} · {status}" if status else label


def test_the_page_shows_live_prices_and_refuses_a_model_under_maintenance(
    launched, page_at
) -> None:
    url = launched(prices=OTHER_PRICES, catalog_status={"imagen-4-ultra": "maintenance"})
    page = page_at(url)
    for model in ("imagen-4-fast", "imagen-4"):
        expect(
            page.get_by_label(model_label(model, OTHER_PRICES[model]), exact=True)
        ).to_be_visible(timeout=WAIT_MS)
    ultra = model_label("imagen-4-ultra", 15, status="under maintenance")
    expect(page.get_by_label(ultra, exact=True)).to_be_visible()
    expect(page.get_by_text("Per image: RunAPI's live prices (as of")).to_be_visible()

    page.get_by_label(ultra, exact=True).check()
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_text("under maintenance as of").first).to_be_visible(timeout=WAIT_MS)
    assert creates(launched.demo) == []


def test_the_page_says_published_prices_as_of_when_the_schedule_cannot_be_read(
    launched, page_at
) -> None:
    page = page_at(launched(prices=OTHER_PRICES, faults="server_error@prices"))
    expect(
        page.get_by_text(f"Per image: RunAPI's published prices as of {PRICES_AS_OF}")
    ).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_label(MODELS["imagen-4"].choice_label, exact=True)).to_be_visible()


def test_the_page_shows_what_runapi_charged_for_a_visitors_key(
    launched, page_at, make_simulator
) -> None:
    live_server = make_simulator(api_keys=LIVE_KEYS, prices=OTHER_PRICES)
    page = page_at(launched(live_server.url))
    page.get_by_label("RunAPI key").fill(ALICE)
    cost = page.locator("#cost")
    expect(cost).to_contain_text("Estimated cost: $0.09 (1 × $0.09, your key)", timeout=WAIT_MS)
    expect(cost).to_contain_text("Compare 3 models: $0.29. RunAPI's live prices (as of")
    page.get_by_label(model_label("imagen-4-fast", 5), exact=True).check()
    expect(cost).to_contain_text("Estimated cost: $0.05 (1 × $0.05, your key)")
    page.get_by_label("Prompt", exact=True).fill("a lemon tree in a courtyard")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#summary")).to_contain_text("$0.05 charged", timeout=WAIT_MS)
    tile = page.locator("#history .thumbnail-item").first
    expect(tile).to_contain_text("$0.05 charged", timeout=WAIT_MS)
    assert len(creates(live_server)) == 1
