"""The app's named endpoints for scripts (`gradio_client`): `/generate`, `/compare`, `/remix`.

They take keywords, return the images as a gallery once the run has ended (progress
comes through Gradio's progress updates meanwhile), and go through the same
`Playground.start*` as the page, so the key policy and the limits hold for them too.

They return, not yield: `gradio_client` downloads every file of every yield again, so a
gallery streamed image by image cost a script (and this server) 1+2+…+n+n downloads for
n images instead of n (`python -m bench` measures what that did to 50 visitors at once).
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Coroutine
from typing import Any

import gradio as gr

from ..runapi.catalog import DEFAULT_MODEL
from ..runs.access import KeyRequired
from ..runs.playground import Playground, Refusal
from ..runs.quota import LimitError
from ..runs.registry import Run
from ..runs.remixing import file_paths
from .page_errors import page_message

GalleryItems = list[tuple[str, str]]


class ApiHandlers:
    def __init__(self, playground: Playground) -> None:
        self.playground = playground

    async def generate(
        self,
        prompt: str,
        model: str = DEFAULT_MODEL,
        aspect_ratio: str = "1:1",
        negative_prompt: str = "",
        num_images: int = 1,
        seed: str = "",
        api_key: str = "",
        request: gr.Request = None,  # type: ignore[assignment] - Gradio injects it
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - how Gradio injects it
    ) -> GalleryItems:
        """Generate 1-4 images; returns them as a gallery once every task has ended."""
        run = await started(
            self.generate_run(
                _text(prompt),
                model,
                aspect_ratio,
                _text(negative_prompt),
                num_images,
                _text(seed),
                _text(api_key),
                request,
            )
        )
        return await self._follow(run, progress)

    async def compare(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        negative_prompt: str = "",
        seed: str = "",
        api_key: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> GalleryItems:
        """One image from each of imagen-4-fast, imagen-4 and imagen-4-ultra, same seed."""
        run = await started(
            self.compare_run(
                _text(prompt),
                aspect_ratio,
                _text(negative_prompt),
                _text(seed),
                _text(api_key),
                request,
            )
        )
        return await self._follow(run, progress)

    async def remix(
        self,
        prompt: str,
        images: list[str] | None = None,
        aspect_ratio: str = "auto",
        output_resolution: str = "1k",
        output_format: str = "png",
        num_images: int = 1,
        api_key: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> GalleryItems:
        """Remix 1-8 source images (`handle_file`) into 1-4 images with Imagen 4 Pro."""
        run = await started(
            self.remix_run(
                _text(prompt) or "",
                images,
                str(aspect_ratio),
                str(output_resolution),
                str(output_format),
                num_images,
                _text(api_key),
                request,
            )
        )
        return await self._follow(run, progress)

    def remix_run(
        self,
        prompt: str,
        images: Any,
        aspect_ratio: str,
        output_resolution: str,
        output_format: str,
        num_images: Any,
        api_key: str | None,
        request: gr.Request | None,
    ) -> Coroutine[Any, Any, Run]:
        """A Remix's run, not yet started: the page checks its tab's caps first."""
        return self.playground.start_remix(
            prompt=prompt,
            sources=file_paths(images),
            aspect_ratio=aspect_ratio,
            output_resolution=output_resolution,
            output_format=output_format,
            num_images=num_images,
            api_key=api_key,
            visitor=self.playground.visitor(request),
        )

    def generate_run(
        self,
        prompt: str | None,
        model: str,
        aspect_ratio: str,
        negative_prompt: str | None,
        num_images: Any,
        seed: str | None,
        api_key: str | None,
        request: gr.Request | None,
    ) -> Coroutine[Any, Any, Run]:
        """A Generate's run, not yet started: the page checks its tab's caps first."""
        return self.playground.start(
            prompt=prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            num_images=num_images,
            seed=seed,
            api_key=api_key,
            visitor=self.playground.visitor(request),
        )

    def compare_run(
        self,
        prompt: str | None,
        aspect_ratio: str,
        negative_prompt: str | None,
        seed: str | None,
        api_key: str | None,
        request: gr.Request | None,
    ) -> Coroutine[Any, Any, Run]:
        """A Compare's run, not yet started."""
        return self.playground.start_compare(
            prompt=prompt,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            seed=seed,
            api_key=api_key,
            visitor=self.playground.visitor(request),
        )

    async def _follow(self, run: Run, progress: gr.Progress) -> GalleryItems:
        """The run's progress at each change of its state ("Generating · 1 of 2 images
        done") until it ends, then its gallery (or its error).

        Only changes, without the seconds the page's bar counts: each progress message
        costs this server and the script alike, and a tick a second made a tenth of the
        server's work with 50 scripts at once (`python -m bench` measures them).
        """
        durations = self.playground.durations(run.is_demo)
        async for current in run.changes(_state_words, tick=None):
            progress(current.fraction(durations), _state_words(current))
        if run.images or run.stopped:
            return _items(run)
        failures = run.failures()
        message = failures[0] if failures else "No image came back. Try again."
        raise gr.Error(message, print_exception=False)  # to scripts: plain text


async def started(start: Awaitable[Run], *, language: str | None = None) -> Run:
    """The run, or the reason it could not start as a gr.Error: with the page's
    `language`, a toast in it (escaped: the toast renders HTML); without, an AppError's
    plain English for gradio_client."""
    try:
        return await start
    except Refusal as error:
        message = error.message if language is None else html.escape(page_message(language, error))
        raise gr.Error(message, title=_error_title(error), print_exception=False) from None


def _error_title(error: Exception) -> str:
    if getattr(error, "field", None):
        return "Check your input"
    if isinstance(error, LimitError):
        return "Limit reached"
    if isinstance(error, KeyRequired):
        return "Key needed"
    return "Could not start"


def _text(value: object) -> str | None:
    """A text field as Gradio's Textbox would have passed it (these endpoints skip
    Gradio's preprocessing): a script may send a number where text goes."""
    return None if value is None else str(value)


def _state_words(run: Run) -> str:
    return run.describe(seconds=False)


def _items(run: Run) -> GalleryItems:
    """In request order (a compare reads fast, standard, ultra), whatever order they landed."""
    order = {id(job.image): index for index, job in enumerate(run.jobs) if job.image}
    images = sorted(run.images, key=lambda image: order.get(id(image), 0))
    return [(str(image.path), image.caption) for image in images]
