"""The visitor's history: one entry per run, kept in their browser, newest first.

An entry is plain JSON (it lives in localStorage through `gr.BrowserState`): what was
asked, how it went, the images' file paths and their previews' (small WebP files on the
server, swept with the images: inline, they made a full history 1.4 MB for the page to
unseal and upload at every load). It never holds an API key. Everything
read back from the browser is untrusted: `clean()` keeps only well-formed entries, and
image paths are checked by `ImageStore.resolve` before anything is served.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..runapi.catalog import MODELS, REMIX_MODEL, SEED_MAX
from ..runapi.client import AnyRequest, GenerationRequest
from ..runapi.errors import AuthenticationError, TaskFailedError, ValidationError
from ..runapi.remix import RemixRequest
from ..storage.exports import ExportItem
from ..storage.images import ImageStore
from ..storage.pnginfo import ImageSettings
from ..translations import ENGLISH, date_time, text
from .registry import Run, RunStatus
from .remixing import price_usd as remix_price_usd
from .remixing import remix_requests

MAX_ENTRIES = 60  # recent runs; starred ones are kept past this, within MAX_BYTES
MAX_READ = 1000  # entries looked at in what a browser sends (it may be forged)
MAX_REMOVED = 500  # ids of deleted entries remembered, against another tab's copies
MAX_BYTES = 1_500_000  # of JSON; the browser's ~5 MB per site also holds Gradio's own state
PROMPT_PREVIEW_CHARS = 60
INTERRUPTED = "interrupted"
STILL_RUNNING = RunStatus.RUNNING.value

Entry = dict[str, Any]
# What a search or a filter looks at (history_view.py), besides an entry's id.
SEARCHED = ("id", "prompt", "negative_prompt", "kind", "model", "status", "starred")
FINAL_ERRORS = (TaskFailedError, ValidationError, AuthenticationError)
# A status as captions and summaries say it (an entry's own status stays English).
_STATUS_KEYS = {
    RunStatus.RUNNING.value: "run.running",
    RunStatus.DONE.value: "run.done",
    RunStatus.PARTIAL.value: "run.partly_failed",
    RunStatus.FAILED.value: "run.failed",
    RunStatus.STOPPED.value: "run.stopped",
    INTERRUPTED: "run.interrupted",
}


def entry_for(run: Run, *, thumbnails: dict[str, str] | None = None) -> Entry:
    """The history entry of a run, as it stands now."""
    first = run.jobs[0].request
    thumbnails = thumbnails or {}
    failures = run.failures()
    entry = {
        "id": run.id,
        "run": run.id,
        "kind": run.kind,
        "created": run.created,
        "prompt": first.prompt,
        "negative_prompt": first.negative_prompt or "",
        "model": first.model,
        "aspect_ratio": first.aspect_ratio,
        "num_images": run.total,
        "demo": run.is_demo,
        "status": run.status.value,
        "message": failures[0] if failures else "",
        "duration": round(run.elapsed, 1) if run.is_finished else None,
        **(_remix_fields(first, run, thumbnails) if run.kind == "remix" else {}),
        "jobs": [
            {
                "model": job.request.model,
                "aspect_ratio": job.request.aspect_ratio,
                "seed": job.request.seed,
                "task_id": job.task_id,
                "seconds": round(job.seconds, 1) if job.seconds is not None else None,
                "error": job.error.message if job.error else "",
                # A task that failed for good is not worth waiting for; one that timed
                # out, lost its connection or was stopped may still finish at RunAPI.
                "waitable": not isinstance(job.error, FINAL_ERRORS),
                "image": _image_record(job.image, thumbnails) if job.image else None,
                # What RunAPI said it charged, else the live price when the run began.
                "cost": job.estimate_usd if job.charged_usd is None else job.charged_usd,
                "charged": job.charged_usd is not None,
            }
            for job in run.jobs
        ],
    }
    return {**entry, **run_cost(entry["jobs"], demo=run.is_demo)}


async def finished_entry(run: Run, store: ImageStore) -> Entry:
    """The final entry, with every image's (and source's) preview made off the event loop."""
    paths = [image.path for image in run.images] + list(run.sources)
    previews = await asyncio.to_thread(lambda: [str(store.preview(path)) for path in paths])
    return entry_for(run, thumbnails={str(p): t for p, t in zip(paths, previews, strict=True)})


def run_cost(jobs: Sequence[dict[str, Any]], *, demo: bool) -> dict[str, Any]:
    """An entry's "cost" (its images' costs; failed ones are not charged) and "charged"
    (True when RunAPI said what each image cost, False when any is an estimate). A job
    stored before live prices carries no cost: the catalog's price, estimated."""
    with_image = [job for job in jobs if job.get("image")]
    if demo or not with_image:
        return {"cost": 0.0, "charged": False}
    costs = [_job_cost(job) for job in with_image]
    charged = all(job.get("charged", False) for job in with_image)
    return {"cost": round(sum(costs), 2), "charged": charged}


