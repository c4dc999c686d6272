"""Limits on what a deployment spends and serves: per-visitor quotas, in-flight cap, budget.

Around every generation the app calls

    admission = await limits.admit(visitor, model=..., images=n, on_server_key=...)
    # or model=[...] with each image's model (a compare), counted as one request
    ...  # generate
    await admission.release(succeeded=k, failed=m)  # once, however the run ended

`admit` raises QuotaExceeded, ServerBusy or LimitsUnavailable, each with a message for
the visitor. The rules:

- On the server's key, each visitor may have at most `images_per_hour` images in any
  rolling hour, counted under every id they have (session and address, or their login),
  so a new session from the same address starts no new hour. Failed images are given
  back (RunAPI does not charge them).
- On the server's key, all visitors together may spend at most `daily_spend_cap_usd` a
  UTC day, at RunAPI's live prices; failed images are given back.
- Whoever's key, at most `max_images_in_flight` images run at once. Each admission holds
  a lease that ends by itself, so a process that dies mid-run frees its slots.

Counts live in this process (`MemoryStore`) or, for several app processes, in Redis
(`RedisStore`), where one Lua script checks and charges atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.commands.core import AsyncScript

from ..runapi.catalog import MODELS, REMIX_MODEL, REMIX_PRICE_CENTS
from .access import KeyPolicy

if TYPE_CHECKING:  # settings pulls in the client; these modules need only the type
    from .settings import Settings

log = logging.getLogger(__name__)

HOUR = 3600.0
LEASE_MARGIN_SECONDS = 120.0  # beyond the generation deadline: downloads, saving
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class LimitError(Exception):
    """A generation that may not start now; `message` tells the visitor what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class QuotaExceeded(LimitError):
    """The visitor's hour, or the server's daily budget, is used up.

    `retry_at` (a Unix time) is when the same request would be admitted, or None when
    waiting cannot help (more images than the limit allows at all)."""

    def __init__(self, message: str, retry_at: float | None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class ServerBusy(LimitError):
    """The server already runs as many images as it allows at once."""


class LimitsUnavailable(LimitError):
    """The shared counts (Redis) cannot be reached: nothing is admitted meanwhile."""


# -- Who is asking -----------------------------------------------------------------------


@dataclass(frozen=True)
class Visitor:
    """What identifies a visitor for quotas; any part may be unknown."""

    session: str | None = None
    address: str | None = None
    user: str | None = None  # with login (RUNAPI_UI_AUTH)

    def ids(self) -> tuple[str, ...]:
        """The ids a quota counts under: the login alone when there is one (several
        users may share an address), else session and address, so that a new session
        does not reset the count."""
        if self.user:
            return (f"user:{self.user}",)
        known = (("session", self.session), ("address", self.address))
        return tuple(f"{kind}:{value}" for kind, value in known if value) or ("anonymous",)


def trusted_proxies_from(settings: Settings) -> tuple[IPNetwork, ...]:
    """The peers whose `X-Forwarded-For` is believed: set only by proxies we know of.

    - On Hugging Face Spaces (`SPACE_ID` set) the app is reachable only through the
      Spaces proxy, so the header is honoured from any peer.
    - With `--share`, Gradio's tunnel client runs on this machine and connects from
      loopback, so the header is honoured from loopback peers only.
    - Otherwise never: a visitor could forge it to look like a new address.
    """
    trusted: tuple[IPNetwork, ...] = ()
    if settings.space_id:
        trusted += _EVERYWHERE
    if settings.share:
        trusted += _LOOPBACK
    return trusted


def visitor_from(request: Any, trusted_proxies: Sequence[IPNetwork] = ()) -> Visitor:
    """The visitor behind a `gradio.Request` or a Starlette/FastAPI `Request`.

    The address is the connection's peer, or, when that peer is a trusted proxy, the
    client that proxy names in `X-Forwarded-For`: the right-most public address, since
    a proxy appends what it saw to whatever the client sent.

    Gradio's MCP server relays queued tool calls through one gradio_client of its own,
    from this machine, copying the caller's headers (and marking them
    `x-gradio-user: mcp`). Its session is shared by every MCP caller, so it identifies
    nobody and is left out; the caller's address survives only in a trusted proxy's
    `X-Forwarded-For`. Without one, every relayed caller is the same anonymous visitor
    (uvicorn may even have taken a copied, forged header for the peer). Dropping the
    session never escapes a quota: clients choose their session ids anyway.
    """
    user = getattr(request, "username", None) or None
    relayed_by_mcp = _header_values(request, "x-gradio-user") == ["mcp"]
    if relayed_by_mcp and not trusted_proxies:
        return Visitor(user=user)
    peer = getattr(getattr(request, "client", None), "host", None) or None
    address = peer
    if peer is not None and _within(peer, trusted_proxies):
        address = _forwarded_client(_header_values(request, "x-forwarded-for")) or peer
    session = None if relayed_by_mcp else getattr(request, "session_hash", None) or None
    return Visitor(session=session, address=address, user=user)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(host: str, networks: Sequence[IPNetwork]) -> bool:
    address = _parse_ip(host)
    return address is not None and any(address in network for network in networks)


def _header_values(request: Any, name: str) -> list[str]:
    headers = getattr(request, "headers", None)
    if headers is None:
        return []
    if hasattr(headers, "getlist"):  # Starlette's Headers: every copy of the header
        return list(headers.getlist(name))
    value = headers.get(name)  # gradio's queued requests carry a plain, lower-cased dict
    return [value] if value else []


def _forwarded_client(values: list[str]) -> str | None:
    """Right to left, past the proxies' own private hops, the first public address."""
    entries = [entry for value in values for entry in value.split(",")]
    for entry in reversed(entries):
        address = _parse_ip(entry)
        if address is not None and address.is_global:
            return str(address)
    return None


# -- The stores --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ticket:
    """One admission, as a store checks and charges it. Money is in micro-dollars."""

    id: str
    now: float
    images: int
    visitor_keys: tuple[str, ...]  # hashed visitor ids; empty when no hourly quota applies
    hour_limit: int  # 0: none
    in_flight_cap: int  # 0: none
    lease_until: float
    price: int  # per image, charged to today's budget; 0 when no budget applies
    budget: int | None  # today's cap
    day: str  # the UTC day charged, e.g. "2025-01-31"


@dataclass(frozen=True)
class Verdict:
    limit: Literal["hour", "budget", "in_flight"] | None  # None: admitted and charged
    used: int = 0  # images in the hour (most of any id), micro-dollars spent, or in flight
    free_at: float | None = None  # hour: admission time of the image that must age out


ADMITTED = Verdict(None)


class QuotaStore(Protocol):
    """Counts behind `Limits`: `admit` checks and charges in one atomic step."""

    description: str

    async def admit(self, ticket: Ticket) -> Verdict: ...

    async def release(self, ticket: Ticket, failed: int) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Counts in this process: right for one app process.

    `admit` never awaits, so on the one event loop it runs to its end uninterrupted:
    that makes each check-and-charge atomic without a lock.
    """

    description = "counted in this process"

    def __init__(self) -> None:
        self._hours: dict[str, list[tuple[float, str]]] = {}  # key -> (time, image), oldest first
        self._leases: dict[str, tuple[int, float]] = {}  # admission id -> (images, lease end)
        self._spent: dict[str, int] = {}  # UTC day -> micro-dollars
        self._next_sweep = 0.0

    async def admit(self, ticket: Ticket) -> Verdict:
        now = ticket.now
        if now >= self._next_sweep:  # forget visitors whose hour has passed
            self._next_sweep = now + HOUR / 6
            self._hours = {k: v for k, v in self._hours.items() if v and v[-1][0] > now - HOUR}
        if ticket.hour_limit:
            used, free_at = 0, None
            for key in ticket.visitor_keys:
                recent = [entry for entry in self._hours.get(key, []) if entry[0] > now - HOUR]
                self._hours[key] = recent
                used = max(used, len(recent))
                excess = len(recent) + ticket.images - ticket.hour_limit
                if excess > 0:
                    free_at = max(free_at or 0.0, recent[excess - 1][0])
            if free_at is not None:
                return Verdict("hour", used, free_at)
        spent = self._spent.get(ticket.day, 0)
        cost = ticket.price * ticket.images
        if cost and ticket.budget is not None and spent + cost > ticket.budget:
            return Verdict("budget", spent)
        self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
        flying = sum(images for images, _ in self._leases.values())
        if ticket.in_flight_cap and flying + ticket.images > ticket.in_flight_cap:
            return Verdict("in_flight", flying)
        # Admitted: charge every count.
        images = [f"{ticket.id}:{j}" for j in range(ticket.images)]
        if ticket.hour_limit:
            for key in ticket.visitor_keys:
                self._hours[key].extend((now, image) for image in images)
        self._leases[ticket.id] = (ticket.images, ticket.lease_until)
        if cost:
            self._spent = {ticket.day: spent + cost}  # older days go
        return ADMITTED

    async def release(self, ticket: Ticket, failed: int) -> None:
        self._leases.pop(ticket.id, None)
        refunded = {f"{ticket.id}:{j}" for j in range(ticket.images - failed, ticket.images)}
        for key in ticket.visitor_keys:
            if key in self._hours:
                self._hours[key] = [e for e in self._hours[key] if e[1] not in refunded]
        if ticket.price and failed and ticket.day in self._spent:
            self._spent[ticket.day] -= ticket.price * failed

    async def aclose(self) -> None:
        return None


# KEYS[1]: in-flight leases (zset image -> lease end); KEYS[2]: the day's spend in
# micro-dollars; KEYS[3..]: the visitor's hour logs (zset image -> admission time).
# ARGV: now, hour, hour_limit, images, in_flight_cap, lease_until, lease_ttl, price,
# budget (-1: none), admission id. Times travel as strings, so no precision is lost.
_ADMIT_LUA = """
local now, hour = tonumber(ARGV[1]), tonumber(ARGV[2])
local hour_limit, images = tonumber(ARGV[3]), tonumber(ARGV[4])
local cap, price, budget = tonumber(ARGV[5]), tonumber(ARGV[8]), tonumber(ARGV[9])
if hour_limit > 0 then
  local used, free_at, latest = 0, nil, nil
  for i = 3, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - hour)
    local count = redis.call('ZCARD', KEYS[i])
    if count > used then used = count end
    local excess = count + images - hour_limit
    if excess > 0 then
      local entry = redis.call('ZRANGE', KEYS[i], excess - 1, excess - 1, 'WITHSCORES')
      if latest == nil or tonumber(entry[2]) > latest then
        latest, free_at = tonumber(entry[2]), entry[2]
      end
    end
  end
  if free_at then return {'hour', used, free_at} end
