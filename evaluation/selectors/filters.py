"""`ItemFilters`: which items an export keeps (per-question bounds on mean, median and "at least M
ratings at or above X", kinds, ratings, spread, gold handling), as saved on an export job."""

from dataclasses import dataclass, field

from annotation.models import Campaign
from config.errors import ApplicationError
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY, Exclusions, rating_exclusions


@dataclass(frozen=True)
class AtLeast:
    """At least `count` of an item's ratings at or above `value` (e.g. 2 of 3 at 4 or more)."""

    value: float
    count: int

    def __post_init__(self) -> None:
        if int(self.count) != self.count or self.count < 1:
            raise ValueError(f"the count of ratings must be a whole number ≥ 1, not {self.count}")

    def as_dict(self) -> dict:
        return {"value": self.value, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict) -> "AtLeast":
        if not isinstance(data, dict) or set(data) != {"value", "count"}:
            raise ValueError(f'at-least filters are {{"value": x, "count": m}}, not {data!r}')
        return cls(value=float(data["value"]), count=int(data["count"]))


@dataclass(frozen=True)
class ItemFilters:
    """Which items an export keeps; every bound is inclusive.

    Per question name: `min_mean`, `min_median` (the median of an even number of ratings is the
    mean of the middle two), `min_agree` (at least m ratings at or above x). `min_ratings` and
    `max_spread` apply to every question. Gold items and the ratings of annotators whose gold
    accuracy is below `min_gold_accuracy` are left out unless `include_gold` or
    `include_low_accuracy` keep them (see `Exclusions`).
    """

    min_mean: dict[str, float]
    kinds: tuple[str, ...] = ()
    min_ratings: int = 1
    max_spread: float | None = None
    min_median: dict[str, float] = field(default_factory=dict)
    min_agree: dict[str, AtLeast] = field(default_factory=dict)
    include_gold: bool = False
    include_low_accuracy: bool = False
    min_gold_accuracy: float = MIN_GOLD_ACCURACY
    # Only posts of these splits (none: every split); never posts of `held_out` (set by the
    # split rule of training exports, `evaluation.extensions.export_split_filters`).
    splits: tuple[str, ...] = ()
    held_out: tuple[str, ...] = ()
    force_split: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_gold_accuracy <= 1:
            raise ValueError(
                f"min_gold_accuracy must be between 0 and 1, not {self.min_gold_accuracy}"
            )

    def questions(self) -> set[str]:
        """The question names the filters name."""
        return set(self.min_mean) | set(self.min_median) | set(self.min_agree)

    def check_questions(self, questions: list[str]) -> None:
        """Refuse filters that name a question not among `questions` (the campaign's), naming the
        filter that does."""
        for name in ("min_mean", "min_median", "min_agree"):
            unknown = set(getattr(self, name)) - set(questions)
            if unknown:
                raise ApplicationError(
                    f"unknown question(s) {', '.join(sorted(unknown))}; "
                    f"questions: {', '.join(questions) or 'none'}",
                    field=name,
                )

    def as_dict(self) -> dict:
        return {
            "min_mean": dict(self.min_mean),
            "kinds": list(self.kinds),
            "min_ratings": self.min_ratings,
            "max_spread": self.max_spread,
            "min_median": dict(self.min_median),
            "min_agree": {name: rule.as_dict() for name, rule in self.min_agree.items()},
            "include_gold": self.include_gold,
            "include_low_accuracy": self.include_low_accuracy,
            "min_gold_accuracy": self.min_gold_accuracy,
            "splits": list(self.splits),
            "held_out": list(self.held_out),
            "force_split": self.force_split,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ItemFilters":
        """The filters of `as_dict`; keys missing from older saved filters take their defaults."""
        accuracy = data.get("min_gold_accuracy")
        return cls(
            min_mean={k: float(v) for k, v in (data.get("min_mean") or {}).items()},
            kinds=tuple(data.get("kinds") or ()),
            min_ratings=int(data.get("min_ratings") or 0),
            max_spread=None if data.get("max_spread") is None else float(data["max_spread"]),
            min_median={k: float(v) for k, v in (data.get("min_median") or {}).items()},
            min_agree={k: AtLeast.from_dict(v) for k, v in (data.get("min_agree") or {}).items()},
            include_gold=bool(data.get("include_gold", False)),
            include_low_accuracy=bool(data.get("include_low_accuracy", False)),
            min_gold_accuracy=MIN_GOLD_ACCURACY if accuracy is None else float(accuracy),
            splits=tuple(data.get("splits") or ()),
            held_out=tuple(data.get("held_out") or ()),
            force_split=bool(data.get("force_split", False)),
        )

    def exclusions(self, *, campaign: Campaign) -> Exclusions:
        return rating_exclusions(
            campaign=campaign,
            min_gold_accuracy=self.min_gold_accuracy,
            include_gold=self.include_gold,
            include_low_accuracy=self.include_low_accuracy,
        )
