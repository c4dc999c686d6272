"""How the page looks: Gradio's Soft theme, with text that stays readable.

Each colour set here is the Soft theme's one shade darker, so its text reaches WCAG's
4.5:1 contrast, light and dark (axe-core checks it: tests/test_accessibility.py).
"""

from __future__ import annotations

import gradio as gr

# Gradio's components name a few elements in ways screen readers trip over; this fixes
# their attributes where they appear (Gradio itself is not patched):
# - an empty gallery's placeholder has an `aria-label` but no role, which ARIA forbids:
#   it is an icon standing for "Empty value", so it gets role="img";
# - the upload area's `aria-label` hides the words it shows ("Drop File Here - or -
#   Click to Upload"), which voice control users say: its own text names it instead
#   (not the small upload icon's, which shows no words);
# - a gallery thumbnail's `aria-label` ("Thumbnail 1 of 2") hides its caption: its image
#   and caption name it (their alt text: screen_reader.py).
ARIA_FIXES = """<script>
(() => {
  const fix = () => {
    for (const box of document.querySelectorAll("div.empty[aria-label]:not([role])")) {
      box.setAttribute("role", "img");
    }
    const areas = "button.upload-container[aria-label]:not(.icon-mode)";
    for (const area of document.querySelectorAll(areas)) {
      area.removeAttribute("aria-label");
    }
    for (const thumbnail of document.querySelectorAll("button.thumbnail-item")) {
      if (!thumbnail.querySelector(".caption-label")?.textContent.trim()) continue;
      thumbnail.removeAttribute("aria-label");
    }
  };
  new MutationObserver(fix).observe(document.documentElement, {
    subtree: true, childList: true, characterData: true, attributeFilter: ["aria-label"],
  });
})();
</script>"""


def playground_theme() -> gr.themes.Base:
    """Soft, with its labels, subdued text, selected radios and buttons darker."""
    return gr.themes.Soft().set(
        # Labels sit on primary_100: primary_500 text there was 3.6:1.
        block_label_text_color="*primary_700",
        block_title_text_color="*primary_700",
        # Hints, "- or -", the footer: neutral_400 on white was 2.5:1.
        body_text_color_subdued="*neutral_600",
        # White text on primary_500 was 4.46:1, and on the hover shade (primary_400,
        # what a run's pending button shows under the pointer) 3.0:1.
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_background_fill_hover_dark="*primary_700",
        button_primary_border_color="*primary_600",
        button_primary_border_color_hover="*primary_700",
        button_primary_border_color_hover_dark="*primary_700",
        # Dark mode's hovered secondary (and Stop) button: white on primary_500, 4.46:1.
        button_secondary_background_fill_hover_dark="*primary_600",
        checkbox_label_background_fill_selected="*primary_600",
    )