def cost_text(cost: float, charged: Any, language: str = ENGLISH) -> str:
    """A cost in words: "$0.16 charged" (RunAPI said so) or "≈$0.16 estimated" (live
    prices); an entry without the flag was stored before charges were read: estimated."""
    key = "history.charged" if charged else "history.estimated"
    return text(language, key, dollars=f"{cost:.2f}")


def status_words(status: str, language: str = ENGLISH) -> str:
    """An entry's status in `language` (one a browser made up stays as it is)."""
    key = _STATUS_KEYS.get(status)
    return text(language, key) if key else status


def seconds_text(seconds: float, language: str, *, digits: int = 1) -> str:
    """A duration: "4.2 s"."""
    return text(language, "history.seconds", seconds=f"{seconds:.{digits}f}")


def _job_cost(job: dict[str, Any]) -> float:
    return job.get("cost", image_price(job["model"]))


def image_price(model: str, output_resolution: str | None = None) -> float:
    """One image's published price: by model, or for a remix by its resolution."""
    if model == REMIX_MODEL:
        return remix_price_usd(output_resolution or "")
    return MODELS[model].price_usd if model in MODELS else 0.0


def _remix_fields(request: AnyRequest, run: Run, thumbnails: dict[str, str]) -> Entry:
    """What a remix entry holds besides: its output settings and its kept sources, each
    with a small preview (never the upload URLs)."""
    assert isinstance(request, RemixRequest)
    return {
        "output_resolution": request.output_resolution,
        "output_format": request.output_format,
        "sources": [
            {"path": str(path), "thumb": thumbnails.get(str(path), "")} for path in run.sources
        ],
    }


def total_cost(entries: Sequence[Entry]) -> float:
    """What the runs in this history cost, all together."""
    return round(sum(entry["cost"] for entry in entries), 2)


def merge(history: list[Entry], *updates: Entry) -> tuple[list[Entry], int]:
    """`updates` in their places by time (each replacing the entry with its id), newest
    first, within the bounds; returns how many fell off."""
    ids = {update["id"] for update in updates}
    entries = [*updates, *(old for old in history if old.get("id") not in ids)]
    entries.sort(key=lambda e: e["created"], reverse=True)
    kept = bounded(entries)
    return kept, len(entries) - len(kept)


def bounded(entries: list[Entry]) -> list[Entry]:
    """The newest MAX_ENTRIES runs and every starred one, within MAX_BYTES: past the
    bytes, the oldest unstarred runs go first, then the oldest starred ones."""
    kept, recent = [], 0
    for entry in entries:
        if entry.get("starred") or recent < MAX_ENTRIES:
            kept.append(entry)
            recent += not entry.get("starred")
    sizes = [len(json.dumps(entry)) for entry in kept]
    total = sum(sizes) + len(kept) + 1
    while len(kept) > 1 and total > MAX_BYTES:
        unstarred = [i for i, entry in enumerate(kept) if not entry.get("starred")]
        victim = unstarred[-1] if unstarred else len(kept) - 1
        kept.pop(victim)
        total -= sizes.pop(victim) + 1
    return kept


def starred(entries: list[Entry], entry_id: Any, on: bool) -> list[Entry]:
    """The history with the entry `entry_id` starred (on) or not; `touched` says when, so
    that of two tabs' copies the later word wins."""
    return [
        {**entry, "starred": on, "touched": time.time()} if entry["id"] == entry_id else entry
        for entry in entries
    ]


def without(entries: list[Entry], entry_ids: Collection[Any]) -> list[Entry]:
    """The history less these entries (their image files stay until they expire)."""
    return [entry for entry in entries if entry["id"] not in entry_ids]


def removed_ids(value: object) -> list[str]:
    """The ids of deleted and cleared entries, as the browser keeps them (newest last),
    so that another tab's copy of an entry does not bring it back."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)][-MAX_REMOVED:]


def union(mine: list[Entry], theirs: list[Entry], removed: Collection[str]) -> list[Entry]:
    """Two tabs' histories as one: every entry of either, less the removed ones; of two
    copies of one entry, the later look at it (ended over running, more images, the
    last star or unstar), this tab's on a tie."""
    chosen: dict[str, Entry] = {}
    for entry in [*theirs, *mine]:
        old = chosen.get(entry["id"])
        if entry["id"] not in removed and (old is None or _recency(entry) >= _recency(old)):
            chosen[entry["id"]] = entry
    return bounded(sorted(chosen.values(), key=lambda e: e["created"], reverse=True))


