"""Links that carry a setup, and the settings a browser remembers (issue 22, "Faster hands").

A link is the page's address with the form's values as query parameters (built in the
browser by Copy link: see page_scripts.py). Opening it fills the form and generates
nothing. The visitor's last model, ratio, count and negative prompt are remembered in
their browser. Both are checked here with the playground's own checks: a link is anyone's
text, and a visitor can edit what their browser keeps. Never a key, in either.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from ..runapi.catalog import DEFAULT_MODEL, MODELS
from ..runapi.errors import ValidationError
from ..runs.playground import checked_count, checked_request, nearest_ratio, pick_seed
from ..translations import ENGLISH, page_language, text
from .page_errors import page_message

SETTINGS_STORAGE_KEY = "imagen-playground-settings"
# The form's fields a link may set, in the order of the page's `form` list.
FORM_FIELDS = ("prompt", "model", "aspect_ratio", "negative_prompt", "num_images", "seed")
# What the browser remembers: the setup, not the prompt (and never the key).
REMEMBERED_FIELDS = ("model", "aspect_ratio", "num_images", "negative_prompt")
_A_PROMPT = "x"  # stands in for the prompt when another field is checked on its own


def form_from_query(
    params: Mapping[str, str], *, model: str = DEFAULT_MODEL, language: str = ENGLISH
) -> tuple[dict[str, Any], list[str]]:
    """The form values `params` may set, and a note for each value left out (and why).

    An empty or missing value is simply absent. A ratio is checked against the link's
    model, else `model` (the one the form shows).
    """
    accepted: dict[str, Any] = {}
    notes: list[str] = []
    checks: dict[str, Callable[[str], Any]] = {
        "prompt": lambda text: checked_request(text, DEFAULT_MODEL, "1:1", None).prompt,
        "model": lambda name: checked_request(_A_PROMPT, name, "1:1", None).model,
        "aspect_ratio": lambda ratio: (
            checked_request(_A_PROMPT, accepted.get("model", model), ratio, None).aspect_ratio
        ),
        "negative_prompt": lambda text: (
            checked_request(_A_PROMPT, DEFAULT_MODEL, "1:1", text).negative_prompt
        ),
        "num_images": checked_count,
        "seed": lambda seed: str(pick_seed(seed)),
    }
    for name in FORM_FIELDS:  # the model before the ratio: the ratio's check reads it
        value = params.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        try:
            accepted[name] = checks[name](value)
        except ValidationError as error:
            notes.append(page_message(language, error))
    return accepted, notes


def form_on_open(
    query: Mapping[str, str], remembered: Any, language: str = ENGLISH
) -> tuple[dict[str, Any], list[str]]:
    """The form as the page opens: the remembered settings, then a link's values over them.

    Returns the values to set (a model and its ratio always together) and the link's notes.
    """
    kept = remembered if isinstance(remembered, dict) else {}
    kept = {name: str(kept[name]) for name in REMEMBERED_FIELDS if name in kept}
    form, _ = form_from_query(kept)  # an edited value is dropped without a word
    linked, notes = form_from_query(
        query, model=form.get("model", DEFAULT_MODEL), language=language
    )
    form.update(linked)
    if "model" in form or "aspect_ratio" in form:
        # A remembered ratio may not suit the link's model: the nearest one that does.
        form.setdefault("model", DEFAULT_MODEL)
        form["aspect_ratio"] = nearest_ratio(form["model"], form.get("aspect_ratio", "1:1"))
    return form, notes


def on_open(remembered: Any, chosen_language: Any, request: gr.Request) -> tuple[Any, ...]:
    """On page load: fill the form (the FORM_FIELDS, in order); never start anything."""
    # The language switch is set by another load event: its value is not here yet.
    language = page_language(chosen_language, request.headers.get("accept-language"))
    form, notes = form_on_open(request.query_params, remembered, language)
    if notes:
        left_out = text(language, "link.left_out", notes=" ".join(notes))
        gr.Info(html.escape(left_out), duration=15)
    values = [form.get(name, gr.skip()) for name in FORM_FIELDS]
    if "model" in form:  # the radio must offer the model's ratios (`auto` is one model's)
        ratios = list(MODELS[form["model"]].aspect_ratios)
        values[FORM_FIELDS.index("aspect_ratio")] = gr.Radio(ratios, value=form["aspect_ratio"])
    return tuple(values)


def remember(
    model: str, aspect_ratio: str, num_images: Any, negative_prompt: str
) -> dict[str, str]:
    """What the browser keeps of the form (REMEMBERED_FIELDS), as a link would say it."""
    values = (model, aspect_ratio, num_images, negative_prompt)
    return {
        name: "" if value is None else str(value)
        for name, value in zip(REMEMBERED_FIELDS, values, strict=True)
    }
