"""The dashboard reads truthfully (issue 14): how to read alpha and a warning below 0.667, bar
labels that meet WCAG AA on their bars, the export filter's count before the export starts, and
links between the campaign, its agreement and its exports."""

import pytest
from django.test import Client

from evaluation.models import ExportJob
from evaluation.plots import LIGHT_INK, PALETTE, contrast, ink_on
from evaluation.selectors.filters import AtLeast, ItemFilters
from evaluation.selectors.scores import item_count, item_scores
from evaluation.tasks import export_run_task
from tests.factories import annotators, campaign_create, gold, posts_with_items, rate
from tests.helpers import browser_login

# Three coders who mostly agree (alpha 0.79 on plausibility)...
AGREEING = [[5, 4, 2, 5, 1, 3], [4, 4, 3, 5, 2, 3], [5, 3, 1, 4, 1, 2]]
# ...and two who disagree more than chance would (alpha below 0).
OPPOSED = [[1, 5, 1, 5, 2, 4], [5, 1, 4, 2, 5, 1]]

# WCAG contrast of each bar label against its own bar, as the browser paints them.
LABEL_CONTRASTS = """() => {
  const luminance = (css) => {
    const [r, g, b] = css.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map((c) => {
      c /= 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  return [...document.querySelectorAll("svg.plot text[text-anchor=middle]")]
    .filter((text) => text.previousElementSibling?.tagName === "rect")
    .map((text) => {
      const a = luminance(getComputedStyle(text).fill);
      const b = luminance(getComputedStyle(text.previousElementSibling).fill);
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    });
}"""


def make_campaign(name: str, matrix: list, with_gold: bool) -> object:
    campaign = campaign_create(name=name, questions=("plausibility",))
    items = posts_with_items(campaign, posts=2, kinds=["xWant", "xIntent", "open"])
    rate(campaign, items, "plausibility", annotators(len(matrix), prefix=f"{name}-"), matrix)
    if with_gold:
        gold(campaign, items[0], "plausibility", 5)
    return campaign


@pytest.fixture
def agreeing(db):
    return make_campaign("agreeing", AGREEING, with_gold=True)


@pytest.fixture
def opposed(db):
    return make_campaign("opposed", OPPOSED, with_gold=False)


def test_every_bar_colour_has_an_ink_that_meets_aa():
    assert all(contrast(ink_on(colour), colour) >= 4.5 for colour in PALETTE)
    assert ink_on("#041f4a") == LIGHT_INK


def test_alpha_is_explained_and_low_alpha_warned(admin_client, agreeing, opposed):
    good = admin_client.get(f"/campaigns/{agreeing.pk}/evaluation/").content.decode()
    assert "0 is no better than chance" in good and "below 0 the annotators disagree" in good
    assert "Low agreement" not in good
    bad = admin_client.get(f"/campaigns/{opposed.pk}/evaluation/").content.decode()
    assert "Low agreement:</strong>" in bad and "plausibility (-" in bad
    assert "below 0.667, Krippendorff's minimum" in bad


@pytest.mark.parametrize(
    "filters",
    [
        ItemFilters(min_mean={}),
        ItemFilters(min_mean={"plausibility": 3.5}, min_ratings=2),
        ItemFilters(min_mean={}, min_agree={"plausibility": AtLeast(value=4, count=2)}),
        ItemFilters(min_mean={}, kinds=("xWant",), include_gold=True),
        ItemFilters(min_mean={}, min_median={"plausibility": 3}, max_spread=1),
    ],
)
def test_count_is_the_number_of_rows_an_export_reads(agreeing, filters):
    expected = sum(1 for _ in item_scores(campaign=agreeing, filters=filters))
    assert item_count(campaign=agreeing, filters=filters) == expected


