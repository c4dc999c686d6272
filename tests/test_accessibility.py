"""The page for everyone: light and dark, keyboard only, audited by axe-core, installable.

axe-core comes from npm (`.ci/run` installs it into .ci/node); Chromium is Debian's.
Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect

from bench.processes import free_port
from runapi_ui.page.server import ICON, PlaygroundApp
from runapi_ui.runapi.simulator import SimulatorServer, image_digest, parse_faults, render_image
from runapi_ui.runs.settings import Settings
from tests.conftest import launched_app, settle, shot
from tests.test_simulator import HONG_KONG_PROMPT

AXE = Path(__file__).resolve().parent.parent / ".ci/node/node_modules/axe-core/axe.min.js"
WIDTHS = (1366, 390)

# Serious findings in Gradio's own components that only a patched Gradio could change,
# as (rule, a part of the element's selector as axe gives it): why. The rest was ours or
# fixable from outside: the theme (runapi_ui/page/theme.py) and its ARIA_FIXES.
ALLOWED = {
    ("nested-interactive", ".toast-header"): (
        "Gradio's toast (gr.Warning/gr.Error; statustracker's Toast) makes its whole header "
        "a role=button (click to expand) around its own Close button; taking the role away "
        "would take its keyboard toggle with it"
    ),
}

# The violations axe finds, as {"id", "impact", "targets"}: where it looked, what it saw.
AXE_RUN = """async () => (await axe.run(document)).violations.map((v) => ({
  id: v.id, impact: v.impact, targets: v.nodes.map((n) => n.target.join(" ")),
}))"""


# No transition under way: running animations are endless (a spinner) or timers (a
# toast's countdown), not a fade.
SETTLED = """() => document.getAnimations().every((animation) => {
  const timing = animation.effect.getComputedTiming();
  return animation.playState !== "running" || timing.activeDuration > 2000;
})"""
# The example prompts drawn: their buttons are empty (nameless) until Gradio has loaded the
# component that draws them, a moment after the form.
EXAMPLES_DRAWN = """() => [...document.querySelectorAll('#form .gallery-item')]
  .every((example) => example.textContent.trim())"""

# How a focused element shows it: the ring is an outline or a box shadow.
FOCUS_RING = """(el) => {
  const style = getComputedStyle(el);
  const outline = style.outlineStyle === "none" || style.outlineWidth === "0px"
    ? "none" : `${style.outlineWidth} ${style.outlineStyle} ${style.outlineColor}`;
  return {focusVisible: el.matches(":focus-visible"), outline, boxShadow: style.boxShadow};
}"""


@pytest.fixture(scope="module", autouse=True)
def axe_core() -> None:
    assert AXE.exists(), "install axe-core first: npm install --prefix .ci/node axe-core@4"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[PlaygroundApp, str]]:
    """The app in demo mode, its placeholders quick to come."""
    settings = Settings(
        demo=True,
        port=free_port(),
        simulator_time_scale=0.05,
        data_dir=tmp_path_factory.mktemp("access"),
    )
    with launched_app(settings) as app:
        yield app.app, app.url


def open_page(browser: Browser, url: str, width: int, scheme: str = "light") -> Page:
    """The page at `width` px, in the colour scheme the visitor's system asks for."""
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(url)
    settle(page)
    return page


def generate(page: Page, prompt: str) -> None:
    """One image of `prompt`, shown, and its run in the history."""
    runs = page.locator("#history .thumbnail-item").count()
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#history .thumbnail-item")).to_have_count(runs + 1)
    expect(page.locator("#results img")).to_have_count(1)


def fail_a_run(page: Page, simulator: SimulatorServer) -> None:
    """A run the simulator fails: its summary shows in the error colours."""
    simulator.simulator.config.faults = parse_faults("task_fail")
    try:
        page.get_by_label("Prompt", exact=True).fill("A run that fails")
        page.get_by_role("button", name="Generate").click()
        expect(page.locator("#summary .run-failed")).to_be_visible()
    finally:
        simulator.simulator.config.faults = []


def audit(page: Page, state: str) -> list[str]:
    """axe's findings: a line of counts printed; the serious ones not allowed returned."""
    page.wait_for_function(SETTLED)  # a toast fading in has, for a moment, faint text
    page.wait_for_function(EXAMPLES_DRAWN)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(AXE_RUN)
    counts = Counter(v["impact"] for v in violations for _ in v["targets"])
    print(f"axe {state}: {dict(counts) or 'no violations'}")
    return [
        f"{v['id']} ({v['impact']}) at {target}"
        for v in violations
        if v["impact"] in ("critical", "serious")
        for target in v["targets"]
        if not allowed(v["id"], target)
    ]


