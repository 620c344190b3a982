"""Evaluation metrics, vectorized: AUC, RMSE, expected calibration error, ranking at K."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def auc(labels: npt.NDArray[np.bool_], scores: FloatArray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); NaN with one class."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    from scipy.stats import rankdata  # scipy.stats takes ~0.8 s to import; only evaluation needs it

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def rmse(targets: FloatArray, predictions: FloatArray) -> float:
    return float(np.sqrt(np.mean((targets - predictions) ** 2))) if len(targets) else float("nan")


def expected_calibration_error(labels: npt.NDArray[np.bool_], predictions: FloatArray, bins: int = 10) -> float:
    """Weighted mean |accuracy - confidence| over equal-width probability bins."""
    if not len(labels):
        return float("nan")
    which = np.minimum((predictions * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=predictions, minlength=bins)
    observed = np.bincount(which, weights=labels.astype(np.float64), minlength=bins)
    mask = counts > 0
    return float(np.abs(observed[mask] - predicted[mask]).sum() / len(labels))


def reliability(
    labels: npt.NDArray[np.bool_], predictions: FloatArray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """The calibration plot's points, on expected_calibration_error's bins: (mean prediction,
    observed success rate, events) per bin that holds any event."""
    which = np.minimum((predictions * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=predictions, minlength=bins)
    observed = np.bincount(which, weights=labels.astype(np.float64), minlength=bins)
    return [
        (float(predicted[b] / counts[b]), float(observed[b] / counts[b]), int(counts[b]))
        for b in range(bins)
        if counts[b]
    ]


def ranking_at_k(
    scores: FloatArray, candidates: npt.NDArray[np.bool_], relevant: npt.NDArray[np.bool_], k: int = 10
) -> dict[str, float]:
    """precision@k, recall@k, ndcg@k averaged over rows with any relevant item, and catalog
    coverage of all top-k lists. scores, candidates, relevant: (n_learners, n_modules)."""
    masked = np.where(candidates, scores, -np.inf)
    name, k = k, min(k, scores.shape[1])  # a catalog smaller than k still reports "@k"
    top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(masked, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    valid = np.isfinite(np.take_along_axis(masked, top, axis=1))
    hits = np.take_along_axis(relevant, top, axis=1) & valid
    n_relevant = relevant.sum(axis=1)
    rows = n_relevant > 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = discounts.cumsum()[np.clip(n_relevant, 1, k) - 1] * (n_relevant > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndcg = np.where(ideal > 0, dcg / ideal, 0.0)
    covered = np.unique(top[rows][valid[rows]]) if rows.any() else np.zeros(0)
    return {
        f"precision@{name}": float((hits.sum(axis=1) / name)[rows].mean()) if rows.any() else float("nan"),
        f"recall@{name}": float((hits.sum(axis=1) / np.maximum(n_relevant, 1))[rows].mean())
        if rows.any()
        else float("nan"),
        f"ndcg@{name}": float(ndcg[rows].mean()) if rows.any() else float("nan"),
        "coverage": float(len(covered) / scores.shape[1]),
    }
