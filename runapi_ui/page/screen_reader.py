"""What a screen reader hears (issue 24): runs announced at their milestones, images
described by their prompt and model, and Gradio's icon buttons named.

The feed of runs (`feed.py`) is rewritten by the server on every tick, so a live region
inside it would be replaced and would chatter. HEAD instead makes one visually hidden
live region (`#ip-announcer`, role="log", polite) when the page opens, and watches the
feed's cards: each card carries its run's milestone (`data-state`, `data-done`,
`data-total`), and a sentence is added to the log only when a card's milestone moves: a
run started, each image done, its end. A run that started before the page loaded (its
card is marked `data-resumed`; a reload) is not news: its card sets the starting point,
and only what it does next is said. The sentences are the `announce.*` strings of the
language the page's `#language` switch has checked.

Images: the results' alt text is "prompt… — model", from a hidden list the summary
carries (`results_alts`, in the gallery's order); a history tile's is its caption, which
starts with the prompt and the model. A caption that the alt text already says is hidden
from screen readers, so a tile is not read twice.
"""

from __future__ import annotations

import html
import json

from .. import translations
from ..runs.history import Entry

ALT_PROMPT_CHARS = 80  # an image's alt text: its prompt cut here, then its model
# The strings the page's script is given, in every language (literal keys:
# tests/test_translations.py looks for each key's name in the code).
SCRIPT_STRINGS = (
    "announce.started",
    "announce.image_done",
    "announce.done",
    "announce.partly_failed",
    "announce.failed",
    "announce.stopped",
    "alt.upload_sources",
)


def shortened(text: str, chars: int) -> str:
    """`text` on one line, cut to `chars` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"


def alt_text(prompt: str, model: str) -> str:
    """An image's alt text: its prompt, shortened, and its model."""
    return f"{shortened(prompt, ALT_PROMPT_CHARS)} — {model}"


def results_alts(entry: Entry) -> str:
    """A hidden element listing the alt text of the entry's images, in the results' order.

    A remix's sources come after its images and keep their captions ("Source 1 of this
    remix") as alt text. An image whose file and preview are both gone keeps its place
    (a placeholder that says so), so each alt stays with its image.
    """
    alts = [alt_text(entry["prompt"], job["model"]) for job in entry["jobs"] if job.get("image")]
    listed = html.escape(json.dumps(alts, ensure_ascii=False))
    return f'<div class="image-alts" hidden data-alts="{listed}"></div>'


