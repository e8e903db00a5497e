"""Filters researchers ask for: median, "at least m of the k ratings at or above x", and gold items
and low-accuracy annotators left out of item scores and exports unless asked (issue 11, point 8).

Every filter is checked against the same rule applied by hand, item by item, with `statistics`.
"""

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from config.errors import ApplicationError
from evaluation.models import ExportJob
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY, rating_exclusions
from evaluation.selectors.filters import AtLeast, ItemFilters
from evaluation.selectors.scores import item_scores, score_summaries
from tests.factories import annotators, campaign_create, gold, posts_with_items, rate

KINDS = ["xWant", "xIntent", "open"]
# Coders × 12 items (4 posts × 3 kinds, in post order). None: not rated, so items have 2, 3 or 4
# ratings and the median of an even number of ratings is the mean of the middle two.
PLAUSIBILITY = [
    [5, 4, 2, 5, 3, 1, 4, 5, 3, 2, 5, 4],
    [5, 4, 3, 5, 4, 2, 4, 3, 3, 1, 5, None],
    [5, 3, 2, 4, 2, 1, 5, 4, 4, 2, 4, 5],
    [None, 1, 5, 2, None, 4, 3, 4, None, 5, 1, None],
]
TYPICALITY = [
    [4, 2, 3, 5, 3, 2, 3, 3, 2, 1, 5, 4],
    [3, 3, 3, 4, 3, 2, 2, 3, 2, 2, 5, None],
    [4, 2, 3, 1, 2, 1, 3, 4, 3, 1, 4, 5],
    [None, 5, 4, 4, None, 1, 2, 5, None, 3, 2, None],
]


@pytest.fixture
def campaign(db):
    campaign = campaign_create(name="filters")
    items = posts_with_items(campaign, posts=4, kinds=KINDS)
    coders = annotators(4)
    rate(campaign, items, "plausibility", coders, PLAUSIBILITY)
    rate(campaign, items, "typicality", coders, TYPICALITY)
    campaign.items = items
    campaign.coders = coders
    return campaign


def column(matrix: list, u: int, coders: range | list = range(4)) -> list[int]:
    return [matrix[c][u] for c in coders if matrix[c][u] is not None]


def kept(campaign, filters: ItemFilters) -> list[int]:
    return [row["item_id"] for row in item_scores(campaign=campaign, filters=filters)]


def by_hand(campaign, rule) -> list[int]:
    """The items whose plausibility and typicality ratings pass `rule(p, t)`."""
    return [
        item.id
        for u, item in enumerate(campaign.items)
        if rule(column(PLAUSIBILITY, u), column(TYPICALITY, u))
    ]


@pytest.mark.parametrize("bound", [1, 2.5, 3, 3.5, 4, 4.5, 5])
def test_min_median_is_exact(campaign, bound):
    filters = ItemFilters(min_mean={}, min_median={"plausibility": bound})
    assert kept(campaign, filters) == by_hand(campaign, lambda p, t: statistics.median(p) >= bound)
    both = ItemFilters(min_mean={}, min_median={"plausibility": bound, "typicality": 3})
    assert kept(campaign, both) == by_hand(
        campaign, lambda p, t: statistics.median(p) >= bound and statistics.median(t) >= 3
    )


def test_the_median_of_an_even_number_of_ratings_is_between_the_middle_two(campaign):
    # The last item has plausibility 4 and 5: median 4.5, which passes 4.5 and fails 4.6.
    last = campaign.items[11].id
    assert last in kept(campaign, ItemFilters(min_mean={}, min_median={"plausibility": 4.5}))
    assert last not in kept(campaign, ItemFilters(min_mean={}, min_median={"plausibility": 4.6}))


@pytest.mark.parametrize(("value", "count"), [(4, 1), (4, 2), (4, 3), (3.5, 2), (5, 2), (2, 4)])
def test_at_least_m_ratings_at_or_above_x_is_exact(campaign, value, count):
    filters = ItemFilters(min_mean={}, min_agree={"plausibility": AtLeast(value, count)})
    assert kept(campaign, filters) == by_hand(
        campaign, lambda p, t: sum(v >= value for v in p) >= count
    )


