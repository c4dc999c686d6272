"""The page's own words: which component shows which translation key, in each language.

ui.py builds the page in English from this table (`PageText.of`), and `PageText.relabel`
rewrites every component below in the language picked on load or by the switch. Text a
handler computes from inputs (the model choices at live prices, the cost line) comes from
that handler, which takes the language as an input too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from ..runapi.catalog import MODELS
from ..translations import ENGLISH, text
from .handlers import GENERATE_MODE, REMIX_MODE
from .history_view import MODEL_CHOICES, STATUS_CHOICES

Props = dict[str, Any]  # a component's translated properties: label, info, value, choices...

# Component name -> property -> translation key. "choices" holds (label key, value) pairs;
# a model's name stands for itself (it reads the same in every language). Not here: what
# handlers write from the state (Star or Unstar, "Stop all 3"), in the page's language.
TABLE: dict[str, dict[str, Any]] = {
    "title": {"value": "page.title"},
    "language": {"label": "language.label"},
    "mode": {
        "label": "form.mode.label",
        "choices": [("form.mode.generate", GENERATE_MODE), ("form.mode.remix", REMIX_MODE)],
    },
    "prompt": {"label": "form.prompt.label", "placeholder": "form.prompt.placeholder"},
    "generate": {"value": "form.generate"},
    "compare": {"value": "form.compare"},
    "remix": {"value": "form.remix"},
    "stop": {"value": "form.stop"},
    "notify": {"label": "form.notify"},
    "remix_sources": {"label": "remix_form.sources"},
    "remix_note": {"value": "remix_form.note"},
    "remix_ratio": {"label": "form.aspect_ratio", "info": "remix_form.ratio_info"},
    "remix_resolution": {"label": "remix_form.resolution"},
    "remix_format": {"label": "remix_form.format"},
    "model": {"label": "form.model.label"},
    "aspect_ratio": {"label": "form.aspect_ratio"},
    "num_images": {"label": "form.images"},
    "seed": {
        "label": "form.seed.label",
        "placeholder": "form.seed.placeholder",
        "info": "form.seed.info",
    },
    "negative_prompt": {
        "label": "form.negative.label",
        "placeholder": "form.negative.placeholder",
        "info": "form.negative.info",
    },
    "copy_link": {"value": "form.copy_link"},
    "link": {"label": "form.link.label", "placeholder": "form.link.placeholder"},
    "api_key": {"label": "form.api_key.label", "info": "form.api_key.info"},
    "check_key": {"value": "form.check_key"},
    "forget_key": {"value": "form.forget_key"},
    "examples": {"label": "form.examples"},
    "read_settings": {"label": "form.read_settings"},
    "code": {"label": "form.code.accordion"},
    "code_note": {"value": "form.code.note"},
    "results": {"label": "page.results"},
    "remix_this": {"value": "page.remix_this"},
    "history": {"label": "history_form.accordion"},
    "history_note": {"value": "history_form.note"},
    "search": {
        "label": "history_form.search.label",
        "placeholder": "history_form.search.placeholder",
    },
    "model_filter": {"label": "form.model.label", "choices": MODEL_CHOICES},
    "status_filter": {"label": "history_form.status", "choices": STATUS_CHOICES},
    "tiles": {"label": "history_form.tiles"},
    "newer": {"value": "history_form.newer"},
    "older": {"value": "history_form.older"},
    "run_again": {"value": "history_form.run_again"},
    "wait_again": {"value": "history_form.wait_again"},
    "delete": {"value": "history_form.delete"},
    "clear": {"value": "history_form.clear"},
    "zip_run": {"value": "history_form.zip_run"},
    "zip_all": {"value": "history_form.zip_all"},
    "zip_file": {"label": "history_form.zip_file"},
}


class PageText:
    """The table's words for one deployment.

    `fields` fill the strings' `{names}` (limits from the settings); `keys` set a
    component's properties to keys the deployment chooses (the key field's placeholder
    follows the key policy); `computed` gives a component's properties from a function of
    the language (the banner).
    """

    def __init__(
        self,
        fields: Mapping[str, object],
        keys: Mapping[str, Mapping[str, str]],
        computed: Mapping[str, Callable[[str], Props]],
    ) -> None:
        self.fields = dict(fields)
        self.table = {name: {**props, **keys.get(name, {})} for name, props in TABLE.items()}
        self.computed = dict(computed)

    @property
    def names(self) -> list[str]:
        """Every component the page translates, in a fixed order (the handler's outputs)."""
        return [*self.table, *(name for name in self.computed if name not in self.table)]

    def of(self, name: str, language: str = ENGLISH) -> Props:
        """Component `name`'s properties in `language`."""
        props: Props = {
            prop: self._choices(keys, language)
            if prop == "choices"
            else text(language, keys, **self.fields)
            for prop, keys in self.table.get(name, {}).items()
        }
        if name in self.computed:
            props |= self.computed[name](language)
        return props

    def relabel(self, language: str) -> list[Any]:
        """Every translated component's new properties, in `names` order."""
        return [gr.update(**self.of(name, language)) for name in self.names]

    @staticmethod
    def _choices(pairs: list[tuple[str, str]], language: str) -> list[tuple[str, str]]:
        return [
            (label if label in MODELS else text(language, label), value) for label, value in pairs
        ]
