"""The README's pictures of the pages: a run report and a review page of a model's suggestions,
made on the demo data and photographed in headless Chromium (Debian's chromium and chromium-driver).

    python bench/screenshots.py            # writes bench/pictures/{report,review}.png

A few of the demo's labels are made wrong first, so that the suggestions are worth looking at.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from common.demo import write_demo_dataset  # noqa: E402
from common.tagfiles import format_tags, read_tag_file  # noqa: E402

PICTURES = REPOSITORY / "bench" / "pictures"
TRAINING = ["--arch", "resnet18", "--weights", "none", "--image-size", "64", "--workers", "0"]


def run(script, *arguments, cwd):
    """A script as a user runs it, in `cwd`, so that the pages name short relative paths."""
    subprocess.run([sys.executable, str(REPOSITORY / script), *map(str, arguments)], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL)


def swap_some_labels(folder, share=0.04, seed=0):
    """Take one tag off some images and put a wrong one on others."""
    rng = np.random.default_rng(seed)
    sidecars = sorted(folder.glob("*.txt"))
    vocabulary = sorted({tag for sidecar in sidecars for tag in read_tag_file(sidecar)})
    for position, sidecar in enumerate(rng.permutation(sidecars)[:int(share * len(sidecars))]):
        tags = read_tag_file(sidecar)
        if position % 2:
            tags.remove(tags[rng.integers(len(tags))])
        else:
            tags.append(rng.choice([tag for tag in vocabulary if tag not in tags]))
        sidecar.write_text(format_tags(tags))


def photograph(pages):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    PICTURES.mkdir(exist_ok=True)
    try:
        for page, name, setup, height in pages:
            driver.set_window_size(1100, height)
            driver.get(page.as_uri())
            if setup:
                driver.execute_script(setup)
            driver.save_screenshot(str(PICTURES / name))
            # a palette of 128 colours keeps a page picture to a few hundred KB
            Image.open(PICTURES / name).convert("RGB").quantize(128).save(PICTURES / name, optimize=True)
            print(f"wrote {PICTURES / name}")
    finally:
        driver.quit()


def main():
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        write_demo_dataset(work / "demo", train_count=400, infer_count=40, seed=5)
        folder = work / "demo" / "train"
        swap_some_labels(folder)
        run("train.py", "--data", "demo/train", "--model", "model.pth", "--epochs", "8", "--yes", *TRAINING, cwd=work)
        run("infer.py", "--input", "demo/train", "--model", "model.pth", "--html", "demo/train.review.html",
            "--workers", "0", cwd=work)
        worst_tag = "document.querySelector('#tag-table th[data-key=ap]').click();" \
                    "document.querySelector('#tag-table tbody tr').click();"
        decide_three = "review.decide('yes'); review.decide('no'); review.decide('yes');"  # as keys a, r, a do
        photograph([(work / "model.report.html", "report.png", worst_tag, 1500),
                    (work / "demo" / "train.review.html", "review.png", decide_three, 820)])


if __name__ == "__main__":
    main()