def test_no_value_of_the_scale_reaches_the_bound(campaign):
    filters = ItemFilters(min_mean={}, min_agree={"typicality": AtLeast(6, 1)})
    assert kept(campaign, filters) == []


def test_filters_combine(campaign):
    filters = ItemFilters(
        min_mean={"typicality": 2.5},
        min_median={"plausibility": 4},
        min_agree={"typicality": AtLeast(3, 2)},
        min_ratings=3,
    )
    expected = by_hand(
        campaign,
        lambda p, t: (
            len(p) >= 3
            and len(t) >= 3
            and statistics.mean(t) >= 2.5
            and statistics.median(p) >= 4
            and sum(v >= 3 for v in t) >= 2
        ),
    )
    assert expected and kept(campaign, filters) == expected


def test_score_summaries_carry_the_exact_median(campaign):
    rows = list(item_scores(campaign=campaign, filters=ItemFilters(min_mean={})))
    questions = list(campaign.questions.order_by("position"))
    for u, summary in enumerate(score_summaries(rows, questions)):
        assert summary["plausibility"]["median"] == statistics.median(column(PLAUSIBILITY, u))
        assert summary["typicality"]["median"] == statistics.median(column(TYPICALITY, u))


def test_filters_round_trip_and_old_saved_filters_still_load():
    filters = ItemFilters(
        min_mean={"plausibility": 4.0},
        kinds=("xWant",),
        min_ratings=3,
        max_spread=2.0,
        min_median={"typicality": 3.5},
        min_agree={"plausibility": AtLeast(4.0, 2)},
        include_gold=True,
        include_low_accuracy=True,
        min_gold_accuracy=0.75,
    )
    saved = json.loads(json.dumps(filters.as_dict()))
    assert saved["min_agree"] == {"plausibility": {"value": 4.0, "count": 2}}
    assert ItemFilters.from_dict(saved) == filters
    # A job saved before these filters existed.
    old = ItemFilters.from_dict(
        {"min_mean": {"plausibility": 4}, "kinds": [], "min_ratings": 1, "max_spread": None}
    )
    assert old.min_median == {} and old.min_agree == {}
    assert not old.include_gold and not old.include_low_accuracy
    assert old.min_gold_accuracy == MIN_GOLD_ACCURACY == 0.5


@pytest.mark.parametrize(
    "broken",
    [
        {"min_agree": {"plausibility": {"value": 4}}},
        {"min_agree": {"plausibility": {"value": 4, "count": 0}}},
        {"min_agree": {"plausibility": {"value": 4, "count": 2, "of": 3}}},
        {"min_agree": {"plausibility": 4}},
        {"min_gold_accuracy": 1.5},
        {"min_median": {"plausibility": "high"}},
    ],
)
def test_broken_saved_filters_are_refused(broken):
    with pytest.raises(ValueError):
        ItemFilters.from_dict({"min_mean": {}, **broken})


def test_unknown_question_in_a_new_filter_is_refused(campaign):
    with pytest.raises(ApplicationError, match="unknown question.*fluency"):
        kept(campaign, ItemFilters(min_mean={}, min_median={"fluency": 3}))
    with pytest.raises(ApplicationError, match="unknown question.*fluency"):
        kept(campaign, ItemFilters(min_mean={}, min_agree={"fluency": AtLeast(3, 1)}))


# --- the command line ---------------------------------------------------------------------------


def export(campaign, tmp_path: Path, *args: str) -> tuple[list[dict], dict]:
    output = tmp_path / "out.jsonl"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", "jsonl", "--output",
        str(output), "--no-progress", *args, stdout=io.StringIO(),
    )  # fmt: skip
    records = [json.loads(line) for line in output.read_text().splitlines()]
    manifest = json.loads(output.with_name(output.name + ".manifest.json").read_text())
    return records, manifest


