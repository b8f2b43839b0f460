"""The app in a real browser: Playwright drives Debian's headless chromium (never a browser Playwright downloads).

Uploads an image and sees a label, opens the metrics tab (its summary readable at 1280 px and at a phone's 390 px),
clicks a confusion-matrix cell and sees that cell's samples, uploads an audio clip, and saves screenshots (under
the test's tmp dir, and copied to $TIMM_SPACE_SCREENSHOT_DIR when that is set).
$TIMM_SPACE_BROWSER_MODEL serves another checkpoint (e.g. the demo's, for a README screenshot) instead of the
session's smoke run. In CI (CI=true) a missing chromium or Playwright fails the test; elsewhere it skips.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import wave
from pathlib import Path

import pytest

from tests.helpers.app import free_port, photo

pytestmark = pytest.mark.slow  # headless chromium against the launched app

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Playwright must never fetch its own browser build: we launch the Debian one by path.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
CHROMIUM = os.environ.get("TIMM_SPACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]  # root in a container: no sandbox, no GPU
STEP_MS = 30_000  # per step (page load, upload → label, tab → plot); a step normally takes 1-5 s


def _in_ci() -> bool:
    """True when running under CI (CI=true), where a missing browser is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_browser() -> None:
    """Fail (in CI) or skip (elsewhere) with the reason when chromium or Playwright is missing."""
    problem = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = (f"{CHROMIUM} not found: install Debian's chromium and chromium-driver "
                   "(`make system-deps` does it; `apt-get install chromium chromium-driver`).")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright is not installed: `make install` (tests/requirements.txt pins it)."
    if problem and _in_ci():
        pytest.fail(problem, pytrace=False)
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, driven by Playwright."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=STEP_MS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(request, browser):
    """(URL of the app serving both checkpoints on 127.0.0.1, image checkpoint dir, its label names, audio labels)."""
    from space.settings import ModelChoice, Settings
    from space.ui import build_demo

    chosen = os.environ.get("TIMM_SPACE_BROWSER_MODEL")
    checkpoint = Path(chosen) if chosen else request.getfixturevalue("smoke_run")
    chosen_audio = os.environ.get("TIMM_SPACE_BROWSER_AUDIO_MODEL")
    audio = Path(chosen_audio) if chosen_audio else request.getfixturevalue("audio_run")
    demo = build_demo(Settings(image=ModelChoice(str(checkpoint), "test fixture"),
                               audio=ModelChoice(str(audio), "test fixture")))
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True)
    labels = [json.loads((d / "config.json").read_text())["label_names"] for d in (checkpoint, audio)]
    yield url, checkpoint, *labels
    demo.close()


@pytest.fixture
def page(browser):
    """A fresh tab, every wait bounded by STEP_MS."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(STEP_MS)
    expect.set_options(timeout=STEP_MS)
    yield tab
    context.close()


def _screenshot(page, tmp_path: Path, name: str, **kw) -> Path:
    """Save a screenshot under tmp_path and, when TIMM_SPACE_SCREENSHOT_DIR is set, copy it there."""
    path = tmp_path / name
    page.screenshot(path=str(path), **kw)
    if target := os.environ.get("TIMM_SPACE_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    return path


def _image_to_upload(checkpoint: Path, tmp_path: Path) -> Path:
    """A real evaluation image the checkpoint ships (eval/samples), else a synthetic photo, at photo size."""
    from PIL import Image

    examples = sorted((checkpoint / "eval" / "samples").glob("example_*.png"))
    image = Image.open(examples[0]) if examples else photo()
    # Upscaled: the app must resize a user's photo itself, and a 28 px thumbnail is a dot in the screenshot.
    image.convert("RGB").resize((224, 224), Image.Resampling.NEAREST).save(tmp_path / "upload.png")
    return tmp_path / "upload.png"


def _open_app(page, url: str) -> None:
    """Load the page and wait until the image model's status line says it is loaded."""
    page.goto(url)
    page.get_by_text(re.compile(r"\d+ classes · input")).wait_for()


def _is_drawn(png: bytes) -> bool:
    """True when a screenshot of an element holds a picture, not a blank or single-colour box."""
    import io

    from PIL import Image

    colours = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 20)
    return colours is None or len(colours) > 20


SUMMARY_KEYS = ("checkpoint", "architecture", "classes", "input", "temperature", "dataset", "trained", "command",
                "versions", "git sha", "eval latency")


