"""The page's languages: every file complete, every key used, the right language per browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runapi_ui import translations
from runapi_ui.translations import ENGLISH, LANGUAGES, SIMPLIFIED, TRADITIONAL, language_for

PACKAGE = Path(translations.__file__).parent.parent
# A key as code names it: a quoted, dotted, lower-case literal ("history.caption").
KEY_IN_CODE = re.compile(r"""["']([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)["']""")


def keys_in_code() -> set[str]:
    english = set(translations.catalog(ENGLISH))
    found: set[str] = set()
    for source in PACKAGE.rglob("*.py"):
        found |= {key for key in KEY_IN_CODE.findall(source.read_text()) if key in english}
    return found


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_language_has_every_key_and_no_other(language: str) -> None:
    english = set(translations.catalog(ENGLISH))
    keys = set(translations.catalog(language))
    assert sorted(english - keys) == [], f"{language} lacks these"
    assert sorted(keys - english) == [], f"{language} has keys English lacks"


# Strings whose languages pick different fields from what the code offers (a month's name
# in English, its number in Chinese).
FIELDS_OFFERED = {"date.utc": {"year", "month", "month_name", "day", "time"}}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_string_fills_the_same_fields_as_english(language: str) -> None:
    field = re.compile(r"{(\w*)}")
    for key, english in translations.catalog(ENGLISH).items():
        theirs = translations.catalog(language)[key]
        assert theirs.strip(), f"{language}: {key} is empty"
        if key in FIELDS_OFFERED:
            assert set(field.findall(theirs)) <= FIELDS_OFFERED[key], key
        else:
            assert sorted(field.findall(theirs)) == sorted(field.findall(english)), key


def test_every_key_is_used_by_the_code() -> None:
    unused = set(translations.catalog(ENGLISH)) - keys_in_code()
    assert sorted(unused) == []


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-HK,zh;q=0.9,en;q=0.8", TRADITIONAL),
        ("zh-TW", TRADITIONAL),
        ("zh-MO,en", TRADITIONAL),
        ("zh-Hant-TW", TRADITIONAL),
        ("zh-CN,zh;q=0.9", SIMPLIFIED),
        ("zh-SG", SIMPLIFIED),
        ("zh-Hans-CN", SIMPLIFIED),
        ("zh", SIMPLIFIED),
        ("en-US,en;q=0.9,zh-HK;q=0.8", ENGLISH),
        ("fr-FR,zh-HK;q=0.5", TRADITIONAL),  # French is skipped, not a reason for English
        ("en;q=0.4,zh-HK", TRADITIONAL),  # by quality, not position
        ("de-DE", ENGLISH),
        ("", ENGLISH),
        (None, ENGLISH),
        ("zh-HK;q=bogus,zh-CN", SIMPLIFIED),
    ],
)
def test_the_language_follows_accept_language(header: str | None, language: str) -> None:
    assert language_for(header) == language


def test_a_stored_choice_the_page_does_not_speak_falls_back_to_english() -> None:
    assert translations.known("klingon") == ENGLISH
    assert translations.known(None) == ENGLISH
    assert translations.known(TRADITIONAL) == TRADITIONAL


def test_dates_are_written_as_each_language_writes_them() -> None:
    moment = 1_765_000_000  # 2025-12-06 05:46:40 UTC
    assert translations.date_time(ENGLISH, moment) == "Dec 6 05:46 UTC"
    assert translations.date_time(TRADITIONAL, moment) == "12月6日 05:46 UTC"
    assert translations.date_time(SIMPLIFIED, moment) == "12月6日 05:46 UTC"
