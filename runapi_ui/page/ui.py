"""The page: the form on the left; the runs' feed, results and history on the right; the wiring.

On a phone the two columns stack; Generate then scrolls the feed of runs into view, so
the results show up where the visitor is looking, not below the whole form.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from .. import translations
from ..agents.endpoints import add_agent_tools
from ..runapi.catalog import (
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    MODELS,
    REMIX_ASPECT_RATIOS,
    REMIX_FORMATS,
    REMIX_MAX_SOURCES,
    REMIX_MODEL,
    REMIX_RESOLUTIONS,
    SEED_MAX,
)
from ..runapi.prices import PriceBook
from ..runapi.remix import RemixRequest
from ..runapi.sources import MAX_SOURCE_BYTES
from ..runs.access import KeyPolicy, KeyRequired, KeySource
from ..runs.history import MAX_BYTES, MAX_ENTRIES
from ..runs.playground import COMPARE_MODELS, MAX_IMAGES, Playground
from . import links, page_scripts
from .api import ApiHandlers
from .extras import ExtrasHandlers
from .handlers import GENERATE_MODE, REMIX_MODE, PageHandlers, PageOutputs
from .history_view import ALL
from .page_text import PageText

HISTORY_STORAGE_KEY = "imagen-playground-history"
REMOVED_STORAGE_KEY = "imagen-playground-removed"  # deleted entries' ids, for other tabs
LANGUAGE_STORAGE_KEY = "imagen-playground-language"
# English in every language: Imagen 4 draws text in images best from English prompts, and
# these show off that (HELLO on a mug, a poster's headline).
EXAMPLE_PROMPTS = [
    "A ceramic coffee mug on a wooden table in morning light, the word HELLO printed on "
    "its side in a serif font, photorealistic",
    "A watercolor map of an imaginary coastal city, hand-lettered labels, soft pastel tones",
    "A red fox curled up in fresh snow at dusk, shallow depth of field, 85mm photo",
    "A retro travel poster for Mars with the headline VISIT OLYMPUS MONS, bold flat colors",
]

CSS = """
#runs-feed .runs-head { font-size: 0.85rem; color: var(--body-text-color-subdued);
  margin-bottom: 0.3rem; }
#runs-feed .run-cards { display: grid; gap: 0.4rem;
  grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); margin-bottom: 0.5rem; }
#runs-feed .run-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.4rem 0.6rem; font-size: 0.85rem; }
#runs-feed .run-card.is-shown { border-color: var(--color-accent); border-width: 2px; }
#runs-feed .run-card:not(.is-going) { border-style: dashed; }  /* ended: no fading (contrast) */
#runs-feed .run-card-title { white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  font-weight: 600; }
#runs-feed .run-card-shown { font-size: 0.7rem; text-transform: uppercase;
  padding: 0 0.3rem; border-radius: 4px; margin-right: 0.2rem;
  background: var(--button-primary-background-fill); color: var(--button-primary-text-color); }
#runs-feed .run-card-meta { color: var(--body-text-color-subdued); }
#runs-feed progress { width: 100%; height: 0.5rem; appearance: none; border: none;
  border-radius: 4px; background: var(--border-color-primary); }
#runs-feed progress::-webkit-progress-bar { background: var(--border-color-primary);
  border-radius: 4px; }
#runs-feed progress::-webkit-progress-value { background: var(--color-accent);
  border-radius: 4px; }
#runs-feed progress::-moz-progress-bar { background: var(--color-accent); }
/* An ended run's bar is full: a failed one's must not read as a success. */
#runs-feed .run-card[data-state="failed"] progress::-webkit-progress-value {
  background: var(--error-text-color); }
#runs-feed .run-card[data-state="failed"] progress::-moz-progress-bar {
  background: var(--error-text-color); }
#history-listing { font-size: 0.85rem; color: var(--body-text-color-subdued); }
#summary .run-summary { padding: 0.6rem 0.8rem; border-radius: 8px; font-size: 0.95rem; }
#summary .run-ok { background: var(--color-accent-soft); }
#summary .run-failed { background: var(--error-background-fill); color: var(--error-text-color);
  border: 1px solid var(--error-border-color); }
.key-banner { padding: 0.5rem 1rem; border-radius: 8px; background: var(--color-accent-soft); }
.demo-banner { padding: 0.7rem 1rem; border-radius: 8px; color: var(--body-text-color);
  background: color-mix(in srgb, var(--color-yellow-400) 18%, var(--background-fill-primary));
  border: 1px solid color-mix(in srgb, var(--color-yellow-400) 60%, transparent); }