end
local cost = price * images
if cost > 0 and budget >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[2])) or 0
  if spent + cost > budget then return {'budget', spent, ''} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local flying = redis.call('ZCARD', KEYS[1])
if cap > 0 and flying + images > cap then return {'in_flight', flying, ''} end
for j = 0, images - 1 do
  local image = ARGV[10] .. ':' .. j
  redis.call('ZADD', KEYS[1], ARGV[6], image)
  if hour_limit > 0 then
    for i = 3, #KEYS do redis.call('ZADD', KEYS[i], ARGV[1], image) end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[7])
if hour_limit > 0 then
  for i = 3, #KEYS do redis.call('EXPIRE', KEYS[i], math.ceil(hour) + 60) end
end
if cost > 0 then
  redis.call('INCRBY', KEYS[2], cost)
  redis.call('EXPIRE', KEYS[2], 172800)
end
return {'ok', 0, ''}
"""

# KEYS as for admit. ARGV: admission id, images, failed, price. The day's key is only
# decremented while it exists: a refund after it expired must not start a negative day.
_RELEASE_LUA = """
local images, failed, price = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for j = 0, images - 1 do
  local image = ARGV[1] .. ':' .. j
  redis.call('ZREM', KEYS[1], image)
  if j >= images - failed then
    for i = 3, #KEYS do redis.call('ZREM', KEYS[i], image) end
  end
