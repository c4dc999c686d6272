"""RunAPI's live prices and which models it serves, from its public price schedules.

    book = PriceBook()                      # the built-in table until the first refresh
    book.start()                            # refreshes hourly in the background
    book.refuse_if_unavailable("imagen-4")  # ModelUnavailableError under maintenance
    cents = book.price_cents(REMIX_MODEL, output_resolution="4k")
    await book.aclose()                     # stops the refresher, closes the pool

`GET /api/v1/price_schedules` needs no key and honours ETag / If-None-Match, so an
hourly refresh mostly costs a 304. Until one succeeds, and whenever RunAPI cannot be
reached, the catalog's table (as of its date) stands in, and every model counts as
available: a create's 503 still says so if one is not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..translations import ENGLISH, text
from .catalog import MODELS, PRICES_AS_OF, REMIX_MODEL, REMIX_PRICE_CENTS
from .client import DEFAULT_BASE_URL, _api_root, shared_ssl_context, stamp_request_id
from .errors import (
    NetworkError,
    RunAPIError,
    ValidationError,
    error_from_response,
    model_unavailable,
    unreadable_answer,
)

log = logging.getLogger(__name__)

SCHEDULES_PATH = "/api/v1/price_schedules"
REFRESH_SECONDS = 3600.0
# RunAPI's contracts spell the service `imagen-4`, its routes `imagen_4`: either is ours.
SERVICES = frozenset({"imagen-4", "imagen_4"})
UNAVAILABLE = frozenset({"maintenance", "disabled"})
# A catalog status that keeps a model from being served, to its words' translation key.
_WORDS = {"maintenance": "form.model.under_maintenance", "disabled": "form.model.disabled"}


@dataclass(frozen=True)
class ModelPrice:
    """One model's price in cents, maybe varied by a request parameter, and its status."""

    model: str
    unit_price_cents: int
    # The parameter that varies the price (remix: output_resolution), and by how much.
    varies_by: str | None = None
    overrides: Mapping[str, int] = field(default_factory=dict)
    catalog_status: str = "active"

    @property
    def available(self) -> bool:
        return self.catalog_status not in UNAVAILABLE

    @property
    def status_words(self) -> str:
        """ "under maintenance" or "disabled" for a model RunAPI does not serve; else ""."""
        return self.status_in(ENGLISH)

    def status_in(self, language: str) -> str:
        """`status_words` in `language`, for the page's model choices."""
        key = _WORDS.get(self.catalog_status)
        return text(language, key) if key else ""

    def cents(self, **params: str) -> int:
        """The price of one image with these request parameters."""
        if self.varies_by is not None and params.get(self.varies_by) in self.overrides:
            return self.overrides[params[self.varies_by]]
        return self.unit_price_cents

    @classmethod
    def from_schedule(cls, entry: Mapping[str, Any]) -> ModelPrice | None:
        """Read one `price_schedules` entry; None if it is not an Imagen 4 model's."""
        model, unit = entry.get("model"), entry.get("unit_price_cents")
        if entry.get("service") not in SERVICES or model not in BUILT_IN:
            return None
        config = entry.get("billing_config")
        config = config if isinstance(config, dict) else {}
        overrides = config.get("overrides") if isinstance(config.get("overrides"), dict) else {}
        overrides = {str(k): v for k, v in overrides.items() if _is_cents(v)}
        if not _is_cents(unit):
            if not overrides:
                return None  # no figure to show: the built-in one stays
            unit = min(overrides.values())
        key = config.get("key")
        return cls(
            model=model,
            unit_price_cents=unit,
            varies_by=key if isinstance(key, str) and overrides else None,
            overrides=overrides,
            catalog_status=str(entry.get("catalog_status") or "active").lower(),
        )