def test_preview_counts_what_the_export_keeps(admin_client, agreeing):
    url = f"/campaigns/{agreeing.pk}/exports/preview/"
    part = admin_client.get(url, {"min_ratings": "1"}, HTTP_HX_REQUEST="true").content.decode()
    # Six rated items, the gold one left out.
    assert "<html" not in part and "keeps <strong>5</strong> items" in part
    strict = {"min_ratings": "2", "min_plausibility": "4.5"}
    part = admin_client.get(url, strict, HTTP_HX_REQUEST="true").content.decode()
    assert "keeps <strong>1</strong> item." in part
    part = admin_client.get(url, {"min_ratings": "4"}, HTTP_HX_REQUEST="true").content.decode()
    assert "keeps <strong>no item</strong>" in part
    # A critic adds unrated items when the export runs: the count says it is of rated items.
    with_critic = {**strict, "critic": "some-critic"}
    part = admin_client.get(url, with_critic, HTTP_HX_REQUEST="true").content.decode()
    assert "keeps <strong>1</strong> rated item." in part
    assert "The critic some-critic adds the unrated items it keeps" in part
    # With nothing to count, the form; without htmx: the dashboard, with the form as filled in
    # and the count.
    assert admin_client.get(url).url == f"/campaigns/{agreeing.pk}/evaluation/#export"
    page = admin_client.get(url, strict)
    assert page.status_code == 200
    html = page.content.decode()
    assert "keeps <strong>1</strong> item." in html and 'value="4.5"' in html


@pytest.mark.parametrize(
    "query",
    [
        {"min_ratings": "-1"},
        {"min_ratings": "x"},
        {"min_ratings": "1", "kinds": "nope"},
        {"min_ratings": "1", "min_agree_value_plausibility": "4"},
        {"min_ratings": "1", "min_gold_accuracy": "2"},
    ],
)
def test_preview_of_a_broken_filter_says_why(admin_client, agreeing, query):
    url = f"/campaigns/{agreeing.pk}/exports/preview/"
    part = admin_client.get(url, query, HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and "No count until the filter is fixed" in part.content.decode()
    assert admin_client.get(url, query).status_code == 400
    assert ExportJob.objects.count() == 0


def test_preview_is_for_admins(annotator_client, agreeing):
    url = f"/campaigns/{agreeing.pk}/exports/preview/"
    assert annotator_client.get(url, {"min_ratings": "1"}).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page
    assert annotator_client.get("/campaigns/999999/exports/preview/").status_code in (403, 404)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_dashboard_in_the_browser(page, live_server, admin_user, agreeing, opposed, monkeypatch):
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    browser_login(page, live_server, "ada")

    page.goto(f"{live_server.url}/campaigns/{opposed.pk}/evaluation/")
    assert page.get_by_text("How to read alpha").is_visible()
    assert page.get_by_text("Low agreement").is_visible()
    contrasts = page.evaluate(LABEL_CONTRASTS)
    assert contrasts and min(contrasts) >= 4.5, contrasts

    page.goto(f"{live_server.url}/campaigns/{agreeing.pk}/evaluation/")
    assert page.get_by_text("Low agreement").count() == 0
    preview = page.locator("#export-preview")
    preview.get_by_text("keeps 5 items").wait_for()
    page.fill("#id_min_ratings", "2")
    page.fill("#id_min_plausibility", "4.5")
    preview.get_by_text("keeps 1 item.").wait_for()
    page.fill("#id_min_gold_accuracy", "7")
    preview.get_by_text("No count until the filter is fixed").wait_for()
    page.fill("#id_min_gold_accuracy", "0.5")
    preview.get_by_text("keeps 1 item.").wait_for()
    page.click("button:has-text('Start export')")
    page.wait_for_selector("a:has-text('Download')")
    assert ExportJob.objects.get().items_written == 1

    # The export links back to the agreement and the campaign, which links to the agreement.
    page.click("text=agreement and exports")
    page.click("text=Campaign page")
    assert page.url.endswith(f"/campaigns/{agreeing.pk}/")
    page.get_by_role("link", name="Agreement and scores").click()
    page.wait_for_url(f"{live_server.url}/campaigns/{agreeing.pk}/evaluation/")


def test_export_detail_links_to_campaign_and_agreement(admin_client, agreeing):
    job = ExportJob.objects.create(campaign=agreeing, format="jsonl", status="queued")
    export_run_task(job.pk)
    html = admin_client.get(f"/exports/{job.pk}/").content.decode()
    assert f'href="/campaigns/{agreeing.pk}/"' in html
    assert f'href="/campaigns/{agreeing.pk}/evaluation/"' in html
