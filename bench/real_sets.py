"""The benchmark suite's data: real pictures with human-written tags, built from packages that
install offline, each split so that every test item is one that training never saw.

    python bench/real_sets.py OUT_DIR --set icons [--seed 0] [--train 1000] [--test 400]

| set         | pictures                                              | tags (human-written)                  |
|-------------|-------------------------------------------------------|---------------------------------------|
| digits      | 3x3 mosaics of scikit-learn's handwritten digits       | 14, dense: digits, parity, repeat ... |
| fontawesome | Font Awesome's glyphs, solid and regular style, RGBA   | ~130, sparse long tail: search terms  |
| icons       | full-colour icons of 3 Debian themes (Oxygen, GNOME,   | ~130: context folder and the words of |
|             | elementary), RGBA                                      | the icon's names and aliases          |
| renditions  | the same icon names drawn anew by each theme at 16,    | as icons                              |
|             | 22, 32 and 48 px: up to 12 renditions of one concept   |                                       |
| contexts    | the icons of `icons`                                   | 12, dense: the context folder alone   |
|             |                                                        | (apps, mimetypes, actions, status ...)|

An item is one glyph (fontawesome) or one icon name (icons); all its pictures, whatever their
style, theme or size, land on the same side of the split. Tags are kept when at least
MIN_TAG_ITEMS training items carry them. Sources are downloaded once into bench/.data/sources:
`pip download fontawesome-free` and `apt-get download` of the icon themes (Debian or Ubuntu).

The pretraining stand-in (bench/pretrain.py) uses a fourth source, the Papirus icon theme, and
never these sets.
"""

import argparse
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.digit_mosaics import write_mosaics  # noqa: E402
from common.files import write_text_atomically  # noqa: E402
from common.tagfiles import default_tag_file, format_tags  # noqa: E402

SETS = ("digits", "fontawesome", "icons", "renditions", "contexts")
SOURCES = Path(__file__).resolve().parent / ".data" / "sources"
FONTAWESOME = "fontawesome-free==5.15.4"
ICON_THEMES = {"oxygen-icon-theme": "oxygen", "gnome-icon-theme": "gnome",
               "elementary-xfce-icon-theme": "elementary-xfce"}
PRETRAINING_THEME = "papirus-icon-theme"
# Desktop wallpapers, most of them photographs: the near-duplicate benchmark's photos (bench/duplicates.py)
WALLPAPER_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "gnome-backgrounds")
# A tag is kept when at least this many training items carry it: Font Awesome's search terms
# then number ~130, in a long tail, and the icons' folder and name words ~130 too
MIN_TAG_ITEMS = {"fontawesome": 8, "icons": 5}
DRAWING_SIZE = 64  # pixels of a rendered glyph (the benchmark trains at 64 px)


