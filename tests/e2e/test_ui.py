"""The page (gateway/ui), driven in a real browser: Debian's chromium, headless, through
Playwright, against a gateway process and the real tritonserver.

What a person does with it: look at the catalog and a model's export report, upload a real CT
file to a classifier and read the probabilities, upload a CT series to the 3D segmenter and move
through its slices, see the error of a file that is not DICOM, reach everything with the
keyboard, use it on a phone-wide window, and enter the API key once when the gateway asks for
one. Screenshots go to build/ui-screenshots/ (the README shows one of them).

Waits are on the page's own states (``main[data-ready]``, a section's ``data-loaded``, an
element becoming visible), never on sleeps: a 2-core machine running Triton is slow, not wrong.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from devtools.testdata import chest_ct_series, write_series

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (make install-system-tools)")]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
CLASSIFIER = "ct_nodule_classifier"
SEGMENTER = "ct_nodule_segmenter_3d"
#: Generous: the first inference of a model on 2 busy cores, a gateway's first page load.
WAIT_MS = 45_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Debian's chromium, no browser downloaded; --no-sandbox: the tests may run as root.
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """``open_page(url, width=1280, height=800)``: a fresh browser context (its own
    sessionStorage); script errors on the page fail the test."""
    contexts, errors = [], []

    def open_(url: str, width: int = 1280, height: int = 800):
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def ready(page) -> None:
    """The current view has rendered (its data calls answered)."""
    page.wait_for_selector("main[data-ready='true']", state="attached")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_the_root_redirects_to_the_catalog_which_lists_every_model(live_gateway, open_page) -> None:
    from playwright.sync_api import expect

    models = httpx.get(f"{live_gateway['url']}/v1/models").json()["models"]
    page = open_page(f"{live_gateway['url']}/")
    assert re.search(r"/ui/(#/models)?$", page.url)
    ready(page)
    for model in models:
        expect(page.locator(f"li.card[data-model='{model['name']}'] h2")).to_have_text(model["name"])
    card = page.locator(f"li.card[data-model='{CLASSIFIER}']")
    expect(card).to_contain_text("classification")
    expect(card).to_contain_text(f"{CLASSIFIER}_int8")  # a variant: a model whose name extends this one
    page.screenshot(path=SCREENSHOTS / "models.png")


def test_a_models_page_shows_its_export_report_with_charts_and_its_drift(live_gateway, open_page) -> None:
    from playwright.sync_api import expect

    url = live_gateway["url"]
    page = open_page(f"{url}/ui/#/models")
    ready(page)
    page.get_by_role("link", name=CLASSIFIER, exact=True).click()
    ready(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(CLASSIFIER)
    expect(page.locator("#drift")).to_have_attribute("data-loaded", "true")
    drift = httpx.get(f"{url}/v1/models/{CLASSIFIER}/drift")
    if drift.status_code == 200:
        expect(page.locator("#drift")).to_contain_text(f"{drift.json()['window_samples']} requests in the window")
    else:
        expect(page.locator("#drift")).to_contain_text("not available")
    expect(page.locator("#report")).to_have_attribute("data-loaded", "true")
    report = httpx.get(f"{url}/v1/models/{CLASSIFIER}/report")
    page.screenshot(path=SCREENSHOTS / "model-report.png", full_page=True)
    if report.status_code == 404 and report.json()["code"] == "not_found":
        expect(page.locator("#report")).to_contain_text("not available")
        pytest.skip("GET /v1/models/{name}/report is not in this gateway yet")
    assert report.status_code == 200, report.text
    document = report.json()
    section = page.locator("#report")
    for step in document["steps"]:
        row = section.locator("tr", has=page.locator("td", has_text=re.compile(f"^{re.escape(step['name'])}$")))
        expect(row.first.locator(".badge")).to_have_text(step["status"].upper())
    expect(section).to_contain_text("Difference against PyTorch")
    written = [v for v in document["variants"] if v["status"] == "written"]
    for metric in ("auc", "sensitivity", "specificity"):
        figure = section.locator("figure", has=page.locator("figcaption", has_text=f"{metric} per variant"))
        expect(figure.locator("svg rect")).to_have_count(len(written))
    latency = section.locator("figure", has=page.locator("figcaption", has_text="Latency p50"))
    values = latency.locator("svg rect").evaluate_all("rects => rects.map(r => Number(r.dataset.value))")
    assert values == pytest.approx([v["latency_ms_p50_batch1"] for v in written])


def test_once_traffic_was_seen_the_drift_of_the_last_hour_is_a_line_chart(live_gateway, open_page, real_ct_files) -> None:
    """Enough predictions for the drift window to publish scores, then one line per feature
    with a PSI in the hour's history (the gateway's own monitor: one worker here)."""
    from playwright.sync_api import expect

    url = live_gateway["url"]
    drift = httpx.get(f"{url}/v1/models/{CLASSIFIER}/drift")
    assert drift.status_code == 200, drift.text
    body = real_ct_files["CT_small"].read_bytes()
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(drift.json()["min_samples"]):
            assert client.post(f"/v1/models/{CLASSIFIER}/predict", content=body, headers={"Content-Type": "application/dicom"}).status_code == 200
    history = httpx.get(f"{url}/v1/models/{CLASSIFIER}/drift").json()["history"]
    with_psi = {name for point in history for name, score in point["scores"].items() if isinstance(score.get("psi"), (int, float))}
    assert with_psi
    page = open_page(f"{url}/ui/#/models/{CLASSIFIER}")
    ready(page)
    chart = page.locator("#drift figure", has=page.locator("figcaption", has_text="PSI per feature"))
    expect(chart.locator("svg[role='img']")).to_be_visible()
    expect(chart.locator("svg path")).to_have_count(len(with_psi))
    chart.screenshot(path=SCREENSHOTS / "drift.png")


def test_a_real_ct_file_gets_its_probabilities_as_bars(live_gateway, open_page, real_ct_files) -> None:
    from playwright.sync_api import expect

    url, source = live_gateway["url"], real_ct_files["CT_small"]
    answer = httpx.post(f"{url}/v1/models/{CLASSIFIER}/predict", content=source.read_bytes(),
                        headers={"Content-Type": "application/dicom"}, timeout=60).json()
    page = open_page(f"{url}/ui/#/try")
    ready(page)
    page.get_by_label("Model").select_option(CLASSIFIER)
    page.locator("#file-input").set_input_files(source)
    page.get_by_role("button", name="Run model").click()
    expect(page.locator("#result")).to_have_attribute("data-state", "done")
    expect(page.locator("#top-label")).to_have_text(answer["top_label"])
    bars = page.locator("#probabilities svg rect").evaluate_all("rects => rects.map(r => Number(r.dataset.value))")
    assert bars == pytest.approx([p["probability"] for p in answer["probabilities"]], abs=1e-6)
    page.screenshot(path=SCREENSHOTS / "try-classifier.png", full_page=True)


def test_a_series_on_the_3d_segmenter_is_shown_slice_by_slice_with_measurements_and_downloads(live_gateway, open_page, tmp_path) -> None:
    from playwright.sync_api import expect

    files = write_series(chest_ct_series(seed=18, slices=24), tmp_path / "series")
    page = open_page(f"{live_gateway['url']}/ui/#/try")
    ready(page)
    page.get_by_label("Model").select_option(SEGMENTER)
    page.locator("#file-input").set_input_files(files)
    expect(page.locator("#file-list")).to_contain_text("24 files")
    page.get_by_role("button", name="Run model").click()
    expect(page.locator("#result")).to_have_attribute("data-state", "done")
    image, slider = page.locator("#slice-image"), page.get_by_label("Slice", exact=True)
    expect(image).to_be_visible()
    expect(page.locator("#measurements")).to_contain_text("nodule")
    first = image.get_attribute("src")
    assert first.startswith("data:image/png;base64,")
    shown = int(image.get_attribute("data-index"))
    slider.focus()
    page.keyboard.press("Home" if shown > 0 else "End")  # the slider answers the keyboard
    expect(image).not_to_have_attribute("data-index", str(shown))
    assert image.get_attribute("src") != first
    expect(page.locator("#slice-status")).to_contain_text("of 24")
    page.screenshot(path=SCREENSHOTS / "try-segmenter.png", full_page=True)
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Download NIfTI").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".nii.gz") and saved.read_bytes()[:2] == b"\x1f\x8b"


def test_a_file_that_is_not_dicom_shows_the_error_code_and_message(live_gateway, open_page, tmp_path) -> None:
    from playwright.sync_api import expect

    url, notes = live_gateway["url"], tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    expected = httpx.post(f"{url}/v1/models/{CLASSIFIER}/predict", content=notes.read_bytes(), headers={"Content-Type": "application/dicom"}).json()
    page = open_page(f"{url}/ui/#/try")
    ready(page)
    page.get_by_label("Model").select_option(CLASSIFIER)
    page.locator("#file-input").set_input_files(notes)
    page.get_by_role("button", name="Run model").click()
    alert = page.get_by_role("alert")
    expect(alert.locator(".error-code")).to_have_text(expected["code"])
    expect(alert.locator(".error-message")).to_have_text(expected["message"])
    page.screenshot(path=SCREENSHOTS / "try-error.png")


def test_the_keyboard_reaches_the_navigation_and_the_file_input(live_gateway, open_page) -> None:
    page = open_page(f"{live_gateway['url']}/ui/#/try")
    ready(page)
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert {"Models", "Try it", "Jobs"} <= set(reached)
    assert "file-input" in reached and "model-select" in reached
    # The focused element is visibly outlined (:focus-visible).
    page.locator("#model-select").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_a_narrow_window_is_one_column_without_horizontal_scroll(live_gateway, open_page) -> None:
    page = open_page(f"{live_gateway['url']}/ui/#/models", width=390, height=844)
    for view in ("#/models", f"#/models/{CLASSIFIER}", "#/try", "#/jobs"):
        page.goto(f"{live_gateway['url']}/ui/{view}")
        ready(page)
        page.wait_for_load_state("networkidle")
        assert no_horizontal_scroll(page), view
    page.goto(f"{live_gateway['url']}/ui/#/models")
    ready(page)
    lefts = page.locator("li.card").evaluate_all("cards => cards.map(c => Math.round(c.getBoundingClientRect().left))")
    assert len(set(lefts)) == 1  # one column
    page.screenshot(path=SCREENSHOTS / "models-narrow.png")


def test_a_finished_job_is_listed_with_its_stage_times_and_its_result_shown(live_gateway, open_page, real_ct_files) -> None:
    from playwright.sync_api import expect

    url = live_gateway["url"]
    job = finished_job(url, CLASSIFIER, real_ct_files["CTImageStorage"])
    job_id = job["id"]
    page = open_page(f"{url}/ui/#/jobs")
    ready(page)
    row = page.locator("#job-list tr", has=page.get_by_role("link", name=job_id[:12]))
    expect(row).to_contain_text("REST")
    expect(row).to_contain_text(CLASSIFIER)
    assert job["timings_ms"]
    for stage, ms in job["timings_ms"].items():  # per-stage times, in ms
        expect(row.locator("td").last).to_contain_text(re.compile(rf"(^|, ){re.escape(stage)} [0-9.]+ ms"))
    row.get_by_role("link").click()
    ready(page)
    expect(page.locator("#job-result")).to_have_attribute("data-loaded", "true")
    result = httpx.get(f"{url}{job['result_url']}").json()
    expect(page.locator("#top-label")).to_have_text(result["top_label"])


def test_a_segmentation_job_in_the_viewer_format_is_shown_in_the_slice_viewer(live_gateway, open_page, real_ct_files) -> None:
    from playwright.sync_api import expect

    url = live_gateway["url"]
    job = finished_job(url, "ct_nodule_segmenter", real_ct_files["CT_small"], format="viewer")
    page = open_page(f"{url}/ui/#/jobs/{job['id']}")
    ready(page)
    expect(page.locator("#job-result")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#job-result #slice-image")).to_have_attribute("src", re.compile("^data:image/png;base64,"))
    expect(page.locator("#job-result")).to_contain_text("Measurements")


def finished_job(url: str, model: str, source: Path, **params: str) -> dict:
    """A REST job of ``source`` on ``model``, once it is done (its JobPublic)."""
    submitted = httpx.post(f"{url}/v1/models/{model}/jobs", params=params, content=source.read_bytes(),
                           headers={"Content-Type": "application/dicom"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.headers["location"].rsplit("/", 1)[-1]
    deadline = time.monotonic() + WAIT_MS / 1000
    while (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["state"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job["state"] == "done", job
    return job


def test_with_api_keys_the_page_asks_for_the_key_once_and_then_works(start_gateway, open_page) -> None:
    from playwright.sync_api import expect

    key = "k-ui-0123456789"
    gateway = start_gateway(api_keys=json.dumps({"ui": key}))
    assert httpx.get(f"{gateway.url}/ui/").status_code == 200  # the shell is public: it holds no data
    assert httpx.get(f"{gateway.url}/v1/models").status_code == 401
    page = open_page(f"{gateway.url}/ui/#/models")
    field = page.get_by_label("API key", exact=True)
    expect(field).to_be_visible()
    field.fill("wrong-key")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-reason")).to_contain_text("not accepted")
    field.fill(key)
    page.get_by_role("button", name="Use key").click()
    ready(page)
    expect(page.locator(f"li.card[data-model='{CLASSIFIER}']")).to_be_visible()
    expect(page.locator("#key-panel")).to_be_hidden()
    page.get_by_role("link", name="Jobs").click()  # the key is kept for the tab's session
    ready(page)
    expect(page.locator("#key-panel")).to_be_hidden()
    expect(page.locator("#job-list")).to_have_attribute("data-loaded", "true")
