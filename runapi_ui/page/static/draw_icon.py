"""Draws the playground's icon, icon.png: `python -m runapi_ui.page.handlers.static.draw_icon`.

A picture frame with a spark in it, white on the page's indigo. Drawn four times larger
and scaled down, so its edges are smooth.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
SCALE = 4
INDIGO_TOP, INDIGO_BOTTOM = (99, 102, 241), (67, 56, 202)  # Tailwind indigo 500 and 700


def draw_icon() -> Image.Image:
    size = SIZE * SCALE
    unit = size / 16
    gradient = Image.linear_gradient("L").resize((size, size))
    top = Image.new("RGB", (size, size), INDIGO_TOP)
    image = Image.composite(Image.new("RGB", (size, size), INDIGO_BOTTOM), top, gradient)
    draw = ImageDraw.Draw(image)
    # The frame, and a horizon of two hills across its lower part.
    draw.rounded_rectangle(
        (3 * unit, 3 * unit, 13 * unit, 13 * unit),
        radius=1.6 * unit,
        outline="white",
        width=round(0.9 * unit),
    )
    draw.polygon(
        [
            (3.6 * unit, 12.4 * unit),
            (7 * unit, 8.4 * unit),
            (9 * unit, 10.4 * unit),
            (10.4 * unit, 9.2 * unit),
            (12.4 * unit, 11.4 * unit),
            (12.4 * unit, 12.4 * unit),
        ],
        fill="white",
    )
    # A four-pointed spark where a sun would be.
    cx, cy, long, short = 9.6 * unit, 6.2 * unit, 1.9 * unit, 0.45 * unit
    draw.polygon(
        [
            (cx, cy - long),
            (cx + short, cy - short),
            (cx + long, cy),
            (cx + short, cy + short),
            (cx, cy + long),
            (cx - short, cy + short),
            (cx - long, cy),
            (cx - short, cy - short),
        ],
        fill="white",
    )
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    draw_icon().save(Path(__file__).with_name("icon.png"), optimize=True)
