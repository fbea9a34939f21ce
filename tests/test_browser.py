"""The pages, opened in a real browser (headless Chromium driven by Selenium): they render, their
tables sort, the contact sheet filters and sorts, and the review pages (a model's suggestions, the
audit's suspects, duplicate groups) are driven with the keyboard, survive a reload, and save the CSV
that prepare.py fix applies to exactly the tag files decided, and undo puts back. Needs Debian's
chromium and chromium-driver (.ci/run installs them)."""

import shutil
import time

import numpy as np
import pytest
from PIL import Image

from common.suspects import read_accepted
from common.tagfiles import read_tag_file
from conftest import FAST_TRAINING, run_main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium that saves downloads into tmp_path/downloads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and DRIVER, "install Debian's chromium and chromium-driver (apt-get install chromium " \
                                "chromium-driver) to run the browser tests"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see the page script's errors
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def open_page(browser, path):
    browser.get(path.resolve().as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors  # the script ran without an error


def assert_not_blank(browser, path):
    browser.save_screenshot(str(path))
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, charts, pictures


def column(browser, table_id, position):
    cells = browser.find_elements("css selector", f"#{table_id} tbody tr td:nth-child({position})")
    return [cell.text for cell in cells]


def numbers_then_blanks(texts):
    """The numbers of a sorted column; a tag without a validation image to score it has a blank AP,
    which stays below the numbers whichever way they are sorted."""
    numbers = [float(text) for text in texts if text]
    assert texts == [text for text in texts if text] + [""] * (len(texts) - len(numbers)), texts
    return numbers


def saved_download(browser, name, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = browser.downloads / name
        if path.exists() and not list(browser.downloads.glob("*.crdownload")):
            return path
        time.sleep(0.2)
    raise AssertionError(f"the page saved no {name} into {browser.downloads}: {list(browser.downloads.iterdir())}")


def test_the_training_report_renders_and_its_table_sorts(trained, browser, tmp_path):
    root, _ = trained
    run_main("train.py", "--data", root / "shapes" / "train", "--model", root / "models" / "r.pth", *FAST_TRAINING,
             "--epochs", "2", cwd=root)
    open_page(browser, root / "models" / "r.report.html")
    assert_not_blank(browser, tmp_path / "report.png")
    heading = browser.find_element("css selector", "#tag-table th[data-key=ap]")
    heading.click()
    ascending = numbers_then_blanks(column(browser, "tag-table", 3))
    assert ascending == sorted(ascending)
    heading.click()
    assert numbers_then_blanks(column(browser, "tag-table", 3)) == sorted(ascending, reverse=True)
    browser.find_element("css selector", "#tag-table th[data-key=tag]").click()
    assert column(browser, "tag-table", 1) == sorted(column(browser, "tag-table", 1))
    # picking a tag shows its curve and its worst images
    last_tag = column(browser, "tag-table", 1)[-1]
    browser.find_element("xpath", f"//table[@id='tag-table']//td[text()='{last_tag}']").click()
    assert last_tag in browser.find_element("id", "pr-curve").text
    assert browser.find_element("css selector", "#tag-choice").get_attribute("value") == last_tag


def press(browser, *keys):
    """Keys as a person types them, to whatever has the focus (the page itself, unless a field)."""
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(browser).send_keys(key).perform()


def counter(browser):
    return browser.find_element("id", "review-counter").text


def review_items(browser):
    """The page's items in the order it shows them: (kind, tag, target image names)."""
    return [tuple(item[:2]) + (tuple(item[2]),) for item in browser.execute_script(
        "return review.order().map(i => DATA.items[i]).map(item => [item.kind, item.tag, "
        "item.targets.map(t => DATA.images[t].name)])")]


def decide_by_keys(browser, keys):
    """Press each key (a accepts, r rejects, j skips) on the items from the current one on; returns
    {item: True accepted / False rejected}."""
    items, start, decided = review_items(browser), browser.execute_script("return review.position()"), {}
    for offset, key in enumerate(keys):
        press(browser, key)
        if key in "ar":
            decided[items[start + offset]] = key == "a"
    return decided


def accepted_changes(decided):
    """{(image, tag, kind)} that the accepted items ask for."""
    return {(image, tag, kind) for (kind, tag, images), accepted in decided.items() if accepted for image in images}


def apply_and_check(saved, folder, decided, typed=(), root=None, before_undo=None):
    """prepare.py fix with the saved CSV changes exactly the tag files the accepted items (and typed
    tags) name, as they asked; (before_undo() runs then;) prepare.py undo puts every one back."""
    import re

    wanted = accepted_changes(decided) | set(typed)
    assert {(row["image"], row["tag"], row["kind"]) for row in read_accepted(saved)} == wanted
    before = {path: path.read_bytes() for path in folder.glob("*.txt")}
    result = run_main("prepare.py", "fix", folder, "--suspects", saved, cwd=root or folder.parent)
    changed = {path for path in folder.glob("*.txt") if before.get(path) != path.read_bytes()}
    assert changed == {folder / f"{image}.txt" for image, _, _ in wanted}
    for image, tag, kind in wanted:
        assert (tag in read_tag_file(folder / f"{image}.txt")) == (kind == "missing")
    if before_undo:
        before_undo()
    run_main("prepare.py", "undo", re.search(r"undo file: (\S+)", result.stdout).group(1), cwd=root or folder.parent)
    assert {path: path.read_bytes() for path in folder.glob("*.txt")} == before


def test_reviewing_a_models_suggestions_with_the_keyboard_survives_a_reload_and_fixes_exactly_those_files(
        trained, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    root, _ = trained
    folder = tmp_path / "tagged"
    shutil.copytree(root / "shapes" / "train", folder)
    for sidecar in sorted(folder.glob("*.txt"))[:6]:  # a wrong tag on a few
        sidecar.write_text(sidecar.read_text() + "\nsquare\n")
    page = tmp_path / "review.html"
    run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--html", page, "--workers", "0",
             "--threshold", "0.4", cwd=tmp_path)
    open_page(browser, page)
    assert_not_blank(browser, tmp_path / "review.png")
    items = review_items(browser)
    assert len(items) >= 20 and counter(browser).startswith(f"item 1 of {len(items)} · 0 decided")
    decided = decide_by_keys(browser, "aarjaraa")  # 7 decisions, one item skipped
    assert counter(browser).startswith(f"item 9 of {len(items)} · 7 decided (5 accepted, 2 rejected)")
    assert browser.find_element("css selector", "#review-list .row.current").get_attribute("data-position") == "8"

    browser.refresh()  # nothing is lost: the decisions and the place come back
    assert counter(browser).startswith(f"item 9 of {len(items)} · 7 decided (5 accepted, 2 rejected)")
    decided |= decide_by_keys(browser, "raaar")
    assert counter(browser).startswith(f"item 14 of {len(items)} · 12 decided (8 accepted, 4 rejected)")
    press(browser, Keys.ARROW_LEFT)  # back to the last one decided, and decide it again
    last = items[12]
    press(browser, "a")
    decided[last] = True
    assert "9 accepted, 3 rejected" in counter(browser)

    # a typed tag, with completion from the model's tags, then undo it and the decision before it
    press(browser, "t")
    browser.find_element("id", "review-type").send_keys("triangle", Keys.ENTER)
    assert "1 typed" in counter(browser) and "+ triangle" in browser.find_element("id", "review-pictures").text
    press(browser, "u")
    assert "typed" not in counter(browser)
    press(browser, "u")
    decided[last] = False  # undone: back to how it was before (rejected)
    assert "8 accepted, 4 rejected" in counter(browser)
    image = items[12][2][0]  # in view again after the undo
    own_tag = next(tag for tag in read_tag_file(folder / f"{image}.txt") if tag != items[12][1])
    press(browser, "t")
    browser.find_element("id", "review-type").send_keys("-" + own_tag, Keys.ENTER)  # take a tag of its own off
    typed = [(image, own_tag, "extra")]
    assert "− " + own_tag in browser.find_element("id", "review-pictures").text

    # folder order, and back
    press(browser, "o")
    names = [item[2][0] for item in review_items(browser)]
    assert names == sorted(names)
    press(browser, "o")
    assert review_items(browser) == items

    press(browser, "e")
    saved = saved_download(browser, "tagged.suggestions.csv")

    def train_again():  # the loop's last step: a new run on the fixed folder, from the old model
        result = run_main("train.py", "--data", folder, "--model", tmp_path / "again.pth", *FAST_TRAINING,
                          "--weights", root / "models" / "m.pth", cwd=tmp_path)
        assert (tmp_path / "again.pth").is_file() and "m.pth" in result.stdout

    apply_and_check(saved, folder, decided, typed, root=tmp_path, before_undo=train_again)


def test_the_audit_and_duplicates_pages_review_in_the_same_viewer(trained, browser, tmp_path):
    from conftest import changed_copies, distinct_photos

    root, _ = trained
    folder = root / "shapes" / "train"
    run_main("prepare.py", "audit", folder, "--folds", "2", *FAST_TRAINING[:-1], cwd=root)  # all but --yes
    open_page(browser, root / "shapes" / "train.suspects.html")
    items = review_items(browser)
    assert len(items) >= 14 and all(len(images) == 1 for _, _, images in items)
    decided = decide_by_keys(browser, "araaraarraarar")  # 14 decisions: 30 over the two tests
    assert counter(browser).startswith(f"item 15 of {len(items)} · 14 decided (8 accepted, 6 rejected)")
    press(browser, "f")  # the full-size view, and out of it
    assert browser.find_element("id", "review-full").is_displayed()
    press(browser, "f")
    assert not browser.find_element("id", "review-full").is_displayed()
    press(browser, "e")
    apply_and_check(saved_download(browser, "train.suspects.csv"), folder, decided)

    photos_folder = tmp_path / "photos"
    photos_folder.mkdir()
    photos = distinct_photos()
    for name in ("china_left", "flower_left"):
        photos[name].save(photos_folder / f"{name}.jpg")
        (photos_folder / f"{name}.jpg.txt").write_text(f"{name.split('_')[0]}\noutdoors\n")
    changed_copies(photos["china_left"])["resized"].save(photos_folder / "small.jpg")
    (photos_folder / "small.jpg.txt").write_text("china\n")  # lost outdoors
    for copy in ("brightened", "framed"):
        changed_copies(photos["flower_left"])[copy].save(photos_folder / f"{copy}.jpg")
        (photos_folder / f"{copy}.jpg.txt").write_text("flower\noutdoors\nred\n")  # red: on two of three
    run_main("prepare.py", "duplicates", photos_folder, cwd=tmp_path)
    open_page(browser, tmp_path / "photos.duplicates.html")
    items = review_items(browser)
    assert sorted(items) == [("missing", "outdoors", ("small.jpg",)), ("missing", "red", ("flower_left.jpg",))]
    assert len(browser.find_elements("css selector", "#review-pictures img")) in (2, 3)
    decided = decide_by_keys(browser, "aa")
    assert counter(browser).startswith("item 2 of 2 · 2 decided (2 accepted, 0 rejected)")
    press(browser, "u", "r")  # changed its mind on the second
    decided[items[1]] = False
    press(browser, "e")
    apply_and_check(saved_download(browser, "photos.duplicate-fixes.csv"), photos_folder, decided, root=tmp_path)


def test_the_contact_sheet_filters_by_tag_and_sorts_the_closest_calls_first(trained, browser, tmp_path):
    root, _ = trained
    sheet = tmp_path / "sheet.html"
    run_main("infer.py", "--input", root / "shapes" / "infer", "--model", root / "models" / "m.pth", "--html", sheet,
             "--workers", "0", "--threshold", "0.3", cwd=root)
    open_page(browser, sheet)
    assert_not_blank(browser, tmp_path / "sheet.png")
    cards = browser.find_elements("css selector", "#cards .card")
    assert len(cards) == 6
    tags_of = [{tag.text.rsplit(" ", 1)[0] for tag in card.find_elements("css selector", ".tagp")} for card in cards]
    counts = {tag: sum(tag in tags for tags in tags_of) for tags in tags_of for tag in tags}
    tag = min(counts, key=lambda name: (abs(counts[name] - 3), name))  # on some images, not all
    expected = counts[tag]
    browser.find_element("id", "tag-filter").send_keys(tag)
    filtered = browser.find_elements("css selector", "#cards .card")
    assert len(filtered) == expected
    for card in filtered:
        assert tag in [t.text.rsplit(" ", 1)[0] for t in card.find_elements("css selector", ".tagp")]
    assert browser.find_element("id", "shown-count").text == f"showing {expected} of {expected} image(s) tagged {tag}"
    browser.find_element("id", "tag-filter").clear()
    browser.execute_script("const s = document.getElementById('sort-order'); s.value = 'doubt';"
                           "s.dispatchEvent(new Event('change'));")
    order = [card.get_attribute("data-name") for card in browser.find_elements("css selector", "#cards .card")]
    distances = browser.execute_script("return Object.fromEntries(DATA.images.map(i => [i.name, i.doubt[2]]))")
    assert [distances[name] for name in order] == sorted(distances.values()) and len(order) == 6


def test_the_duplicates_page_shows_each_group_and_highlights_the_tags_that_differ(browser, tmp_path):
    from conftest import changed_copies, distinct_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    photos = distinct_photos()
    for name in ("china_left", "flower_left", "flower_right"):
        photos[name].save(folder / f"{name}.jpg")
        (folder / f"{name}.jpg.txt").write_text("photo\n")
    changed_copies(photos["china_left"])["resized"].save(folder / "small.jpg")
    (folder / "small.jpg.txt").write_text("photo\ntemple\n")  # a tag its original lacks
    changed_copies(photos["flower_left"])["brightened"].save(folder / "bright.jpg")
    (folder / "bright.jpg.txt").write_text("photo\n")
    run_main("prepare.py", "duplicates", folder, cwd=tmp_path)
    open_page(browser, tmp_path / "photos.duplicates.html")
    groups = browser.find_elements("css selector", ".group")
    assert len(groups) == 2 and "tags differ: temple" in groups[0].text and "same tags" in groups[1].text
    assert [cell.text for cell in browser.find_elements("css selector", ".tagp.differ")] == ["temple"]
    assert len(groups[0].find_elements("css selector", "img")) == 2
    assert_not_blank(browser, tmp_path / "duplicates.png")
    browser.find_element("id", "only-differing").click()
    assert len(browser.find_elements("css selector", ".group")) == 1
    assert "showing 1 of 2 group(s)" in browser.find_element("id", "group-count").text