def _recency(entry: Entry) -> tuple[bool, int, float]:
    images = sum(1 for job in entry["jobs"] if job.get("image"))
    return entry["status"] != STILL_RUNNING, images, entry.get("touched", 0.0)


def entry_with(entries: list[Entry], entry_id: Any) -> Entry | None:
    return next((entry for entry in entries if entry["id"] == entry_id), None)


def for_browser(entries: list[Entry]) -> str:
    """The history as the browser keeps it: one JSON text, not a list. At every status
    change of every event, Gradio's frontend deep-copies the value of each input and
    output (Svelte's `$state.snapshot`: a `structuredClone` per string and number), some
    5,000 for a full history as a list, several times a search; a text is one."""
    return json.dumps(entries, ensure_ascii=False, separators=(",", ":"))


def clean(history: object) -> list[Entry]:
    """The entries of a value read back from the browser that have the shape we wrote
    (a JSON text; a list, as an earlier version stored it)."""
    if isinstance(history, str) and len(history) <= 2 * MAX_BYTES:
        try:
            history = json.loads(history)
        except ValueError:
            return []
    if not isinstance(history, list):
        return []
    return bounded([entry for entry in history[:MAX_READ] if _well_formed(entry)])


def interrupted(entry: Entry) -> Entry:
    """A stored `running` entry whose run this server no longer knows (it restarted)."""
    return {
        **entry,
        "status": INTERRUPTED,
        "message": "The server restarted while this run was in flight. RunAPI may have "
        "finished its tasks: press Wait again to fetch them without paying twice.",
    }


def requests_of(entry: Entry) -> list[AnyRequest]:
    """The requests behind an entry, seeds included: Run again sends these exactly."""
    return [request for request, _ in _jobs(entry)]


def unfinished_tasks(entry: Entry) -> list[tuple[AnyRequest, str]]:
    """Tasks of the entry that may have finished without us, with their requests: Wait
    again waits on these by id instead of creating (and paying for) new ones."""
    return [
        (request, job["task_id"])
        for request, job in _jobs(entry)
        if isinstance(job.get("task_id"), str) and not job.get("image") and job.get("waitable")
    ]


def _jobs(entry: Entry) -> list[tuple[AnyRequest, dict[str, Any]]]:
    pairs = []
    for job in entry["jobs"]:
        try:
            pairs.append((_request(entry, job), job))
        except ValidationError:
            continue  # a hand-edited entry: skip what RunAPI would refuse anyway
    return pairs


def _request(entry: Entry, job: dict[str, Any]) -> AnyRequest:
    """A job's checked request; a remix's without source URLs (its run uploads them)."""
    if entry["kind"] == "remix":
        return remix_requests(
            entry["prompt"],
            job["aspect_ratio"],
            entry.get("output_resolution"),
            entry.get("output_format"),
            count=1,
        )[0]
    return GenerationRequest(
        prompt=entry["prompt"],
        model=job["model"],
        aspect_ratio=job["aspect_ratio"],
        negative_prompt=entry.get("negative_prompt") or None,
        seed=job.get("seed"),
    ).validated()


def sources_of(entry: Entry) -> list[object]:
    """A remix entry's kept source files, as the browser sent them (check them first)."""
    return [source.get("path") for source in _sources(entry) if isinstance(source, dict)]


def gallery_items(
    entry: Entry, store: ImageStore, language: str = ENGLISH
) -> list[tuple[str, str]]:
    """The entry's images as (file, caption): the full image while it exists, else its
    preview, else a placeholder, each captioned as such."""
    return list(_gallery_items(entry, store, language))


def cover(entry: Entry, store: ImageStore, language: str = ENGLISH) -> str:
    """The picture of the entry's tile: its first image's preview (a few KB), else the
    image itself, else a placeholder that says why. Only the first is looked at (the
    tiles are redrawn at every step of a run)."""
    first = next(_records(entry), None)
    if first is None:
        return str(store.placeholder(status_words(entry["status"], language)))
    found = _preview(first, store) or store.resolve(first.get("path"))
    return str(found or _gone(store, language))


def with_previews_on_disk(entries: list[Entry], store: ImageStore) -> list[Entry]:
    """`entries` with the previews an earlier version kept inline (data URLs) moved into
    the image folder: the history the browser stores shrinks to a tenth."""
    return [_previews_moved(entry, store) if _inline(entry) else entry for entry in entries]


