"""The README and docs/ stay true: their links, modules, imports and settings exist."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *ROOT.glob("README.*.md")]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```(?:bash|python|sh)?\n(.*?)```", re.S)


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {
        slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def commands(page: Path) -> str:
    text = page.read_text()
    return "\n".join(CODE_BLOCK.findall(text)) + "\n" + " ".join(re.findall(r"`([^`]+)`", text))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_a_command_runs_exists(page: Path) -> None:
    modules = set(re.findall(r"python -m ([\w.]+)", commands(page))) - {"pip", "pytest"}
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_import_the_docs_show_works(page: Path) -> None:
    for statement in set(re.findall(r"from (runapi_ui[\w.]*) import ([\w, ]+)", commands(page))):
        module = importlib.import_module(statement[0])
        for name in (n.strip() for n in statement[1].split(",")):
            assert hasattr(module, name), f"{statement[0]} has no {name}"


def test_every_setting_the_configuration_page_names_is_read_by_the_code() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    named = set(re.findall(r"`((?:RUNAPI|GRADIO)_[A-Z_]+)`", table))
    code = "\n".join(p.read_text() for p in (ROOT / "runapi_ui").rglob("*.py"))
    code += (ROOT / "app.py").read_text()
    unread = [name for name in named if name not in code and not name.startswith("GRADIO_")]
    assert named and unread == []