def _summary_key_lines(page) -> dict[str, int]:
    """{key: rendered line count} of the run-summary table's key column (1 = the word is not broken)."""
    table = page.locator("#run-summary")
    table.get_by_test_id("cell-0-0").wait_for()
    # the line boxes of each key's text node (the cell's own box is left out by measuring the text span)
    return dict(table.evaluate("""root => [...root.querySelectorAll('[data-testid^="cell-"][data-testid$="-0"]')]
        .map(td => { const text = td.querySelector('span') || td; const range = document.createRange();
                     range.selectNodeContents(text);
                     const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                          .map(r => Math.round(r.top)));
                     return [td.innerText.trim(), tops.size]; })"""))


def _confused_cell(checkpoint: Path) -> tuple[int, int]:
    """(true, predicted) of the first mistaken cell the checkpoint kept thumbnails for."""
    cells = json.loads((checkpoint / "eval" / "samples.json").read_text())["cells"]
    return next((t, p) for t, p in (map(int, k.split(",")) for k in cells) if t != p)


def test_image_upload_shows_a_label_and_a_click_on_the_matrix_its_samples(page, served, tmp_path):
    from playwright.sync_api import expect

    url, checkpoint, labels, _audio_labels = served
    _open_app(page, url)
    # Only the selected tab is rendered, so the visible panel holds exactly the Image tab's file input.
    page.get_by_role("tabpanel").locator("input[type=file]").set_input_files(_image_to_upload(checkpoint, tmp_path))
    top = page.get_by_test_id("label-output-value")
    expect(top).to_have_text(re.compile("^(" + "|".join(map(re.escape, labels)) + ")$"))
    assert top.inner_text().strip() in labels
    expect(page.get_by_text(re.compile(r"model [\d.]+ ms"))).to_be_visible()  # the timing line came too
    _screenshot(page, tmp_path, "app.png")

    page.get_by_role("tab", name="Validation metrics").click()
    keys = _summary_key_lines(page)
    assert all(keys[k] == 1 for k in SUMMARY_KEYS), keys
    _screenshot(page, tmp_path, "metrics.png", full_page=True)
    page.get_by_role("tab", name="Errors").click()
    t, p = _confused_cell(checkpoint)
    matrix = page.locator("#confusion-matrix")
    matrix.get_by_test_id(f"cell-{t}-{p + 1}").click()  # column 0 holds the true labels
    pair = f"{labels[t]} → {labels[p]}"
    expect(page.get_by_text(re.compile(re.escape(pair) + r": \d+ mistaken sample"))).to_be_visible()
    gallery = page.get_by_test_id("block-label").filter(has_text="Samples in this cell").locator("xpath=..")
    captions = gallery.get_by_text(re.compile("^" + re.escape(pair)))
    expect(captions.first).to_be_visible()
    assert gallery.locator("img").count() >= 1 and _is_drawn(gallery.locator("img").first.screenshot())
    _screenshot(page, tmp_path, "metrics_errors.png", full_page=True)


def test_the_metrics_summary_reads_at_phone_width(browser, served, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    try:
        _open_app(page, served[0])
        page.get_by_role("tab", name="Validation metrics").click()
        keys = _summary_key_lines(page)
        assert all(keys[k] == 1 for k in SUMMARY_KEYS), keys
        _screenshot(page, tmp_path, "metrics_phone.png", full_page=True)
    finally:
        context.close()


def _tone_wav(path: Path, seconds: float = 0.5, rate: int = 16_000) -> Path:
    """A 440 Hz 16-bit mono WAV (what a browser microphone upload looks like), written with the stdlib."""
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                      for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


def test_audio_upload_shows_a_label_and_the_spectrogram(page, served, tmp_path):
    from playwright.sync_api import expect

    url, _checkpoint, _labels, audio_labels = served
    _open_app(page, url)
    page.get_by_role("tab", name="Audio").click()
    panel = page.get_by_role("tabpanel")
    expect(panel.get_by_text(re.compile(r"\d+ classes · input"))).to_be_visible()  # the audio model loaded
    panel.locator("input[type=file]").set_input_files(_tone_wav(tmp_path / "tone.wav"))
    top = panel.get_by_test_id("label-output-value")
    expect(top).to_have_text(re.compile("^(" + "|".join(map(re.escape, audio_labels)) + ")$"))
    spectrogram = panel.get_by_test_id("block-label").filter(has_text="spectrogram").locator("xpath=..").locator("img")
    expect(spectrogram).to_be_visible()
    assert _is_drawn(spectrogram.screenshot()), "the spectrogram image is blank"
    _screenshot(page, tmp_path, "audio.png")