end
if failed > 0 and price > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DECRBY', KEYS[2], failed * price)
end
return 1
"""

_UNAVAILABLE = (
    "This server cannot check its usage limits right now (its shared store is not "
    "answering), so it is not starting new generations. Try again in a minute; if it "
    "lasts, tell the server's operator."
)


def redacted_url(url: str) -> str:
    """A Redis URL fit for logs: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStore:
    """Counts in Redis, shared by every app process that uses the same URL.

    Each admit and release is one Lua script, so Redis runs it whole: several
    processes never admit past a limit between them. Keys share one hash tag (Redis
    Cluster puts them in one slot) and all expire.
    """

    def __init__(self, url: str, prefix: str = "{imagen-playground}:") -> None:
        self.url = url
        self.description = f"counted in Redis at {redacted_url(url)}"
        self._prefix = prefix
        self._client: redis.asyncio.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: tuple[AsyncScript, AsyncScript] | None = None  # admit, release

    @classmethod
    def connect(cls, url: str, prefix: str = "{imagen-playground}:") -> RedisStore:
        """A store for `url`, after checking Redis answers; LimitsUnavailable if not."""
        where = redacted_url(url)
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        except ValueError:
            raise LimitsUnavailable(
                "RUNAPI_UI_REDIS_URL is not a Redis URL: it must start with redis://, "
                "rediss:// or unix://."
            ) from None
        try:
            client.ping()
        except (redis.RedisError, OSError) as error:
            reason = str(error).replace(urlsplit(url).password or "\0", "***")
            raise LimitsUnavailable(
                f"Cannot reach Redis at {where} (RUNAPI_UI_REDIS_URL): {reason}. Start "
                "Redis or correct the URL; without it, several app processes cannot share "
                "their quotas."
            ) from None
        finally:
            client.close()
        return cls(url, prefix)

    def _loop_scripts(self) -> tuple[AsyncScript, AsyncScript]:
        """The admit and release scripts, on a client of the running loop (an asyncio
        client belongs to the loop it connected on)."""
        loop = asyncio.get_running_loop()
        if self._scripts is None or self._loop is not loop:
            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_connect_timeout=3, socket_timeout=5
            )
            self._loop = loop
            self._scripts = (
                self._client.register_script(_ADMIT_LUA),
                self._client.register_script(_RELEASE_LUA),
            )
        return self._scripts

    def _keys(self, ticket: Ticket) -> list[str]:
        return [
            f"{self._prefix}in-flight",
            f"{self._prefix}spend:{ticket.day}",
            *(f"{self._prefix}hour:{key}" for key in ticket.visitor_keys),
        ]

    async def admit(self, ticket: Ticket) -> Verdict:
        admit_script, _ = self._loop_scripts()
        args = [
            repr(ticket.now),
            repr(HOUR),
            ticket.hour_limit,
            ticket.images,
            ticket.in_flight_cap,
            repr(ticket.lease_until),
            math.ceil(ticket.lease_until - ticket.now) + 1,
            ticket.price,
            -1 if ticket.budget is None else ticket.budget,
            ticket.id,
        ]
        try:
            limit, used, free_at = await admit_script(keys=self._keys(ticket), args=args)
        except (redis.RedisError, OSError) as error:
            log.warning("quota store %s failed on admit: %s", self.description, error)
            raise LimitsUnavailable(_UNAVAILABLE) from None
        if limit == b"ok":
            return ADMITTED
        name: Any = limit.decode()  # one of the Verdict's limits, by the script's contract
        return Verdict(name, int(used), float(free_at) if free_at else None)

    async def release(self, ticket: Ticket, failed: int) -> None:
        _, release_script = self._loop_scripts()
        args = [ticket.id, ticket.images, failed, ticket.price]
        try:
            await release_script(keys=self._keys(ticket), args=args)
        except (redis.RedisError, OSError) as error:
            log.warning("quota store %s failed on release: %s", self.description, error)
            raise LimitsUnavailable(_UNAVAILABLE) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = self._scripts = None


