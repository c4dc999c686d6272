"""The page's own JavaScript, in one place: served in the page's <head> (`launch(head=HEAD)`).

HEAD defines `window.imagenPlayground`; the `*_JS` strings are the `js=` functions of
ui.py's events, each a call into it. Add a part with a short comment saying what it is for.
"""

from __future__ import annotations

from .. import translations

# What the script says, in every language (literal keys: tests/test_translations.py looks
# for each key's name in the code); a run's end is worded as its card words it.
SCRIPT_STRINGS = (
    "script.paste_failed",
    "script.title_done",
    "script.notification",
    "script.link_copied",
    "script.clipboard_closed",
    "script.no_notifications",
    "script.notifications_blocked",
    "feed.done",
    "feed.partly_failed",
    "feed.failed",
    "feed.stopped",
)

_HEAD = """
<style>
  /* Copy link's confirmation, a toast of our own: Gradio's toasts come from the server. */
  .ip-toast { position: fixed; bottom: 1.5rem; left: 50%; transform: translateX(-50%);
    z-index: 1000; max-width: 90vw; padding: 0.6rem 1rem; border-radius: 8px;
    background: var(--background-fill-primary); color: var(--body-text-color);
    border: 1px solid var(--border-color-primary); box-shadow: 0 2px 10px rgba(0,0,0,.2);
    font-family: var(--font); font-size: 0.9rem; }
</style>
<script>
(() => {
  const ENDED = new Set(["done", "partly failed", "failed", "stopped"]);
  const NOTIFY_KEY = "imagen-playground-notify";  // "on" once the visitor opted in

  // Strings in the language the page's switch has checked, their {fields} filled.
  const STRINGS = __STRINGS__;
  const say = (key, fields = {}) => {
    const code = document.querySelector("#language input:checked")?.value;
    const strings = STRINGS[code] || STRINGS["__ENGLISH__"];
    return strings[key].replace(/\\{(\\w+)\\}/g, (_, name) => String(fields[name]));
  };
  const ENDED_WORDS = {"done": "feed.done", "partly failed": "feed.partly_failed",
    "failed": "feed.failed", "stopped": "feed.stopped"};

  const toast = (text) => {
    const note = document.createElement("div");
    note.className = "ip-toast";
    note.textContent = text;
    note.setAttribute("role", "status");
    document.body.append(note);
    setTimeout(() => note.remove(), 4000);
  };

  // Ctrl+Enter (Cmd+Enter on a Mac) anywhere in the form (#form) clicks Generate.
  // Enter and Shift+Enter keep their meaning (a new line; Gradio's submit).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
    const generate = document.getElementById("generate");
    if (!event.target.closest?.("#form") || !generate || generate.disabled) return;
    event.preventDefault();
    generate.click();
  }, true);

  // Images pasted anywhere on the page (Ctrl+V, Cmd+V) are added to Remix's sources, the
  // form switching to Remix mode so the visitor sees where they went. Gradio's file
  // component takes no paste, so they are handed to its own <input type=file>, whose
  // upload adds to the files already there. Text pasted into a text field stays text.
  const REMIX_SOURCES_INPUT = "#remix-sources input[type=file]";
  const pastedImages = (event) => {
    const clipboard = event.clipboardData;
    if (!clipboard) return [];
    const typing = event.target.closest?.("input, textarea, [contenteditable]");
    if (typing && clipboard.types.includes("text/plain")) return [];
    return [...clipboard.files].filter((file) => file.type.startsWith("image/"));
  };

  // The sources' input exists once Remix mode is shown, a server round trip after the switch.
  const remixSourcesInput = async () => {
    const remix = document.querySelector('#mode input[value="Remix"]');
    if (remix && !remix.checked) remix.click();
    for (let tries = 0; tries < 100; tries += 1) {
      const input = document.querySelector(REMIX_SOURCES_INPUT);
      if (input) return input;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return null;
  };

  document.addEventListener("paste", async (event) => {
    const images = pastedImages(event);
    if (!images.length) return;
    event.preventDefault();
    const input = await remixSourcesInput();
    if (!input) {
      toast(say("script.paste_failed"));
      return;
    }
    const files = new DataTransfer();
    for (const image of images) files.items.add(image);
    input.files = files.files;
    input.dispatchEvent(new Event("change", {bubbles: true}));
  });

  // A run that ends while the tab is hidden: "(N done)" before the title until the visitor
  // is back, and a notification if they opted in. Runs are the server's cards in
  // #runs-feed, <article class="run-card" data-run=ID data-state=... data-prompt=...>,
  // replaced on every update: so each run's last state is kept by its id.
  const notifyWanted = () =>
    localStorage.getItem(NOTIFY_KEY) === "on" && window.Notification?.permission === "granted";
  const states = new Map();
  let doneWhileHidden = 0;
  let title = null;  // the title before "(N done)" was put in front of it

  const ended = (card) => {
    doneWhileHidden += 1;
    title ??= document.title;
    document.title = say("script.title_done", {count: doneWhileHidden, title});
    if (!notifyWanted()) return;
    const prompt = card.dataset.prompt || "";
    const state = say(ENDED_WORDS[card.dataset.state] || "feed.done");
    new Notification(say("script.notification", {state}), {
      body: prompt.length > 120 ? `${prompt.slice(0, 119)}…` : prompt,
      tag: card.dataset.run,
    });
  };

  const scan = () => {
    for (const card of document.querySelectorAll("#runs-feed .run-card[data-run]")) {
      const before = states.get(card.dataset.run);
      const now = card.dataset.state;
      states.set(card.dataset.run, now);
      // First seen ended (after running, or never seen before) while nobody looks.
      if (ENDED.has(now) && !ENDED.has(before) && document.hidden) ended(card);
    }
  };

  document.addEventListener("visibilitychange", () => {
    if (document.hidden || title === null) return;
    document.title = title;
    title = null;
    doneWhileHidden = 0;
  });

  const watch = () => new MutationObserver(scan).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"],
  });
  // Gradio adds this <head> once the page is up; read before that, the body would be missing.
  if (document.body) watch(); else document.addEventListener("DOMContentLoaded", watch);

  // Copy link: the page's address with the form's values (never a key), onto the
  // clipboard; returned too, for the read-only box (the clipboard needs https or localhost).
  const copyLink = async (form) => {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(form)) {
      const text = String(value ?? "").trim();
      if (text) params.set(name, text);
    }
    const theme = new URLSearchParams(location.search).get("__theme");
    if (theme) params.set("__theme", theme);
    const link = `${location.origin}${location.pathname}?${params}`;
    try {
      await navigator.clipboard.writeText(link);
      toast(say("script.link_copied"));
    } catch {
      toast(say("script.clipboard_closed"));
    }
    return link;
  };

  // "Notify me when a run finishes": asks the browser's permission on opt-in; kept in
  // localStorage. Returns whether notifications are on (the checkbox shows that).
  const setNotify = async (on) => {
    if (on && !window.Notification) {
      toast(say("script.no_notifications"));
      on = false;
    } else if (on && Notification.permission !== "granted") {
      on = (await Notification.requestPermission()) === "granted";
      if (!on) toast(say("script.notifications_blocked"));
    }
    localStorage.setItem(NOTIFY_KEY, on ? "on" : "off");
    return on;
  };

  window.imagenPlayground = {copyLink, setNotify, notifyWanted};
})();
</script>
"""

HEAD = _HEAD.replace("__STRINGS__", translations.for_script(SCRIPT_STRINGS)).replace(
    "__ENGLISH__", translations.ENGLISH
)

# The arguments are the page's `form`, in its order; the key is not among them.
COPY_LINK_JS = """(prompt, model, aspect_ratio, negative_prompt, num_images, seed) =>
  window.imagenPlayground.copyLink(
    {prompt, model, aspect_ratio, negative_prompt, num_images, seed})"""
NOTIFY_JS = "(on) => window.imagenPlayground.setNotify(on)"
NOTIFY_WANTED_JS = "() => window.imagenPlayground.notifyWanted()"
# The page's language on <html lang>, for screen readers' voices and the CJK glyphs'
# regional forms (Gradio sets it from navigator.language alone: English for zh-HK). And
# the switch named by its visible title: Gradio's radios are a <fieldset> without one.
PAGE_LANGUAGE_JS = """(language) => {
  document.documentElement.lang = language;
  const title = document.querySelector("#language [data-testid='block-info']");
  if (!title) return;
  title.id = "language-title";
  const group = document.getElementById("language");
  group.setAttribute("role", "radiogroup");
  group.setAttribute("aria-labelledby", title.id);
}"""
