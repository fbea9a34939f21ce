"""Does a review page open on the likeliest fixes, and does it stay quick at 10,000 items?

    python bench/review.py                          # both parts: the ranking, then the speed (about 25 min)
    python bench/review.py --ranking --sets digits --seeds 0
    python bench/review.py --speed                  # the 10,000-item page alone (about 2 min)

Ranking. For each set of bench/real_sets.py and each seed, `python train.py` (its defaults, from
scratch, 64 px, 10 epochs) trains a model, and one true tag is taken off 10 % of a tagged folder's
images while another 10 % gain a tag they do not have (bench/audit.py's inject_errors). Then
`python infer.py --html` writes the folder's review page, as a user runs it, and the benchmark reads
the order the page opens on. Two folders:

    new folder     the set's test pictures, damaged; the model trained on the clean training pictures
    own folder     the training pictures, damaged; the model trained on them, errors and all (the
                   recipe's loop: train, review, fix, train again)

Each counts, of the first 20 pictures the page shows, the share that hold an injected error, in
three orders of the same suggestions: likeliest first (the page's default: each suggestion judged
again with the image's other tags, fitted on the folder's own labels, as the audit ranks labels),
by the model's raw sureness (its probability's distance from the threshold, in logits: the
page's order before), and folder order (the page's other choice; about 20 %, since a fifth of the
images are damaged). Goal: at least 60 % likeliest first.

Speed. A folder of 10,000 small JPEGs with tag files and a review page of 10,000 suggestions written
by common/review.py, opened in headless Chromium (Debian's chromium and chromium-driver): the
time from navigation until the viewer is drawn, and the time a key press takes to show the next
item (the handler with its layout, then the next frame drawn), median and 95th percentile over 200
presses; the same for a 100-item page, side by side, in one browser; and accepting items (a) on the
10,000-item page once 9,800 are decided, each press storing every decision. Goals: open in at most 3 s,
the next item in at most 50 ms.
"""

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.audit import inject_errors, timed  # noqa: E402
from bench.real_sets import SETS, grouping_flags, write_set  # noqa: E402
from common.pages import page_data_of  # noqa: E402
from common.review import sureness, write_review_page  # noqa: E402

ARCH, IMAGE_SIZE, FIRST = "resnet18", 64, 20
ERROR_SHARE = 0.10  # of the images lose a tag, and as many others gain a wrong one
GOAL_SHARE, GOAL_OPEN_S, GOAL_NEXT_MS = 0.60, 3.0, 50.0
SPEED_ITEMS, SPEED_PRESSES = 10_000, 200


# ----------------------------------------------------------------------------- the ranking
def page_items(page):
    """The items of a review page in the order it opens on, with the image names spelled out."""
    data = page_data_of(Path(page).read_text(encoding="utf-8"))
    names = [image["name"] for image in data["images"]]
    return [{**item, "targets": [names[i] for i in item["targets"]]} for item in data["items"]]


def likeliest_first_share(items, wrong, first=20):
    """Of the first `first` distinct pictures a review page shows in this order of its items, the
    share that hold a known error (`wrong`: image names)."""
    seen = []
    for item in items:
        for name in item["targets"]:
            if name not in seen:
                seen.append(name)
        if len(seen) >= first:
            break
    seen = seen[:first]
    return float(np.mean([name in wrong for name in seen])) if seen else 0.0


def read_probabilities(path):
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    return rows[0][1:], [row[0] for row in rows[1:]], np.array([[float(v) for v in row[1:]] for row in rows[1:]])


def orders(items, csv_path):
    """The page's suggestions in the orders compared: the page's own (likeliest first, the
    suggestions judged in context); by the model's raw sureness (how far its probability lies from
    the threshold, in logits: the page's order before); and folder order."""
    tags, names, probabilities = read_probabilities(csv_path)
    row_of, column_of = {name: row for row, name in enumerate(names)}, {tag: column for column, tag in enumerate(tags)}
    return {"likeliest": items,
            "sureness": sorted(items, key=lambda item: -sureness(
                probabilities[row_of[item["targets"][0]], column_of[item["tag"]]], 0.5)),
            "folder": sorted(items, key=lambda item: (item["targets"][0], item["tag"]))}


