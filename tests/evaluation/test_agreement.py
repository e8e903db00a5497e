"""Agreement through the command line, checked against published values, and its edge cases;
gold items and low-accuracy annotators left out and reported."""

import io
import json
import math

import krippendorff
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.models import GoldAnswer, Question, Rating
from evaluation.models import AgreementResult
from evaluation.services import agreement_current
from evaluation.tasks import agreement_refresh_task
from tests.factories import (
    annotators,
    campaign_create,
    posts_with_items,
    rate,
    reliability_campaign,
)

nan = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1-5 with missing data. Published: nominal .743, ordinal .815, interval .849,
# ratio .797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# The example in the `krippendorff` package's README and docstring: 3 coders, 15 units.
# Published: nominal 0.691358, interval 0.810845.
PACKAGE_EXAMPLE = [
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]


def agreement_json(campaign: str, *args: str) -> dict:
    out = io.StringIO()
    call_command("agreement", "--campaign", campaign, "--json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_reference_values(level, expected):
    reliability_campaign(KRIPPENDORFF_2011, name="k2011")
    result = agreement_json("k2011", "--level", level)
    figures = result["questions"]["plausibility"]
    assert round(figures["alpha"], 3) == expected
    assert figures["level"] == level
    assert figures["n_items"] == 12
    assert figures["n_pairable_items"] == 11
    assert figures["n_ratings"] == 41
    low, high = figures["ci95"]
    assert low <= figures["alpha"] <= high
    # One kind only: the per-kind figure is the same.
    assert figures["kinds"]["xIntent"]["alpha"] == pytest.approx(figures["alpha"])


@pytest.mark.django_db
@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.691358), ("interval", 0.810845)])
def test_package_example_reference_values(level, expected):
    reliability_campaign(PACKAGE_EXAMPLE, name="package")
    result = agreement_json("package", "--level", level)
    assert round(result["questions"]["plausibility"]["alpha"], 6) == expected


@pytest.mark.django_db
def test_level_defaults_to_the_scale_and_per_kind_figures():
    campaign = campaign_create(name="kinds", questions=("plausibility",))
    items = posts_with_items(campaign, posts=6, kinds=["xWant", "oReact"], described=False)
    coders = annotators(3)
    # xWant items (even positions) agree perfectly; oReact items disagree.
    matrix = [
        [5, 1, 4, 2, 3, 5, 1, 1, 2, 5, 4, 4],
        [5, 5, 4, 1, 3, 2, 1, 4, 2, 1, 4, 2],
        [5, 3, 4, 4, 3, 1, 1, 2, 2, 3, 4, 5],
    ]
    rate(campaign, items, "plausibility", coders, matrix)
    result = agreement_json("kinds")
    figures = result["questions"]["plausibility"]
    assert figures["level"] == "ordinal"
    assert result["level"] is None
    assert list(figures["kinds"]) == ["xWant", "oReact"]  # MIKO slot order
    assert figures["kinds"]["xWant"]["alpha"] == 1.0
    assert figures["kinds"]["xWant"]["n_items"] == 6
    assert figures["kinds"]["xWant"]["n_ratings"] == 18
    assert figures["kinds"]["oReact"]["alpha"] < 0.2
    assert figures["n_items"] == 12 and figures["n_ratings"] == 36


@pytest.mark.django_db
def test_one_rater_gives_null_alpha_with_a_reason():
    reliability_campaign([[1, 2, 3, 4, 5]], name="solo")
    figures = agreement_json("solo")["questions"]["plausibility"]
    assert figures["alpha"] is None
    assert "no pairable item" in figures["reason"]
    assert figures["n_items"] == 5 and figures["n_pairable_items"] == 0


@pytest.mark.django_db
def test_perfect_agreement_is_one_and_a_single_value_is_undefined():
    reliability_campaign([[1, 2, 3, 5], [1, 2, 3, 5]], name="perfect")
    assert agreement_json("perfect")["questions"]["plausibility"]["alpha"] == 1.0
    assert agreement_json("perfect")["questions"]["plausibility"]["ci95"] == [1.0, 1.0]
    reliability_campaign([[4, 4, 4], [4, 4, 4]], name="constant")
    figures = agreement_json("constant")["questions"]["plausibility"]
    assert figures["alpha"] is None
    assert "no variation" in figures["reason"]


