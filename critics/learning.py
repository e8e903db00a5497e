"""What a critic learns from and how: the item texts it reads, the default hashed n-gram model,
cross-validation grouped by post, and the held-out metrics (ROC-AUC, average precision, the
precision-recall curve, calibration) with the majority baseline beside them.

No database here: `critics.selectors` reads the rows, `critics.services` stores what comes out.
"""

import io
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold

from config.errors import ApplicationError
from critics.selectors import ItemText

FOLDS = 5
# Fewer than these and cross-validated figures say nothing: refused with a message.
MIN_ITEMS = 20
MIN_POSTS = 5
MIN_PER_CLASS = 5
# The precision-recall curve is stored with at most this many points (thresholds), evenly spread.
CURVE_POINTS = 400
CALIBRATION_BINS = 10
# Regularisation of the logistic regression (sklearn's C, as 1 / (C · n) for the hashed model's
# stochastic gradient descent); the same for every critic.
C = 4.0
EPOCHS = 30


def _hashing(analyzer: str, ngrams: tuple[int, int], bits: int) -> HashingVectorizer:
    return HashingVectorizer(
        analyzer=analyzer,
        ngram_range=ngrams,
        n_features=2**bits,
        alternate_sign=False,
        norm="l2",
        dtype=np.float32,
    )


# Stateless (hashed), so a stored critic needs only its weights and the scikit-learn version.
# Character 4-grams only: 3-5-grams cost three times as much to hash (1.2 s against 0.4 s for
# 20,000 sentences), most of the time it takes to score MIKO's 1.37 million items.
ITEM_CHARS = _hashing("char_wb", (4, 4), 20)
ITEM_WORDS = _hashing("word", (1, 2), 18)
CONTEXT_WORDS = _hashing("word", (1, 2), 18)
ITEM_FEATURES = ITEM_CHARS.n_features + ITEM_WORDS.n_features


def item_matrix(texts: list[str]) -> sp.csr_matrix:
    return sp.hstack([ITEM_CHARS.transform(texts), ITEM_WORDS.transform(texts)], format="csr")


def posts_of(rows: list[ItemText]) -> tuple[list[str], np.ndarray]:
    """The distinct contexts (one a post) and, per row, the index of its post's context."""
    index: dict[int, int] = {}
    contexts: list[str] = []
    where = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        at = index.get(row.post_id)
        if at is None:
            at = index[row.post_id] = len(contexts)
            contexts.append(row.context)
        where[i] = at
    return contexts, where


@dataclass
class HashedModel:
    """Logistic regression on hashed word and character n-grams of the item text, word n-grams of
    the post's text and image description, and the kind (one-hot).

    Scoring splits the linear function by part: the context's share is computed once a post, not
    once an item (MIKO's posts have ten items each).
    """

    kinds: list[str]
    item_weights: np.ndarray
    context_weights: np.ndarray
    kind_weights: np.ndarray
    bias: float

    @staticmethod
    def design(rows: list[ItemText], kinds: list[str]) -> sp.csr_matrix:
        contexts, where = posts_of(rows)
        context = CONTEXT_WORDS.transform(contexts)[where]
        return sp.hstack([item_matrix([r.text for r in rows]), context, kind_matrix(rows, kinds)],
                         format="csr")  # fmt: skip

    @classmethod
    def fit(cls, rows: list[ItemText], labels: np.ndarray) -> "HashedModel":
        kinds = sorted({row.kind for row in rows})
        with warnings.catch_warnings():
            # A fixed number of epochs, whether or not the tolerance was reached: enough for the
            # held-out metrics, which are what the critic is judged by.
            warnings.simplefilter("ignore", ConvergenceWarning)
            regression = _hashed_regression(len(rows)).fit(cls.design(rows, kinds), labels)
        w = regression.coef_[0].astype(np.float32)
        split = ITEM_FEATURES + CONTEXT_WORDS.n_features
        return cls(
            kinds=kinds,
            item_weights=w[:ITEM_FEATURES],
            context_weights=w[ITEM_FEATURES:split],
            kind_weights=w[split:],
            bias=float(regression.intercept_[0]),
        )

    def probabilities(self, rows: list[ItemText]) -> np.ndarray:
        contexts, where = posts_of(rows)
        per_post = CONTEXT_WORDS.transform(contexts) @ self.context_weights
        kinds = {kind: i for i, kind in enumerate(self.kinds)}
        per_kind = np.array([self.kind_weights[kinds[r.kind]] if r.kind in kinds else 0.0
                             for r in rows], dtype=np.float32)  # fmt: skip
        logits = item_matrix([r.text for r in rows]) @ self.item_weights
        return _sigmoid(logits + per_post[where] + per_kind + self.bias)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "kinds": np.array(self.kinds),
            "item_weights": self.item_weights,
            "context_weights": self.context_weights,
            "kind_weights": self.kind_weights,
            "bias": np.array([self.bias]),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "HashedModel":
        return cls(
            kinds=[str(k) for k in arrays["kinds"]],
            item_weights=arrays["item_weights"],
            context_weights=arrays["context_weights"],
            kind_weights=arrays["kind_weights"],
            bias=float(arrays["bias"][0]),
        )