def allowed(rule: str, target: str) -> bool:
    return any(rule == allowed_rule and part in target for allowed_rule, part in ALLOWED)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious(browser: Browser, served, scheme: str, width: int) -> None:
    page = open_page(browser, served[1], width, scheme)
    assert page.evaluate("document.body.classList.contains('dark')") == (scheme == "dark")
    found = audit(page, f"{scheme} {width}px fresh")
    fail_a_run(page, served[0].simulator)
    page.get_by_role("button", name="Compare 3 models").hover()  # a secondary button's hover
    found += audit(page, f"{scheme} {width}px after a failed run")
    generate(page, "A lighthouse on a cliff at dawn")
    shot(page, f"{scheme}-{width}")
    page.get_by_role("button", name="Generate").hover()  # the primary button's hover
    found += audit(page, f"{scheme} {width}px after a run")
    page.context.close()
    assert found == [], "\n".join(found)


def test_dark_mode_from_the_address_too(browser: Browser, served) -> None:
    page = open_page(browser, served[1] + "?__theme=dark", 1366)
    assert page.evaluate("document.body.classList.contains('dark')")
    page.context.close()


def test_keyboard_alone_reaches_the_prompt_and_generates(browser: Browser, served) -> None:
    page = open_page(browser, served[1], 1366)
    prompt = page.get_by_label("Prompt", exact=True)
    generate_button = page.get_by_role("button", name="Generate")
    presses = [tab_to(page, prompt), tab_to(page, generate_button)]
    ring = generate_button.evaluate(FOCUS_RING)
    page.keyboard.press("Shift+Tab")  # back to the prompt
    unfocused = generate_button.evaluate(FOCUS_RING)
    print(f"Tab presses: {presses[0]} to the prompt, {presses[1]} more to Generate; {ring}")
    assert ring["focusVisible"], "Generate was not focused the keyboard's way"
    # Chromium's own ring (outline: auto) unless the theme draws one with a shadow.
    assert ring["outline"] != "none" or ring["boxShadow"] != unfocused["boxShadow"], ring
    assert unfocused["outline"] == "none", "the ring stays when the focus leaves"
    page.keyboard.type("A kite over the sea")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#results img")).to_have_count(1)
    page.context.close()


def tab_to(page: Page, target: Locator, limit: int = 40) -> int:
    """Press Tab until `target` has the focus; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if target.evaluate("(el) => el === document.activeElement"):
            return presses
    raise AssertionError(f"Tab did not reach {target} in {limit} presses")


def test_a_chinese_prompt_is_drawn_in_the_demo(browser: Browser, served) -> None:
    """The page shows the placeholder tests/test_simulator.py checks for empty boxes."""
    page = open_page(browser, served[1], 1366)
    generate(page, HONG_KONG_PROMPT)
    expect(page.locator("#history .thumbnail-item").first).to_contain_text(HONG_KONG_PROMPT)
    shot(page, "chinese-prompt")
    seed = int(re.findall(r"seed (\d+)", page.locator("#results").inner_text())[0])
    shown = httpx.get(page.locator("#results img").get_attribute("src")).content
    drawn = render_image(HONG_KONG_PROMPT, "imagen-4", "1:1", seed)
    assert image_digest(shown) == image_digest(drawn)
    page.context.close()


def test_it_installs_as_an_app_with_our_icon(browser: Browser, served) -> None:
    url = served[1]
    manifest = httpx.get(url + "manifest.json").json()
    assert manifest["name"] == "Imagen Playground"
    ours = Image.open(ICON)
    for icon in manifest["icons"]:
        served_icon = Image.open(io.BytesIO(httpx.get(url + icon["src"].lstrip("/")).content))
        assert f"{served_icon.width}x{served_icon.height}" == icon["sizes"]
        assert (
            served_icon.convert("RGBA").tobytes()
            == ours.resize(served_icon.size).convert("RGBA").tobytes()
        )
    page = open_page(browser, url, 1366)
    favicon = page.evaluate("document.querySelector('link[rel~=icon]')?.href")
    assert httpx.get(favicon).content == ICON.read_bytes()
    page.context.close()
