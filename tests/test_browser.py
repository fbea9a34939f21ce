"""The pages, opened in a real browser (headless Chromium driven by Selenium): they render, their
tables sort, the contact sheet filters and sorts, and the fixes marked on a page are saved as a CSV
that prepare.py applies. Needs Debian's chromium and chromium-driver (.ci/run installs them)."""

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


def test_marking_fixes_on_the_audit_page_saves_the_csv_that_prepare_applies(trained, browser, tmp_path):
    root, _ = trained
    folder = root / "shapes" / "train"
    run_main("prepare.py", "audit", folder, "--folds", "2", *FAST_TRAINING[:-1], cwd=root)  # all but --yes
    page = root / "shapes" / "train.suspects.html"
    open_page(browser, page)
    assert_not_blank(browser, tmp_path / "audit.png")
    boxes = browser.find_elements("css selector", "#suspect-table input.accept")
    assert len(boxes) >= 3
    for box in boxes[:3:2]:  # the first and the third
        box.click()
    assert browser.find_element("id", "fix-status").text.startswith("2 marked")
    browser.find_element("id", "save-fixes").click()
    saved = saved_download(browser, "train.suspects.csv")
    accepted = read_accepted(saved)
    marked = [(image, tag, kind) for image, tag, kind in
              ((cell.text for cell in row.find_elements("css selector", "td")[1:4])
               for row in browser.find_elements("css selector", "#suspect-table tbody tr"))]
    assert [(row["image"], row["tag"], row["kind"]) for row in accepted] == [marked[0], marked[2]]

    before = {path: path.read_bytes() for path in folder.glob("*.txt")}
    run_main("prepare.py", "fix", folder, "--suspects", saved, cwd=root)
    for image, tag, kind in (marked[0], marked[2]):
        tags = read_tag_file(folder / f"{image}.txt")
        assert (tag in tags) == (kind == "missing")
    changed = {path for path in folder.glob("*.txt") if path.read_bytes() != before[path]}
    assert changed == {folder / f"{image}.txt" for image, _, _ in (marked[0], marked[2])}


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
