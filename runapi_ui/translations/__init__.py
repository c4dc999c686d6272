"""What the page says, in each language it speaks: English, Traditional and Simplified Chinese.

One JSON file per language holds every string the page writes, under the same keys
(`tests/test_translations.py` fails on a key missing from a file or used nowhere). Code
asks for a string with `text(language, "some.key", name=value)`; keys are literal strings
in the code, never built at run time, so that test can find them.

The page picks the language on the server from the browser's Accept-Language (Gradio's
own choice, by `navigator.language`, shows a zh-HK visitor English), unless the visitor
chose one with the switch, which the browser keeps. Answers to scripts and agents stay
English: only the page is translated.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

ENGLISH = "en"
TRADITIONAL = "zh-Hant"  # written for Hong Kong; also served to zh-TW and zh-MO
SIMPLIFIED = "zh-Hans"  # zh-CN and zh-SG
# The switch's choices, each in its own script.
LANGUAGES: dict[str, str] = {ENGLISH: "English", TRADITIONAL: "繁體中文", SIMPLIFIED: "简体中文"}
_FOLDER = Path(__file__).parent
# BCP 47 tags (lower-cased) a browser sends, to the language that serves them.
_CHINESE_REGIONS = {
    "zh-hk": TRADITIONAL,
    "zh-tw": TRADITIONAL,
    "zh-mo": TRADITIONAL,
    "zh-hant": TRADITIONAL,
    "zh-cn": SIMPLIFIED,
    "zh-sg": SIMPLIFIED,
    "zh-hans": SIMPLIFIED,
    "zh": SIMPLIFIED,  # bare zh: mainland usage is the common reading
}


@cache
def catalog(language: str) -> dict[str, str]:
    """Every string of `language`, by key."""
    with (_FOLDER / f"{language}.json").open(encoding="utf-8") as file:
        return json.load(file)


def known(language: object) -> str:
    """`language` if the page speaks it, else English (a stored choice is the browser's to edit)."""
    return language if isinstance(language, str) and language in LANGUAGES else ENGLISH


def text(language: str, key: str, **values: object) -> str:
    """The string `key` in `language`, its `{name}` fields filled from `values`."""
    template = catalog(known(language))[key]
    return template.format(**values) if values else template


def for_script(keys: tuple[str, ...]) -> str:
    """`keys` in every language as a JavaScript object, {language: {key: text}}, for a page
    script to say things in the language the page's switch has checked."""
    strings = {language: {key: text(language, key) for key in keys} for language in LANGUAGES}
    # "</" would end the <script> element early; "<\\/" reads the same in JavaScript.
    return json.dumps(strings, ensure_ascii=False).replace("</", "<\\/")


def language_for(accept_language: str | None) -> str:
    """The language for a browser's Accept-Language header, by its preference order.

    The first tag the page can serve wins: `zh-HK` and `zh-Hant-TW` get Traditional,
    `zh-CN` and `zh` Simplified, `en-*` English; unknown ones are skipped.
    """
    for tag in _tags_by_preference(accept_language or ""):
        if tag == "en" or tag.startswith("en-"):
            return ENGLISH
        if tag == "zh" or tag.startswith("zh-"):
            parts = tag.split("-")
            for candidate in ("-".join(parts[:2]), f"zh-{parts[-1]}", "zh"):
                if candidate in _CHINESE_REGIONS:
                    return _CHINESE_REGIONS[candidate]
    return ENGLISH


def _tags_by_preference(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def date_time(language: str, timestamp: float) -> str:
    """A moment as the language writes it, in UTC (the server cannot know the visitor's zone)."""
    moment = time.gmtime(timestamp)
    return text(
        language,
        "date.utc",
        year=moment.tm_year,
        month=moment.tm_mon,
        month_name=time.strftime("%b", moment),
        day=moment.tm_mday,
        time=time.strftime("%H:%M", moment),
    )


def page_language(chosen: object, accept_language: str | None) -> str:
    """The page's language on load: the visitor's kept choice, else their browser's."""
    if isinstance(chosen, str) and chosen in LANGUAGES:
        return chosen
    return language_for(accept_language)