def test_export_dataset_takes_median_and_at_least(campaign, tmp_path):
    records, manifest = export(
        campaign, tmp_path, "--min-median", "plausibility=4", "--min-agree", "typicality=3:2",
        "--min-plausibility", "3.5",
    )  # fmt: skip
    assert [r["item_id"] for r in records] == by_hand(
        campaign,
        lambda p, t: (
            statistics.median(p) >= 4 and sum(v >= 3 for v in t) >= 2 and statistics.mean(p) >= 3.5
        ),
    )
    assert manifest["filters"]["min_median"] == {"plausibility": 4.0}
    assert manifest["filters"]["min_agree"] == {"typicality": {"value": 3.0, "count": 2}}
    assert manifest["filters"]["min_mean"] == {"plausibility": 3.5}
    assert all(r["scores"]["plausibility"]["median"] >= 4 for r in records)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-median", "plausibility"], "--min-median wants QUESTION=NUMBER"),
        (["--min-median", "plausibility=high"], "--min-median wants QUESTION=NUMBER"),
        (["--min-median", "=4"], "--min-median wants QUESTION=NUMBER"),
        (["--min-median", "plausibility=nan"], "--min-median wants QUESTION=NUMBER"),
        (["--min-agree", "plausibility=4"], "--min-agree wants QUESTION=X:M"),
        (["--min-agree", "plausibility=4:0"], "--min-agree wants QUESTION=X:M"),
        (["--min-agree", "plausibility=4:1.5"], "--min-agree wants QUESTION=X:M"),
        (["--min-agree", "plausibility=x:2"], "--min-agree wants QUESTION=X:M"),
        (["--min-agree", "fluency=4:2"], "unknown question"),
        (["--min-median", "fluency=4"], "unknown question"),
        (["--min-gold-accuracy", "1.2"], "--min-gold-accuracy must be between 0 and 1"),
    ],
)
def test_export_dataset_refuses_broken_filters(campaign, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        export(campaign, tmp_path, *args)


# --- gold items and annotators below the gold accuracy ------------------------------------------

GOLD_COLUMNS = [0, 1, 2]  # the first post's three items are gold
LOW = 3  # coder3 misses every gold answer


@pytest.fixture
def gold_campaign(campaign):
    """Gold answers on the first post's items (plausibility): coders 0-2 match at least two of
    three, coder3 matches none (accuracy 0 < 0.5)."""
    for u, value in zip(GOLD_COLUMNS, [5, 4, 2], strict=True):
        gold(campaign, campaign.items[u], "plausibility", value)
    return campaign


def test_gold_items_and_low_accuracy_annotators_are_left_out_by_default(gold_campaign):
    rows = list(item_scores(campaign=gold_campaign, filters=ItemFilters(min_mean={})))
    ids = [row["item_id"] for row in rows]
    assert ids == [item.id for u, item in enumerate(gold_campaign.items) if u not in GOLD_COLUMNS]
    questions = list(gold_campaign.questions.order_by("position"))
    kept_coders = [0, 1, 2]
    for row, summary in zip(rows, score_summaries(rows, questions), strict=True):
        u = ids.index(row["item_id"]) + len(GOLD_COLUMNS)
        p = column(PLAUSIBILITY, u, kept_coders)
        assert summary["plausibility"]["n"] == len(p)
        assert summary["plausibility"]["mean"] == round(statistics.mean(p), 4)
        assert summary["plausibility"]["median"] == statistics.median(p)


def test_filters_read_only_the_ratings_kept(gold_campaign):
    # Item 6 (index 5): plausibility 1, 2, 1 from coders 0-2, 4 from coder3.
    item = gold_campaign.items[5]
    agree = ItemFilters(min_mean={}, min_agree={"plausibility": AtLeast(4, 1)})
    assert item.id not in kept(gold_campaign, agree)
    assert item.id in kept(
        gold_campaign,
        ItemFilters(
            min_mean={}, min_agree={"plausibility": AtLeast(4, 1)}, include_low_accuracy=True
        ),
    )


def test_include_flags_and_the_threshold(gold_campaign):
    every = [item.id for item in gold_campaign.items]
    assert kept(
        gold_campaign,
        ItemFilters(min_mean={}, include_gold=True, include_low_accuracy=True, min_ratings=4),
    ) == [item.id for u, item in enumerate(gold_campaign.items) if len(column(PLAUSIBILITY, u)) == 4
          and len(column(TYPICALITY, u)) == 4]  # fmt: skip
    assert kept(gold_campaign, ItemFilters(min_mean={}, include_gold=True)) == every
    # Threshold 0: nobody is below it; coder3's ratings count (4 ratings on item 2).
    rows = item_scores(
        campaign=gold_campaign, filters=ItemFilters(min_mean={}, min_gold_accuracy=0, min_ratings=4)
    )
    assert [row["item_id"] for row in rows] == [
        item.id
        for u, item in enumerate(gold_campaign.items)
        if u not in GOLD_COLUMNS and len(column(PLAUSIBILITY, u)) == 4 == len(column(TYPICALITY, u))
    ]


def test_only_annotators_who_rated_a_gold_item_can_be_left_out(gold_campaign):
    # Coder3 rated none of the gold items now: accuracy unknown, never excluded.
    from annotation.models import Rating

    Rating.objects.filter(
        annotator=gold_campaign.coders[LOW],
        item_id__in=[gold_campaign.items[u].id for u in GOLD_COLUMNS],
    ).delete()
    exclusions = rating_exclusions(campaign=gold_campaign, min_gold_accuracy=1.0)
    # Coders 0-2 match 3, 2 and 2 of their 3 gold answers: below 100% except coder0.
    assert [a["annotator"] for a in exclusions.low_accuracy] == ["coder1", "coder2"]
    assert exclusions.gold_items == 3


def test_exclusions_report_names_accuracy_and_counts(gold_campaign):
    exclusions = rating_exclusions(campaign=gold_campaign)
    assert exclusions.as_dict() == {
        "min_gold_accuracy": 0.5,
        "include_gold": False,
        "include_low_accuracy": False,
        "gold_items": 3,
        # Coders 0-2 rate the three items on both questions, coder3 the second and third.
        "gold_item_ratings": 3 * 3 * 2 + 2 * 2,
        "gold_items_excluded": 3,
        "annotators_excluded": ["coder3"],
        "low_accuracy_annotators": [
            {"annotator": "coder3", "gold_accuracy": 0.0, "gold_ratings": 2, "ratings": 16}
        ],
    }
    kept_all = rating_exclusions(
        campaign=gold_campaign, include_gold=True, include_low_accuracy=True
    ).as_dict()
    assert kept_all["annotators_excluded"] == [] and kept_all["gold_items_excluded"] == 0
    assert [a["annotator"] for a in kept_all["low_accuracy_annotators"]] == ["coder3"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        rating_exclusions(campaign=gold_campaign, min_gold_accuracy=-0.1)


def test_exports_leave_out_gold_items_and_low_accuracy_ratings(gold_campaign, tmp_path):
    records, manifest = export(gold_campaign, tmp_path)
    gold_ids = {gold_campaign.items[u].id for u in GOLD_COLUMNS}
    assert len(records) == 9 and not gold_ids & {r["item_id"] for r in records}
    third = records[2]  # the sixth item: plausibility 1, 2, 1 and coder3's 4, left out
    assert third["scores"]["plausibility"]["n"] == 3
    assert manifest["filters"]["include_gold"] is False
    assert manifest["filters"]["min_gold_accuracy"] == 0.5

    records, manifest = export(gold_campaign, tmp_path, "--include-gold", "--include-low-accuracy")
    assert len(records) == 12 and gold_ids <= {r["item_id"] for r in records}
    assert records[5]["scores"]["plausibility"]["n"] == 4  # item 6 with coder3's rating
    assert manifest["filters"]["include_gold"] is True
    assert manifest["filters"]["include_low_accuracy"] is True

    records, _ = export(gold_campaign, tmp_path, "--min-gold-accuracy", "0")
    assert len(records) == 9 and records[2]["scores"]["plausibility"]["n"] == 4


# --- the export API and the export form ---------------------------------------------------------


def test_export_api_takes_the_new_filters(admin_api, campaign):
    response = admin_api.post(
        "/api/exports/",
        {
            "campaign": campaign.pk,
            "format": "jsonl",
            "min_median": {"plausibility": 4},
            "min_agree": {"typicality": {"value": 3, "count": 2}},
            "include_gold": True,
            "min_gold_accuracy": 0.8,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    filters = ExportJob.objects.get().filters
    assert filters["min_median"] == {"plausibility": 4.0}
    assert filters["min_agree"] == {"typicality": {"value": 3.0, "count": 2}}
    assert filters["include_gold"] is True and filters["include_low_accuracy"] is False
    assert filters["min_gold_accuracy"] == 0.8


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"min_agree": {"plausibility": {"value": 4}}}, "min_agree"),
        ({"min_agree": {"plausibility": {"value": 4, "count": 0}}}, "min_agree"),
        ({"min_agree": {"plausibility": 4}}, "min_agree"),
        ({"min_median": {"plausibility": "high"}}, "min_median"),
        ({"min_median": {"fluency": 3}}, "min_median"),
        ({"min_agree": {"fluency": {"value": 3, "count": 1}}}, "min_agree"),
        ({"min_gold_accuracy": 2}, "min_gold_accuracy"),
    ],
)
def test_export_api_refuses_broken_filters(admin_api, campaign, body, field):
    response = admin_api.post(
        "/api/exports/", {"campaign": campaign.pk, "format": "jsonl", **body}, format="json"
    )
    assert response.status_code == 400 and field in response.json()
    assert ExportJob.objects.count() == 0


