"""PriceBook against the simulator's public price schedules (no key, ETag, 304)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.processes import free_port
from runapi_ui.runapi.catalog import PRICES_AS_OF, REMIX_MODEL
from runapi_ui.runapi.client import GenerationRequest
from runapi_ui.runapi.errors import (
    ModelUnavailableError,
    NetworkError,
    ServerError,
    ValidationError,
)
from runapi_ui.runapi.prices import BUILT_IN, SCHEDULES_PATH, PriceBook, PriceTable
from runapi_ui.runapi.simulator import parse_faults


@pytest.fixture
async def make_book():
    books: list[PriceBook] = []

    def make(server_or_url, **kwargs) -> PriceBook:
        url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
        book = PriceBook(url, **kwargs)
        books.append(book)
        return book

    yield make
    for book in books:
        await book.aclose()


def schedule_requests(server) -> list:
    return [r for r in server.simulator.requests if r.path == SCHEDULES_PATH]


def test_the_built_in_table_is_the_last_published_one() -> None:
    book = PriceBook("http://127.0.0.1:9")
    assert book.as_of == PRICES_AS_OF and not book.table.live
    assert [book.price_cents(m) for m in ("imagen-4-fast", "imagen-4", "imagen-4-ultra")] == [
        4,
        8,
        12,
    ]
    assert [book.price_cents(REMIX_MODEL, output_resolution=r) for r in ("1k", "2k", "4k")] == [
        18,
        18,
        24,
    ]
    assert book.price_usd(REMIX_MODEL, output_resolution="4k") == pytest.approx(0.24)
    book.refuse_if_unavailable("imagen-4")  # no word from RunAPI: every model counts
    with pytest.raises(ValidationError, match="Unknown model 'imagen-5'"):
        book.price("imagen-5")


async def test_read_with_an_etag_then_304(simulator, make_book) -> None:
    book = make_book(simulator)
    assert await book.refresh() is True
    assert book.table.live and book.as_of == simulator.config.prices_as_of
    assert await book.refresh() is False, "nothing changed: a 304"
    first, second = schedule_requests(simulator)
    assert (first.status, second.status) == (200, 304)
    assert first.api_key is None and second.api_key is None, "prices need no key"
    assert book.price_cents("imagen-4") == 8


async def test_live_prices_differ_from_the_built_in_table(make_simulator, make_book) -> None:
    server = make_simulator(
        prices={"imagen-4": 10, REMIX_MODEL: {"1k": 20, "2k": 22, "4k": 30}},
        prices_as_of="2026-11-30T12:00:00Z",
    )
    book = make_book(server)
    await book.refresh()
    assert book.price_cents("imagen-4") == 10 != BUILT_IN["imagen-4"].unit_price_cents
    assert book.price_cents("imagen-4-fast") == 4
    assert [book.price_cents(REMIX_MODEL, output_resolution=r) for r in ("1k", "2k", "4k")] == [
        20,
        22,
        30,
    ]
    assert book.as_of == "2026-11-30T12:00:00Z"
    # A price change is a new ETag: the next refresh reads it.
    server.config.prices = {"imagen-4": 9}
    assert await book.refresh() is True
    assert book.price_cents("imagen-4") == 9
    assert book.price_cents(REMIX_MODEL, output_resolution="4k") == 24
    assert [r.status for r in schedule_requests(server)] == [200, 200]


async def test_a_model_under_maintenance_is_refused_before_create(
    make_simulator, make_client, make_book
) -> None:
    server = make_simulator(
        catalog_status={"imagen-4-ultra": "maintenance", REMIX_MODEL: "disabled"}
    )
    book = make_book(server)
    await book.refresh()
    client = make_client(server)

    async def generate(model: str):
        book.refuse_if_unavailable(model)  # as the app does, before anything is sent
        return await client.generate(GenerationRequest(model=model, prompt="a"))

    with pytest.raises(ModelUnavailableError) as caught:
        await generate("imagen-4-ultra")
    assert caught.value.model == "imagen-4-ultra"
    assert caught.value.message == (
        "imagen-4-ultra is unavailable on RunAPI right now (RunAPI lists it as under "
        f"maintenance as of {server.config.prices_as_of}). Choose another model, or try again "
        "later."
    )
    with pytest.raises(ModelUnavailableError, match="lists it as disabled"):
        book.refuse_if_unavailable(REMIX_MODEL)
    assert not [r for r in server.simulator.requests if r.method == "POST"]
    assert (await generate("imagen-4")).images


async def test_without_runapi_the_built_in_prices_stay(make_book) -> None:
    book = make_book(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(NetworkError, match=f"prices as of {PRICES_AS_OF} stay"):
        await book.refresh()
    assert book.table.live is False and book.price_cents("imagen-4-ultra") == 12


async def test_a_failing_schedule_keeps_the_last_table(make_simulator, make_book) -> None:
    server = make_simulator(prices={"imagen-4": 10})
    book = make_book(server)
    await book.refresh()
    server.config.faults = parse_faults("server_error@prices")  # the config is live
    with pytest.raises(ServerError, match=r"HTTP 502: 502 Bad Gateway.*\(request id "):
        await book.refresh()
    assert book.table.live and book.price_cents("imagen-4") == 10


async def test_the_background_refresher_follows_price_changes(make_simulator, make_book) -> None:
    server = make_simulator()
    book = make_book(server, refresh_seconds=0.05)
    book.start()
    book.start()  # idempotent: one refresher
    await _until(lambda: book.table.live)
    # Unchanged schedules cost a 304 each hour (here: each 50 ms).
    await _until(lambda: any(r.status == 304 for r in schedule_requests(server)))
    server.config.prices = {"imagen-4-fast": 3}
    await _until(lambda: book.price_cents("imagen-4-fast") == 3)
    await book.stop()
    seen = len(schedule_requests(server))
    await asyncio.sleep(0.2)
    assert len(schedule_requests(server)) == seen, "stopped: no more requests"


def test_a_schedule_is_read_tolerantly() -> None:
    table = PriceTable.from_answer(
        {
            "as_of": "2026-12-01",
            "price_schedules": [
                {"service": "imagen_4", "model": "imagen-4", "unit_price_cents": 7},
                {"service": "veo-3", "model": "veo-3", "unit_price_cents": 100},
                {"service": "imagen-4", "model": "imagen-4-fast", "unit_price_cents": "cheap"},
                {
                    "service": "imagen-4",
                    "model": REMIX_MODEL,
                    "catalog_status": "Maintenance",
                    "billing_config": {"key": "output_resolution", "overrides": {"4k": 30}},
                },
                "junk",
            ],
        }
    )
    assert table.prices["imagen-4"].unit_price_cents == 7
    assert "veo-3" not in table.prices
    assert table.prices["imagen-4-fast"] == BUILT_IN["imagen-4-fast"]
    remix = table.prices[REMIX_MODEL]
    assert (remix.cents(output_resolution="4k"), remix.cents(output_resolution="1k")) == (30, 30)
    assert not remix.available


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
