"""The web page at / in a real headless browser (Debian's chromium driven by playwright): it
loads, shows what the model can do, and a typed, submitted input's result is read from the DOM
and equals what the API answers."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("fastapi", reason="fastapi not installed (pip install 'bertkit[serve]')")
pytest.importorskip("uvicorn", reason="uvicorn not installed (pip install 'bertkit[serve]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
CHROMIUM = os.environ.get("BERTKIT_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)", allow_module_level=True)

import httpx  # noqa: E402
from serve_helpers import make_model_dir, running  # noqa: E402

import bertkit  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {k: make_model_dir(root, k) for k in ("encoder", "pretraining", "classification", "tagging", "qa", "choice")}


def open_page(browser, url):
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    return page


def test_page_fill_mask(browser, models):
    with running(bertkit.load(models["pretraining"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        assert page.is_visible("#fill-mask") and page.is_hidden("#predict")
        text = "john lives in [MASK] today"
        page.fill("#fill-text", text)
        page.click("#fill-submit")
        page.wait_for_selector("#fill-result[data-state='done']")
        tokens = page.locator("#fill-result .candidate .name").all_inner_texts()
        api = httpx.post(f"{url}/fill-mask", json={"inputs": text, "top_k": 5}).json()
        assert tokens == [c["token"] for c in api["masks"][0]]
        assert page.inner_text("#fill-result .filled") == api["filled"]


def test_page_class_probabilities_and_entities(browser, models):
    with running(bertkit.load(models["classification"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        assert page.is_visible("#predict") and page.is_hidden("#fill-mask")
        page.fill("#predict-text", "the plot was awful .")
        page.click("#predict-submit")
        page.wait_for_selector("#predict-result[data-state='done']")
        labels = page.locator("#predict-result .candidate .name").all_inner_texts()
        scores = [float(s) for s in page.locator("#predict-result .candidate .score").all_inner_texts()]
        api = httpx.post(f"{url}/predict", json={"inputs": "the plot was awful ."}).json()
        assert labels == [x["label"] for x in api]
        assert scores == pytest.approx([x["score"] for x in api], abs=1e-3)
    with running(bertkit.load(models["tagging"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        text = "john and mary live in paris"
        page.fill("#predict-text", text)
        page.click("#predict-submit")
        page.wait_for_selector("#predict-result[data-state='done']")
        api = httpx.post(f"{url}/predict", json={"inputs": text}).json()
        marks = page.locator("#predict-result mark.entity")
        assert marks.count() == len(api["entities"])
        assert page.inner_text("#predict-result .tagged").replace("\n", "") != ""


def test_page_question_answering_and_multiple_choice(browser, models):
    """The QA form posts one {question, context} object (the server refused it with a 422 before)
    and multiple choice shows each ending's probability, best first."""
    with running(bertkit.load(models["qa"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        assert page.inner_text("#predict-text-label") == "Question:" and page.is_visible("#predict-pair")
        q = {"question": "where does mary live ?", "context": "mary lives in paris today"}
        page.fill("#predict-text", q["question"])
        page.fill("#predict-pair", q["context"])
        page.click("#predict-submit")
        page.wait_for_selector("#predict-result[data-state]")
        assert page.get_attribute("#predict-result", "data-state") == "done", page.inner_text("#predict-result")
        api = httpx.post(f"{url}/predict", json={"inputs": q}).json()
        shown = page.inner_text("#predict-result .answer-text")
        assert shown == (api["answer"] or "(no answer in the text)")
    with running(bertkit.load(models["choice"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        assert page.inner_text("#predict-pair-label") == "Endings (one per line):"
        endings = ["eats food", "runs", "sleeps today"]
        page.fill("#predict-text", "the man sat on the mat .")
        page.fill("#predict-pair", "\n".join(endings))
        page.click("#predict-submit")
        page.wait_for_selector("#predict-result[data-state]")
        assert page.get_attribute("#predict-result", "data-state") == "done", page.inner_text("#predict-result")
        names = page.locator("#predict-result .candidate .name").all_inner_texts()
        scores = [float(x) for x in page.locator("#predict-result .candidate .score").all_inner_texts()]
        api = httpx.post(f"{url}/predict", json={"inputs": {"context": "the man sat on the mat .", "endings": endings}})
        probs = api.json()["probabilities"]
        want = sorted(zip(endings, probs), key=lambda kv: -kv[1])
        assert names == [e for e, _ in want] and scores == pytest.approx([p for _, p in want], abs=1e-3)


def test_page_similarity(browser, models):
    with running(bertkit.load(models["encoder"], device="cpu")) as (url, _):
        page = open_page(browser, url)
        assert page.is_visible("#similarity")
        page.fill("#sim-a", "a dog sat on the mat")
        page.fill("#sim-b", "the cat sat on the mat")
        page.click("#sim-submit")
        page.wait_for_selector("#sim-result[data-state='done']")
        shown = float(page.inner_text("#sim-result .score"))
        api = httpx.post(
            f"{url}/similarity",
            json={"inputs": {"source_sentence": "a dog sat on the mat", "sentences": ["the cat sat on the mat"]}},
        ).json()
        assert shown == pytest.approx(api[0], abs=1e-4)