# ----------------------------------------------------------------------------- sources
def fontawesome_metadata():
    """{icon name: {"terms": [...], "styles": {style: svg text}}} and {icon: [category labels]}."""
    folder = SOURCES / "fontawesome"
    if not (folder / "icons.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(folder),
                        FONTAWESOME], check=True)
        wheel = next(folder.glob("fontawesome_free-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            icons = json.loads(archive.read("fontawesome-free/static/fontawesome_free/.icons-cache.json"))
            categories = archive.read("fontawesome-free/static/fontawesome_free/js-packages/@fortawesome/"
                                      "fontawesome-free/metadata/categories.yml").decode()
        (folder / "categories.yml").write_text(categories)
        (folder / "icons.json").write_text(json.dumps(icons))
        wheel.unlink()
    import yaml

    icons = json.loads((folder / "icons.json").read_text())
    category_of = {}
    for category in yaml.safe_load((folder / "categories.yml").read_text()).values():
        for icon in category["icons"]:
            category_of.setdefault(icon, []).append(category["label"].lower())
    return icons, category_of


def debian_package(package):
    """Unpack a Debian package's files into SOURCES/debian once; returns that root."""
    root = SOURCES / "debian"
    marker = root / f".{package}"
    if not marker.exists():
        downloads = SOURCES / "deb"
        downloads.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", package], check=True, cwd=downloads)
        deb = next(downloads.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        deb.unlink()
        marker.touch()
    return root


def wallpapers():
    """One file per wallpaper of WALLPAPER_PACKAGES (the largest of its sizes): MATE's nature photos,
    KDE Plasma's wallpapers and GNOME's bitmaps (their light variants)."""
    for package in WALLPAPER_PACKAGES:
        root = debian_package(package)
    share = root / "usr/share"
    found = sorted((share / "backgrounds/mate/nature").glob("*.jpg"))
    found += sorted((share / "backgrounds/gnome").glob("*-l.webp"))
    for folder in sorted((share / "wallpapers").glob("*/contents/images")):
        sizes = sorted(folder.iterdir(), key=lambda path: path.stat().st_size)
        if sizes:
            found.append(sizes[-1])
    return found


def photo_tiles(columns=5, rows=4, longest=1600, min_detail=6.0):
    """[(picture, name)]: each wallpaper, shrunk to `longest` pixels, cut into columns x rows tiles
    that do not overlap. Tiles with little detail (a clear sky, a flat colour: their mean gradient
    is below min_detail grey levels per pixel) are left out, as they are near-identical to each other."""
    tiles = []
    for path in wallpapers():
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
        picture.thumbnail((longest, longest))
        width, height = picture.width // columns, picture.height // rows
        for column in range(columns):
            for row in range(rows):
                tile = picture.crop((column * width, row * height, (column + 1) * width, (row + 1) * height))
                grey = np.asarray(tile.convert("L"), dtype=np.float32)
                detail = np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()
                if detail >= min_detail:
                    tiles.append((tile, f"{path.parent.parent.parent.name if 'contents' in path.parts else path.stem}"
                                        f"_{column}_{row}"))
    return tiles


# ----------------------------------------------------------------------------- splitting
def split_items(items, test_share, seed):
    """Item names for training and for testing, at random; variants of an item stay together."""
    names = sorted(items)
    order = np.random.default_rng(seed).permutation(len(names))
    test_count = round(len(names) * test_share)
    return [names[i] for i in order[test_count:]], [names[i] for i in order[:test_count]]


def vocabulary_of(tag_lists, min_items):
    counts = Counter(tag for tags in tag_lists for tag in set(tags))
    return {tag for tag, count in counts.items() if count >= min_items}


def write_item_pictures(folder, pictures_of, tags_of, names, vocabulary, limit, seed):
    """Write the pictures of `names` (each picture a PIL image) with their vocabulary tags, up to
    `limit` pictures; items without any kept tag are left out."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = 0
    for name in names:
        tags = [tag for tag in tags_of[name] if tag in vocabulary]
        if not tags:
            continue
        for number, picture in enumerate(pictures_of(name, rng)):
            if written >= limit:
                return written
            path = folder / f"{re.sub(r'[^a-zA-Z0-9_-]', '_', name)}_{number}.png"
            picture.save(path)
            write_text_atomically(default_tag_file(path), format_tags(sorted(set(tags))))
            written += 1
    return written


# ----------------------------------------------------------------------------- fontawesome
def render_glyph(svg, rng, jitter):
    """A glyph as a 64-px RGBA drawing on a transparent background, in a random dark colour and,
    with jitter, at a random scale and position."""
    import cairosvg

    colour = "#%02x%02x%02x" % tuple(rng.integers(0, 140, 3))
    svg = svg.replace("<path ", f'<path fill="{colour}" ', 1) if "fill=" not in svg else svg
    scale = rng.uniform(0.6, 0.95) if jitter else 0.8
    side = max(8, round(DRAWING_SIZE * scale))
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=side, output_height=side)
    glyph = Image.open(io.BytesIO(png)).convert("RGBA")
    canvas = Image.new("RGBA", (DRAWING_SIZE, DRAWING_SIZE), (0, 0, 0, 0))
    room = DRAWING_SIZE - side
    offset = (int(rng.integers(0, room + 1)), int(rng.integers(0, room + 1))) if jitter else (room // 2,) * 2
    canvas.paste(glyph, offset, glyph)
    return canvas


def fontawesome_set(out, seed, train_limit, test_limit):
    icons, category_of = fontawesome_metadata()
    tags_of, svgs_of = {}, {}
    for name, icon in icons.items():
        styles = {style: svg["raw"] for style, svg in icon["svg"].items() if style != "brands"}
        if not styles:
            continue  # brand logos: their terms are mostly the brand's own name
        terms = [term.lower() for term in (icon.get("search") or {}).get("terms") or [] if isinstance(term, str)]
        tags_of[name] = terms + category_of.get(name, [])
        svgs_of[name] = styles
    train_names, test_names = split_items(tags_of, 0.3, seed)
    vocabulary = vocabulary_of((tags_of[name] for name in train_names), MIN_TAG_ITEMS["fontawesome"])
    # Two training drawings per style and one test drawing per style: glyphs differ in colour, size and place
    def pictures(jitter, repeats):
        return lambda name, rng: [render_glyph(svg, rng, jitter) for svg in svgs_of[name].values()
                                  for _ in range(repeats)]

    return (write_item_pictures(out / "train", pictures(True, 2), tags_of, train_names, vocabulary, train_limit, seed),
            write_item_pictures(out / "test", pictures(False, 1), tags_of, test_names, vocabulary, test_limit, seed))


# ----------------------------------------------------------------------------- icon themes
def theme_icons(root, theme, size=None):
    """{icon name: (context, picture path, [alias names])} for one theme, at about 48-64 px, or at
    `size` pixels (16, 22 or 24, 32, 48: the sizes every theme draws)."""
    base = root / "usr/share/icons" / theme
    if theme == "elementary-xfce":  # CONTEXT/SIZE/NAME.png
        side = str({22: 24}.get(size, size or 48))
        contexts = [(folder.name, folder / side) for folder in sorted(base.iterdir()) if (folder / side).is_dir()]
    else:  # SIZE/CONTEXT/NAME.png (Oxygen keeps its sizes in base/)
        sides = [64, 48] if size is None else [size, {22: 24, 24: 22}.get(size, size)]
        candidates = [base / prefix / f"{side}x{side}" for side in sides for prefix in ("base", ".")]
        sizes = next(folder for folder in candidates if folder.is_dir())
        contexts = [(folder.name, folder) for folder in sorted(sizes.iterdir()) if folder.is_dir()]
    found = {}
    for context, folder in contexts:
        context = CONTEXT_NAMES.get(context, context)
        for path in sorted(folder.glob("*.png")):
            target = path.resolve()
            if not target.exists():
                continue
            icon = found.setdefault(target.stem, (context, target, []))
            if path.is_symlink():
                icon[2].append(path.stem)
    return found


CONTEXT_NAMES = {"mimes": "mimetypes"}  # elementary's folder name for the others' "mimetypes"
NAME_WORDS_IGNORED = {"x", "gnome", "kde", "org", "symbolic", "application", "applications", "the", "and"}


def name_words(name):
    return [word for word in re.split(r"[-_.+ ]", name.lower())
            if len(word) > 1 and not word.isdigit() and word not in NAME_WORDS_IGNORED]


def icon_items_set(out, seed, train_limit, test_limit, sizes=(None,), with_name_words=True):
    """Each icon name as drawn by the three themes (at each of `sizes`; None: at about 48-64 px), every
    picture scaled to DRAWING_SIZE: the pictures of one name, NAME_NUMBER.png, on one side of the split.
    Tagged with its context folders, and with_name_words the words of its names too."""
    pictures_of, tags_of = {}, {}
    for package, theme in ICON_THEMES.items():
        root = debian_package(package)
        for size in sizes:
            for name, (context, path, aliases) in theme_icons(root, theme, size).items():
                pictures_of.setdefault(name, []).append(path)
                words = [context]
                if with_name_words:
                    words += name_words(name) + [word for alias in aliases for word in name_words(alias)]
                tags_of[name] = sorted(set(tags_of.get(name, [])) | set(words))
    train_names, test_names = split_items(tags_of, 0.3, seed)
    vocabulary = vocabulary_of((tags_of[name] for name in train_names), MIN_TAG_ITEMS["icons"])

    def pictures(name, rng):
        return [Image.open(path).convert("RGBA").resize((DRAWING_SIZE, DRAWING_SIZE), Image.LANCZOS)
                for path in pictures_of[name]]

    return (write_item_pictures(out / "train", pictures, tags_of, train_names, vocabulary, train_limit, seed),
            write_item_pictures(out / "test", pictures, tags_of, test_names, vocabulary, test_limit, seed))


def icons_set(out, seed, train_limit, test_limit):
    return icon_items_set(out, seed, train_limit, test_limit)


RENDITION_SIZES = (16, 22, 32, 48)  # drawn anew at each size by each theme: up to 12 renditions of one icon name


def renditions_set(out, seed, train_limit, test_limit):
    """Up to 12 renditions of one concept: each icon name at every one of RENDITION_SIZES."""
    return icon_items_set(out, seed, train_limit, test_limit, RENDITION_SIZES)


def contexts_set(out, seed, train_limit, test_limit):
    """The icons of icons_set tagged with their context folders alone: a dozen dense tags, one per
    icon (two for the few that themes file differently), where the other sets have long tails."""
    return icon_items_set(out, seed, train_limit, test_limit, with_name_words=False)


# What names one item in the file names of the sets built from items (NAME_NUMBER.png): train.py --group-by
# takes it, so that train.py's own validation split, like the test split, keeps an item's pictures together
RENDITION_PATTERN = r"^(.+)_\d+\.png$"
NAMED_BY_ITEM = ("fontawesome", "icons", "renditions", "contexts")


def grouping_flags(set_name):
    """train.py's flags that keep the pictures of one item on one side of its validation split."""
    return ["--group-by", RENDITION_PATTERN] if set_name in NAMED_BY_ITEM else []


def digits_set(out, seed, train_limit, test_limit):
    write_mosaics(out / "train", train_limit, seed, part=0, hard=True)
    write_mosaics(out / "test", test_limit, seed, part=1, hard=True)
    return train_limit, test_limit


BUILDERS = {"digits": digits_set, "fontawesome": fontawesome_set, "icons": icons_set, "renditions": renditions_set,
            "contexts": contexts_set}


def write_set(name, out, seed, train_limit=1000, test_limit=400):
    """Write OUT/train and OUT/test for one set; returns (training, test) picture counts."""
    out = Path(out)
    for part in ("train", "test"):
        shutil.rmtree(out / part, ignore_errors=True)
    return BUILDERS[name](out, seed, train_limit, test_limit)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write train/ and test/ into")
    parser.add_argument("--set", choices=list(BUILDERS), required=True, help="which data set")
    parser.add_argument("--seed", type=int, default=0, help="which items are test items, and the renderings")
    parser.add_argument("--train", type=int, default=1000, help="at most this many training pictures")
    parser.add_argument("--test", type=int, default=400, help="at most this many test pictures")
    args = parser.parse_args()
    counts = write_set(args.set, args.out, args.seed, args.train, args.test)
    print(f"wrote {counts[0]} training and {counts[1]} test pictures of '{args.set}' to {args.out}")


if __name__ == "__main__":
    main()