def test_export_form_takes_the_new_filters(admin_client, campaign):
    page = admin_client.get(f"/campaigns/{campaign.pk}/evaluation/").content.decode()
    for name in ("min_median_plausibility", "min_agree_value_typicality", "include_gold",
                 "include_low_accuracy", "min_gold_accuracy"):  # fmt: skip
        assert f'name="{name}"' in page
    response = admin_client.post(
        f"/campaigns/{campaign.pk}/exports/new/",
        {
            "format": "jsonl",
            "min_ratings": "1",
            "min_median_plausibility": "4",
            "min_agree_value_typicality": "3",
            "min_agree_count_typicality": "2",
            "include_low_accuracy": "on",
        },
    )
    assert response.status_code == 302
    filters = ItemFilters.from_dict(ExportJob.objects.get().filters)
    assert filters.min_median == {"plausibility": 4.0}
    assert filters.min_agree == {"typicality": AtLeast(3.0, 2)}
    assert filters.include_low_accuracy and not filters.include_gold
    assert filters.min_gold_accuracy == 0.5


def test_export_form_wants_both_halves_of_at_least(admin_client, campaign):
    response = admin_client.post(
        f"/campaigns/{campaign.pk}/exports/new/",
        {"format": "jsonl", "min_ratings": "1", "min_agree_value_plausibility": "4"},
    )
    assert response.status_code == 400
    assert "Give both the value and how many ratings must reach it." in response.content.decode()
    assert ExportJob.objects.count() == 0


def test_ratings_export_and_manifest_leave_out_the_same_ratings(gold_campaign, tmp_path):
    output = tmp_path / "ratings.csv"
    call_command(
        "export_dataset", "--campaign", gold_campaign.name, "--format", "ratings", "--output",
        str(output), "--no-progress", stdout=io.StringIO(),
    )  # fmt: skip
    rows = list(csv.DictReader(output.open()))
    kept_ratings = sum(
        len(column(matrix, u, [0, 1, 2]))
        for matrix in (PLAUSIBILITY, TYPICALITY)
        for u in range(len(gold_campaign.items))
        if u not in GOLD_COLUMNS
    )
    assert len(rows) == kept_ratings and {r["annotator"] for r in rows} == {
        "coder0", "coder1", "coder2"
    }  # fmt: skip
    manifest = json.loads(output.with_name(output.name + ".manifest.json").read_text())
    assert manifest["counts"]["ratings"] == kept_ratings
    assert manifest["excluded"]["annotators_excluded"] == ["coder3"]
    assert manifest["excluded"]["gold_items_excluded"] == 3
