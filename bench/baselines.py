"""Bare Gradio apps: what any Gradio app costs, the references for the app's figures.

    python -m bench.baselines echo --port 7870   # one async event that returns its input
    python -m bench.baselines hello --port 7870  # Gradio's hello-world Interface
    python -m bench.baselines wait --port 7870   # /generate: waits 2 s, returns one image

`wait` is the floor for the many-visitors figure: the least any Gradio app that makes
an image in 2 s does (the playground's `/generate` parameters, skipping Gradio's
per-input preprocessing as it does; one fresh PNG file per call, no RunAPI, no progress).
All are queued like the playground (100 events at once) and launched the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from runapi_ui.runapi.simulator import render_image

WAIT_SECONDS = 2.0  # the figure's task duration
IMAGES = Path(tempfile.gettempdir()) / "imagen-playground-bench-wait"  # emptied at each start
PNG = render_image("a lighthouse at dusk", "imagen-4-fast", "1:1", 7)


async def echo(text: str) -> str:
    return text


def greet(name: str) -> str:
    return f"Hello {name}!"


async def generate(
    prompt: str,
    model: str = "imagen-4-fast",
    aspect_ratio: str = "1:1",
    negative_prompt: str = "",
    num_images: float = 1,
    seed: str = "",
    api_key: str = "",
) -> list[tuple[str, str]]:
    await asyncio.sleep(WAIT_SECONDS)
    path = IMAGES / f"{secrets.token_urlsafe(16)}.png"
    path.write_bytes(PNG)
    return [(str(path), f"{model} · seed {seed}")]


def build(kind: str) -> gr.Blocks:
    if kind == "hello":
        return gr.Interface(fn=greet, inputs="text", outputs="text")
    if kind == "wait":
        shutil.rmtree(IMAGES, ignore_errors=True)
        IMAGES.mkdir()
        with gr.Blocks() as demo:
            inputs = [gr.Textbox(), gr.Textbox(), gr.Textbox("1:1"), gr.Textbox("")]
            inputs += [gr.Number(1), gr.Textbox(""), gr.Textbox("")]
            gallery = gr.Gallery()
            # Without Gradio's per-input preprocessing, as the playground's endpoints:
            # the floor stays the least a Gradio app of this shape costs.
            gr.Button().click(generate, inputs, gallery, api_name="generate", preprocess=False)
        return demo
    with gr.Blocks() as demo:
        text = gr.Textbox()
        answer = gr.Textbox()
        text.submit(echo, text, answer, api_name="echo")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["echo", "hello", "wait"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    demo = build(args.kind)
    demo.queue(default_concurrency_limit=100)
    demo.launch(
        server_name="127.0.0.1",
        server_port=args.port,
        ssr_mode=False,
        quiet=True,
        max_threads=100,
        allowed_paths=[str(IMAGES)],
    )


if __name__ == "__main__":
    main()
