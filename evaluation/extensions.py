"""What the apps above evaluation add to its exports, registered in their `AppConfig.ready()`.

Dependencies run one way (generation ← annotation ← evaluation ← students, critics, judges), so
evaluation imports none of the apps above it; two of them take part in its exports through here:

- the split rule (`students`, `SplitRule`): which of a dataset's splits an export may take and
  which it never takes (a training format leaves the held-out split out), the SQL that keeps an
  item's post within them, and the manifest's `splits`;
- export by critic (`critics`, `CriticPicker`): the critic an export names, with the score
  threshold it keeps unrated items at; the selection it returns (`CriticSelection`) adds those
  items to the export's rows and its figures to the manifest (`exports.export.Export`).

Without the app, an export that asks for a split or a critic is refused, and one that does not
asks for none.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from annotation.models import Campaign
from config.errors import ApplicationError
from evaluation.selectors.filters import ItemFilters
from generation.models import Dataset


@dataclass(frozen=True)
class SplitRule:
    """The split rule of exports, as three functions (see `students.selectors`).

    `filters(dataset=, training=, filters=)`: the export's `ItemFilters` with the rule applied
    (`held_out` set), or an `ApplicationError` naming the split refused;
    `conditions(post_column=, splits=, held_out=)`: SQL conditions and their parameters on a
    post id column; `manifest(dataset=, filters=)`: the manifest's `splits`.
    """

    filters: Callable[..., ItemFilters]
    conditions: Callable[..., tuple[list[str], list]]
    manifest: Callable[..., dict]


class CriticSelection(Protocol):
    """What an export reads of the critic it was given (`critics.exporting.CriticSelection`)."""

    def rows(self, export: Any) -> Iterator[dict]:
        """`item_scores`-shaped rows, by item id, of the unrated items the critic keeps."""
        ...

    def count(self, rows: list[dict]) -> None:
        """Count a chunk of the export's rows: from people or from the critic."""
        ...

    def as_manifest(self) -> dict: ...

    def as_options(self) -> dict:
        """What an export job stores to pick the same critic again (`critic_from_options`)."""
        ...


class CriticPicker(Protocol):
    """Picks the critic `name` for an export of `campaign`, with a minimum held-out precision or
    a score threshold (one of them); refuses with an `ApplicationError` or a `Conflict`."""

    def __call__(
        self,
        *,
        name: str,
        campaign: Campaign,
        min_precision: float | None,
        threshold: float | None,
    ) -> CriticSelection: ...


@dataclass
class _Registered:
    split_rule: SplitRule | None = None
    critic_picker: CriticPicker | None = None


_registered = _Registered()


def split_rule_register(rule: SplitRule) -> None:
    _registered.split_rule = rule


def critic_picker_register(picker: CriticPicker) -> None:
    _registered.critic_picker = picker


def export_split_filters(*, dataset: Dataset, training: bool, filters: ItemFilters) -> ItemFilters:
    """An export's filters with the split rule applied (for a `training` format or not)."""
    rule = _registered.split_rule
    if rule is None:
        if filters.splits:
            raise ApplicationError("no split rule is installed: export every split", field="split")
        return filters
    return rule.filters(dataset=dataset, training=training, filters=filters)


def split_conditions(
    *, post_column: str, splits: Sequence[str], held_out: Sequence[str]
) -> tuple[list[str], list]:
    """SQL conditions (and parameters) on a post id column for an export's splits: in one of
    `splits` (when any), in none of `held_out`; none when neither names a split."""
    if not splits and not held_out:
        return [], []
    assert _registered.split_rule is not None, "splits asked for without a split rule"
    return _registered.split_rule.conditions(
        post_column=post_column, splits=splits, held_out=held_out
    )


def splits_manifest(*, dataset: Dataset, filters: ItemFilters) -> dict | None:
    """The manifest's `splits` (None without a split rule)."""
    rule = _registered.split_rule
    return None if rule is None else rule.manifest(dataset=dataset, filters=filters)


def export_critic(
    *,
    name: str,
    campaign: Campaign,
    min_precision: float | None = None,
    threshold: float | None = None,
) -> CriticSelection:
    """The critic an export of `campaign` names, picked by the registered `CriticPicker`."""
    picker = _registered.critic_picker
    if picker is None:
        raise ApplicationError("no critics are installed: export without one", field="critic")
    return picker(name=name, campaign=campaign, min_precision=min_precision, threshold=threshold)


def export_critic_from_options(*, options: dict, campaign: Campaign) -> CriticSelection:
    """The critic an export job stored (`CriticSelection.as_options`), picked again."""
    return export_critic(
        name=options["name"],
        campaign=campaign,
        min_precision=options.get("min_precision"),
        threshold=options.get("threshold"),
    )
