"""The grouped-profile formula against the krippendorff package, and the bootstrap interval."""

import krippendorff
import numpy as np
import pytest

from evaluation import alpha as alpha_module
from evaluation.alpha import LEVELS, alpha_from_profiles

DOMAIN = (1, 2, 3, 4, 5)


def random_units(seed: int, units: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros((units, len(DOMAIN)), dtype=int)
    centre = rng.integers(0, 5, units)
    for _ in range(4):
        noisy = np.clip(centre + rng.integers(-1, 2, units), 0, 4)
        rated = rng.random(units) < 0.8
        counts[np.arange(units)[rated], noisy[rated]] += 1
    return counts


@pytest.mark.parametrize("level", LEVELS)
def test_weighted_profiles_equal_the_package(level, monkeypatch):
    units = random_units(7)
    expected = krippendorff.alpha(
        value_counts=units, value_domain=list(DOMAIN), level_of_measurement=level
    )
    profiles, weights = np.unique(units, axis=0, return_counts=True)
    assert len(profiles) < len(units)
    monkeypatch.setattr(alpha_module, "PACKAGE_UNIT_LIMIT", 0)  # force the weighted formula
    grouped = alpha_from_profiles(profiles, weights, DOMAIN, level, bootstrap_samples=0)
    assert grouped.alpha == pytest.approx(expected, abs=1e-9)
    monkeypatch.setattr(alpha_module, "PACKAGE_UNIT_LIMIT", 10**9)  # through the package
    direct = alpha_from_profiles(profiles, weights, DOMAIN, level, bootstrap_samples=0)
    assert direct.alpha == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval_is_reproducible_and_brackets_alpha():
    profiles, weights = np.unique(random_units(3, 2000), axis=0, return_counts=True)
    first = alpha_from_profiles(profiles, weights, DOMAIN, "ordinal")
    again = alpha_from_profiles(profiles, weights, DOMAIN, "ordinal")
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert first.ci_low < first.alpha < first.ci_high
    assert first.ci_high - first.ci_low < 0.1


def test_bootstrap_is_fast_at_miko_scale():
    """1.37 million units grouped into profiles: the interval costs milliseconds, not minutes."""
    import time

    profiles, weights = np.unique(random_units(5, 5000), axis=0, return_counts=True)
    weights = weights * 275  # about 1.37 million units
    started = time.perf_counter()
    result = alpha_from_profiles(profiles, weights, DOMAIN, "ordinal")
    assert time.perf_counter() - started < 5
    assert result.n_items == int(weights[profiles.sum(axis=1) > 0].sum())
    assert result.ci_high - result.ci_low < 0.01


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown level"):
        alpha_from_profiles(np.ones((1, 5)), np.ones(1), DOMAIN, "cardinal")
