"""The report's statistics, on plain numbers: a seeded percentile bootstrap of a mean (resampling
posts), the paired Wilcoxon signed-rank test, and Holm's adjustment of several p-values."""

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 2000
# Bootstrap samples drawn at once: bounds the index matrix to CHUNK × posts.
CHUNK = 250


def bootstrap_interval(
    values: Sequence[float], *, seed: int, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95
) -> list[float] | None:
    """The percentile bootstrap interval of the mean of `values` (each value one post's score):
    `samples` resamples of the posts with replacement, drawn from `seed`, so the same values and
    seed always give the same interval. None without values."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return None
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, samples, CHUNK):
        draws = rng.integers(0, len(values), size=(min(CHUNK, samples - start), len(values)))
        means.append(values[draws].mean(axis=1))
    tail = (1 - level) / 2
    low, high = np.quantile(np.concatenate(means), [tail, 1 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int) -> dict:
    """Run A's and run B's scores on the same posts (a[i] and b[i] of one post): the mean of
    A − B with its bootstrap interval, and the two-sided Wilcoxon signed-rank test of scipy
    (zero differences dropped, as its default does). Every difference zero: p = 1."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    differences = a - b
    result: dict = {
        "posts": len(differences),
        "mean_difference": round(float(differences.mean()), 4) if len(differences) else None,
        "ci95": bootstrap_interval(differences, seed=seed),
        "statistic": None,
        "p_value": None,
    }
    if not len(differences):
        return result
    if not differences.any():
        return result | {"statistic": 0.0, "p_value": 1.0}
    from scipy.stats import wilcoxon  # loaded for a report, not with every page

    test = wilcoxon(a, b)
    return result | {"statistic": float(test.statistic), "p_value": float(test.pvalue)}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None stays None and does not count):
    the k-th smallest of m is multiplied by m − k + 1, kept at least as large as the one before
    it, and capped at 1."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[index] = running
    return adjusted