def kind_matrix(rows: list[ItemText], kinds: list[str]) -> sp.csr_matrix:
    index = {kind: i for i, kind in enumerate(kinds)}
    cols = [index.get(r.kind, -1) for r in rows]
    present = [i for i, c in enumerate(cols) if c >= 0]
    return sp.csr_matrix(
        (np.ones(len(present), np.float32), (present, [cols[i] for i in present])),
        shape=(len(rows), len(kinds)),
    )


@dataclass
class EmbeddingModel:
    """Logistic regression on a local encoder's embeddings of the item with its post."""

    encoder: str
    weights: np.ndarray
    bias: float

    @classmethod
    def fit(cls, rows: list[ItemText], labels: np.ndarray, encoder: str) -> "EmbeddingModel":
        from critics.encoders import embed

        return cls.fit_embedded(embed(encoder, rows), labels, encoder)

    @classmethod
    def fit_embedded(cls, x: np.ndarray, labels: np.ndarray, encoder: str) -> "EmbeddingModel":
        regression = _regression().fit(x, labels)
        return cls(
            encoder=encoder,
            weights=regression.coef_[0].astype(np.float32),
            bias=float(regression.intercept_[0]),
        )

    def probabilities(self, rows: list[ItemText]) -> np.ndarray:
        from critics.encoders import embed

        return _sigmoid(embed(self.encoder, rows) @ self.weights + self.bias)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "encoder": np.array([self.encoder]),
            "weights": self.weights,
            "bias": np.array([self.bias]),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "EmbeddingModel":
        return cls(
            encoder=str(arrays["encoder"][0]),
            weights=arrays["weights"],
            bias=float(arrays["bias"][0]),
        )


Model = HashedModel | EmbeddingModel


def _regression() -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=2000)


def _hashed_regression(n: int) -> SGDClassifier:
    """Logistic regression by averaged stochastic gradient descent: its cost grows with the
    non-zero features, not with the 1.5 million hashed columns (lbfgs and liblinear took 20 times
    longer on 20,000 items)."""
    return SGDClassifier(
        loss="log_loss",
        alpha=1.0 / (C * n),
        max_iter=EPOCHS,
        tol=1e-4,
        average=True,
        random_state=0,
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -40, 40)))).astype(
        np.float32
    )


def model_bytes(model: Model) -> bytes:
    """The model as an `.npz` (arrays only: nothing is unpickled when it is read back)."""
    out = io.BytesIO()
    np.savez_compressed(out, kind=np.array([type(model).__name__]), **model.arrays())
    return out.getvalue()


def model_from_bytes(data: bytes) -> Model:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        kind = str(arrays["kind"][0])
        loaded = {key: arrays[key] for key in arrays.files}
    return {"HashedModel": HashedModel, "EmbeddingModel": EmbeddingModel}[kind].from_arrays(loaded)


def sklearn_version() -> str:
    """major.minor: the hashed features depend on scikit-learn's tokenising and hashing."""
    return ".".join(sklearn.__version__.split(".")[:2])


