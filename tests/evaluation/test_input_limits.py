"""Crafted numbers and formulas (issue 13, points 4 and 5): ids out of range are a 400 or a 404,
never a 500, and no cell of a CSV export starts a formula, whatever blank comes first."""

import csv
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from evaluation.models import ExportJob
from evaluation.validators import MAX_RATING_COUNT
from generation.models import KnowledgeItem
from tests.factories import annotators, campaign_create, posts_with_items, rate

pytestmark = pytest.mark.django_db

HUGE = 10**30
FORMULAS = [" =1+1", "\n=cmd", "\t@x", "\r+1", "  -2+3", "@SUM(A1)"]


@pytest.mark.parametrize("campaign", ["²", "%C2%B2", str(HUGE), str(2**63), "-1", "1.0", ""])
def test_an_export_list_filter_out_of_range_is_a_400(admin_api, campaign):
    answer = admin_api.get(f"/api/exports/?campaign={campaign}")
    assert answer.status_code == 400
    assert "A campaign id is a whole number" in answer.json()["campaign"][0]


def test_the_largest_id_filters_to_nothing(admin_api):
    answer = admin_api.get(f"/api/exports/?campaign={2**63 - 1}")
    assert answer.status_code == 200 and answer.json()["count"] == 0


@pytest.mark.parametrize(
    "url",
    [
        f"/api/exports/{HUGE}/",
        f"/api/exports/{HUGE}/download/",
        f"/api/exports/{2**63}/retry/",
        "/api/exports/%C2%B2/",
        f"/api/campaigns/{HUGE}/agreement/",
        f"/api/campaigns/{HUGE}/annotators/",
        f"/exports/{HUGE}/",
        f"/exports/{HUGE}/download/",
        f"/exports/{HUGE}/retry/",
        f"/campaigns/{HUGE}/evaluation/",
        f"/campaigns/{HUGE}/evaluation/items/",
        f"/campaigns/{HUGE}/exports/new/",
    ],
)
def test_ids_out_of_range_in_urls_are_404(admin_user, url):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    method = client.post if url.endswith(("retry/", "new/")) else client.get
    assert method(url).status_code == 404


@pytest.mark.parametrize("campaign", [HUGE, -1, "²"])
def test_an_export_of_a_campaign_out_of_range_is_a_400(admin_api, campaign):
    answer = admin_api.post("/api/exports/", {"campaign": campaign, "format": "csv"}, format="json")
    assert answer.status_code == 400 and "campaign" in answer.json()


@pytest.mark.parametrize("after", ["²", str(HUGE), "-1"])
def test_item_scores_after_an_odd_key_start_at_the_top(admin_client, after):
    campaign = campaign_create(name="scores")
    answer = admin_client.get(f"/campaigns/{campaign.pk}/evaluation/items/?after={after}")
    assert answer.status_code == 200


@pytest.fixture
def formula_campaign():
    """Item texts, a post text, an annotator and question names (stored before names were
    checked) that a spreadsheet would run."""
    campaign = campaign_create(name="formulas", questions=(" =1+1", "\t@x"))
    items = posts_with_items(campaign, posts=2, kinds=["xWant", "xIntent", "open"])
    for item, text in zip(items, FORMULAS, strict=True):
        KnowledgeItem.objects.filter(pk=item.pk).update(text=text)
    coders = annotators(2, prefix="=coder")
    for question in (" =1+1", "\t@x"):
        rate(campaign, items, question, coders, [[3] * 6, [4] * 6])
    return campaign


def _export(campaign, tmp_path: Path, fmt: str) -> list[list[str]]:
    output = tmp_path / f"out-{fmt}"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", fmt, "--output", str(output),
        "--no-progress", stdout=io.StringIO(),
    )  # fmt: skip
    return list(csv.reader(output.open(newline="")))


def _runs_as_formula(cell: str) -> bool:
    return cell.startswith(("\t", "\r", "\n")) or cell.lstrip().startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize("fmt", ["csv", "ratings"])
def test_no_csv_cell_starts_a_formula(formula_campaign, tmp_path, fmt):
    rows = _export(formula_campaign, tmp_path, fmt)
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if _runs_as_formula(cell)]
    if fmt == "csv":
        assert "' =1+1_mean" in rows[0] and "'\t@x_n" in rows[0]
        texts = {row[rows[0].index("text")] for row in rows[1:]}
        assert texts == {"'" + text for text in FORMULAS}
    else:
        assert {row[3] for row in rows[1:]} == {"' =1+1", "'\t@x"}
        assert {row[2] for row in rows[1:]} == {"'=coder0", "'=coder1"}


def test_counts_no_item_can_reach_are_refused_by_api_page_and_command(
    admin_api, admin_client, tmp_path
):
    campaign = campaign_create(name="counts")
    for body, field in [
        ({"min_ratings": HUGE}, "min_ratings"),
        ({"min_ratings": MAX_RATING_COUNT + 1}, "min_ratings"),
        ({"min_agree": {"plausibility": {"value": 4, "count": HUGE}}}, "min_agree"),
    ]:
        answer = admin_api.post(
            "/api/exports/", {"campaign": campaign.pk, "format": "csv", **body}, format="json"
        )
        assert answer.status_code == 400 and field in answer.json()
    page = admin_client.post(
        f"/campaigns/{campaign.pk}/exports/new/",
        {"format": "csv", "min_ratings": str(HUGE), "min_gold_accuracy": "0.8"},
    )
    assert page.status_code < 500
    assert "the minimum number of ratings must be between 0" in page.content.decode()
    page = admin_client.post(
        f"/campaigns/{campaign.pk}/exports/new/",
        {
            "format": "csv",
            "min_ratings": "1",
            "min_agree_value_plausibility": "4",
            "min_agree_count_plausibility": str(HUGE),
        },
    )
    assert "the count of ratings must be between 1" in page.content.decode()
    for args in (["--min-ratings", str(HUGE)], ["--min-agree", f"plausibility=4:{HUGE}"]):
        with pytest.raises(CommandError, match="must be between"):
            call_command(
                "export_dataset", "--campaign", "counts", "--format", "csv",
                "--output", str(tmp_path / "out.csv"), "--no-progress", *args,
                stdout=io.StringIO(),
            )  # fmt: skip
    assert not ExportJob.objects.exists()