def _is_cents(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


BUILT_IN: dict[str, ModelPrice] = {
    **{name: ModelPrice(name, round(info.price_usd * 100)) for name, info in MODELS.items()},
    REMIX_MODEL: ModelPrice(
        REMIX_MODEL,
        min(REMIX_PRICE_CENTS.values()),
        varies_by="output_resolution",
        overrides=REMIX_PRICE_CENTS,
    ),
}


@dataclass(frozen=True)
class PriceTable:
    """Every model's price at one moment; `live` is False for the built-in table."""

    prices: Mapping[str, ModelPrice]
    as_of: str  # as RunAPI wrote it (ISO 8601), or the built-in table's date
    live: bool

    @classmethod
    def from_answer(cls, body: Any) -> PriceTable:
        """Read a schedules answer over the built-in table: a model it leaves out keeps
        its built-in price, as available."""
        entries = body.get("price_schedules") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise RunAPIError(
                "RunAPI's price schedules answer lists no prices. The built-in prices stay."
            )
        prices = dict(BUILT_IN)
        for entry in entries:
            price = ModelPrice.from_schedule(entry) if isinstance(entry, dict) else None
            if price is not None:
                prices[price.model] = price
        return cls(prices, str(body.get("as_of") or "unknown date"), live=True)


BUILT_IN_TABLE = PriceTable(BUILT_IN, PRICES_AS_OF, live=False)


class PriceBook:
    """The latest price table, kept fresh from RunAPI; one per app (it holds no key)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        request_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = _api_root(base_url or os.environ.get("RUNAPI_BASE_URL") or DEFAULT_BASE_URL)
        self.refresh_seconds = refresh_seconds
        self.table = BUILT_IN_TABLE
        self._etag: str | None = None
        self._http = httpx.AsyncClient(
            timeout=request_timeout,
            verify=shared_ssl_context(),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "imagen-playground/0.1"},
            event_hooks={"request": [stamp_request_id]},
        )
        self._refresher: asyncio.Task[None] | None = None
        # Called after a background refresh changed the table (descriptions built from it).
        self.on_change: Callable[[], object] | None = None

    # --- reading -----------------------------------------------------------------

    @property
    def as_of(self) -> str:
        """When these prices were published: "prices as of <this>"."""
        return self.table.as_of

    @property
    def source(self) -> str:
        """Where the prices shown come from, in English words (agents' descriptions, errors)."""
        return self.source_in(ENGLISH)

    def source_in(self, language: str) -> str:
        """Where the prices shown come from, in words for the page in `language`."""
        if self.table.live:
            return text(language, "cost.source_live", as_of=self.as_of)
        return text(language, "cost.source_published", as_of=self.as_of)

    def price(self, model: str) -> ModelPrice:
        price = self.table.prices.get(model)
        if price is None:
            raise ValidationError(
                f"Unknown model {model!r}: choose one of {', '.join(BUILT_IN)}.", field="model"
            )
        return price

    def price_cents(self, model: str, **params: str) -> int:
        """One image of `model` with these parameters (remix: `output_resolution="4k"`)."""
        return self.price(model).cents(**params)

    def price_usd(self, model: str, **params: str) -> float:
        return self.price_cents(model, **params) / 100

    def refuse_if_unavailable(self, model: str) -> None:
        """A ModelUnavailableError if RunAPI lists `model` as under maintenance or disabled."""
        price = self.price(model)
        if not price.available:
            why = f"RunAPI lists it as {price.status_words} as of {self.as_of}"
            raise model_unavailable(model, why)

    # --- refreshing --------------------------------------------------------------

    async def refresh(self) -> bool:
        """Fetch the schedules; True if the table changed. A 304 (same ETag) keeps it.

        Raises a RunAPIError if RunAPI cannot be read; the table stays as it was.
        """
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = await self._http.get(self.base_url + SCHEDULES_PATH, headers=headers)
        except httpx.TransportError as exc:
            raise NetworkError(
                f"Could not reach RunAPI for its prices ({type(exc).__name__}). The prices "
                f"as of {self.as_of} stay."
            ) from None
        if response.status_code == 304:
            return False
        if not response.is_success:
            raise error_from_response(response)
        try:
            body = response.json()
        except ValueError:
            raise unreadable_answer(response) from None
        table = PriceTable.from_answer(body)
        self._etag = response.headers.get("etag")
        changed = table != self.table
        self.table = table
        return changed

    def start(self) -> None:
        """Refresh now and then every `refresh_seconds`, in the background (idempotent)."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        """Stop the background refresher (`start()` may start it again)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def aclose(self) -> None:
        await self.stop()
        await self._http.aclose()

    async def _refresh_forever(self) -> None:
        while True:
            try:
                if await self.refresh() and self.on_change is not None:
                    self.on_change()
            except RunAPIError as error:  # a missed hour is no harm: the last table stays
                log.warning("price schedules not refreshed: %s", error.message)
            await asyncio.sleep(self.refresh_seconds)


class PriceRefresher:
    """Keeps price books fresh from `start()` to `stop()`, on an event loop in a thread of
    its own: started before the web server's loop runs, and never delaying a page."""

    def __init__(self, books: list[PriceBook]) -> None:
        self.books = books
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._run(),), name="prices", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and close the books' connections (waits a few seconds at most)."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = self._thread = None

    async def _run(self) -> None:
        for book in self.books:
            book.start()
        await self._stopping.wait()
        await asyncio.gather(*(book.aclose() for book in self.books))
