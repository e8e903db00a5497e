"""Gold items and annotators below the gold accuracy: what alpha, item scores and exports leave
out by default (`Exclusions`), and the SQL conditions that leave it out."""

from dataclasses import dataclass

from django.db.models import Count

from annotation.models import Campaign, GoldAnswer, Rating
from annotation.selectors import gold_accuracies

# Annotators whose gold accuracy is below this share are left out of alpha and item scores unless
# asked otherwise: 0.5 keeps anyone who matches at least half of the known answers (an annotator
# guessing on a 1-5 scale matches about one in five).
MIN_GOLD_ACCURACY = 0.5


@dataclass(frozen=True)
class Exclusions:
    """What alpha and item scores leave out: the gold items (their answers are known, so they say
    nothing about the knowledge) and the ratings of annotators whose gold accuracy is below
    `min_gold_accuracy`. Only an annotator who rated a gold item can fall below it.

    `low_accuracy` lists every annotator below the threshold, excluded or not; the `include_*`
    flags keep what would otherwise be left out.
    """

    campaign_id: int
    min_gold_accuracy: float
    include_gold: bool
    include_low_accuracy: bool
    gold_items: int
    gold_item_ratings: int
    low_accuracy: tuple[dict, ...]

    @property
    def excludes_gold(self) -> bool:
        return bool(self.gold_items) and not self.include_gold

    @property
    def annotator_ids(self) -> list[int]:
        """The annotators whose ratings are left out."""
        return [] if self.include_low_accuracy else [a["id"] for a in self.low_accuracy]

    def rating_conditions(self, alias: str = "") -> tuple[list[str], list]:
        """SQL conditions on a ratings table (`alias.` before its columns) that leave out what is
        excluded, and their parameters. Nothing when nothing is excluded, so a campaign without
        gold answers runs the same query as before."""
        prefix = f"{alias}." if alias else ""
        conditions: list[str] = []
        params: list = []
        if self.excludes_gold:
            # NOT IN over a subquery: PostgreSQL hashes the gold items once (a hashed subplan).
            conditions.append(f"{prefix}item_id NOT IN ({gold_items_sql()})")
            params.append(self.campaign_id)
        if self.annotator_ids:
            ids = ", ".join(str(int(i)) for i in self.annotator_ids)
            conditions.append(f"{prefix}annotator_id NOT IN ({ids})")
        return conditions, params

    def as_dict(self) -> dict:
        excluded = [] if self.include_low_accuracy else [a["annotator"] for a in self.low_accuracy]
        return {
            "min_gold_accuracy": self.min_gold_accuracy,
            "include_gold": self.include_gold,
            "include_low_accuracy": self.include_low_accuracy,
            "gold_items": self.gold_items,
            "gold_item_ratings": self.gold_item_ratings,
            "gold_items_excluded": self.gold_items if self.excludes_gold else 0,
            "annotators_excluded": excluded,
            "low_accuracy_annotators": [
                {key: value for key, value in a.items() if key != "id"} for a in self.low_accuracy
            ],
        }


def gold_items_sql() -> str:
    """SQL selecting the gold items of the campaign given as its one parameter."""
    return f"SELECT item_id FROM {GoldAnswer._meta.db_table} WHERE campaign_id = %s"


def rating_exclusions(
    *,
    campaign: Campaign,
    min_gold_accuracy: float = MIN_GOLD_ACCURACY,
    include_gold: bool = False,
    include_low_accuracy: bool = False,
) -> Exclusions:
    """The campaign's gold items and its annotators below `min_gold_accuracy` (see `Exclusions`).

    One small query when the campaign has no gold answers; otherwise a few, each led by the gold
    answers or by the excluded annotators.
    """
    if not 0 <= min_gold_accuracy <= 1:
        raise ValueError(f"min_gold_accuracy must be between 0 and 1, not {min_gold_accuracy}")
    gold_item_ids = GoldAnswer.objects.filter(campaign=campaign).values("item_id")
    gold_items = gold_item_ids.distinct().count()
    low: list[dict] = []
    gold_item_ratings = 0
    if gold_items:
        gold_item_ratings = Rating.objects.filter(
            campaign=campaign, item_id__in=gold_item_ids
        ).count()
        below = {
            annotator_id: (hits, total)
            for annotator_id, (hits, total) in gold_accuracies(campaign=campaign).items()
            if total and hits / total < min_gold_accuracy
        }
        if below:
            rows = (
                Rating.objects.filter(campaign=campaign, annotator_id__in=below)
                .values_list("annotator_id", "annotator__username")
                .annotate(n=Count("id"))
                .order_by("annotator__username")
            )
            for annotator_id, username, n in rows:
                hits, total = below[annotator_id]
                low.append(
                    {
                        "id": annotator_id,
                        "annotator": username,
                        "gold_accuracy": round(hits / total, 4),
                        "gold_ratings": total,
                        "ratings": n,
                    }
                )
    return Exclusions(
        campaign_id=campaign.pk,
        min_gold_accuracy=float(min_gold_accuracy),
        include_gold=include_gold,
        include_low_accuracy=include_low_accuracy,
        gold_items=gold_items,
        gold_item_ratings=gold_item_ratings,
        low_accuracy=tuple(low),
    )
