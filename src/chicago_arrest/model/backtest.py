"""Walk-forward (rolling-origin) backtest inside the training window, and the selection rule built on it.

Each fold trains on every month before its validation month and validates on that one month, so no fold ever
validates on data earlier than (or equal to) its training data. The last fold validates on the latest training
month: the calibration month of :func:`chicago_arrest.model.training.calibration_split`.

Selection (:func:`select_candidate`): the candidate with the best mean fold ROC-AUC leads; another candidate is
tied with it unless the leader's mean per-fold advantage exceeds the spread of that advantage over the folds
(sample standard deviation of the paired differences — the folds are the same rows for every candidate). Among
the leader and the candidates tied with it, the cheapest wins: fewest milliseconds per record, then smallest
artifact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chicago_arrest.core.parsing import parse_timestamps
from chicago_arrest.core.schema import DATE

#: Rows a fold's validation month and training months need at the least.
MIN_FOLD_ROWS = 200


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: positions into the training frame.

    Attributes:
        train_months: First and last month (``YYYY-MM``) of the fold's training rows.
        validate_month: The month validated on (after every training month).
        train: Positions of the training rows.
        validate: Positions of the validation rows.
    """

    train_months: tuple[str, str]
    validate_month: str
    train: np.ndarray = field(repr=False)
    validate: np.ndarray = field(repr=False)

    def describe(self) -> dict[str, Any]:
        """Plain dict for reports and MLflow (no positions)."""
        return {
            "train_start": self.train_months[0],
            "train_end": self.train_months[1],
            "validate_month": self.validate_month,
            "train_rows": len(self.train),
            "validate_rows": len(self.validate),
        }


def walk_forward_folds(frame: pd.DataFrame, n_folds: int, min_train_months: int = 2) -> list[Fold]:
    """Rolling-origin folds over the latest ``n_folds`` months of ``frame``.

    Fold ``i`` validates on month ``m - n_folds + i`` and trains on every earlier month (an expanding window).
    Fewer folds are returned when the window is short: each fold keeps at least ``min_train_months`` training
    months and :data:`MIN_FOLD_ROWS` rows on both sides.

    Args:
        frame: Training records with a ``date`` field.
        n_folds: Folds wanted.
        min_train_months: Calendar months every fold trains on at the least.

    Returns:
        The folds, oldest validation month first (possibly empty).
    """
    # Months as numpy datetime64[M] (not pandas Periods: a Python object a row, compared one by one).
    month_values = parse_timestamps(frame[DATE]).values.astype("datetime64[M]")
    distinct = list(np.unique(month_values[~np.isnat(month_values)]))
    positions = np.arange(len(frame))
    folds: list[Fold] = []
    for month in distinct[max(min_train_months, len(distinct) - n_folds) :]:
        train = positions[month_values < month]
        validate = positions[month_values == month]
        if len(train) < MIN_FOLD_ROWS or len(validate) < MIN_FOLD_ROWS:
            continue
        first = month_values[train].min()
        folds.append(
            Fold((str(first), str(distinct[distinct.index(month) - 1])), str(month), train, validate)
        )
    return folds


@dataclass
class Backtest:
    """Fold scores of one candidate.

    Attributes:
        folds: :meth:`Fold.describe` of each fold.
        scores: Validation ROC-AUC per fold (same order).
    """

    folds: list[dict[str, Any]]
    scores: list[float]

    @property
    def mean(self) -> float:
        """Mean fold ROC-AUC."""
        return float(np.mean(self.scores)) if self.scores else float("nan")

    @property
    def std(self) -> float:
        """Sample standard deviation of the fold ROC-AUCs (0 with one fold)."""
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Folds with their scores, mean and spread."""
        return {
            "folds": [{**f, "roc_auc": s} for f, s in zip(self.folds, self.scores, strict=True)],
            "mean": self.mean,
            "std": self.std,
            **{k: v for k, v in asdict(self).items() if k == "scores"},
        }


@dataclass(frozen=True)
class Candidate:
    """What :func:`select_candidate` needs of one trained model.

    Attributes:
        name: Model type.
        scores: Fold ROC-AUCs (the same folds for every candidate).
        ms_per_record: Milliseconds to score one record.
        size_bytes: Size of the pickled artifact.
    """

    name: str
    scores: tuple[float, ...]
    ms_per_record: float
    size_bytes: int


def _spread(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float]:
    """Mean advantage of ``a`` over ``b`` and its spread (paired over folds when the folds match)."""
    if len(a) == len(b) and len(a) > 1:
        diff = np.asarray(a) - np.asarray(b)
        return float(diff.mean()), float(diff.std(ddof=1))
    spread = max(
        float(np.std(a, ddof=1)) if len(a) > 1 else 0.0, float(np.std(b, ddof=1)) if len(b) > 1 else 0.0
    )
    return float(np.mean(a) - np.mean(b)), spread


#: Scoring times within this factor of the fastest count as equal (timing noise on a shared machine).
TIME_NOISE_FACTOR = 2.0


def select_candidate(candidates: list[Candidate]) -> tuple[int, str]:
    """The selection rule: the best mean fold ROC-AUC wins only by more than the spread; ties go to the cheapest.

    Args:
        candidates: Every trained candidate.

    Returns:
        ``(index of the winner, reason)``.

    Raises:
        ValueError: When there is no candidate or one has no fold score.
    """
    if not candidates:
        raise ValueError("select_candidate: no candidates")
    empty = [c.name for c in candidates if not c.scores or not np.isfinite(c.scores).all()]
    if empty:
        raise ValueError(f"select_candidate: candidate(s) {empty} have no finite fold scores")
    means = [float(np.mean(c.scores)) for c in candidates]
    leader = int(np.argmax(means))
    tied = [leader]
    notes = []
    for i, cand in enumerate(candidates):
        if i == leader:
            continue
        advantage, spread = _spread(candidates[leader].scores, cand.scores)
        if advantage <= spread:
            tied.append(i)
            notes.append(f"{cand.name} ties (leader +{advantage:.4f} <= spread {spread:.4f})")
        else:
            notes.append(f"{cand.name} loses (leader +{advantage:.4f} > spread {spread:.4f})")
    # Scoring time is measured, so it is noisy (a busy machine swapped 1.4 and 1.6 ms/record between two runs
    # of the same data): it decides only at more than TIME_NOISE_FACTOR x the fastest tied candidate; among
    # the equally fast, the smaller artifact (deterministic) wins, then the better backtest.
    fastest = min(candidates[i].ms_per_record for i in tied)
    fast = [i for i in tied if candidates[i].ms_per_record <= TIME_NOISE_FACTOR * fastest]
    winner = min(fast, key=lambda i: (candidates[i].size_bytes, -means[i]))
    lead = candidates[leader]
    if winner == leader:
        reason = f"{lead.name} leads the backtest (mean ROC-AUC {means[leader]:.4f})"
        if len(tied) > 1:
            reason += " and is the cheapest of the tied candidates"
    else:
        win = candidates[winner]
        reason = (
            f"{win.name} ties with the leader {lead.name} ({means[winner]:.4f} vs {means[leader]:.4f}) and is "
            f"cheaper ({win.ms_per_record:.2f} vs {lead.ms_per_record:.2f} ms/record, "
            f"{win.size_bytes / 1e6:.1f} vs {lead.size_bytes / 1e6:.1f} MB)"
        )
    return winner, reason + ("; " + "; ".join(notes) if notes else "")
