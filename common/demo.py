"""The demo dataset: pictures of one or two coloured shapes, generated on the spot.

Each picture is tagged with the colours and shapes it shows and with `one_shape` or
`two_shapes`, so a single image carries several tags at once: a small, honest multi-label
problem that a network trained from scratch can learn on a laptop CPU in about a minute.
The same seed always gives the same files.
"""

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from common.files import write_text_atomically
from common.tagfiles import default_tag_file, format_tags

COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")
CANVAS = 64  # pixels; the demo trains at this size too


def draw_shape(draw, shape, centre, radius, colour):
    x, y = centre
    if shape == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    elif shape == "square":
        side = radius * 0.85
        draw.rectangle((x - side, y - side, x + side, y + side), fill=colour)
    else:
        draw.polygon([(x, y - radius), (x - radius, y + radius * 0.8), (x + radius, y + radius * 0.8)], fill=colour)


def random_picture(rng):
    """One picture and its tags: 1 or 2 shapes that do not overlap, on a slightly noisy background."""
    shade = rng.randint(200, 245)
    image = Image.new("RGB", (CANVAS, CANVAS), (shade, shade, rng.randint(190, 245)))
    draw = ImageDraw.Draw(image)
    count = rng.choice((1, 2))
    placed, tags = [], []
    while len(placed) < count:
        radius = rng.randint(9, 15) if count == 2 else rng.randint(11, 20)
        centre = (rng.randint(radius, CANVAS - radius), rng.randint(radius, CANVAS - radius))
        if any((centre[0] - x) ** 2 + (centre[1] - y) ** 2 < (radius + r + 2) ** 2 for (x, y), r in placed):
            continue
        colour_name, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
        jitter = [max(0, min(255, channel + rng.randint(-25, 25))) for channel in COLOURS[colour_name]]
        draw_shape(draw, shape, centre, radius, tuple(jitter))
        placed.append((centre, radius))
        tags += [colour_name, shape]
    tags.append("one_shape" if count == 1 else "two_shapes")
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    return image, sorted(set(tags))


def write_demo_dataset(root, train_count=1000, infer_count=12, seed=0):
    """Write ROOT/train (images with sidecars) and ROOT/infer (images only, to be tagged).

    Returns {infer image path: true tags}, so the demo can show predictions beside the truth.
    """
    rng = random.Random(seed)
    root = Path(root)
    truth = {}
    for folder, count, with_tags in (("train", train_count, True), ("infer", infer_count, False)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            image, tags = random_picture(rng)
            path = root / folder / f"shapes_{number:04d}.png"
            image.save(path)
            if with_tags:
                write_text_atomically(default_tag_file(path), format_tags(tags))
            else:
                truth[path] = tags
    return truth