def rank_set(set_name, seed, work):
    write_set(set_name, work, seed, 1000, 400)
    flags = ["--arch", ARCH, "--weights", "none", "--image-size", IMAGE_SIZE, "--seed", seed, "--yes",
             *grouping_flags(set_name)]
    result = {"set": set_name, "seed": seed}
    timed("train.py", "--data", work / "train", "--model", work / "clean.pth", *flags)
    for folder_kind, folder, model in (("new", work / "test", work / "clean.pth"),
                                       ("own", work / "train", work / "own.pth")):
        injected = inject_errors(folder, seed + 1, ERROR_SHARE)
        if folder_kind == "own":
            timed("train.py", "--data", folder, "--model", model, *flags)
        page = work / f"{folder_kind}.html"
        timed("infer.py", "--input", folder, "--model", model, "--html", page, "--csv", work / f"{folder_kind}.csv")
        items = page_items(page)
        found = {(item["targets"][0], item["tag"]) for item in items[:len(injected)]} & set(injected)
        wrong = {image for image, _ in injected}
        result[folder_kind] = {**{order: likeliest_first_share(ranked, wrong, FIRST)
                                  for order, ranked in orders(items, work / f"{folder_kind}.csv").items()},
                               "items": len(items), "injected": len(injected),
                               "errors_in_first_n": len(found) / len(injected)}
    return result


def print_ranking(results):
    orders = ("likeliest", "sureness", "folder")
    print(f"\n{'set':<12} {'seed':>4} | {'new folder: ' + ' / '.join(orders):>40} | {'own folder':>24}")
    for row in results:
        print(f"{row['set']:<12} {row['seed']:>4} | " + " | ".join(
            f"{' / '.join(f'{row[kind][order]:.0%}' for order in orders):>{width}}" for kind, width in (("new", 40),
                                                                                                       ("own", 24))))
    for kind in ("new", "own"):
        print(f"{kind} folder, of the first {FIRST} pictures the share holding an error:")
        for order in orders:
            values = [row[kind][order] for row in results]
            error = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
            print(f"  {order:<10} {np.mean(values):.0%} ± {error:.0%}; {sum(v >= GOAL_SHARE for v in values)} of "
                  f"{len(values)} runs reach {GOAL_SHARE:.0%}")
        print(f"  of the page's first N suggestions (N injected errors), "
              f"{np.mean([row[kind]['errors_in_first_n'] for row in results]):.0%} are those errors")


# ----------------------------------------------------------------------------- the speed
def speed_page(folder, page, count, seed=0):
    """A review page of `count` suggestions on `count` pictures of `folder` (written once)."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"tag{number:03d}" for number in range(300)]
    folder.mkdir(parents=True, exist_ok=True)
    entries = []  # items as common/review.py makes them
    for number in range(count):
        name = f"picture_{number:05d}.jpg"
        if not (folder / name).exists():
            colour = tuple(int(value) for value in rng.integers(0, 255, 3))
            Image.new("RGB", (96, 72), colour).save(folder / name, quality=80)
            tags = list(rng.choice(vocabulary, 4, replace=False))
            (folder / f"{name}.txt").write_text("\n".join(tags) + "\n")
        tag = vocabulary[int(rng.integers(len(vocabulary)))]
        p = float(rng.random())
        entries.append({"targets": [name], "tag": tag, "kind": "missing" if p > 0.5 else "extra", "p": round(p, 4),
                        "score": round(abs(p - 0.5) * 2, 4)})
    items = sorted(entries, key=lambda item: -item["score"])
    return write_review_page(page, f"{count} suggestions", "speed", "suggestions", folder, items, vocabulary)


MEASURE_PRESSES = """
const done = arguments[arguments.length - 1], presses = arguments[0], key = arguments[1], handler = [], frames = [];
function press(left) {
  if (!left) { done({handler, frames}); return; }
  const started = performance.now();
  document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
  document.body.offsetHeight;  // the layout the change needs, inside the measurement
  handler.push(performance.now() - started);
  requestAnimationFrame(() => setTimeout(() => { frames.push(performance.now() - started); press(left - 1); }, 0));
}
press(presses);
"""
# Decisions on all but the last presses' items, kept as the page keeps them, so that each measured
# accept also stores thousands of decisions
DECIDE_MOST = """
const ids = DATA.items.map(item => [item.kind, item.tag, ...item.targets.map(i => DATA.images[i].name)].join("\\t"));
const decided = Object.fromEntries(ids.slice(0, ids.length - arguments[0] - 1).map(id => [id, "no"]));
localStorage.setItem("multitag-review:" + DATA.store_key,
                     JSON.stringify({decided, typed: [], log: [], at: ids[ids.length - arguments[0] - 1]}));
