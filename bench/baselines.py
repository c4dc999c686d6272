"""Bare Gradio apps: what any Gradio app costs, the references for the overhead figure.

    python -m bench.baselines echo --port 7870   # one async event that returns its input
    python -m bench.baselines hello --port 7870  # Gradio's hello-world Interface

Both are queued like the playground (100 events at once) and launched the same way.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr


async def echo(text: str) -> str:
    return text


def greet(name: str) -> str:
    return f"Hello {name}!"


def build(kind: str) -> gr.Blocks:
    if kind == "hello":
        return gr.Interface(fn=greet, inputs="text", outputs="text")
    with gr.Blocks() as demo:
        text = gr.Textbox()
        answer = gr.Textbox()
        text.submit(echo, text, answer, api_name="echo")
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["echo", "hello"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    demo = build(args.kind)
    demo.queue(default_concurrency_limit=100)
    demo.launch(server_name="127.0.0.1", server_port=args.port, ssr_mode=False, quiet=True)


if __name__ == "__main__":
    main()
