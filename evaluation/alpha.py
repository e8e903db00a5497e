"""Krippendorff's alpha from value counts, with a vectorised bootstrap interval.

Ratings reach this module already aggregated: one row of value counts per *profile* (how many
ratings of each value a unit received) and the number of units sharing that profile. The
coincidence matrix is a sum over units, so a profile seen 100,000 times is one row with weight
100,000: memory depends on the scale, not on the number of items or annotators.

Inputs of up to 50,000 pairable units go straight to `krippendorff.alpha`, fed with the expanded
value-counts matrix (units × values). Above `PACKAGE_UNIT_LIMIT` units the same formula is
evaluated on the weighted profiles instead (the package would build a units × values × values
array, about 1 GB per 1.4 million units, and take seconds); the tests check that both agree to
1e-9 at every level.
"""

from dataclasses import dataclass

import krippendorff
import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")
PACKAGE_UNIT_LIMIT = 50_000
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20_111_116


@dataclass(frozen=True)
class AlphaResult:
    alpha: float | None
    ci_low: float | None
    ci_high: float | None
    n_items: int
    n_pairable_items: int
    n_ratings: int
    reason: str | None = None

    def as_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "ci95": None if self.ci_low is None else [self.ci_low, self.ci_high],
            "n_items": self.n_items,
            "n_pairable_items": self.n_pairable_items,
            "n_ratings": self.n_ratings,
            "reason": self.reason,
        }


def distances(domain: np.ndarray, level: str, n_v: np.ndarray) -> np.ndarray:
    """Distance matrices δ(c, k), shape (..., V, V); `n_v` may carry leading bootstrap axes."""
    if level == "nominal":
        d = (domain[:, None] != domain[None, :]).astype(float)
        return np.broadcast_to(d, n_v.shape[:-1] + d.shape)
    if level == "interval":
        d = (domain[:, None] - domain[None, :]).astype(float) ** 2
        return np.broadcast_to(d, n_v.shape[:-1] + d.shape)
    if level == "ratio":
        total = (domain[:, None] + domain[None, :]).astype(float)
        diff = (domain[:, None] - domain[None, :]).astype(float)
        d = np.divide(diff, total, out=np.zeros_like(diff), where=total != 0) ** 2
        return np.broadcast_to(d, n_v.shape[:-1] + d.shape)
    if level == "ordinal":
        # Sum of n_g for g between c and k inclusive, minus half of n_c and n_k, squared.
        cum = np.cumsum(n_v, axis=-1)
        before = cum - n_v
        lo = np.minimum.outer(np.arange(len(domain)), np.arange(len(domain)))
        hi = np.maximum.outer(np.arange(len(domain)), np.arange(len(domain)))
        between = cum[..., hi] - before[..., lo]
        half = (n_v[..., :, None] + n_v[..., None, :]) / 2
        return (between - half) ** 2
    raise ValueError(f"unknown level {level!r}; known levels: {', '.join(LEVELS)}")


def alpha_weighted(profiles: np.ndarray, weights: np.ndarray, domain, level: str) -> np.ndarray:
    """Alpha for one or many weightings of the same pairable profiles: the bootstrap's (here and
    in `judges.agreement`, which resamples posts), and large inputs' point value.

    `weights` has shape (P,) or (B, P); the result has shape () or (B,), NaN where alpha is
    undefined. Same formula as the package: 1 - (n - 1) Σ_u n_uᵀ δ n_u / (m_u - 1) / n_vᵀ δ n_v.
    """
    counts = profiles.astype(float)
    pair_norm = counts.sum(axis=1) - 1
    n_v = weights @ counts
    delta = distances(np.asarray(domain), level, n_v)
    if delta.ndim == 2:
        observed_per_profile = np.einsum("pc,ck,pk->p", counts, delta, counts) / pair_norm
        observed = weights @ observed_per_profile
        expected = n_v @ delta @ n_v
    else:
        observed_per_profile = np.einsum("pc,bck,pk->bp", counts, delta, counts) / pair_norm
        observed = np.einsum("bp,bp->b", weights, observed_per_profile)
        expected = np.einsum("bc,bck,bk->b", n_v, delta, n_v)
    n = n_v.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 - (n - 1) * observed / expected


def alpha_from_profiles(
    profiles: np.ndarray,
    weights: np.ndarray,
    domain: tuple[int, ...],
    level: str,
    *,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> AlphaResult:
    """Alpha and its bootstrap 95% interval from value-count profiles and their multiplicities.

    `profiles` is (P, V): counts of each value of `domain` in a unit; `weights` (P,) how many units
    have that profile. Units with fewer than two ratings are counted but cannot be paired. Returns a
    null alpha with a reason where alpha is undefined, never raises on data.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known levels: {', '.join(LEVELS)}")
    profiles = np.asarray(profiles, dtype=np.int64).reshape(-1, len(domain))
    weights = np.asarray(weights, dtype=np.int64)
    per_unit = profiles.sum(axis=1)
    n_items = int(weights[per_unit > 0].sum())
    n_ratings = int(weights @ per_unit)
    pairable = per_unit >= 2
    profiles, weights = profiles[pairable], weights[pairable]
    n_pairable = int(weights.sum())

    def undefined(reason: str) -> AlphaResult:
        return AlphaResult(None, None, None, n_items, n_pairable, n_ratings, reason)

    if n_ratings == 0:
        return undefined("no ratings")
    if n_pairable == 0:
        return undefined("no pairable item: every item has fewer than two ratings")
    if len(domain) < 2:
        return undefined("the scale has fewer than two values")
    n_v = weights @ profiles
    if np.count_nonzero(n_v) < 2:
        return undefined(
            "no variation: every pairable rating has the same value, so expected disagreement "
            "is zero and alpha is undefined (the raters agree perfectly)"
        )

    if n_pairable <= PACKAGE_UNIT_LIMIT:
        value_counts = np.repeat(profiles, weights, axis=0)
        point = float(
            krippendorff.alpha(
                value_counts=value_counts, value_domain=list(domain), level_of_measurement=level
            )
        )
    else:
        point = float(alpha_weighted(profiles, weights, domain, level))

    ci_low = ci_high = None
    if bootstrap_samples:
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(n_pairable, weights / n_pairable, size=bootstrap_samples)
        samples = alpha_weighted(profiles, resampled.astype(float), domain, level)
        samples = samples[np.isfinite(samples)]
        if samples.size:
            ci_low, ci_high = (float(x) for x in np.percentile(samples, [2.5, 97.5]))
    return AlphaResult(point, ci_low, ci_high, n_items, n_pairable, n_ratings)
