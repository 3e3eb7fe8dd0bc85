"""The search page in headless Chromium (Playwright's sync API) against a real server on a loopback port.

Skipped when Debian's Chromium (/usr/bin/chromium) or the playwright package is missing; no Playwright
browser is ever downloaded. Set ``CIRLAB_SCREENSHOT=path.png`` to also save the final screenshot there
(how docs/images/search-page.png is made).
"""

import os
import shutil
from pathlib import Path

import pytest

from cirlab.serve import BackgroundServer, create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(engine, data_root):
    with BackgroundServer(create_app(engine, data_root)) as running:
        yield running


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}/")
    page.wait_for_selector("body[data-ready='true']", timeout=15_000)
    yield page
    page.close()
    assert errors == []  # no JavaScript exception on the page


def result_ids(page):
    return [node.get_attribute("data-id") for node in page.query_selector_all("[data-testid='result-item']")]


def test_choose_a_reference_type_a_text_and_see_k_results(page, engine, tmp_path):
    from playwright.sync_api import expect  # importable: the browser fixture skips otherwise

    gallery_items = page.locator("[data-testid='gallery-item']")
    assert gallery_items.count() == 22
    assert page.locator("[data-testid='gallery-page']").inner_text() == "1–22 of 22"
    assert "22 val images" in page.locator("[data-testid='gallery-summary']").inner_text()

    page.select_option("[data-testid='gallery-category']", "toptee")
    expect(gallery_items).to_have_count(8)
    expect(page.locator("[data-testid='gallery-page']")).to_have_text("1–8 of 8")
    page.select_option("[data-testid='gallery-category']", "")
    expect(gallery_items).to_have_count(22)

    page.click("[data-testid='gallery-item'][data-id='D003']")
    assert page.locator("[data-testid='reference-label']").inner_text() == "D003 · dress"
    assert "selected" in page.locator("[data-testid='gallery-item'][data-id='D003']").get_attribute("class")
    expect(page.locator("[data-testid='search-category']")).to_have_value("dress")  # the reference's category

    page.fill("[data-testid='query-text']", "is brighter and has a pattern")
    page.fill("[data-testid='query-k']", "6")
    page.click("[data-testid='search-button']")
    page.wait_for_selector("[data-testid='results'][data-state='done']", timeout=15_000)

    expected = engine.search("D003", "is brighter and has a pattern", k=6, category="dress")
    assert result_ids(page) == [hit.id for hit in expected]
    scores = page.locator("[data-testid='result-score']").all_inner_texts()
    assert scores == [f"{hit.score:.3f}" for hit in expected]
    assert page.locator("[data-testid='result-rank']").all_inner_texts() == [f"#{n}" for n in range(1, 7)]
    loaded = page.locator("[data-testid='result-item'] img").evaluate_all(
        "(images) => images.every((img) => img.complete && img.naturalWidth > 0)")
    assert loaded  # every result thumbnail was served by /images/{id}

    shot = tmp_path / "search-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CIRLAB_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CIRLAB_SCREENSHOT"])


def test_upload_a_reference_and_see_server_errors(page, engine, data_root):
    page.set_input_files("[data-testid='reference-upload']", str(data_root / "images" / "S001.png"))
    assert page.locator("[data-testid='reference-label']").inner_text() == "uploaded: S001.png"
    page.fill("[data-testid='query-text']", "has a pattern")
    page.select_option("[data-testid='search-category']", "shirt")
    page.fill("[data-testid='query-k']", "3")
    page.click("[data-testid='search-button']")
    page.wait_for_selector("[data-testid='results'][data-state='done']", timeout=15_000)
    expected = engine.search("S001", "has a pattern", k=3, category="shirt", exclude_reference=False)
    assert result_ids(page) == [hit.id for hit in expected]

    page.fill("[data-testid='query-k']", "0")  # the server refuses it; the page shows its message
    page.click("[data-testid='search-button']")
    page.wait_for_selector("[data-testid='results'][data-state='error']", timeout=15_000)
    message = page.locator("[data-testid='error-message']").inner_text()
    assert "k: must lie between 1 and 200, got 0 (HTTP 400)" in message

    page.fill("[data-testid='query-k']", "2")  # and a good request works again
    page.click("[data-testid='search-button']")
    page.wait_for_selector("[data-testid='results'][data-state='done']", timeout=15_000)
    assert len(result_ids(page)) == 2
    assert page.locator("[data-testid='error-message']").is_hidden()


