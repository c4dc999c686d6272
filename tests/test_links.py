"""Links that carry a setup, and remembered settings (issue 22): what is taken, what is left
out and why. The page's side (Copy link, opening a link) is in tests/test_faster_hands.py."""

from __future__ import annotations

import pytest

from runapi_ui.page.links import FORM_FIELDS, form_from_query, form_on_open, remember
from runapi_ui.runapi.catalog import DEFAULT_MODEL, MODELS, PROMPT_MAX_CHARS, SEED_MAX

FULL = {
    "prompt": "  A red fox in snow\nat dusk ",
    "model": "imagen-4-fast",
    "aspect_ratio": "auto",
    "negative_prompt": "blurry",
    "num_images": "3",
    "seed": "42",
}


def test_a_full_link_fills_every_field() -> None:
    form, notes = form_from_query(FULL)
    assert notes == []
    assert form == {
        "prompt": "A red fox in snow\nat dusk",  # trimmed, as a run would send it
        "model": "imagen-4-fast",
        "aspect_ratio": "auto",
        "negative_prompt": "blurry",
        "num_images": 3,
        "seed": "42",
    }
    assert tuple(form) == FORM_FIELDS


def test_empty_and_unknown_parameters_are_ignored_and_a_key_is_never_read() -> None:
    params = {"prompt": "", "seed": "  ", "__theme": "dark", "api_key": "sk-secret", "key": "x"}
    assert form_from_query(params) == ({}, [])


def test_an_unknown_model_is_left_out_with_a_note_and_the_rest_is_kept() -> None:
    form, notes = form_from_query({**FULL, "model": "foo", "aspect_ratio": "16:9"})
    assert "model" not in form and form["aspect_ratio"] == "16:9"
    assert len(notes) == 1
    assert "'foo'" in notes[0] and all(name in notes[0] for name in MODELS)


@pytest.mark.parametrize(
    ("params", "kwargs", "taken"),
    [
        ({"model": "imagen-4-fast", "aspect_ratio": "auto"}, {}, True),
        ({"model": "imagen-4", "aspect_ratio": "auto"}, {}, False),
        ({"aspect_ratio": "auto"}, {}, False),  # the form's default model lacks it
        ({"aspect_ratio": "auto"}, {"model": "imagen-4-fast"}, True),  # the form shows fast
        ({"model": "imagen-4-ultra", "aspect_ratio": "auto"}, {"model": "imagen-4-fast"}, False),
        ({"aspect_ratio": "5:4"}, {}, False),
    ],
)
def test_a_ratio_must_suit_the_model(params: dict, kwargs: dict, taken: bool) -> None:
    form, notes = form_from_query(params, **kwargs)
    assert ("aspect_ratio" in form) is taken
    assert len(notes) == (0 if taken else 1)
    if not taken:
        assert params["aspect_ratio"] in notes[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("num_images", "0"),
        ("num_images", "5"),
        ("num_images", "2.5"),
        ("num_images", "two"),
        ("seed", "-1"),
        ("seed", str(SEED_MAX + 1)),
        ("seed", "1.5"),
        ("seed", "abc"),
        ("prompt", "x" * (PROMPT_MAX_CHARS + 1)),
        ("prompt", "a bell\x07"),
        ("negative_prompt", "y" * (PROMPT_MAX_CHARS + 1)),
        ("negative_prompt", "esc\x1b[31m"),
    ],
)
def test_a_value_the_playground_would_refuse_is_left_out(name: str, value: str) -> None:
    form, notes = form_from_query({**FULL, name: value})
    assert name not in form
    assert set(form) == set(FORM_FIELDS) - {name}, "the other fields are still taken"
    assert len(notes) == 1 and notes[0]


@pytest.mark.parametrize(("name", "value"), [("seed", "0"), ("seed", str(SEED_MAX))])
def test_the_edges_are_taken(name: str, value: str) -> None:
    assert form_from_query({name: value}) == ({name: value}, [])


def test_a_link_wins_over_the_remembered_settings() -> None:
    remembered = remember("imagen-4-ultra", "16:9", 4, "text")
    form, notes = form_on_open({"model": "imagen-4", "num_images": "2"}, remembered)
    assert notes == []
    assert form == {
        "model": "imagen-4",
        "aspect_ratio": "16:9",
        "num_images": 2,
        "negative_prompt": "text",
    }


def test_the_remembered_settings_come_back_without_a_link() -> None:
    remembered = remember("imagen-4-fast", "auto", 3, "watermark")
    assert remembered == {
        "model": "imagen-4-fast",
        "aspect_ratio": "auto",
        "num_images": "3",
        "negative_prompt": "watermark",
    }
    form, _ = form_on_open({}, remembered)
    assert form == {**remembered, "num_images": 3}


def test_a_remembered_ratio_the_links_model_lacks_becomes_the_nearest() -> None:
    form, notes = form_on_open({"model": "imagen-4"}, remember("imagen-4-fast", "auto", 1, ""))
    assert (form["model"], form["aspect_ratio"], notes) == ("imagen-4", "1:1", [])


def test_edited_remembered_settings_are_dropped_without_a_word() -> None:
    edited = {"model": "imagen-9", "aspect_ratio": "16:9", "num_images": "40", "prompt": "p"}
    form, notes = form_on_open({}, edited)
    assert notes == []
    assert form == {"model": DEFAULT_MODEL, "aspect_ratio": "16:9"}  # never the prompt
    for junk in (None, [], "text", 7):
        assert form_on_open({}, junk) == ({}, [])