@pytest.mark.django_db
def test_no_pairable_unit_with_missing_values():
    # Every item has exactly one rating, from different coders.
    reliability_campaign([[1, nan, nan], [nan, 2, nan], [nan, nan, 3]], name="sparse")
    figures = agreement_json("sparse")["questions"]["plausibility"]
    assert figures["alpha"] is None and figures["n_ratings"] == 3


@pytest.mark.django_db
def test_no_ratings_at_all():
    campaign_create(name="empty")
    result = agreement_json("empty")
    assert result["questions"]["plausibility"]["alpha"] is None
    assert result["questions"]["plausibility"]["reason"] == "no ratings"
    assert result["questions"]["plausibility"]["kinds"] == {}


@pytest.mark.django_db
def test_text_output_and_errors():
    reliability_campaign(KRIPPENDORFF_2011, name="k2011")
    out = io.StringIO()
    call_command("agreement", "--campaign", "k2011", stdout=out)
    assert "plausibility (ordinal): alpha 0.815" in out.getvalue()
    with pytest.raises(CommandError, match="no campaign named 'nope'"):
        call_command("agreement", "--campaign", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("agreement", "--campaign", "k2011", "--level", "cardinal")


@pytest.mark.django_db
def test_result_is_cached_and_refreshed_when_ratings_change():
    campaign = reliability_campaign(KRIPPENDORFF_2011, name="k2011")
    first = agreement_current(campaign=campaign)
    assert agreement_current(campaign=campaign).computed_at == first.computed_at
    rating = Rating.objects.filter(campaign=campaign).first()
    rating.value = 5 if rating.value != 5 else 1
    rating.save()
    second = agreement_current(campaign=campaign)
    assert second.computed_at > first.computed_at
    assert second.result["questions"]["plausibility"]["alpha"] != pytest.approx(0.815, abs=1e-3)
    Question.objects.filter(campaign=campaign).update(scale="1-7")
    assert agreement_current(campaign=campaign).computed_at > second.computed_at
    assert AgreementResult.objects.filter(campaign=campaign).count() == 1


@pytest.mark.django_db
def test_large_campaigns_are_computed_in_the_background(django_capture_on_commit_callbacks):
    campaign = reliability_campaign(KRIPPENDORFF_2011, name="k2011")
    with django_capture_on_commit_callbacks() as callbacks:
        record = agreement_current(campaign=campaign, inline_limit=10)
    assert record.status == AgreementResult.Status.QUEUED and record.result is None
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as again:
        agreement_current(campaign=campaign, inline_limit=10)
    assert again == []  # already queued: not queued twice
    agreement_refresh_task(campaign.pk, "")  # what the worker runs
    record.refresh_from_db()
    assert record.status == AgreementResult.Status.DONE
    assert round(record.result["questions"]["plausibility"]["alpha"], 3) == 0.815


# --- gold items and annotators below the gold accuracy (issue 11, point 8) ----------------------

# Four coders × eight items; the first three items are gold (expected 5, 1, 4). Coders 0-2 match
# at least two of three; coder3 matches none (accuracy 0, below the default 0.5).
GOLD_MATRIX = [
    [5, 1, 4, 4, 2, 5, 3, 1],
    [5, 2, 4, 4, 3, 5, 2, 1],
    [4, 1, 4, 5, 2, 4, 3, 2],
    [1, 5, 1, 1, 5, 1, 5, 5],
]
GOLD_VALUES = [5, 1, 4]


def gold_campaign():
    campaign = reliability_campaign(GOLD_MATRIX, name="goldcheck")
    items = list(campaign.ratings.order_by("item_id").values_list("item_id", flat=True).distinct())
    question = Question.objects.get(campaign=campaign)
    for item_id, value in zip(items, GOLD_VALUES, strict=False):
        GoldAnswer.objects.create(
            campaign=campaign, item_id=item_id, question=question, value=value
        )
    return campaign


def reference_alpha(coders: list[int], units: list[int]) -> float:
    """Alpha of the `krippendorff` package on a part of GOLD_MATRIX."""
    data = np.array([[GOLD_MATRIX[c][u] for u in units] for c in coders], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))