"""


def measure_speed(pages):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(300)
    results = {}
    try:
        for label, page, size, key in pages:
            if key == "a":  # accepting: thousands decided before
                driver.get(page.resolve().as_uri())
                driver.execute_script(DECIDE_MOST, SPEED_PRESSES)
            started = time.perf_counter()
            driver.get(page.resolve().as_uri())
            driver.find_element("id", "review-counter")
            opened = time.perf_counter() - started
            drawn_ms = driver.execute_script("return performance.now()")  # since navigation began
            timings = driver.execute_async_script(MEASURE_PRESSES, SPEED_PRESSES, key)
            results[label] = {"page_mb": size / 1e6, "open_s": opened, "drawn_s": drawn_ms / 1000,
                              "next_ms": statistics.median(timings["handler"]),
                              "next_p95_ms": float(np.percentile(timings["handler"], 95)),
                              "frame_ms": statistics.median(timings["frames"]),
                              "frame_p95_ms": float(np.percentile(timings["frames"], 95))}
            print(json.dumps({label: results[label]}), flush=True)
    finally:
        driver.quit()
    return results


def print_speed(results):
    print(f"\n{'page':<16} {'MB':>5} {'open s':>7} | {'next item ms: handler':>22} {'p95':>6} | {'to next frame':>13} "
          f"{'p95':>6}")
    for label, row in results.items():
        print(f"{label:<16} {row['page_mb']:>5.1f} {row['open_s']:>7.2f} | {row['next_ms']:>22.1f} "
              f"{row['next_p95_ms']:>6.1f} | {row['frame_ms']:>13.1f} {row['frame_p95_ms']:>6.1f}")
    big, small = results[f"{SPEED_ITEMS} items"], results["100 items"]
    print(f"{SPEED_ITEMS} items against 100: opening {big['open_s'] / small['open_s']:.1f}x, the next item "
          f"{big['frame_ms'] / small['frame_ms']:.2f}x (goals: open <= {GOAL_OPEN_S} s, next <= {GOAL_NEXT_MS} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranking", action="store_true", help="only the ranking")
    parser.add_argument("--speed", action="store_true", help="only the speed")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["digits", "fontawesome", "icons", "contexts"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    both = not (args.ranking or args.speed)
    results = {}
    if args.ranking or both:
        results["ranking"] = []
        for seed in args.seeds:
            for set_name in args.sets:
                with tempfile.TemporaryDirectory() as temporary:
                    results["ranking"].append(rank_set(set_name, seed, Path(temporary)))
                print(json.dumps(results["ranking"][-1]), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))
        print_ranking(results["ranking"])
    if args.speed or both:
        with tempfile.TemporaryDirectory() as temporary:
            work = Path(temporary)
            pages = []
            for count in (100, SPEED_ITEMS):
                page = work / f"review-{count}.html"
                pages.append((f"{count} items", page, speed_page(work / "pictures", page, count), "j"))
            pages.append((f"{SPEED_ITEMS} accepting", page, pages[-1][2], "a"))
            results["speed"] = measure_speed(pages)
        print_speed(results["speed"])
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