.key-note { font-size: 0.9rem; padding: 0.3rem 0.2rem; }
.key-bad { color: var(--error-text-color); }
/* The language switch, at the top right: each choice's name on one line. */
#language label { white-space: nowrap; }
/* Chinese breaks between any two characters: a label beside the slider's number box
   shrank to one character a line on a phone. */
#num-images [data-testid="block-info"] { white-space: nowrap; }
#cost { font-size: 0.9rem; color: var(--body-text-color-subdued); }
#cost, #cost * { overflow: visible !important; max-height: none !important; }  /* it wraps */
#results .caption-label, #history .caption-label { white-space: normal; overflow: visible;
  text-overflow: clip; }
#results .caption-label { font-size: 0.8rem; padding: 2px 6px; }
/* Each image at its own shape: no fixed square cells, no letterbox bands. */
#results .grid-wrap, #history .grid-wrap, #results .gallery-container,
#history .gallery-container { height: auto !important; min-height: 0 !important;
  max-height: none !important; overflow-y: visible !important; }
#history .caption-label { font-size: 0.7rem; line-height: 1.25; display: -webkit-box;
  -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
#results .grid-container { grid-auto-rows: auto !important; align-items: start; }
#results .thumbnail-item { aspect-ratio: auto !important; height: auto !important; }
#results .thumbnail-item img { height: auto !important; max-height: 62vh; object-fit: contain; }
#history .thumbnail-item { aspect-ratio: 1 / 1; }
/* Three images (a compare) side by side. */
#results .grid-container:has(> :nth-child(3):last-child) {
  grid-template-columns: repeat(3, 1fr) !important; }
