"""The app's named endpoints for scripts (`gradio_client`): `/generate` and `/compare`.

They take keywords, return the images as a gallery, and go through the same
`Playground.start*` as the page, so the key policy and the limits hold for them too.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

import gradio as gr

from .catalog import DEFAULT_MODEL
from .playground import Playground, Refusal
from .runs import Run

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
    ) -> AsyncIterator[GalleryItems]:
        """Generate 1-4 images; yields the gallery as each lands."""
        try:
            run = await self.playground.start(
                prompt=prompt,
                model=model,
                aspect_ratio=aspect_ratio,
                negative_prompt=negative_prompt,
                num_images=num_images,
                seed=seed,
                api_key=api_key,
                visitor=self.playground.visitor(request),
            )
        except Refusal as error:
            raise gr.Error(html.escape(error.message), print_exception=False) from None
        async for items in self._follow(run, progress):
            yield items

    async def compare(
        self,
        prompt: str,
        aspect_ratio: str = "1:1",
        negative_prompt: str = "",
        seed: str = "",
        api_key: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> AsyncIterator[GalleryItems]:
        """One image from each of imagen-4-fast, imagen-4 and imagen-4-ultra, same seed."""
        try:
            run = await self.playground.start_compare(
                prompt=prompt,
                aspect_ratio=aspect_ratio,
                negative_prompt=negative_prompt,
                seed=seed,
                api_key=api_key,
                visitor=self.playground.visitor(request),
            )
        except Refusal as error:
            raise gr.Error(html.escape(error.message), print_exception=False) from None
        async for items in self._follow(run, progress):
            yield items

    async def _follow(self, run: Run, progress: gr.Progress) -> AsyncIterator[GalleryItems]:
        durations = self.playground.durations(run.is_demo)
        shown = 0
        tick = lambda run: progress(run.fraction(durations), run.describe())  # noqa: E731
        async for _ in run.milestones(tick):
            if len(run.images) != shown:
                shown = len(run.images)
                yield _items(run)
        if run.images:
            yield _items(run)
        elif not run.stopped:
            message = run.errors[0].message if run.errors else "No image came back. Try again."
            raise gr.Error(html.escape(message), print_exception=False)


def _items(run: Run) -> GalleryItems:
    """In request order (a compare reads fast, standard, ultra), whatever order they landed."""
    order = {id(job.image): index for index, job in enumerate(run.jobs) if job.image}
    images = sorted(run.images, key=lambda image: order.get(id(image), 0))
    return [(str(image.path), image.caption) for image in images]
