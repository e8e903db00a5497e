"""Reading a critic's stored held-out precision-recall curve: the threshold for a precision, and
the precision and recall at a threshold. Plain Python over the stored metrics, apart from
`critics.learning` so that exports by critic (registered when Django starts) never load
scikit-learn."""

from config.errors import ApplicationError


def threshold_for_precision(metrics: dict, min_precision: float) -> dict:
    """The lowest score threshold on the held-out precision-recall curve whose precision reaches
    `min_precision` (so the most recall at that precision), with its precision and recall."""
    if not 0 < min_precision <= 1:
        raise ApplicationError(
            f"the minimum precision is a share between 0 and 1, not {min_precision}",
            field="min_precision",
        )
    curve = metrics["pr_curve"]
    for threshold, precision, recall in zip(
        curve["threshold"], curve["precision"], curve["recall"], strict=True
    ):
        if precision >= min_precision:
            return {"threshold": threshold, "precision": precision, "recall": recall}
    best = max(curve["precision"], default=0)
    raise ApplicationError(
        f"the critic reaches a held-out precision of at most {best:.3f}, below {min_precision}",
        field="min_precision",
    )


def point_at_threshold(metrics: dict, threshold: float) -> dict:
    """Held-out precision and recall of "score ≥ threshold" (the nearest curve point at or above
    it; above every point, precision is unknown)."""
    curve = metrics["pr_curve"]
    for t, precision, recall in zip(
        curve["threshold"], curve["precision"], curve["recall"], strict=True
    ):
        if t >= threshold:
            return {"threshold": threshold, "precision": precision, "recall": recall}
    return {"threshold": threshold, "precision": None, "recall": 0.0}