@pytest.mark.django_db
def test_gold_items_and_low_accuracy_annotators_are_left_out_and_reported():
    gold_campaign()
    result = agreement_json("goldcheck")
    figures = result["questions"]["plausibility"]
    assert figures["alpha"] == pytest.approx(reference_alpha([0, 1, 2], [3, 4, 5, 6, 7]))
    assert figures["n_items"] == 5 and figures["n_ratings"] == 15
    excluded = result["excluded"]
    assert excluded["gold_items"] == 3 and excluded["gold_items_excluded"] == 3
    assert excluded["gold_item_ratings"] == 12
    assert excluded["annotators_excluded"] == ["goldcheck-coder3"]
    assert excluded["low_accuracy_annotators"] == [
        {"annotator": "goldcheck-coder3", "gold_accuracy": 0.0, "gold_ratings": 3, "ratings": 8}
    ]
    assert excluded["min_gold_accuracy"] == 0.5
    gold_figures = result["gold"]["plausibility"]
    assert gold_figures["alpha"] == pytest.approx(reference_alpha([0, 1, 2], [0, 1, 2]))
    assert gold_figures["n_items"] == 3 and gold_figures["n_ratings"] == 9


@pytest.mark.django_db
def test_agreement_can_include_what_it_leaves_out():
    gold_campaign()
    everything = agreement_json("goldcheck", "--include-gold", "--include-low-accuracy")
    figures = everything["questions"]["plausibility"]
    assert figures["alpha"] == pytest.approx(reference_alpha([0, 1, 2, 3], list(range(8))))
    assert everything["excluded"]["annotators_excluded"] == []
    assert everything["excluded"]["gold_items_excluded"] == 0
    # The gold figures keep their own part: the gold items, rated by everyone counted.
    assert everything["gold"]["plausibility"]["n_ratings"] == 12
    with_gold = agreement_json("goldcheck", "--include-gold")["questions"]["plausibility"]
    assert with_gold["alpha"] == pytest.approx(reference_alpha([0, 1, 2], list(range(8))))
    nobody_low = agreement_json("goldcheck", "--min-gold-accuracy", "0")
    assert nobody_low["excluded"]["annotators_excluded"] == []
    assert nobody_low["questions"]["plausibility"]["alpha"] == pytest.approx(
        reference_alpha([0, 1, 2, 3], [3, 4, 5, 6, 7])
    )
    # A stricter threshold: coders 1 and 2 match two of three.
    strict = agreement_json("goldcheck", "--min-gold-accuracy", "0.9")["excluded"]
    assert strict["annotators_excluded"] == [
        "goldcheck-coder1", "goldcheck-coder2", "goldcheck-coder3"
    ]  # fmt: skip
    with pytest.raises(CommandError, match="between 0 and 1"):
        agreement_json("goldcheck", "--min-gold-accuracy", "1.5")


@pytest.mark.django_db
def test_text_output_says_what_was_left_out():
    gold_campaign()
    out = io.StringIO()
    call_command("agreement", "--campaign", "goldcheck", stdout=out)
    text = out.getvalue()
    assert "Gold items: 3 (12 ratings), left out." in text
    assert "  gold plausibility: alpha" in text
    assert "Annotator goldcheck-coder3: gold accuracy 0% of 3 < 50%, 8 ratings left out." in text


@pytest.mark.django_db
def test_a_new_gold_answer_refreshes_the_cached_agreement():
    campaign = reliability_campaign(GOLD_MATRIX, name="goldcheck")
    first = agreement_current(campaign=campaign)
    assert first.result["excluded"]["gold_items"] == 0 and first.result["gold"] == {}
    item_id = campaign.ratings.order_by("item_id").values_list("item_id", flat=True).first()
    question = Question.objects.get(campaign=campaign)
    GoldAnswer.objects.create(campaign=campaign, item_id=item_id, question=question, value=5)
    second = agreement_current(campaign=campaign)
    assert second.computed_at > first.computed_at
    assert second.result["excluded"]["gold_items"] == 1
    # One gold answer is enough to judge: coders 2 and 3 missed it.
    assert second.result["excluded"]["annotators_excluded"] == [
        "goldcheck-coder2", "goldcheck-coder3"
    ]  # fmt: skip


@pytest.mark.django_db
def test_dashboard_shows_what_was_left_out(admin_client):
    campaign = gold_campaign()
    html = admin_client.get(f"/campaigns/{campaign.pk}/evaluation/").content.decode()
    assert "Left out of alpha and item scores" in html
    assert "3 gold items (12 ratings)" in html
    assert "goldcheck-coder3 (0% of 3, 8 ratings)" in html
    assert "Gold items alone" in html
    assert 'goldcheck-coder3 <span class="muted" title="gold accuracy below' in html
    assert "(gold)" in html  # the item scores mark gold items
