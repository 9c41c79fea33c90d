"""The labelling page in a real headless browser (Debian's chromium driven by playwright):
mark a keyword, reload, the label is there; mark a false accept; corrupt and bad files are shown
and the rest keeps working; a server that goes away loses nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.label.label_helpers import label_of, make_folder, serving
from train.label.server import make_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.needs_program(str(CHROMIUM), "chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: run scripts/setup.sh test (it installs Debian's chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    profile = tempfile.mkdtemp(prefix="ww-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1300, "height": 800},
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site(tmp_path, browser):
    root = tmp_path / "recordings"
    files = make_folder(root)
    with serving(root) as url:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page, url, files, root
        page.close()
        assert not errors, errors


def open_item(page, url, root, path: Path):
    rel = path.relative_to(root).as_posix()
    page.goto(f"{url}/#{quote(rel, safe='')}")
    page.wait_for_selector(f'body[data-loaded="{rel}"]')


def wait_saved(page):
    page.wait_for_selector('#save-status[data-state="saved"]')


def drag(page, selector, from_frac, to_frac):
    box = page.locator(selector).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + from_frac * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + to_frac * box["width"], y, steps=8)
    page.mouse.up()


def spans_shown(page):
    return [
        (float(li.get_attribute("data-start")), float(li.get_attribute("data-end")))
        for li in page.locator("#spans li[data-start]").all()
    ]


def test_mark_a_keyword_reload_and_it_is_there(site):
    page, url, files, root = site
    open_item(page, url, root, files["take"])  # 1.0 s long
    drag(page, "#wave", 0.25, 0.6)
    wait_saved(page)
    saved = json.loads(label_of(files["take"]).read_text())
    assert saved["kind"] == "keyword"
    [(start, end)] = saved["keyword_spans"]
    assert start == pytest.approx(0.25, abs=0.01) and end == pytest.approx(0.6, abs=0.01)
    page.reload()
    page.wait_for_selector(f'body[data-loaded="{files["take"].relative_to(root).as_posix()}"]')
    assert spans_shown(page) == [(start, end)]
    assert page.locator('#kinds button[data-kind="keyword"]').get_attribute("aria-pressed") == "true"
    assert "keyword" in page.locator("#items li.current .badge").inner_text()


def test_keyboard_marks_edges_accepts_suggestions_and_deletes(site):
    page, url, files, root = site
    open_item(page, url, root, files["take"])
    page.keyboard.press("a")  # the take's sidecar suggests [0.2, 0.7]
    wait_saved(page)
    assert json.loads(label_of(files["take"]).read_text())["keyword_spans"] == [[0.2, 0.7]]
    page.keyboard.press("Delete")
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # playhead to 0.3 s
    page.keyboard.press("s")  # a new span from the playhead
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # 0.5 s
    page.keyboard.press("e")  # ends the selected span here
    wait_saved(page)
    assert spans_shown(page) == [(0.3, 0.5)]
    page.wait_for_function("() => document.querySelector('#save-status').dataset.state === 'saved'")
    assert json.loads(label_of(files["take"]).read_text())["keyword_spans"] == [[0.3, 0.5]]


def test_mark_a_detection_as_false_accept_and_move_on_with_the_keyboard(site):
    page, url, files, root = site
    open_item(page, url, root, files["field"])  # 48 kHz stereo FLAC, detection sidecar
    drag(page, "#spec", 0.3, 0.55)  # a span on a field clip means a true accept
    wait_saved(page)
    assert json.loads(label_of(files["field"]).read_text())["kind"] == "true_accept"
    page.keyboard.press("f")
    wait_saved(page)
    saved = json.loads(label_of(files["field"]).read_text())
    assert saved["kind"] == "false_accept" and saved["keyword_spans"] == []
    before = page.locator("#title").inner_text()
    page.keyboard.press("ArrowDown")
    page.wait_for_function("t => document.querySelector('#title').textContent !== t", arg=before)
    paths = [li.get_attribute("data-path") for li in page.locator("#items li").all()]
    assert page.locator("#title").inner_text() == paths[paths.index(before) + 1]


def test_corrupt_file_is_shown_as_such_and_the_rest_keeps_working(site):
    page, url, files, root = site
    open_item(page, url, root, files["corrupt"])
    assert "corrupt" in page.locator("#problem").inner_text()
    assert page.locator("#view").is_hidden()
    assert page.locator(f'#items li.corrupt[data-path="{files["corrupt"].relative_to(root).as_posix()}"]').count() == 1
    page.keyboard.press("k")  # nothing to label here
    assert not label_of(files["corrupt"]).exists()
    page.keyboard.press("ArrowDown")
    page.wait_for_selector(f'body[data-loaded="{files["badlabel"].relative_to(root).as_posix()}"]')
    assert "kept as" in page.locator("#problem").inner_text()
    bad_copy = label_of(files["badlabel"]).with_name(label_of(files["badlabel"]).name + ".bad")
    original = bad_copy.read_text()
    page.keyboard.press("n")
    wait_saved(page)
    assert json.loads(label_of(files["badlabel"]).read_text())["kind"] == "negative"
    assert bad_copy.read_text() == original
    assert page.locator("#problem").is_hidden()


def test_a_change_made_while_the_server_is_down_is_saved_when_it_returns(tmp_path, browser):
    root = tmp_path / "recordings"
    files = make_folder(root)
    server = make_server(root, "127.0.0.1", 0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    page = browser.new_page()
    try:
        open_item(page, f"http://127.0.0.1:{port}", root, files["negative"])
        server.shutdown()
        server.server_close()
        page.keyboard.press("n")
        page.wait_for_selector('#save-status[data-state="error"]')
        assert "NOT saved" in page.locator("#save-status").inner_text()
        assert not label_of(files["negative"]).exists()
        server = make_server(root, "127.0.0.1", port)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        wait_saved(page)
        assert json.loads(label_of(files["negative"]).read_text())["kind"] == "negative"
    finally:
        page.close()
        server.shutdown()
        server.server_close()