# --- cross-validation and metrics ----------------------------------------------------------------


def check_training_data(labels: np.ndarray, posts: np.ndarray) -> None:
    """Refuse data that cannot be cross-validated by post, saying what is missing."""
    n, positives = len(labels), int(labels.sum())
    n_posts = len(np.unique(posts))
    if n < MIN_ITEMS:
        raise ApplicationError(f"only {n} rated items; a critic needs at least {MIN_ITEMS}")
    if n_posts < MIN_POSTS:
        raise ApplicationError(
            f"the rated items come from {n_posts} posts; cross-validation by post needs at least "
            f"{MIN_POSTS}"
        )
    if min(positives, n - positives) < MIN_PER_CLASS:
        raise ApplicationError(
            f"{positives} of {n} rated items reach the threshold and {n - positives} do not; "
            f"a critic needs at least {MIN_PER_CLASS} of each (choose another threshold)"
        )


def post_folds(labels: np.ndarray, posts: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays, stratified by label and grouped by post: every item of a post
    is in the same fold, so no post is ever in both the training and the test part."""
    folds = min(FOLDS, len(np.unique(posts)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    return list(splitter.split(np.zeros(len(labels)), labels, groups=posts))


def out_of_fold(
    rows: list[ItemText],
    labels: np.ndarray,
    posts: np.ndarray,
    fit,
    progress=None,
) -> np.ndarray:
    """Each item's probability from the model trained on the folds it is not in.

    `fit(train_indices) -> predict(test_indices)`; a training part with one class only is refused
    (the positives or negatives sit in too few posts)."""
    predicted = np.empty(len(labels), dtype=np.float64)
    folds = post_folds(labels, posts)
    for number, (train, test) in enumerate(folds, start=1):
        if len(np.unique(labels[train])) < 2:
            raise ApplicationError(
                "the items on one side of the threshold sit in too few posts to cross-validate "
                "by post; rate more posts or choose another threshold"
            )
        predicted[test] = fit(train)(test)
        if progress:
            progress(number, len(folds))
    return predicted


def held_out_metrics(labels: np.ndarray, predicted: np.ndarray, posts: np.ndarray) -> dict:
    """Figures of out-of-fold predictions, with what always predicting the majority (or the
    positive rate, for probabilities) would score beside them."""
    positive_rate = float(labels.mean())
    precision, recall, thresholds = precision_recall_curve(labels, predicted)
    # precision/recall have one point more than thresholds (recall 0 at precision 1): drop it.
    keep = _spread(len(thresholds), CURVE_POINTS)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(predicted, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    calibration = []
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        if inside.any():
            calibration.append(
                {
                    "low": round(float(edges[b]), 2),
                    "high": round(float(edges[b + 1]), 2),
                    "n": int(inside.sum()),
                    "mean_predicted": round(float(predicted[inside].mean()), 4),
                    "observed": round(float(labels[inside].mean()), 4),
                }
            )
    return {
        "n_items": int(len(labels)),
        "n_posts": int(len(np.unique(posts))),
        "positives": int(labels.sum()),
        "positive_rate": round(positive_rate, 4),
        "folds": min(FOLDS, len(np.unique(posts))),
        "roc_auc": round(float(roc_auc_score(labels, predicted)), 4),
        "average_precision": round(float(average_precision_score(labels, predicted)), 4),
        "brier": round(float(brier_score_loss(labels, predicted)), 4),
        "accuracy": round(float(((predicted >= 0.5) == labels).mean()), 4),
        "baseline": {
            "roc_auc": 0.5,
            "average_precision": round(positive_rate, 4),
            "brier": round(positive_rate * (1 - positive_rate), 4),
            "accuracy": round(max(positive_rate, 1 - positive_rate), 4),
        },
        "pr_curve": {
            "threshold": [round(float(t), 6) for t in thresholds[keep]],
            "precision": [round(float(p), 4) for p in precision[keep]],
            "recall": [round(float(r), 4) for r in recall[keep]],
        },
        "calibration": calibration,
    }


def _spread(n: int, points: int) -> np.ndarray:
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(int))
