"""The page's side panels: read settings from an image, ZIP downloads, copy as code, and
the key check with the account's balance."""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from ..runapi.catalog import MODELS
from ..runapi.client import AnyRequest, GenerationRequest
from ..runapi.errors import RunAPIError
from ..runapi.remix import RemixRequest
from ..runs import history as hist
from ..runs.access import KeyRequired, KeySource
from ..runs.playground import Playground
from ..storage.exports import ExportError, build_zip_async
from ..storage.pnginfo import ImageSettingsError, read_settings
from ..translations import ENGLISH, text
from .page_errors import page_message
from .snippets import curl_snippet, python_snippet

ZIP_KEEP_SECONDS = 3600  # a prepared download waits this long for its click
CODE_PLACEHOLDER_PROMPT = "Describe the image here"
# The form's controls an image may not name, in the page's words.
_SETTING_KEYS = {
    "model": "toast.setting_model",
    "aspect_ratio": "toast.setting_aspect_ratio",
    "seed": "toast.setting_seed",
}
# Whose balance a key check shows.
_BALANCE_KEYS = {
    KeySource.VISITOR: "key.balance_yours",
    KeySource.SERVER: "key.balance_server",
    KeySource.DEMO: "key.balance_demo",
}


class ExtrasHandlers:
    def __init__(self, playground: Playground) -> None:
        self.playground = playground
        self.export_dir = playground.settings.data_dir / "exports"

    # --- read settings from an image -----------------------------------------------------

    async def on_image_dropped(self, path: str | None, language: str = ENGLISH) -> tuple[Any, ...]:
        """Fill the form from a PNG the playground saved; anything else changes nothing."""
        keep = (*(gr.skip() for _ in range(6)), None)  # the drop zone empties itself
        if not path:
            return keep
        try:
            settings = await asyncio.to_thread(read_settings, Path(path))
        except ImageSettingsError as error:
            said = page_message(language, error)
            gr.Warning(html.escape(said), title="No settings read", duration=15)
            return keep
        missing = [
            text(language, key)
            for name, key in _SETTING_KEYS.items()
            if getattr(settings, name) is None
        ]
        note = (
            text(
                language,
                "toast.settings_missing",
                names=text(language, "toast.list_separator").join(missing),
            )
            if missing
            else ""
        )
        ratio = _ratio_control(settings.model, settings.aspect_ratio)
        if settings.aspect_ratio and ratio is None:
            takers = [
                name for name, info in MODELS.items() if settings.aspect_ratio in info.aspect_ratios
            ]
            note += text(
                language,
                "toast.ratio_not_set",
                ratio=settings.aspect_ratio,
                models=text(language, "toast.list_and").join(takers),
            )
        gr.Info(html.escape(text(language, "toast.settings_read") + note))
        return (
            settings.prompt,
            settings.model or gr.skip(),
            ratio or gr.skip(),
            settings.negative_prompt or "",
            1,
            "" if settings.seed is None else str(settings.seed),
            None,
        )

    # --- downloads -------------------------------------------------------------------------

    async def on_download_run(
        self, history: Any, shown: str | None, language: str = ENGLISH
    ) -> Any:
        """A ZIP of the run shown, with a manifest of its settings."""
        entry = hist.entry_with(hist.clean(history), shown)
        entries = [entry] if entry else []
        return await self._zip(entries, entry["prompt"] if entry else "run", language)

    async def on_download_all(self, history: Any, language: str = ENGLISH) -> Any:
        """A ZIP of every run in the history."""
        return await self._zip(hist.clean(history), "history", language)

    async def _zip(self, entries: list[hist.Entry], title: str, language: str) -> Any:
        self._sweep_exports()
        try:
            path = await build_zip_async(
                hist.export_items(entries),
                self.export_dir,
                title=title,
                images_root=self.playground.store.folder,
            )
        except ExportError as error:
            said = page_message(language, error)
            raise gr.Error(html.escape(said), title="No download") from None
        return gr.File(value=str(path), visible=True)

    def _sweep_exports(self) -> None:
        cutoff = time.time() - ZIP_KEEP_SECONDS
        for path in self.export_dir.glob("*.zip") if self.export_dir.exists() else ():
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)

    # --- copy as code ----------------------------------------------------------------------

    def on_code(
        self,
        prompt: str,
        model: str,
        aspect_ratio: str,
        negative_prompt: str,
        seed: str,
        remix: RemixRequest | None = None,
    ) -> tuple[str, str]:
        """The current settings as a curl script and a Python program (the key stays a
        variable: `$RUNAPI_API_KEY`); with `remix`, a remix's (its sources uploaded)."""
        try:
            seed_value: int | None = int(str(seed).strip()) if str(seed).strip() else None
        except ValueError:
            seed_value = None
        request: AnyRequest = GenerationRequest(
            prompt=(prompt or "").strip() or CODE_PLACEHOLDER_PROMPT,
            model=model,
            aspect_ratio=aspect_ratio,
            negative_prompt=(negative_prompt or "").strip() or None,
            seed=seed_value,
        )
        if remix is not None:
            request = replace(remix, prompt=request.prompt)
        base_url = self.playground.settings.base_url
        return curl_snippet(request, base_url), python_snippet(request, base_url)

    # --- the key and the balance -------------------------------------------------------------

    async def on_check_key(self, api_key: str, language: str = ENGLISH) -> str:
        """The account's balance for the key that would pay, or why that key is refused."""
        typed = (api_key or "").strip()
        try:
            backend = self.playground.backend_for(api_key)
        except KeyRequired as error:
            # Nothing typed yet: the cost line already asks for a key; no red note on load.
            return _note(page_message(language, error), ok=False) if typed else ""
        if backend.is_demo:
            return ""  # the cost line already says the demo is free
        if backend.source is KeySource.SERVER and self.playground.policy.public:
            # Strangers neither learn the operator's balance nor spend calls on it.
            return _note(text(language, "key.server_pays"))
        try:
            async with self.playground.client_for(backend) as client:
                balance = await client.balance()
        except RunAPIError as error:
            return _note(page_message(language, error), ok=False)
        key = _BALANCE_KEYS[backend.source]
        return _note(text(language, key, dollars=f"{balance.balance_cents / 100:.2f}"))

    def on_forget_key(self, language: str = ENGLISH) -> tuple[str, str]:
        return "", _note(text(language, "key.forgotten"))


def _ratio_control(model: str | None, ratio: str | None) -> gr.Radio | None:
    """The ratio radio set to `ratio`, offering the choices of the model the image names:
    the radio still lists the previous model's, and `auto` (imagen-4-fast's alone) set on
    them is refused by every later event. None when `ratio` cannot be set."""
    if ratio is None:
        return None
    if model in MODELS:
        ratios = MODELS[model].aspect_ratios
        return gr.Radio(choices=list(ratios), value=ratio) if ratio in ratios else None
    # No model named: set only a ratio that every model takes.
    return gr.Radio(value=ratio) if all(ratio in m.aspect_ratios for m in MODELS.values()) else None


def _note(text: str, *, ok: bool = True) -> str:
    css_class = "key-ok" if ok else "key-bad"
    return f'<div class="key-note {css_class}">{html.escape(text)}</div>'