def test_searching_without_a_reference_or_text_explains_what_is_missing(page):
    page.fill("[data-testid='query-text']", "is red")
    page.click("[data-testid='search-button']")
    assert "Choose a reference image first" in page.locator("[data-testid='error-message']").inner_text()
    page.click("[data-testid='gallery-item'][data-id='S000']")
    page.fill("[data-testid='query-text']", "   ")
    page.click("[data-testid='search-button']")
    assert "Type how the reference should change" in page.locator("[data-testid='error-message']").inner_text()
    assert page.locator("[data-testid='results']").get_attribute("data-state") == "idle"


def test_the_gallery_and_search_categories_follow_each_other(page):
    from playwright.sync_api import expect

    gallery_items = page.locator("[data-testid='gallery-item']")
    search_category = page.locator("[data-testid='search-category']")
    gallery_category = page.locator("[data-testid='gallery-category']")
    page.select_option("[data-testid='gallery-category']", "shirt")
    expect(search_category).to_have_value("shirt")
    expect(gallery_items).to_have_count(8)
    page.select_option("[data-testid='search-category']", "toptee")
    expect(gallery_category).to_have_value("toptee")
    expect(page.locator("[data-testid='gallery-item'][data-id='T000']")).to_have_count(1)  # the toptee page is in
    expect(gallery_items).to_have_count(8)
    page.click("[data-testid='gallery-item'][data-id='S006']")  # a shirt that is also a toptee, chosen as a toptee
    expect(search_category).to_have_value("toptee")
    page.select_option("[data-testid='search-category']", "")
    expect(gallery_category).to_have_value("")
    expect(gallery_items).to_have_count(22)
    page.click("[data-testid='gallery-item'][data-id='S002']")
    expect(search_category).to_have_value("shirt")
    expect(gallery_category).to_have_value("")  # choosing a reference leaves the gallery where it is


def pick(page, query):
    """Choose ``query`` (an item of /api/validation-queries) in the validation picker."""
    value = page.locator(f"[data-testid='validation-query'] option[data-reference-id='{query['reference_id']}']"
                         f"[data-target-id='{query['target_id']}']").get_attribute("value")
    page.select_option("[data-testid='validation-query']", value)