def _inline(entry: Entry) -> bool:
    return any(str(record.get("thumb", "")).startswith("data:") for record in _records(entry))


def _previews_moved(entry: Entry, store: ImageStore) -> Entry:
    def moved(record: dict[str, Any]) -> dict[str, Any]:
        thumb = record.get("thumb")
        if not (isinstance(thumb, str) and thumb.startswith("data:")):
            return record
        path = store.thumbnail_file(thumb)  # None for a forged one: dropped
        return {**record, "thumb": str(path) if path else ""}

    jobs = [
        {**job, "image": moved(job["image"])} if isinstance(job.get("image"), dict) else job
        for job in entry["jobs"]
    ]
    sources = [moved(s) if isinstance(s, dict) else s for s in _sources(entry)]
    return {**entry, "jobs": jobs, **({"sources": sources} if "sources" in entry else {})}


def _records(entry: Entry) -> Iterator[dict[str, Any]]:
    """The entry's image and source records, each with a "path" and a "thumb"."""
    for job in entry["jobs"]:
        if isinstance(job.get("image"), dict):
            yield job["image"]
    yield from (source for source in _sources(entry) if isinstance(source, dict))


def _sources(entry: Entry) -> list[Any]:
    sources = entry.get("sources")
    return sources if isinstance(sources, list) else []


def _preview(record: dict[str, Any], store: ImageStore) -> Path | None:
    """A record's preview file, if it is still on this server (or still inline, as an
    earlier version kept it)."""
    thumb = record.get("thumb")
    return store.resolve(thumb) or store.thumbnail_file(thumb)


def _gone(store: ImageStore, language: str) -> Path:
    return store.placeholder(text(language, "history.image_expired"))


def _gallery_items(entry: Entry, store: ImageStore, language: str) -> Iterator[tuple[str, str]]:
    yield from _job_items(entry, store, language)
    for number, source in enumerate(_sources(entry), 1):  # a remix's: after its images
        if not isinstance(source, dict):
            continue
        path = store.resolve(source.get("path")) or _preview(source, store)
        if path is not None:
            yield str(path), text(language, "history.source", number=number)


def _job_items(entry: Entry, store: ImageStore, language: str) -> Iterator[tuple[str, str]]:
    for job in entry["jobs"]:
        image = job.get("image")
        if not isinstance(image, dict):
            continue
        caption = _caption(entry, job, language)
        path = store.resolve(image.get("path"))
        if path is not None:
            yield str(path), caption
            continue
        preview = _preview(image, store)
        if preview is not None:
            yield str(preview), text(language, "history.preview_only", caption=caption)
        else:
            yield str(_gone(store, language)), text(language, "history.gone", caption=caption)


def tile_caption(entry: Entry, language: str = ENGLISH) -> str:
    """One line per history entry: what, with what, when, how long, how much, how it went."""
    prompt = " ".join(entry["prompt"].split())
    if len(prompt) > PROMPT_PREVIEW_CHARS:
        prompt = prompt[: PROMPT_PREVIEW_CHARS - 1] + "…"
    model = text(language, "history.three_models") if entry["kind"] == "compare" else entry["model"]
    if entry["kind"] == "remix":
        model = text(language, "history.remix_of", count=len(sources_of(entry)))
    parts = [prompt, model, date_time(language, entry["created"])]
    if entry.get("duration") is not None:
        parts.append(seconds_text(entry["duration"], language, digits=0))
    if entry["demo"]:
        parts.append(text(language, "history.no_charge_demo"))
    elif entry["status"] not in (STILL_RUNNING, INTERRUPTED) or entry["cost"]:
        # (an unfinished run's cost is not known yet)
        parts.append(cost_text(entry["cost"], entry.get("charged"), language))
    if entry["status"] != RunStatus.DONE.value:
        parts.append(status_words(entry["status"], language))
    return ("★ " if entry.get("starred") else "") + " · ".join(parts)


def controls_from(entry: Entry, image_index: int | None = None) -> dict[str, Any]:
    """The form's values that remake this entry (or one of its images)."""
    jobs = [job for job in entry["jobs"] if job.get("image")] if image_index is not None else []
    job = jobs[image_index] if image_index is not None and image_index < len(jobs) else None
    first = job or entry["jobs"][0]
    seed = first.get("seed")
    return {
        "prompt": entry["prompt"],
        "model": first["model"],
        "aspect_ratio": first["aspect_ratio"],
        "negative_prompt": entry.get("negative_prompt") or "",
        "seed": "" if seed is None else str(seed),
        "num_images": 1 if job is not None or entry["kind"] == "compare" else entry["num_images"],
    }