# -- The rules ---------------------------------------------------------------------------


class Admission:
    """A generation let in; `release` it exactly once when the run ends (repeats are
    no-ops). Images neither succeeded nor failed (a cancelled run) stay charged: RunAPI
    may still finish and bill them."""

    def __init__(self, store: QuotaStore, ticket: Ticket) -> None:
        self._store = store
        self._ticket = ticket
        self._released = False

    @property
    def images(self) -> int:
        return self._ticket.images

    @property
    def released(self) -> bool:
        return self._released

    async def release(self, *, succeeded: int = 0, failed: int = 0) -> None:
        if min(succeeded, failed) < 0 or succeeded + failed > self.images:
            raise ValueError(
                f"release(succeeded={succeeded}, failed={failed}) for {self.images} images"
            )
        if self._released:
            return
        self._released = True
        # Shielded: a second cancel while releasing must not lose the refund halfway.
        try:
            await asyncio.shield(self._store.release(self._ticket, failed))
        except LimitsUnavailable:
            log.warning("slots of admission %s free themselves at its lease end", self._ticket.id)


class Limits:
    """The deployment's limits, applied by `admit` around every generation."""

    def __init__(
        self,
        store: QuotaStore,
        *,
        images_per_hour: int = 0,
        max_images_in_flight: int = 0,
        daily_spend_cap_usd: float | None = None,
        lease_seconds: float = 300.0 + LEASE_MARGIN_SECONDS,
        trusted_proxies: Sequence[IPNetwork] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if images_per_hour < 0 or max_images_in_flight < 0:
            raise ValueError(
                "RUNAPI_UI_IMAGES_PER_HOUR and RUNAPI_UI_MAX_IMAGES_IN_FLIGHT must be 0 (no "
                "limit) or more."
            )
        if daily_spend_cap_usd is not None and daily_spend_cap_usd < 0:
            raise ValueError("RUNAPI_UI_DAILY_SPEND_CAP_USD must be 0 or more dollars.")
        self.store = store
        self.images_per_hour = images_per_hour
        self.max_images_in_flight = max_images_in_flight
        self.daily_spend_cap_usd = daily_spend_cap_usd
        self.lease_seconds = lease_seconds
        self.trusted_proxies = tuple(trusted_proxies)
        self._clock = clock

    def visitor(self, request: Any) -> Visitor:
        """`visitor_from` with this deployment's trusted proxies."""
        return visitor_from(request, self.trusted_proxies)

    def describe(self) -> str:
        """The start-up line naming the limits in force."""
        hour = (
            f"{_images(self.images_per_hour)} an hour per visitor on this server's key"
            if self.images_per_hour
            else "no hourly quota per visitor"
        )
        flight = (
            f"at most {_images(self.max_images_in_flight)} in flight"
            if self.max_images_in_flight
            else "no cap on images in flight"
        )
        budget = (
            f"a daily budget of ${self.daily_spend_cap_usd:.2f} on this server's key"
            if self.daily_spend_cap_usd is not None
            else "no daily budget"
        )
        return f"Limits: {hour}; {flight}; {budget}; {self.store.description}."

    async def admit(
        self,
        visitor: Visitor,
        *,
        model: str | Sequence[str],
        images: int = 1,
        prices: Sequence[float] | None = None,
        on_server_key: bool,
    ) -> Admission:
        """Let a generation of `images` images of `model` in, or raise a LimitError saying
        why. `model` may instead list each image's model (a compare: three models, one
        request): it is counted as one request of that many images, at their total price
        (each failed image then gives back the average). `prices` are each image's live
        price in USD (default: the catalog's)."""
        models = [model] * images if isinstance(model, str) else list(model)
        images = len(models)
        if images < 1:
            raise ValueError(f"admit() needs at least one image, not {images}")
        now = self._clock()
        hour_limit = self.images_per_hour if on_server_key else 0
        budget = _micros(self.daily_spend_cap_usd) if self.daily_spend_cap_usd is not None else None
        prices = list(prices) if prices is not None else [_price(name) for name in models]
        total = sum(_micros(price) for price in prices)
        price = round(total / images) if on_server_key and budget is not None else 0
        self._refuse_the_impossible(images, hour_limit, price, budget)
        ticket = Ticket(
            id=uuid.uuid4().hex,
            now=now,
            images=images,
            visitor_keys=tuple(_hashed(i) for i in visitor.ids()) if hour_limit else (),
            hour_limit=hour_limit,
            in_flight_cap=self.max_images_in_flight,
            lease_until=now + self.lease_seconds,
            price=price,
            budget=budget if price else None,
            day=_utc_day(now),
        )
        verdict = await self.store.admit(ticket)
        if verdict.limit is None:
            return Admission(self.store, ticket)
        raise self._refusal(verdict, ticket)

    async def aclose(self) -> None:
        await self.store.aclose()

    def _refuse_the_impossible(
        self, images: int, hour_limit: int, price: int, budget: int | None
    ) -> None:
        """Requests no wait would let in: say what to ask for instead."""
        if hour_limit and images > hour_limit:
            raise QuotaExceeded(
                f"This server gives each visitor at most {_images(hour_limit)} an hour on its "
                f"RunAPI key, and you asked for {images}: ask for {hour_limit} or fewer, or "
                "enter your own RunAPI key.",
                retry_at=None,
            )
        cap = self.max_images_in_flight
        if cap and images > cap:
            raise ServerBusy(
                f"This server generates at most {_images(cap)} at once, and you asked for "
                f"{images}: ask for {cap} or fewer."
            )
        if price and budget is not None and price * images > budget:
            raise QuotaExceeded(
                f"{_cost_of(images).capitalize()} {_dollars(price * images)}, more than this "
                f"server's whole daily budget of {_dollars(budget)} on its RunAPI key: ask "
                "for fewer images or a cheaper model, or enter your own RunAPI key.",
                retry_at=None,
            )

    def _refusal(self, verdict: Verdict, ticket: Ticket) -> LimitError:
        now, images = ticket.now, ticket.images
        if verdict.limit == "hour":
            assert verdict.free_at is not None
            retry_at = verdict.free_at + HOUR
            left = max(0, ticket.hour_limit - verdict.used)
            when = _when(retry_at, now)
            if left:
                message = (
                    f"You have {left} of this server's {_images(ticket.hour_limit)} an hour "
                    f"left on its RunAPI key and asked for {images}: ask for {left} or fewer "
                    f"now, or for {images} {when}. Or enter your own RunAPI key."
                )
            else:
                message = (
                    f"You have used this server's {_images(ticket.hour_limit)} an hour on its "
                    f"RunAPI key. You can generate {images} more {when}, or enter your own "
                    "RunAPI key to go on now."
                )
            return QuotaExceeded(message, retry_at)
        if verdict.limit == "budget":
            assert ticket.budget is not None
            retry_at = _next_utc_midnight(now)
            left = max(0, ticket.budget - verdict.used)
            spent = (
                f"has {_dollars(left)} left today, less than the "
                f"{_dollars(ticket.price * images)} {_cost_of(images)}"
                if left
                else "is spent for today"
            )
            return QuotaExceeded(
                f"This server's daily budget of {_dollars(ticket.budget)} on its RunAPI key "
                f"{spent}. It starts again {_when(retry_at, now)}; meanwhile, enter your own "
                "RunAPI key to generate.",
                retry_at,
            )
        return ServerBusy(
            f"This server is generating {_images(verdict.used)} right now, as many as it runs "
            f"at once ({ticket.in_flight_cap}). Try again in a minute."
        )


def limits_from(settings: Settings, *, clock: Callable[[], float] = time.time) -> Limits:
    """The deployment's limits. With `redis_url`, Redis is checked now: LimitsUnavailable
    says clearly if it cannot be reached.

    The hourly quota applies on public deployments only: locally the visitor on the
    server's key is its operator, who keeps generating as before.
    """
    store: QuotaStore = (
        RedisStore.connect(settings.redis_url) if settings.redis_url else MemoryStore()
    )
    limits = Limits(  # checks every value, so a bad one is a start-up error anywhere
        store,
        images_per_hour=settings.images_per_hour,
        max_images_in_flight=settings.max_images_in_flight,
        daily_spend_cap_usd=settings.daily_spend_cap_usd,
        lease_seconds=settings.deadline + LEASE_MARGIN_SECONDS,
        trusted_proxies=trusted_proxies_from(settings),
        clock=clock,
    )
    if not KeyPolicy.from_settings(settings).public:
        limits.images_per_hour = 0
    return limits


def _price(model: str) -> float:
    if model == REMIX_MODEL:  # priced by resolution: reserve the most it may cost
        return max(REMIX_PRICE_CENTS.values()) / 100
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: expected one of {', '.join(MODELS)}")
    return MODELS[model].price_usd


def _micros(dollars: float) -> int:
    return round(dollars * 1_000_000)


def _dollars(micros: int) -> str:
    return f"${micros / 1_000_000:.2f}"


def _images(count: int) -> str:
    """'1 image', '5 images': a limit of one is a real setting, and reads as one."""
    return f"{count} image{'s' if count != 1 else ''}"


def _cost_of(images: int) -> str:
    return "this image costs" if images == 1 else f"these {images} images cost"


def _hashed(visitor_id: str) -> str:
    """Ids go to the store hashed: no addresses or user names stored in the clear."""
    return hashlib.sha256(visitor_id.encode()).hexdigest()[:32]


def _utc_day(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).date().isoformat()


def _next_utc_midnight(moment: float) -> float:
    day = datetime.fromtimestamp(moment, timezone.utc).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def _when(moment: float, now: float) -> str:
    """'at 14:05 UTC (in 23 minutes)': a clock time and a wait, rounded up to the minute."""
    minutes = max(1, math.ceil((moment - now) / 60))
    clock = datetime.fromtimestamp(math.ceil(moment / 60) * 60, timezone.utc)
    wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if minutes >= 60:
        hours, rest = divmod(minutes, 60)
        wait = f"{hours} h {rest} min" if rest else f"{hours} h"  # not "1 h 0 min"
    return f"at {clock:%H:%M} UTC (in {wait})"