def test_pick_a_validation_query_and_see_its_target_marked(page, engine, client):
    from playwright.sync_api import expect

    queries = client.get("/api/validation-queries", params={"limit": 100}).json()["items"]
    expect(page.locator("[data-testid='validation-picker']")).to_be_visible()
    assert page.locator("[data-testid='validation-query'] option[data-target-id]").count() == len(queries)

    page.fill("[data-testid='query-k']", "21")  # the whole category: the target is among the results
    query = next(q for q in queries if q["category"] == "shirt")
    pick(page, query)
    results = page.locator("[data-testid='results']")
    expect(results).to_have_attribute("data-state", "done")
    assert page.locator("[data-testid='reference-label']").inner_text() == f"{query['reference_id']} · shirt"
    expect(page.locator("[data-testid='query-text']")).to_have_value(query["caption"])
    expect(page.locator("[data-testid='search-category']")).to_have_value("shirt")
    expect(page.locator("[data-testid='validation-target']")).to_have_text(f"true target: {query['target_id']}")

    expected = [hit.id for hit in engine.search(query["reference_id"], query["caption"], k=21, category="shirt")]
    assert result_ids(page) == expected
    marked = page.locator("[data-testid='result-item'].target")
    expect(marked).to_have_count(1)
    assert marked.get_attribute("data-id") == query["target_id"]
    assert marked.locator("[data-testid='result-target']").inner_text() == "✓ true target"
    rank = expected.index(query["target_id"]) + 1
    expect(page.locator("[data-testid='results-target']")).to_have_text(f"· true target {query['target_id']} "
                                                                        f"at #{rank}")

    # A query whose target is not the first result, searched for one result only: the target is not shown.
    missed = next(q for q in queries if engine.search(q["reference_id"], q["caption"], k=1,
                                                      category=q["category"])[0].id != q["target_id"])
    page.fill("[data-testid='query-k']", "1")
    pick(page, missed)
    expect(page.locator("[data-testid='results-target']")).to_have_text(f"· true target {missed['target_id']} "
                                                                        f"not shown")
    expect(page.locator("[data-testid='result-item']")).to_have_count(1)
    expect(page.locator("[data-testid='result-item'].target")).to_have_count(0)

    # Editing the caption makes it another query: nothing is marked any more.
    page.fill("[data-testid='query-k']", "21")
    page.fill("[data-testid='query-text']", "is green")
    expect(page.locator("[data-testid='validation-target']")).to_be_hidden()
    expect(page.locator("[data-testid='validation-query']")).to_have_value("")
    page.click("[data-testid='search-button']")
    expect(page.locator("[data-testid='results-summary']")).to_contain_text("“is green”")
    expect(page.locator("[data-testid='result-item'].target")).to_have_count(0)
    expect(page.locator("[data-testid='results-target']")).to_have_text("")


def test_without_triplets_the_picker_is_hidden(browser, engine_without_triplets, data_root):
    from playwright.sync_api import expect

    with BackgroundServer(create_app(engine_without_triplets, data_root)) as bare:
        page = browser.new_page()
        try:
            page.goto(f"{bare.url}/")
            page.wait_for_selector("body[data-ready='true']", timeout=15_000)
            expect(page.locator("[data-testid='validation-picker']")).to_be_hidden()
            expect(page.locator("[data-testid='gallery-item']")).to_have_count(22)
        finally:
            page.close()


TOKEN = "page-token_42"


@pytest.fixture(scope="module")
def token_server(engine, data_root):
    with BackgroundServer(create_app(engine, data_root, token=TOKEN)) as running:
        yield running


def search_d003(page, k="3"):
    page.click("[data-testid='gallery-item'][data-id='D003']")
    page.fill("[data-testid='query-text']", "is brighter")
    page.fill("[data-testid='query-k']", k)
    page.click("[data-testid='search-button']")
    page.wait_for_selector("[data-testid='results'][data-state='done']", timeout=15_000)


def test_a_token_in_the_address_opens_the_api_and_the_images(browser, token_server):
    from playwright.sync_api import expect

    context = browser.new_context()  # its own cookies
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{token_server.url}/#token={TOKEN}")
        page.wait_for_selector("body[data-ready='true']", timeout=15_000)
        assert page.url == f"{token_server.url}/"  # the token is no longer shown in the address
        expect(page.locator("[data-testid='gallery-item']")).to_have_count(22)
        search_d003(page)
        assert len(result_ids(page)) == 3
        expect(page.locator("[data-testid='error-message']")).to_be_hidden()
        loaded = page.locator("[data-testid='result-item'] img").evaluate_all(
            "(images) => images.every((img) => img.complete && img.naturalWidth > 0)")
        assert loaded  # <img> requests carry the token too (the cookie)
    finally:
        context.close()
    assert errors == []


def test_without_the_token_the_page_asks_for_it(browser, token_server):
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    prompts = []

    def answer(dialog):
        prompts.append(dialog.message)
        dialog.accept(TOKEN)

    page.on("dialog", answer)
    try:
        page.goto(f"{token_server.url}/")
        expect(page.locator("[data-testid='gallery-item']")).to_have_count(22, timeout=15_000)  # after the reload
        assert prompts == ["This search service needs an access token:"]
        search_d003(page, k="2")
        assert len(result_ids(page)) == 2
    finally:
        context.close()
