"""Export by critic: the items people did not rate, taken where the critic's score reaches a
threshold picked on its held-out precision-recall curve (or given), beside the items people rated,
which pass or fail on the export's human filters.

`critic_selection` is evaluation's critic picker (`evaluation.extensions.CriticPicker`,
registered by `CriticsConfig.ready`): `evaluation.exports.export.Export` merges
`CriticSelection.rows` into its rows by item id and counts where each came from; the manifest's
`critic` is `CriticSelection.as_manifest`.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from annotation.models import Campaign
from config.errors import ApplicationError, Conflict
from critics.models import Critic
from critics.selectors import critic_export_rows, critic_named
from critics.thresholds import point_at_threshold, threshold_for_precision


@dataclass
class CriticSelection:
    critic: Critic
    threshold: float
    min_precision: float | None
    expected: dict = field(default_factory=dict)
    people: int = 0
    from_critic: int = 0

    def rows(self, export) -> Iterator[dict]:
        """`item_scores`-shaped rows (no ratings) of the items the critic keeps."""
        empty = {f"p{j}": None for j in range(len(export.questions))}
        kinds = export.filters.kinds or tuple(export.campaign.kinds or ())
        for row in critic_export_rows(
            critic=self.critic,
            campaign=export.campaign,
            threshold=self.threshold,
            kinds=kinds,
            exclusions=export.exclusions,
            splits=export.filters.splits,
            held_out=export.filters.held_out,
        ):
            yield {**row, **empty}

    def count(self, rows: list[dict]) -> None:
        from_critic = sum(1 for row in rows if "critic_score" in row)
        self.from_critic += from_critic
        self.people += len(rows) - from_critic

    def as_manifest(self) -> dict:
        critic = self.critic
        return {
            "name": critic.name,
            "version": critic.version,
            "campaign": critic.campaign.name,
            "question": critic.question.name,
            "label": f"mean {critic.question.name} >= {critic.threshold:g}",
            "kind": critic.kind,
            "encoder": critic.encoder or None,
            "sklearn_version": critic.sklearn_version,
            "trained_at": critic.trained_at.isoformat() if critic.trained_at else None,
            "metrics": {k: v for k, v in critic.metrics.items() if k not in ("pr_curve",)},
            "min_precision": self.min_precision,
            "threshold": self.threshold,
            "expected_precision": self.expected.get("precision"),
            "expected_recall": self.expected.get("recall"),
            "items_from_people": self.people,
            "items_from_critic": self.from_critic,
        }

    def as_options(self) -> dict:
        """What an export job stores to pick the same critic again: the picker's arguments
        (`evaluation.extensions.export_critic_from_options`)."""
        return {
            "name": f"{self.critic.name}:v{self.critic.version}",
            "min_precision": self.min_precision,
            "threshold": None if self.min_precision is not None else self.threshold,
        }


def critic_selection(
    *,
    name: str,
    campaign: Campaign,
    min_precision: float | None = None,
    threshold: float | None = None,
) -> CriticSelection:
    """The critic `name` with the score threshold an export keeps unrated items at: picked on the
    held-out precision-recall curve for `min_precision`, or given as `threshold` (one of them).

    Refused: an unknown or untrained critic, one of another dataset, one whose scoring has not
    finished, both or neither of the options, values outside 0-1, a precision it cannot reach.
    """
    critic = critic_named(name)
    if critic.campaign.dataset_id != campaign.dataset_id:
        raise ApplicationError(
            f"critic {critic} scores the items of another dataset than campaign {campaign.name!r}",
            field="critic",
        )
    if critic.scoring_status != Critic.Status.DONE:
        raise Conflict(
            f"critic {critic} has scored {critic.scored} of {critic.to_score} items; wait until "
            "it has scored them all (or run score_critic)"
        )
    if (min_precision is None) == (threshold is None):
        raise ApplicationError(
            "give the critic either a minimum precision or a score threshold", field="critic"
        )
    if min_precision is not None:
        expected = threshold_for_precision(critic.metrics, min_precision)
        return CriticSelection(critic, expected["threshold"], min_precision, expected)
    if not 0 <= threshold <= 1:
        raise ApplicationError(
            f"a critic's score threshold is between 0 and 1, not {threshold}",
            field="critic_threshold",
        )
    return CriticSelection(critic, threshold, None, point_at_threshold(critic.metrics, threshold))
