"""A tab's runs side by side (one watcher writes the page for all of them), the tab's
caps, and the history's search, pages, stars, bounds and two-tab merge, without a
browser: the page's handlers on a real playground and its simulator on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import pytest

from runapi_ui.page.browser_store import _key_and_iv, seal, unseal
from runapi_ui.page.handlers import PageHandlers
from runapi_ui.page.history_view import COMPARE, STARRED, HistoryView
from runapi_ui.page.tabs import TabLimits
from runapi_ui.runapi.errors import ValidationError
from runapi_ui.runs import history as hist
from tests.test_app import a_tab, make_playground, written  # noqa: F401 - a fixture
from tests.test_studio import entries

SECRET = "imagen-playground-history"


# --- one watcher for a tab's runs -------------------------------------------------------


async def test_two_generates_in_one_tab_both_land_and_one_event_watches_them(
    make_playground,  # noqa: F811
) -> None:
    slow = {"durations": {"imagen-4-fast": (0.6, 0.6)}, "time_scale": 1.0}
    playground, demo = make_playground(demo_config=slow)
    page = PageHandlers(playground)
    form = {"model": "imagen-4-fast", "aspect_ratio": "1:1", "negative_prompt": "", "seed": ""}
    form |= {"num_images": 1, "api_key": "", "history": [], "request": a_tab("tab")}

    async def generate(prompt: str) -> list[Any]:
        outputs = [out async for out in page.on_generate(prompt=prompt, **form)]
        return [written(out) if isinstance(out.history, str) else out for out in outputs]

    first = asyncio.ensure_future(generate("first"))
    await asyncio.sleep(0.2)
    second = await asyncio.wait_for(generate("second"), 5)
    assert len(second) == 1, "the second click shows its run and hands it to the watcher"
    assert second[0].shown == second[0].history[0]["id"], "the results show the newest run"
    first_outputs = await asyncio.wait_for(first, 10)
    last = [out for out in first_outputs if isinstance(out.history, list)][-1]  # a write
    assert [(e["prompt"], e["status"]) for e in last.history] == [
        ("second", "done"),
        ("first", "done"),
    ]
    assert last.shown == last.history[0]["id"], "the first run's end did not take the view"
    assert sum(1 for r in demo.simulator.requests if r.method == "POST") == 2


async def test_the_tabs_cap_refuses_before_anything_is_created(make_playground) -> None:  # noqa: F811
    playground, demo = make_playground(demo_config={"durations": {"imagen-4": (5.0, 5.0)}})
    page = PageHandlers(playground)
    page.tab_limits = TabLimits(runs=1, images=4)
    form = {"model": "imagen-4", "aspect_ratio": "1:1", "negative_prompt": "", "seed": ""}
    form |= {"num_images": 2, "api_key": "", "history": [], "request": a_tab("tab")}
    first = page.on_generate(prompt="one", **form)
    await anext(first)
    while sum(1 for r in demo.simulator.requests if r.method == "POST") < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the simulator runs in another thread
    with pytest.raises(Exception, match="1 run already in flight in this tab: wait for one"):
        await anext(page.on_generate(prompt="two", **form))
    await asyncio.sleep(0.3)
    assert sum(1 for r in demo.simulator.requests if r.method == "POST") == 2
    await page.on_stop_all(request=a_tab("tab"))
    await first.aclose()


def test_the_caps_say_what_to_do() -> None:
    limits = TabLimits(runs=4, images=16)
    limits.admit([], 4)
    with pytest.raises(ValidationError, match="wait for a run to finish, stop one, or ask"):
        limits.admit([FakeRun(4)] * 3, 5)
    with pytest.raises(ValidationError, match="4 runs already in flight"):
        limits.admit([FakeRun(1)] * 4, 1)


class FakeRun:
    def __init__(self, total: int) -> None:
        self.total = total


# --- finding things in the history -------------------------------------------------------


def test_search_is_case_insensitive_substring_over_both_prompts() -> None:
    history = entries(["A Red Fox", "维多利亚港的夜景", "a lighthouse ultra", "fox compare"])
    assert [e["prompt"] for e in history if HistoryView(query="red fox").matches(e)] == [
        "A Red Fox"
    ]
    assert [e["prompt"] for e in history if HistoryView(query="港的").matches(e)] == [
        "维多利亚港的夜景"
    ]
    blurry = [e["prompt"] for e in history if HistoryView(query="BLURRY").matches(e)]
    assert blurry == ["维多利亚港的夜景", "fox compare"]  # odd entries' negative prompt
    assert [e["prompt"] for e in history if HistoryView(model=COMPARE).matches(e)] == [
        "fox compare"
    ]
    history[0]["kind"] = "remix"
    assert [e["prompt"] for e in history if HistoryView(model="remix").matches(e)] == ["A Red Fox"]
    ultra = HistoryView(model="imagen-4-ultra")
    assert [e["prompt"] for e in history if ultra.matches(e)] == ["a lighthouse ultra"]


def test_pages_of_twelve_and_what_the_page_says() -> None:
    history = entries([f"run {n}" for n in range(30)], starred=3)
    view = HistoryView()
    listed, page, pages = view.listed(history)
    assert (len(listed), page, pages) == (12, 0, 3)
    assert view.describe(history) == "30 runs · 1 starred · page 1 of 3"
    last = view.turned(5, history)
    assert last.page == 2 and len(last.listed(history)[0]) == 6
    assert last.turned(-9, history).page == 0
    starred = HistoryView(status=STARRED)
    assert starred.describe(history) == "1 of 30 runs match · 1 starred"


def test_a_search_over_a_full_history_is_quick() -> None:
    history = entries([f"a fox number {n} in the snow" for n in range(hist.MAX_ENTRIES)])
    started = time.perf_counter()
    HistoryView(query="number 4").describe(history)
    assert time.perf_counter() - started < 1.0  # a sanity bound, not a benchmark


# --- what is kept -----------------------------------------------------------------------


def test_starred_runs_are_kept_past_the_recent_bound_and_the_oldest_unstarred_go() -> None:
    history = entries([f"run {n}" for n in range(hist.MAX_ENTRIES + 5)], starred=64)
    kept = hist.bounded(history)
    prompts = [e["prompt"] for e in kept]
    assert len(kept) == hist.MAX_ENTRIES + 1 and "run 64" in prompts and "run 60" not in prompts


def test_two_tabs_histories_merge_without_losing_or_reviving_entries() -> None:
    mine = entries(["mine", "both"])
    theirs = entries(["theirs", "both", "deleted here"])
    theirs[0]["id"], theirs[0]["created"] = "theirs-only", time.time() + 1
    theirs[2]["id"] = "gone"
    starred_there = hist.starred(theirs, "entry-1", True)
    merged = hist.union(mine, starred_there, {"gone"})
    assert [e["id"] for e in merged] == ["theirs-only", "entry-0", "entry-1"]
    assert merged[2]["starred"], "the later word on a star wins"
    assert hist.union(merged, mine, set()) == merged, "a merge of what it holds changes nothing"


def test_what_gradio_sealed_is_read_and_anything_else_is_not() -> None:
    value = entries(["维多利亚港"])
    assert unseal(seal(value, SECRET), SECRET) == value
    assert unseal(seal(value, "another secret"), SECRET) is None
    assert unseal("not sealed", SECRET) is None
    assert unseal("abc:%%%", SECRET) is None
    assert unseal(None, SECRET) is None


def test_the_sealing_matches_the_browsers(tmp_path) -> None:
    """The key derivation is OpenSSL's, as CryptoJS does it with a passphrase."""
    key, iv = _key_and_iv(SECRET, b"12345678")
    passphrase = hashlib.sha256(SECRET.encode()).hexdigest().encode()
    first = hashlib.md5(passphrase + b"12345678").digest()
    assert key[:16] == first and len(key) == 32 and len(iv) == 16


async def test_another_tabs_write_is_merged_and_a_merge_of_nothing_new_writes_nothing(
    make_playground,  # noqa: F811
) -> None:
    playground, _ = make_playground()
    page = PageHandlers(playground)
    mine = entries(["mine"])
    theirs = entries(["theirs"])
    theirs[0]["id"] = "theirs"
    stored = json.dumps({"history": [seal(theirs, SECRET)], "removed": [seal(["entry-0"], SECRET)]})
    outputs = page.on_sync(stored, mine, [], a_tab("tab"))
    assert [e["id"] for e in json.loads(outputs[1])] == ["theirs"], "theirs in, the deleted out"
    assert outputs[-1] == ["entry-0"]
    again = page.on_sync(
        json.dumps({"history": [seal(theirs, SECRET)]}), outputs[1], outputs[-1], None
    )
    assert all(isinstance(out, dict) and out.get("__type__") == "update" for out in again)
