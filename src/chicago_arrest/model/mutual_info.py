"""A fast, deterministic estimate of the mutual information between each feature and the label.

Used by :class:`~chicago_arrest.model.features.MutualInfoSelector` to choose the model's features.
"""

from __future__ import annotations

import numpy as np


def binned_mutual_information(X: np.ndarray, y: np.ndarray, bins: int = 16) -> np.ndarray:
    """Mutual information (nats) between each column and a discrete label, on quantile bins.

    A plug-in estimator on at most ``bins`` quantile bins per column: exact for binary and low-cardinality
    columns, O(n) per column, deterministic. (scikit-learn's kNN estimator took 7 of 11 s of training here.)

    Args:
        X: ``(n, d)`` features.
        y: ``(n,)`` discrete labels.
        bins: Maximum bins per column.

    Returns:
        ``(d,)`` mutual information per column.
    """
    arr = np.asarray(X)
    if arr.dtype.kind != "f":
        arr = arr.astype(float)
    classes, inverse = np.unique(np.asarray(y), return_inverse=True)
    y_idx = np.asarray(inverse, dtype=np.int64)
    n = len(arr)
    p_y = np.bincount(y_idx, minlength=len(classes)) / n
    out = np.zeros(arr.shape[1])
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    chunk = 16  # columns copied to contiguous rows at a time (a strided column costs several times more)
    for first in range(0, arr.shape[1], chunk):
        block = np.ascontiguousarray(arr[:, first : first + chunk].T, dtype=float)  # float32 columns widened
        for offset, col in enumerate(block):
            if np.isnan(col).any():
                col = np.nan_to_num(col, nan=np.nanmin(col) - 1 if np.isfinite(col).any() else 0.0)
            edges = np.unique(np.quantile(col, qs))
            x_idx = np.searchsorted(edges, col, side="right")
            counts = np.bincount(x_idx * len(classes) + y_idx, minlength=(len(edges) + 1) * len(classes))
            joint = counts.reshape(-1, len(classes)) / n
            p_x = joint.sum(axis=1, keepdims=True)
            nz = joint > 0
            out[first + offset] = float((joint[nz] * np.log(joint[nz] / (p_x * p_y[None, :])[nz])).sum())
    return out