def _image_record(image: Any, thumbnails: dict[str, str]) -> dict[str, Any]:
    return {
        "path": str(image.path),
        "thumb": thumbnails.get(str(image.path), ""),
        "width": image.width,
        "height": image.height,
    }


def _caption(entry: Entry, job: dict[str, Any], language: str) -> str:
    if entry["kind"] == "remix":
        last = entry.get("output_resolution")
    else:
        last = text(language, "history.seed", seed=job["seed"])
    caption = f"{job['model']} · {job['aspect_ratio']} · {last}"
    if entry["kind"] == "compare" and job.get("seconds") is not None:
        price = (
            text(language, "history.no_charge")
            if entry["demo"]
            else cost_text(_job_cost(job), job.get("charged"), language)
        )
        caption += f" · {seconds_text(job['seconds'], language)} · {price}"
    return text(language, "history.demo_caption", caption=caption) if entry["demo"] else caption


def _well_formed(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    try:
        jobs = entry["jobs"]
        return (
            isinstance(entry["id"], str)
            and isinstance(entry["prompt"], str)
            and isinstance(entry["created"], int | float)
            and isinstance(entry["status"], str)
            and isinstance(entry["demo"], bool)
            and isinstance(entry["cost"], int | float)
            and isinstance(entry.get("charged", False), bool)
            and isinstance(entry["num_images"], int)
            and isinstance(entry.get("negative_prompt", ""), str)
            and isinstance(entry.get("starred", False), bool)
            and isinstance(entry.get("touched", 0.0), int | float)
            and (entry["duration"] is None or isinstance(entry["duration"], int | float))
            and entry["kind"] in ("generate", "compare", "remix")
            and isinstance(jobs, list)
            and 0 < len(jobs) <= 4
            and all(_job_well_formed(job) for job in jobs)
        )
    except (KeyError, TypeError):
        return False


def _job_well_formed(job: object) -> bool:
    return (
        isinstance(job, dict)
        and (job.get("model") in MODELS or job.get("model") == REMIX_MODEL)
        and isinstance(job.get("aspect_ratio"), str)
        and (
            job.get("seed") is None
            or (isinstance(job["seed"], int) and 0 <= job["seed"] <= SEED_MAX)
        )
        and (job.get("image") is None or isinstance(job["image"], dict))
        and isinstance(job.get("cost", 0.0), int | float)
        and isinstance(job.get("charged", False), bool)
    )


def combined(original: Entry, update: Entry) -> Entry:
    """`update` (a later look at a run, or a Wait again's run) folded into `original`."""
    if original.get("run") == update["run"]:
        return {
            **update,
            "id": original["id"],
            "created": original["created"],
            "starred": original.get("starred", False),
        }
    by_task = {job["task_id"]: job for job in update["jobs"] if job.get("task_id")}
    jobs = [by_task.get(job.get("task_id"), job) for job in original["jobs"]]
    with_image = [job for job in jobs if job.get("image")]
    if update["status"] == STILL_RUNNING:
        status = STILL_RUNNING
    elif len(with_image) == len(jobs):
        status = RunStatus.DONE.value
    else:
        status = (RunStatus.PARTIAL if with_image else RunStatus.FAILED).value
    errors = [job["error"] for job in jobs if job.get("error") and not job.get("image")]
    return {
        **original,
        "run": update["run"],
        "jobs": jobs,
        "status": status,
        "message": errors[0] if errors else "",
        **run_cost(jobs, demo=original["demo"]),
    }


def export_items(entries: Sequence[Entry]) -> list[ExportItem]:
    """Every image of these entries with its settings, for a ZIP (paths are checked there)."""
    items = []
    for entry in entries:
        for job in entry["jobs"]:
            image = job.get("image")
            if not isinstance(image, dict):
                continue
            settings = ImageSettings(
                prompt=entry["prompt"],
                model=job["model"],
                negative_prompt=entry.get("negative_prompt") or None,
                aspect_ratio=job["aspect_ratio"],
                seed=job.get("seed"),
                output_resolution=entry.get("output_resolution"),
                source_images=len(sources_of(entry)) or None,
                task_id=job.get("task_id"),
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry["created"])),
                source="demo" if entry["demo"] else "RunAPI",
                width=image.get("width"),
                height=image.get("height"),
            )
            items.append(ExportItem(str(image.get("path", "")), settings))
    return items