@media (max-width: 640px) {  /* a phone: one image a row, captions that leave it visible */
  #results .grid-container,
  #results .grid-container:has(> :nth-child(3):last-child) {
    grid-template-columns: 1fr !important; }
  #results .caption-label { font-size: 0.75rem; }
  #history .grid-container { grid-template-columns: repeat(3, 1fr) !important; }
}
"""

# Another tab of this browser wrote the history (or its deletions): hand what it stored
# to the server, which merges it into this tab's, so neither tab's next write drops the
# other's runs. The storage event fires only in the tabs that did not write.
HISTORY_SYNC_JS = f"""() => {{
  const kinds = {{"{HISTORY_STORAGE_KEY}": "history", "{REMOVED_STORAGE_KEY}": "removed"}};
  window.imagenHistorySync = {{history: [], removed: []}};
  window.addEventListener("storage", (event) => {{
    const kind = kinds[event.key];
    if (!kind || !event.newValue) return;
    window.imagenHistorySync[kind].push(event.newValue);
    document.getElementById("history-sync")?.click();
  }});
}}"""
TAKE_SYNC_JS = """(stored, history, removed, language) => {
  const sync = window.imagenHistorySync || {history: [], removed: []};
  const taken = JSON.stringify(sync);
  sync.history = [];
  sync.removed = [];
  return [taken, history, removed, language];
}"""

# On a narrow screen the results sit below the form: bring the runs' feed into view.
SCROLL_TO_RESULTS_JS = """() => {
  if (window.innerWidth < 800) {
    document.getElementById('runs-feed')?.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
}"""


def model_choices(prices: PriceBook, language: str = translations.ENGLISH) -> list[tuple[str, str]]:
    """Each model with its live price, and "under maintenance" while RunAPI says so."""
    choices = []
    for name, info in MODELS.items():
        price = prices.price(name)
        label = info.label_at(price.cents() / 100, language)
        status = price.status_in(language)
        choices.append((f"{label} · {status}" if status else label, name))
    return choices


def model_radio(
    playground: Playground, api_key: str, language: str = translations.ENGLISH
) -> gr.Radio:
    """The model choices at the prices this key would pay, as they stand now."""
    try:
        prices = playground.prices(playground.backend_for(api_key).is_demo)
    except KeyRequired:
        prices = playground.shown_prices
    return gr.Radio(choices=model_choices(prices, language), info=prices_info(prices, language))


def prices_info(prices: PriceBook, language: str) -> str:
    """The model choices' info: where their prices come from."""
    return translations.text(language, "form.model.info", source=prices.source_in(language))


def ratio_choices(model: str, current: str) -> gr.Radio:
    """Only the ratios `model` takes; the chosen one stays if the new model takes it.

    The value is only sent when it must change: sent back as it was when the model was
    clicked, it would undo a ratio the visitor picked while this answer was on its way.
    """
    ratios = list(MODELS[model].aspect_ratios) if model in MODELS else ["1:1"]
    if current in ratios:
        return gr.Radio(choices=ratios)
    return gr.Radio(choices=ratios, value="1:1")


def key_banner(playground: Playground, language: str = translations.ENGLISH) -> str:
    """Whose key pays, as the policy in force says; the demo banner when there is a demo."""
    note = html.escape(playground.policy.page_note(language))
    if not playground.policy.offers_demo:
        return f'<div class="key-banner">{note}</div>'
    title = html.escape(translations.text(language, "banner.demo_title"))
    about = html.escape(translations.text(language, "banner.demo_text"))
    return f'<div class="demo-banner"><b>{title}</b> {about} {note}</div>'


def key_placeholder(policy: KeyPolicy) -> str:
    """The key of what an empty key field means on this deployment."""
    if policy.keyless_source is KeySource.SERVER:
        return "form.api_key.placeholder_server"
    if policy.keyless_source is KeySource.DEMO:
        return "form.api_key.placeholder_demo"
    return "form.api_key.placeholder_own"


# Whose key pays, in the cost line (a demo run costs nothing and says so instead).
PAYER_KEYS = {KeySource.VISITOR: "cost.payer_visitor", KeySource.SERVER: "cost.payer_server"}


def cost_estimate(
    playground: Playground,
    model: str,
    num_images: int,
    api_key: str,
    language: str = translations.ENGLISH,
) -> str:
    """What Generate will cost, next to the button."""
    try:
        backend = playground.backend_for(api_key)
    except KeyRequired:
        return translations.text(language, "cost.enter_key_generate")
    if backend.is_demo or model not in MODELS:
        return translations.text(language, "cost.demo")
    prices = playground.prices(backend.is_demo)
    price, count = prices.price_usd(model), int(num_images or 1)
    compare = sum(prices.price_usd(name) for name in COMPARE_MODELS)
    return translations.text(
        language,
        "cost.generate",
        total=f"{price * count:.2f}",
        count=count,
        price=f"{price:.2f}",
        payer=translations.text(language, PAYER_KEYS[backend.source]),
        compare=f"{compare:.2f}",
        source=prices.source_in(language),
    )


def remix_estimate(
    playground: Playground,
    output_resolution: str,
    num_images: int,
    api_key: str,
    language: str = translations.ENGLISH,
) -> str:
    """What Remix will cost, next to the button (priced by output resolution)."""
    try:
        backend = playground.backend_for(api_key)
    except KeyRequired:
        return translations.text(language, "cost.enter_key_remix")
    if backend.is_demo:
        return translations.text(language, "cost.demo")
    prices = playground.prices(backend.is_demo)
    price = prices.price_usd(REMIX_MODEL, output_resolution=output_resolution)
    count = int(num_images or 1)
    return translations.text(
        language,
        "cost.remix",
        total=f"{price * count:.2f}",
        count=count,
        price=f"{price:.2f}",
        resolution=output_resolution,
        payer=translations.text(language, PAYER_KEYS[backend.source]),
        source=prices.source_in(language),
    )


def show_mode(mode: str) -> tuple[Any, ...]:
    """Remix mode shows its sources and settings; Generate, its own (seed, negative prompt)."""
    remix = mode == REMIX_MODE
    return (
        gr.Column(visible=remix),
        gr.Column(visible=not remix),
        gr.Button(visible=not remix),
        gr.Button(visible=not remix),
        gr.Button(visible=remix),
        gr.Textbox(visible=not remix),
        gr.Textbox(visible=not remix),
    )


def page_language_on_load(chosen: Any, request: gr.Request) -> str:
    """The switch's choice if the browser kept one, else the best of its Accept-Language."""
    return translations.page_language(chosen, request.headers.get("accept-language"))


def _selected_index(evt: gr.SelectData) -> int | None:
    return evt.index if isinstance(evt.index, int) else None


def build_ui(playground: Playground) -> gr.Blocks:
    settings = playground.settings
    page = PageHandlers(playground)
    extras = ExtrasHandlers(playground)
    api = ApiHandlers(playground)
    runs_at_once = {"concurrency_limit": settings.max_concurrent_runs, "concurrency_id": "runs"}
    policy = playground.policy
    texts = PageText(
        fields={
            "count": REMIX_MAX_SOURCES,
            "megabytes": MAX_SOURCE_BYTES // 2**20,
            "max": SEED_MAX,
            "max_entries": MAX_ENTRIES,
            "history_megabytes": f"{MAX_BYTES / 1e6:g}",
            "days": f"{settings.image_max_age_days:g}",
        },
        keys={"api_key": {"placeholder": key_placeholder(policy)}},
        computed={"banner": lambda language: {"value": key_banner(playground, language)}},
    )
    with gr.Blocks(title="Imagen Playground", delete_cache=(3600, 86400)) as demo:
        # Issue 24: the page is built in English; `relabel` below puts it in the language
        # picked on load (the browser's, or the switch's kept choice) or by the switch.
        with gr.Row(equal_height=False, elem_id="page-head"):
            with gr.Column(scale=1, min_width=300):  # on a phone the switch goes below
                title = gr.Markdown(**texts.of("title"))
            language = gr.Radio(
                [(name, code) for code, name in translations.LANGUAGES.items()],
                value=translations.ENGLISH,
                elem_id="language",
                scale=0,
                min_width=360,
                **texts.of("language"),
            )
        banner = gr.HTML(**texts.of("banner"))
        chosen_language = gr.BrowserState(
            "", storage_key=LANGUAGE_STORAGE_KEY, secret=settings.history_secret
        )

        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320, elem_id="form"):
                mode = gr.Radio(value=GENERATE_MODE, elem_id="mode", **texts.of("mode"))
                prompt = gr.Textbox(lines=4, max_lines=12, **texts.of("prompt"))
                # Right under the prompt: nothing above the buttons changes height while a
                # visitor moves to them (a key check's message once moved Generate mid-click).
                with gr.Row():
                    generate_button = gr.Button(
                        variant="primary", scale=2, elem_id="generate", **texts.of("generate")
                    )
                    compare_button = gr.Button(scale=2, **texts.of("compare"))
                    remix_button = gr.Button(
                        variant="primary",
                        scale=2,
                        visible=False,
                        elem_id="remix",
                        **texts.of("remix"),
                    )
                    stop_button = gr.Button(
                        variant="stop", scale=1, elem_id="stop", **texts.of("stop")
                    )
                    stop_all_button = gr.Button(  # the handlers write it, with the count
                        "Stop all", variant="stop", scale=1, visible=False, elem_id="stop-all"
                    )
                cost = gr.Markdown(cost_estimate(playground, DEFAULT_MODEL, 1, ""), elem_id="cost")
                notify = gr.Checkbox(  # Faster hands (issue 22): a word when a run ends
                    elem_id="notify", container=False, **texts.of("notify")
                )
                # --- Remix (issue 23): its own settings; no seed, no negative prompt ---------
                with gr.Column(visible=False, elem_id="remix-settings") as remix_settings:
                    remix_sources = gr.File(
                        **texts.of("remix_sources"),
                        file_count="multiple",
                        file_types=["image"],
                        type="filepath",
                        elem_id="remix-sources",
                    )
                    remix_note = gr.Markdown(elem_classes="key-note", **texts.of("remix_note"))
                    remix_ratio = gr.Dropdown(
                        list(REMIX_ASPECT_RATIOS),
                        value="auto",
                        **texts.of("remix_ratio"),
                    )
                    with gr.Row():
                        remix_resolution = gr.Radio(
                            list(REMIX_RESOLUTIONS), value="1k", **texts.of("remix_resolution")
                        )
                        remix_format = gr.Radio(
                            list(REMIX_FORMATS), value="png", **texts.of("remix_format")
                        )
                with gr.Column(elem_id="generate-settings") as generate_settings:
                    model = gr.Radio(
                        model_choices(playground.shown_prices),
                        value=DEFAULT_MODEL,
                        info=prices_info(playground.shown_prices, translations.ENGLISH),
                        **texts.of("model"),
                    )
                    aspect_ratio = gr.Radio(
                        list(MODELS[DEFAULT_MODEL].aspect_ratios),
                        value="1:1",
                        **texts.of("aspect_ratio"),
                    )
                with gr.Row():
                    num_images = gr.Slider(
                        1,
                        MAX_IMAGES,
                        value=1,
                        step=1,
                        min_width=160,
                        elem_id="num-images",
                        **texts.of("num_images"),
                    )
                    # A Textbox, not a Number: a Number cannot be empty, and empty means random.
                    seed = gr.Textbox(value="", max_lines=1, min_width=160, **texts.of("seed"))
                negative_prompt = gr.Textbox(value="", lines=1, **texts.of("negative_prompt"))
                # Faster hands (issue 22): a link to the settings above, never the key below.
                # Above the key: its check's message moves what is below it.
                copy_link_button = gr.Button(
                    size="sm", elem_id="copy-link", **texts.of("copy_link")
                )
                link_box = gr.Textbox(
                    **texts.of("link"),
                    interactive=False,
                    max_lines=1,
                    buttons=["copy"],
                    elem_id="link",
                )
                api_key = gr.Textbox(
                    value="",
                    type="password",
                    **texts.of("api_key"),
                    visible=policy.asks_for_visitor_keys,
                )
                with gr.Row(visible=policy.asks_for_visitor_keys):
                    check_key_button = gr.Button(size="sm", **texts.of("check_key"))
                    forget_key_button = gr.Button(size="sm", **texts.of("forget_key"))
                key_status = gr.HTML(elem_id="key-status", padding=False, container=False)
                examples = gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt], **texts.of("examples"))
                dropped = gr.File(
                    **texts.of("read_settings"),
                    file_count="single",
                    type="filepath",
                    height=110,
                    elem_id="read-settings",
                )
                with gr.Accordion(open=False, **texts.of("code")) as code_accordion:
                    code_note = gr.Markdown(**texts.of("code_note"))
                    curl_code = gr.Code(label="curl (bash)", language="shell", elem_id="code-curl")
                    python_code = gr.Code(
                        label="Python (httpx)", language="python", elem_id="code-python"
                    )

            with gr.Column(scale=3, min_width=320):
                # Every run of this tab with its own progress: several can go at once.
                feed = gr.HTML(elem_id="runs-feed", padding=False, container=False)
                summary = gr.HTML(elem_id="summary", padding=False, container=False)
                results = gr.Gallery(
                    **texts.of("results"),
                    show_label=False,
                    elem_id="results",
                    columns=2,
                    height="auto",
                    object_fit="contain",
                    preview=False,
                    buttons=["download", "fullscreen"],
                    interactive=False,
                )
                # The selected result (else the first) becomes a source in Remix mode.
                remix_this_button = gr.Button(
                    size="sm", elem_id="remix-this", min_width=120, **texts.of("remix_this")
                )
                with gr.Accordion(open=True, **texts.of("history")) as history_accordion:
                    history_note = gr.Markdown(**texts.of("history_note"))
                    with gr.Row(equal_height=True):
                        search = gr.Textbox(
                            **texts.of("search"),
                            max_lines=1,
                            scale=3,
                            min_width=180,
                            elem_id="history-search",
                        )
                        model_filter = gr.Dropdown(
                            value=ALL, scale=2, min_width=140, **texts.of("model_filter")
                        )
                        status_filter = gr.Dropdown(
                            value=ALL, scale=2, min_width=140, **texts.of("status_filter")
                        )
                    listing = gr.Markdown(elem_id="history-listing")
                    tiles = gr.Gallery(
                        **texts.of("tiles"),
                        show_label=False,
                        elem_id="history",
                        columns=4,
                        height="auto",
                        fit_columns=False,  # one run is one small tile, not a banner
                        object_fit="cover",
                        allow_preview=False,
                        interactive=False,
                    )
                    with gr.Row():
                        newer_button = gr.Button(
                            size="sm", elem_id="history-newer", **texts.of("newer")
                        )
                        older_button = gr.Button(
                            size="sm", elem_id="history-older", **texts.of("older")
                        )
                    with gr.Row():
                        run_again_button = gr.Button(size="sm", **texts.of("run_again"))
                        wait_again_button = gr.Button(
                            size="sm", visible=False, elem_id="wait-again", **texts.of("wait_again")
                        )
                        star_button = gr.Button(  # the handlers write Star or Unstar
                            "☆ Star", size="sm", interactive=False, elem_id="star"
                        )
                        delete_button = gr.Button(
                            size="sm", elem_id="delete-entry", **texts.of("delete")
                        )
                        clear_button = gr.Button(size="sm", variant="stop", **texts.of("clear"))
                    with gr.Row():
                        zip_run_button = gr.Button(size="sm", **texts.of("zip_run"))
                        zip_all_button = gr.Button(size="sm", **texts.of("zip_all"))
                    zip_file = gr.File(visible=False, elem_id="zip", **texts.of("zip_file"))

        history = gr.BrowserState(  # one JSON text: see history.for_browser
            "[]", storage_key=HISTORY_STORAGE_KEY, secret=settings.history_secret
        )
        removed = gr.BrowserState(
            [], storage_key=REMOVED_STORAGE_KEY, secret=settings.history_secret
        )
        shown = gr.State(None)  # the id of the history entry the results show
        # In the page but not seen: the history's sync script clicks the button.
        sync_box = gr.Textbox(visible="hidden")
        sync_button = gr.Button(elem_id="history-sync", visible="hidden")

        form = [prompt, model, aspect_ratio, negative_prompt, num_images, seed]
        remix_form = [remix_ratio, remix_resolution, remix_format]
        picked = gr.State(None)  # the index of the result last selected, for Remix this
        view = [search, model_filter, status_filter]
        page_outputs = {
            "results": results,
            "history": history,
            "tiles": tiles,
            "listing": listing,
            "summary": summary,
            "shown": shown,
            "wait_again": wait_again_button,
            "star": star_button,
            "feed": feed,
            "stop_all": stop_all_button,
        }
        outputs = [page_outputs[name] for name in PageOutputs._fields]
        private = {"api_visibility": "private"}
        # Every click starts its run, also while others of the tab go on ("multiple": by
        # default Gradio drops a click on an event still running). Each run shows its own
        # progress in the feed, not Gradio's one bar.
        side_by_side = {
            "outputs": outputs,
            "trigger_mode": "multiple",
            "show_progress": "hidden",
            **runs_at_once,
            **private,
        }
        run_buttons = (
            generate_button,
            compare_button,
            run_again_button,
            wait_again_button,
            remix_button,
        )
        # Gradio runs a click's handlers one after another, each to its end: the scroll
        # goes first, or it waits for the whole run (on a phone, nothing moved until the
        # images came). No outputs: a js event that writes a component makes Gradio drop
        # the run's own later write to it (the summary stayed empty).
        for button in run_buttons:
            button.click(None, None, None, js=SCROLL_TO_RESULTS_JS, **private)
        runs = [
            generate_button.click(
                page.on_generate, [*form, api_key, history, language], **side_by_side
            ),
            compare_button.click(
                page.on_compare,
                [prompt, aspect_ratio, negative_prompt, seed, api_key, history, language],
                **side_by_side,
            ),
            run_again_button.click(
                page.on_run_again, [history, shown, api_key, language], **side_by_side
            ),
            wait_again_button.click(
                page.on_wait_again, [history, shown, api_key, language], **side_by_side
            ),
            remix_button.click(
                page.on_remix,
                [prompt, remix_sources, *remix_form, num_images, api_key, history, language],
                **side_by_side,
            ),
        ]
        demo.load(
            page.on_load,
            [history, *view, chosen_language],
            **{**side_by_side, "trigger_mode": "once"},
        )
        for button in run_buttons:  # after the run, as said above: the new results' turn
            button.click(lambda: gr.File(value=None, visible=False), None, [zip_file], **private)
        for run_event in runs:
            run_event.then(extras.on_check_key, [api_key, language], [key_status], **private)
        stop_button.click(page.on_stop, [language], None, **private)
        stop_all_button.click(page.on_stop_all, [language], None, **private)

        tiles.select(
            page.on_select_entry,
            [history, *view, language],
            [results, summary, shown, *form, mode, *remix_form, wait_again_button, star_button],
            **private,
        )
        results.select(page.on_select_image, [history, shown, language], form, **private)
        results.select(_selected_index, None, [picked], **private)
        remix_this_button.click(
            page.on_remix_this,
            [history, shown, picked, remix_sources, language],
            [remix_sources, mode],
            **private,
        )
        mode.change(
            show_mode,
            [mode],
            [
                remix_settings,
                generate_settings,
                generate_button,
                compare_button,
                remix_button,
                seed,
                negative_prompt,
            ],
            **private,
        )
        listed = {"outputs": [tiles, listing], "show_progress": "hidden", **private}
        gr.on(
            [search.change, model_filter.change, status_filter.change],
            page.on_view,
            [*view, language],
            **listed,
        )
        newer_button.click(page.on_newer, [language], **listed)
        older_button.click(page.on_older, [language], **listed)
        quietly = {"show_progress": "hidden", **private}  # quick: no spinner over the page
        star_button.click(page.on_star, [history, shown, language], outputs, **quietly)
        delete_button.click(
            page.on_delete, [history, removed, shown, language], [*outputs, removed], **private
        )
        clear_button.click(
            page.on_clear, [history, removed, language], [*outputs, removed], **private
        )
        demo.load(None, None, None, js=HISTORY_SYNC_JS, **private)
        sync_button.click(
            page.on_sync,
            [sync_box, history, removed, language],
            [*outputs, removed],
            js=TAKE_SYNC_JS,
            trigger_mode="multiple",
            **quietly,
        )

        dropped.upload(extras.on_image_dropped, [dropped, language], [*form, dropped], **private)
        zip_run_button.click(
            extras.on_download_run, [history, shown, language], [zip_file], **private
        )
        zip_all_button.click(extras.on_download_all, [history, language], [zip_file], **private)
        code_inputs = [prompt, model, aspect_ratio, negative_prompt, seed, mode, *remix_form]

        def code_for(*values: Any) -> tuple[str, str]:
            *generate, mode_now, ratio, resolution, output_format = values
            remix = RemixRequest(
                prompt="",
                source_image_urls=(),
                aspect_ratio=ratio,
                output_resolution=resolution,
                output_format=output_format,
            )
            return extras.on_code(*generate, remix if mode_now == REMIX_MODE else None)

        gr.on(
            [demo.load, *(control.change for control in code_inputs)],
            code_for,
            code_inputs,
            [curl_code, python_code],
            trigger_mode="always_last",
            show_progress="hidden",
            **private,
        )
        for key_event in (demo.load, check_key_button.click, api_key.submit, api_key.blur):
            key_event(extras.on_check_key, [api_key, language], [key_status], **private)
        forget_key_button.click(extras.on_forget_key, [language], [api_key, key_status], **private)

        model.change(ratio_choices, [model, aspect_ratio], [aspect_ratio], **private)
        # Live prices: read in the background since start-up, shown from each page load
        # (the demo's to a visitor without a key, RunAPI's once they type one).
        gr.on(
            [demo.load, api_key.change, language.change],
            lambda key, chosen: model_radio(playground, key, chosen),
            [api_key, language],
            [model],
            trigger_mode="always_last",
            show_progress="hidden",  # no dimming while it answers: dimmed text fails 4.5:1
            **private,
        )

        def estimate(
            mode: str, model: str, resolution: str, count: int, key: str, chosen: str
        ) -> str:
            if mode == REMIX_MODE:
                return remix_estimate(playground, resolution, count, key, chosen)
            return cost_estimate(playground, model, count, key, chosen)

        priced = (mode, model, remix_resolution, num_images, api_key, language)
        gr.on(
            [demo.load, *(control.change for control in priced)],
            estimate,
            list(priced),
            [cost],
            trigger_mode="always_last",  # a key typed while the load's answer is on its way
            show_progress="hidden",
            **private,
        )

        # The language: the visitor's own choice if they made one, else their browser's.
        demo.load(page_language_on_load, [chosen_language], [language], **private)
        language.input(lambda chosen: chosen, [language], [chosen_language], **private)
        translated = {
            "title": title,
            "language": language,
            "banner": banner,
            "mode": mode,
            "prompt": prompt,
            "generate": generate_button,
            "compare": compare_button,
            "remix": remix_button,
            "stop": stop_button,
            "notify": notify,
            "remix_sources": remix_sources,
            "remix_note": remix_note,
            "remix_ratio": remix_ratio,
            "remix_resolution": remix_resolution,
            "remix_format": remix_format,
            "model": model,
            "aspect_ratio": aspect_ratio,
            "num_images": num_images,
            "seed": seed,
            "negative_prompt": negative_prompt,
            "copy_link": copy_link_button,
            "link": link_box,
            "api_key": api_key,
            "check_key": check_key_button,
            "forget_key": forget_key_button,
            "examples": examples.dataset,
            "read_settings": dropped,
            "code": code_accordion,
            "code_note": code_note,
            "results": results,
            "remix_this": remix_this_button,
            "history": history_accordion,
            "history_note": history_note,
            "search": search,
            "model_filter": model_filter,
            "status_filter": status_filter,
            "tiles": tiles,
            "newer": newer_button,
            "older": older_button,
            "run_again": run_again_button,
            "wait_again": wait_again_button,
            "delete": delete_button,
            "clear": clear_button,
            "zip_run": zip_run_button,
            "zip_all": zip_all_button,
            "zip_file": zip_file,
        }
        gr.on(
            [demo.load, language.change],
            None,
            [language],
            None,
            js=page_scripts.PAGE_LANGUAGE_JS,
            **private,
        )
        # An English page at load changes nothing (the switch starts at English), so
        # English visitors pay no relabelling.
        language.change(
            texts.relabel,
            [language],
            [translated[name] for name in texts.names],
            show_progress="hidden",
            **private,
        )
        # What the handlers wrote (the feed, the summary, the history's captions), anew.
        language.input(page.on_language, [history, language], outputs, **quietly)

        # --- Faster hands (issue 22): links, remembered settings, notifications ----------
        # One load handler for both, so a link's values win over the remembered ones.
        remembered = gr.BrowserState(
            {}, storage_key=links.SETTINGS_STORAGE_KEY, secret=settings.history_secret
        )
        demo.load(links.on_open, [remembered, chosen_language], form, **private)
        remembered_controls = [model, aspect_ratio, num_images, negative_prompt]
        gr.on(
            [control.change for control in remembered_controls],
            links.remember,
            remembered_controls,
            [remembered],
            trigger_mode="always_last",
            show_progress="hidden",
            **private,
        )
        # In the browser alone: the key is no input, and nothing reaches the server.
        copy_link_button.click(None, form, [link_box], js=page_scripts.COPY_LINK_JS, **private)
        notify.input(None, [notify], [notify], js=page_scripts.NOTIFY_JS, **private)
        demo.load(None, None, [notify], js=page_scripts.NOTIFY_WANTED_JS, **private)
        # --- end of Faster hands ------------------------------------------------------------

        # The endpoints for scripts: keywords in, gallery out; never shown on the page.
        # Inputs of their own: the page's radios would refuse, in Gradio's words, a ratio
        # the shown model lacks (`auto`), where the playground's checks explain.
        with gr.Group(visible=False):
            api_inputs = [
                gr.Textbox(),  # no value: the one required argument
                gr.Dropdown(list(MODELS), value=DEFAULT_MODEL, allow_custom_value=True),
                gr.Dropdown([*ASPECT_RATIOS, "auto"], value="1:1", allow_custom_value=True),
                gr.Textbox(""),
                # precision None: the value reaches the playground's checks unrounded (2.5
                # and "two" are refused there, naming the field).
                gr.Number(1),
                gr.Textbox(""),
                gr.Textbox(""),
            ]
            api_prompt, _, api_ratio, api_negative, _, api_seed, api_key_input = api_inputs
            api_gallery = gr.Gallery()
            api_trigger = gr.Button()
            api_remix_inputs = [
                api_prompt,
                gr.File(file_count="multiple", type="filepath"),
                gr.Dropdown(list(REMIX_ASPECT_RATIOS), value="auto", allow_custom_value=True),
                gr.Dropdown(list(REMIX_RESOLUTIONS), value="1k", allow_custom_value=True),
                gr.Dropdown(list(REMIX_FORMATS), value="png", allow_custom_value=True),
                gr.Number(1),
                api_key_input,
            ]
        # preprocess=False: Gradio preprocesses each input in a worker thread, a round trip
        # per field (seven for /generate) that, for these fields, only makes text a str;
        # the handlers do that themselves. 50 scripts at once waited ~0.1 s on those trips.
        api_trigger.click(
            api.generate,
            api_inputs,
            [api_gallery],
            api_name="generate",
            preprocess=False,
            **runs_at_once,
        )
        api_trigger.click(
            api.compare,
            [api_prompt, api_ratio, api_negative, api_seed, api_key_input],
            [api_gallery],
            api_name="compare",
            preprocess=False,
            **runs_at_once,
        )
        # Preprocessed: Gradio admits only files uploaded to it (a path sent raw could name
        # any file on this server).
        api_trigger.click(
            api.remix, api_remix_inputs, [api_gallery], api_name="remix", **runs_at_once
        )
        add_agent_tools(playground)  # generate_image, for MCP clients (served with --mcp)
    return demo