_SCRIPT = """
<style>
  /* Read by screen readers, never seen. */
  .ip-sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
    overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
</style>
<script>
(() => {
  const STRINGS = __STRINGS__;
  const ENGLISH = "__ENGLISH__";
  const ENDS = {"done": "announce.done", "partly failed": "announce.partly_failed",
    "failed": "announce.failed", "stopped": "announce.stopped"};
  const SAID_PROMPT_CHARS = 40;  // a sentence names its run by this much of the prompt
  const KEPT_SENTENCES = 5;  // older ones leave the log (a removal is not read)

  const language = () => {
    const code = document.querySelector("#language input:checked")?.value;
    return code in STRINGS ? code : ENGLISH;
  };
  const say = (key, fields = {}) =>
    STRINGS[language()][key].replace(/\\{(\\w+)\\}/g, (_, name) => String(fields[name]));
  // A card's data-prompt is on one line already (feed.py).
  const shortPrompt = (prompt = "") =>
    prompt.length > SAID_PROMPT_CHARS ? `${prompt.slice(0, SAID_PROMPT_CHARS - 1)}…` : prompt;

  // The live region exists before anything is said in it: one added late is not read.
  // A log, not a status: a status is read whole (aria-atomic) at each new sentence.
  const log = document.createElement("div");
  log.id = "ip-announcer";
  log.className = "ip-sr-only";
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-relevant", "additions");
  const announce = (sentence) => {
    const line = document.createElement("p");
    line.textContent = sentence;
    log.append(line);
    while (log.childElementCount > KEPT_SENTENCES) log.firstElementChild.remove();
  };

  // Each run's last milestone announced, by its id; kept after its card leaves the feed.
  const milestones = new Map();
  const sentences = (card, before) => {
    const state = card.dataset.state;
    const done = Number(card.dataset.done);
    const total = Number(card.dataset.total);
    const prompt = shortPrompt(card.dataset.prompt);
    const said = [];
    if (!before) {
      // First seen: a run started before this page loaded (a reload) is not news; its
      // milestones from now on are.
      if ("resumed" in card.dataset) return [];
      said.push(say("announce.started", {prompt}));
      before = {state: "running", done: 0};
    }
    // Several images may land between two rewrites of the feed: each is said, in order.
    for (let image = before.done + 1; image <= done; image += 1) {
      said.push(say("announce.image_done", {done: image, total, prompt}));
    }
    if (state in ENDS && !(before.state in ENDS)) {
      said.push(say(ENDS[state], {done, total, prompt}));
    }
    return said;
  };
  const announceRuns = () => {
    for (const card of document.querySelectorAll("#runs-feed .run-card[data-run]")) {
      const before = milestones.get(card.dataset.run);
      const done = Number(card.dataset.done);
      if (before && before.state === card.dataset.state && before.done === done) continue;
      sentences(card, before).forEach(announce);
      milestones.set(card.dataset.run, {state: card.dataset.state, done});
    }
  };

  const setAttribute = (element, name, value) => {
    if (element && element.getAttribute(name) !== value) element.setAttribute(name, value);
  };
  // Alt text for the images of #results (the summary's list, in gallery order) and of
  // #history (each tile's caption), in the grid and in the preview's strip and image.
  const describeImages = () => {
    for (const gallery of document.querySelectorAll("#results, #history")) {
      const carried = gallery.id === "results"
        ? document.querySelector("#summary .image-alts")?.dataset.alts : null;
      const alts = JSON.parse(carried || "[]");
      gallery.querySelectorAll("button.thumbnail-lg").forEach((tile, index) => {
        const caption = tile.querySelector(".caption-label");
        const words = caption?.textContent.trim() || "";
        const alt = alts[index] || words;
        setAttribute(tile.querySelector("img"), "alt", alt);
        if (caption) setAttribute(caption, "aria-hidden", String(alt === words));
      });
      const strip = [...gallery.querySelectorAll("button.thumbnail-small")];
      strip.forEach((thumbnail, index) => {
        const image = thumbnail.querySelector("img");
        setAttribute(image, "alt", alts[index] || image?.title || "");
      });
      const selected = strip.findIndex((thumbnail) => thumbnail.classList.contains("selected"));
      const detailed = gallery.querySelector("img[data-testid=detailed-image]");
      if (alts[selected]) setAttribute(detailed, "alt", alts[selected]);
    }
  };

  // Gradio's icon buttons whose name is a translation key it lacks (Remix's sources:
  // "common.upload"): named in the page's language.
  const nameButtons = () => {
    for (const button of document.querySelectorAll(
      'button[aria-label="common.upload"], button[data-ip-named="upload"]')) {
      button.dataset.ipNamed = "upload";
      setAttribute(button, "aria-label", say("alt.upload_sources"));
      setAttribute(button, "title", say("alt.upload_sources"));
    }
  };

  const update = () => {
    announceRuns();
    describeImages();
    nameButtons();
  };
  const start = () => {
    document.body.append(log);
    new MutationObserver(update).observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true,
      attributeFilter: ["data-state", "data-done", "alt", "aria-label", "src", "aria-checked"],
    });
    update();
  };
  // Gradio adds this <head> once the page is up; read before that, the body would be missing.
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
</script>
"""

HEAD = _SCRIPT.replace("__STRINGS__", translations.for_script(SCRIPT_STRINGS)).replace(
    "__ENGLISH__", translations.ENGLISH
)
