"""The page: controls on the left, progress and gallery on the right, wired to Playground."""

from __future__ import annotations

import html

import gradio as gr

from .catalog import DEFAULT_MODEL, MODELS, SEED_MAX
from .playground import MAX_IMAGES, Playground, RunSummary

EXAMPLE_PROMPTS = [
    "A ceramic coffee mug on a wooden table in morning light, the word HELLO printed on "
    "its side in a serif font, photorealistic",
    "A watercolor map of an imaginary coastal city, hand-lettered labels, soft pastel tones",
    "A red fox curled up in fresh snow at dusk, shallow depth of field, 85mm photo",
    "A retro travel poster for Mars with the headline VISIT OLYMPUS MONS, bold flat colors",
]

CSS = """
#progress { min-height: 0; }
#progress:has(.wrap:not(.hide)) { min-height: 3.2rem; }  /* room for the bar while it runs */
#summary .run-summary { padding: 0.6rem 0.8rem; border-radius: 8px; font-size: 0.95rem; }
#summary .run-ok { background: var(--color-accent-soft); }
#summary .run-failed { background: #fdecea; color: #8a1c12; }
.demo-banner { padding: 0.7rem 1rem; border-radius: 8px; background: #fff6dd;
  border: 1px solid #f0d48a; color: #5c4400; }
#gallery .caption-label { white-space: normal; overflow: visible; text-overflow: clip; }
"""


def model_choices() -> list[tuple[str, str]]:
    return [(info.choice_label, name) for name, info in MODELS.items()]


def ratio_choices(model: str, current: str) -> gr.Radio:
    """Only the ratios `model` takes; the chosen one stays if the new model takes it."""
    ratios = list(MODELS[model].aspect_ratios) if model in MODELS else ["1:1"]
    return gr.Radio(choices=ratios, value=current if current in ratios else "1:1")


def status_html(summary: RunSummary | None) -> str:
    if summary is None:
        return ""
    css_class = "run-ok" if summary.ok else "run-failed"
    return f'<div class="run-summary {css_class}">{html.escape(summary.text)}</div>'


def announce_stop() -> None:
    gr.Info("Stopped. Images that had finished are kept.")


def demo_banner(playground: Playground) -> str:
    how = (
        "Paste your RunAPI key below to generate real images"
        if not playground.settings.demo
        else "Restart without <code>--demo</code>, with a key, to generate real images"
    )
    return (
        '<div class="demo-banner"><b>Demo mode.</b> Images are placeholders drawn locally '
        f"by the built-in RunAPI simulator, not by Imagen 4. {how} (or set "
        "<code>RUNAPI_API_KEY</code> before starting the app).</div>"
    )


def build_ui(playground: Playground) -> gr.Blocks:
    settings = playground.settings
    with gr.Blocks(title="Imagen Playground", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(
            "# Imagen Playground\nGoogle DeepMind's **Imagen 4** through RunAPI: "
            "write a prompt, pick a model, get images."
        )
        if settings.may_run_demo:
            gr.HTML(demo_banner(playground))

        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                prompt = gr.Textbox(
                    label="Prompt",
                    placeholder="Describe the image: subject, setting, style, any text to render",
                    lines=4,
                    max_lines=12,
                )
                model = gr.Radio(model_choices(), value=DEFAULT_MODEL, label="Model")
                aspect_ratio = gr.Radio(
                    list(MODELS[DEFAULT_MODEL].aspect_ratios), value="1:1", label="Aspect ratio"
                )
                with gr.Row():
                    num_images = gr.Slider(
                        1, MAX_IMAGES, value=1, step=1, label="Number of images", min_width=160
                    )
                    # A Textbox, not a Number: a Number cannot be empty, and empty means random.
                    seed = gr.Textbox(
                        value="",
                        label="Seed",
                        placeholder="random",
                        info=f"Empty means random; 0 to {SEED_MAX}",
                        max_lines=1,
                        min_width=160,
                    )
                negative_prompt = gr.Textbox(
                    value="",
                    label="Negative prompt",
                    placeholder="What to leave out (optional)",
                    info="Imagen 4 may ignore this: newer model versions do not take one.",
                    lines=1,
                )
                api_key = gr.Textbox(
                    value="",  # also what makes `api_key` optional in the API
                    label="RunAPI key",
                    type="password",
                    placeholder="Paste your key to use RunAPI; leave empty for the demo",
                    info="Used only for your requests in this browser tab; never stored.",
                    visible=settings.may_run_demo and not settings.demo,
                )
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", scale=2)
                    stop_button = gr.Button("Stop", variant="stop", scale=1)
                gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt], label="Example prompts")

            with gr.Column(scale=3, min_width=320):
                # The bar gets a component of its own: Gradio resets the one it is shown on
                # when a run ends.
                progress = gr.HTML(elem_id="progress", padding=False, container=False)
                summary = gr.HTML(elem_id="summary", padding=False, container=False)
                gallery = gr.Gallery(
                    label="Gallery",
                    elem_id="gallery",
                    columns=2,
                    height="auto",
                    object_fit="contain",
                    preview=False,
                    buttons=["download", "fullscreen"],
                    interactive=False,
                )

        history = gr.State([])  # this session's images, newest first
        last_run = gr.State(None)

        # In the order, and with the names, of Playground.generate's API parameters.
        form = [prompt, model, aspect_ratio, negative_prompt, num_images, seed, api_key]
        generation = generate_button.click(
            playground.generate,
            inputs=[*form, history],
            outputs=[gallery, history, last_run],
            api_name="generate",
            concurrency_limit=settings.max_concurrent_runs,
            concurrency_id="generate",
            show_progress_on=[progress],
        )
        generate_button.click(None, None, [summary], js="() => ''", api_visibility="private")
        generation.success(status_html, [last_run], [summary], api_visibility="private")
        # A toast: the summary line belongs to finished runs (Generate clears it, and a
        # cancelled run never reaches `.success`).
        stop_button.click(announce_stop, cancels=[generation], api_visibility="private")
        model.change(ratio_choices, [model, aspect_ratio], [aspect_ratio], api_visibility="private")
    return demo
