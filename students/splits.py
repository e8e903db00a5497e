"""Which split a post falls in: fractions parsed and checked, and the draw from a seed.

A post's split depends only on the seed, the fractions and the post's external id (a hash of the
seed and the id, read as a number in [0, 1)), never on the other posts: adding posts to a dataset
never moves the ones already there, and the same file imported elsewhere splits the same way.
"""

import hashlib
import math
import re

from config.errors import ApplicationError

DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
# Splits whose posts never enter a training export unless forced.
HELD_OUT = ("test",)
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}")
# Fractions that sum to 1 within this much (0.1 + 0.2 + 0.7 is not exactly 1 in floating point).
SUM_TOLERANCE = 1e-6
MAX_SEED = 2**63 - 1


def split_name_checked(name: str) -> str:
    name = (name or "").strip()
    if not SPLIT_NAME.fullmatch(name):
        raise ApplicationError(
            f"a split name is 1 to 50 letters, digits, '_', '.' or '-', starting with a letter or "
            f"digit, not {name!r}",
            field="split",
        )
    return name


def seed_checked(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ApplicationError(f"the seed is a whole number from 0 to {MAX_SEED}", field="seed")
    return seed


def fractions_parsed(spec: str) -> dict[str, float]:
    """`train=0.8,dev=0.1,test=0.1` as {name: fraction}, checked (see `fractions_checked`)."""
    fractions: dict[str, float] = {}
    for part in (spec or "").split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError(part)
            number = float(value.strip())
        except ValueError:
            raise ApplicationError(
                f"fractions are NAME=FRACTION separated by commas (train=0.8,dev=0.1,test=0.1), "
                f"not {part.strip()!r}",
                field="fractions",
            ) from None
        name = split_name_checked(name)
        if name in fractions:
            raise ApplicationError(f"split {name!r} is named twice", field="fractions")
        fractions[name] = number
    return fractions_checked(fractions)


def fractions_checked(fractions: dict) -> dict[str, float]:
    """At least one split, each fraction in (0, 1], summing to 1."""
    if not isinstance(fractions, dict) or not fractions:
        raise ApplicationError("name at least one split and its fraction", field="fractions")
    checked = {}
    for name, value in fractions.items():
        name = split_name_checked(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ApplicationError(
                f"the fraction of {name!r} is a number, not {value!r}", field="fractions"
            )
        if not math.isfinite(value) or not 0 < value <= 1:
            raise ApplicationError(
                f"the fraction of {name!r} must be above 0 and at most 1, not {value}",
                field="fractions",
            )
        checked[name] = float(value)
    total = math.fsum(checked.values())
    if abs(total - 1) > SUM_TOLERANCE:
        raise ApplicationError(
            f"the fractions must sum to 1, not {total:g} ({fractions_text(checked)})",
            field="fractions",
        )
    return checked


def fractions_text(fractions: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in fractions.items())


def draw(seed: int, external_id: str) -> float:
    """A number in [0, 1) fixed by the seed and the post's id."""
    digest = hashlib.sha256(f"{seed}\x00{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(*, seed: int, fractions: dict[str, float], external_id: str) -> str:
    """The split a post falls in: the first whose cumulative fraction exceeds its draw."""
    point = draw(seed, external_id)
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if point < cumulative:
            return name
    # Fractions summing to 1 within the tolerance may leave the very top uncovered.
    return name
