"""The packages' plan holds: imports only go down (see runapi_ui/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import runapi_ui

ROOT = Path(runapi_ui.__file__).parent
# Bottom to top: a package may import those before it, never one after it.
LAYERS = ["translations", "runapi", "storage", "runs", "agents", "page"]
ALIASES = {"client", "pnginfo", "worker"}  # documented import paths, kept as aliases


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "runapi_ui" else None


def imports_of(path: Path) -> set[str]:
    """The runapi_ui modules a file imports, as absolute dotted names."""
    here = ["runapi_ui", *path.relative_to(ROOT).with_suffix("").parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("runapi_ui.")}


def test_every_module_lives_in_a_package_of_the_plan() -> None:
    loose = {p.stem for p in ROOT.glob("*.py")} - ALIASES - {"__init__"}
    assert loose == set()
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


def test_imports_only_go_down() -> None:
    upward = []
    for path in ROOT.rglob("*.py"):
        mine = path.relative_to(ROOT).parts[0]
        if mine not in LAYERS:
            continue
        for name in imports_of(path):
            theirs = package_of(name)
            if theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_the_documented_aliases_still_work() -> None:
    from runapi_ui.client import GenerationRequest, RunAPIClient
    from runapi_ui.pnginfo import read_settings
    from runapi_ui.runapi import client
    from runapi_ui.storage import pnginfo

    assert RunAPIClient is client.RunAPIClient and GenerationRequest is client.GenerationRequest
    assert read_settings is pnginfo.read_settings
