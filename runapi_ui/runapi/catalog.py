"""What RunAPI serves of Imagen 4: the models, their ratios, output sizes and prices.

One table that the client (validation), the simulator (durations, sizes) and the UI
(labels, prices) all read, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..translations import ENGLISH, text

PROMPT_MAX_CHARS = 5000  # RunAPI's limit for text to image
SEED_MAX = 2**31 - 1

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4")

# Imagen 4's output size per aspect ratio (width, height).
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1408, 768),
    "9:16": (768, 1408),
    "4:3": (1280, 896),
    "3:4": (896, 1280),
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    label: str
    price_usd: float  # per image, RunAPI's published price
    typical_seconds: float  # a prior for polling; the client learns the real figure
    aspect_ratios: tuple[str, ...]
    speed_key: str  # its speed in words, a translation key ("form.model.fastest")

    @property
    def speed(self) -> str:
        """Its speed in English words, for agents' descriptions."""
        return text(ENGLISH, self.speed_key)

    def label_at(self, price_usd: float, language: str = ENGLISH) -> str:
        """The model's choice on the page at this price per image (the live one: prices.py)."""
        speed = text(language, self.speed_key)
        return text(
            language, "form.model.choice", name=self.name, price=f"{price_usd:.2f}", speed=speed
        )

    @property
    def choice_label(self) -> str:
        """Its choice at the published price."""
        return self.label_at(self.price_usd)


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "imagen-4-fast",
            "Imagen 4 Fast",
            0.04,
            6.0,
            (*ASPECT_RATIOS, "auto"),
            "form.model.fastest",
        ),
        ModelInfo("imagen-4", "Imagen 4", 0.08, 10.0, ASPECT_RATIOS, "form.model.balanced"),
        ModelInfo(
            "imagen-4-ultra", "Imagen 4 Ultra", 0.12, 16.0, ASPECT_RATIOS, "form.model.best_quality"
        ),
    )
}

DEFAULT_MODEL = "imagen-4"

# Remix: Imagen 4 Pro draws from 1 to 8 source images. Not in MODELS, whose entries all
# take a text-to-image request (polling's prior for it: the slowest model's figure).
REMIX_MODEL = "imagen-4-pro-remix-image"
REMIX_PROMPT_MAX_CHARS = 10_000
REMIX_MAX_SOURCES = 8
REMIX_ASPECT_RATIOS: tuple[str, ...] = (
    *("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"),
    "auto",  # follows the sources
)
REMIX_RESOLUTIONS: tuple[str, ...] = ("1k", "2k", "4k")
REMIX_FORMATS: tuple[str, ...] = ("png", "jpg")  # RunAPI's spelling: `jpg`, not `jpeg`
REMIX_PRICE_CENTS: dict[str, int] = {"1k": 18, "2k": 18, "4k": 24}  # by output_resolution

# When RunAPI last published the prices above (the live schedule may differ: prices.py).
PRICES_AS_OF = "2026-07-20"


def image_size(aspect_ratio: str) -> tuple[int, int]:
    """The size Imagen 4 draws at; `auto` lets the model choose, and it chooses square."""
    return IMAGE_SIZES.get(aspect_ratio, IMAGE_SIZES["1:1"])
