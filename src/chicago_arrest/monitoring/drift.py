"""Monitoring: the reference profile of a model version, PSI against it, realised metrics, and the decision.

The register step stores a :class:`Profile` with every model version (``monitoring/reference_profile.json``
on the version's MLflow run): for each raw field the model reads, the share of test-window records in each
bin (numeric fields: the reference's deciles; ``date``: time of day and day of week, never the month or the
date, which any single month of records shifts by construction) or category (the most frequent ones, then
``other`` and ``missing``); the predicted-probability histogram on the test window; and the test metrics.

The monitoring step profiles recent records with the same bins (:func:`psi_by_field`), computes realised
ROC-AUC, PR-AUC and ECE where the ``arrest`` label is present (:func:`realised_metrics`, else ``pending``) and
decides ``ok`` / ``drift`` / ``degraded`` with its reasons (:func:`decide`).

PSI is ``sum((a - e) * ln(a / e))`` over the bins, with the shares floored at :data:`PSI_FLOOR` so that an
empty bin does not make it infinite. Rules of thumb: < 0.1 stable, 0.1-0.2 moderate, >= 0.2 a real shift.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from chicago_arrest.core.parsing import labels
from chicago_arrest.core.schema import FIELD_BY_NAME, LABEL
from chicago_arrest.model.inputs import model_input_arrays

#: Artifact path of the profile on the model version's MLflow run.
PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PROFILE_FORMAT = 1
#: Shares below this count as this much in PSI (an empty bin would make it infinite).
PSI_FLOOR = 1e-4
#: Categories kept per field (by reference frequency, each with at least :data:`MIN_CATEGORY_COUNT`
#: reference records); the rest is ``other``. Rare categories as bins of their own would make PSI measure
#: sampling noise (a bin with a handful of records swings by a factor of two between two samples): a field
#: with many rare values (``beat`` on a small test window) is watched through its common values and the
#: share of the rest.
TOP_CATEGORIES = 30
MIN_CATEGORY_COUNT = 30
NUMERIC_BINS = 10
PREDICTION_BINS = 20
OTHER = "other"
MISSING = "missing"
#: Derived from ``date``: the only parts of the date the profile watches.
HOUR = "hour_of_day"
WEEKDAY = "day_of_week"
Decision = Literal["ok", "drift", "degraded"]


class ProfileError(LookupError):
    """A profile is missing or cannot be read (one line names which and why)."""


@dataclass
class FieldProfile:
    """Bins of one monitored field and the reference share of records in each.

    Attributes:
        kind: ``numeric`` (``edges``: interior cut points; a last share for missing), ``categorical``
            (``categories``, then ``other`` and ``missing``) or ``ordinal`` (hour / weekday: one bin per value,
            then missing).
        shares: Reference share per bin (sums to 1).
        edges: Interior cut points of a numeric field.
        categories: Categories of a categorical or ordinal field.
    """

    kind: Literal["numeric", "categorical", "ordinal"]
    shares: list[float]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """One label per bin (for charts and tables)."""
        if self.kind == "numeric":
            cuts = [f"{e:.6g}" for e in self.edges]
            inner = [f"{a}..{b}" for a, b in itertools.pairwise(cuts)]
            return [f"<{cuts[0]}", *inner, f">={cuts[-1]}", MISSING] if cuts else ["all", MISSING]
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        return [*self.categories, MISSING]


@dataclass
class Profile:
    """What a model version was trained and tested on, as monitoring compares it.

    Attributes:
        fields: Field name → :class:`FieldProfile` (``date`` appears as :data:`HOUR` and :data:`WEEKDAY`).
        prediction: Shares of the predicted probability in :data:`PREDICTION_BINS` equal-width bins on [0, 1].
        metrics: The version's test metrics (``roc_auc``, ``pr_auc``, ``ece``, ...).
        rows: Records profiled.
        model_version: Registry version (empty until known).
        format: Profile format number.
    """

    fields: dict[str, FieldProfile]
    prediction: list[float]
    metrics: dict[str, float]
    rows: int
    model_version: str = ""
    format: int = PROFILE_FORMAT

    def to_json(self) -> str:
        """The profile as JSON (the MLflow artifact)."""
        return json.dumps(asdict(self), indent=1, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        """Read a profile written by :meth:`to_json`.

        Raises:
            ProfileError: When the text is not a profile of a known format.
        """
        try:
            data = json.loads(text)
            if data.get("format") != PROFILE_FORMAT:
                raise ProfileError(f"profile format {data.get('format')!r} is not {PROFILE_FORMAT}")
            fields = {k: FieldProfile(**v) for k, v in data["fields"].items()}
            return cls(**{**data, "fields": fields})
        except (ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"not a reference profile: {exc}") from None


def monitored_arrays(records: pd.DataFrame) -> dict[str, np.ndarray]:
    """The monitored values of raw records: each model input field, ``date`` as hour of day and weekday.

    Raises:
        ValueError: When ``date`` (the one field every score needs) is not a column.
    """
    if "date" not in records.columns:
        raise ValueError("records have no 'date' column (missing column)")
    arrays = model_input_arrays(records)
    dates = pd.DatetimeIndex(arrays.pop("date"))
    out: dict[str, np.ndarray] = {
        HOUR: np.where(dates.isna(), -1, dates.hour).astype(int),
        WEEKDAY: np.where(dates.isna(), -1, dates.dayofweek).astype(int),
    }
    out.update(arrays)
    return out


def _is_numeric(name: str) -> bool:
    return name in FIELD_BY_NAME and FIELD_BY_NAME[name].kind == "float"


def _numeric_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    missing = np.isnan(v)
    idx = np.searchsorted(np.asarray(edges, dtype=float), v[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return np.append(counts, missing.sum())


def _category_counts(values: np.ndarray, categories: list[str]) -> np.ndarray:
    series = pd.Series(values, dtype=object)
    missing = series.isna().to_numpy()
    codes = pd.Categorical(series[~missing], categories=categories).codes
    counts = np.bincount(codes[codes >= 0], minlength=len(categories)).astype(float)
    return np.append(counts, [(codes < 0).sum(), missing.sum()])


def _ordinal_counts(values: np.ndarray, size: int) -> np.ndarray:
    v = np.asarray(values, dtype=int)
    counts = np.bincount(v[v >= 0], minlength=size)[:size].astype(float)
    return np.append(counts, (v < 0).sum())


def bin_counts(spec: FieldProfile, values: np.ndarray) -> np.ndarray:
    """Records per bin of ``spec`` (same order as :attr:`FieldProfile.shares`)."""
    if spec.kind == "numeric":
        return _numeric_counts(values, spec.edges)
    if spec.kind == "ordinal":
        return _ordinal_counts(values, len(spec.categories))
    return _category_counts(values, spec.categories)


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def field_profile(name: str, values: np.ndarray) -> FieldProfile:
    """The reference bins of one field, from its test-window values."""
    if name in (HOUR, WEEKDAY):
        size = 24 if name == HOUR else 7
        spec = FieldProfile("ordinal", [], categories=[str(i) for i in range(size)])
    elif _is_numeric(name):
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        cuts: Any = np.unique(np.quantile(v, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])) if len(v) else []
        spec = FieldProfile("numeric", [], edges=[float(c) for c in cuts])
    else:
        counts = pd.Series(values, dtype=object).dropna().value_counts()
        common = counts[counts >= MIN_CATEGORY_COUNT].index[:TOP_CATEGORIES]
        spec = FieldProfile("categorical", [], categories=[str(c) for c in common])
    spec.shares = _shares(bin_counts(spec, values))
    return spec


def prediction_shares(probabilities: np.ndarray) -> list[float]:
    """Shares of predicted probabilities in :data:`PREDICTION_BINS` equal-width bins on [0, 1]."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    idx = np.minimum((p * PREDICTION_BINS).astype(int), PREDICTION_BINS - 1)
    return _shares(np.bincount(idx, minlength=PREDICTION_BINS).astype(float))


def build_profile(
    records: pd.DataFrame, probabilities: np.ndarray, metrics: dict[str, Any], model_version: str = ""
) -> Profile:
    """The reference profile of a model version from its test window.

    Args:
        records: Raw test records (Socrata field names).
        probabilities: The version's predicted probabilities on them.
        metrics: Its test metrics (numbers only are kept).
        model_version: Registry version, when known.
    """
    arrays = monitored_arrays(records)
    fields = {name: field_profile(name, values) for name, values in arrays.items()}
    kept = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and np.isfinite(v)}
    return Profile(fields, prediction_shares(probabilities), kept, len(records), str(model_version))


def psi(expected: list[float] | np.ndarray, actual: list[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins (floored at :data:`PSI_FLOOR`)."""
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def current_shares(profile: Profile, records: pd.DataFrame) -> dict[str, list[float]]:
    """Shares of ``records`` in each field's reference bins."""
    arrays = monitored_arrays(records)
    return {name: _shares(bin_counts(spec, arrays[name])) for name, spec in profile.fields.items()}


def psi_by_field(profile: Profile, shares: dict[str, list[float]]) -> dict[str, float]:
    """PSI of every monitored field (current shares against the profile's)."""
    return {name: round(psi(spec.shares, shares[name]), 6) for name, spec in profile.fields.items()}


def realised_metrics(records: pd.DataFrame, probabilities: np.ndarray) -> dict[str, float] | None:
    """ROC-AUC, PR-AUC and ECE where the ``arrest`` label is known; ``None`` (pending) otherwise.

    Labels are ``pending`` when the column is absent, or fewer than two classes are known.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    from chicago_arrest.model.evaluate import expected_calibration_error

    if LABEL not in records.columns:
        return None
    y, unknown = labels(records, strict=False)
    known = ~unknown
    y = y[known]
    p = np.asarray(probabilities, dtype=float)[known]
    if len(np.unique(y)) < 2:
        return None
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "ece": expected_calibration_error(y, p),
        "labelled_rows": float(len(y)),
        "positive_rate": float(y.mean()),
    }


@dataclass
class Thresholds:
    """When monitoring says ``drift`` or ``degraded`` (pipeline parameters).

    Attributes:
        psi: PSI at or above which a field or the prediction has drifted.
        max_auc_drop: Realised ROC-AUC this far under the version's test ROC-AUC is degraded.
        max_ece: Realised ECE above this is degraded.
    """

    psi: float = 0.2
    max_auc_drop: float = 0.03
    max_ece: float = 0.05


def decide(
    field_psi: dict[str, float],
    prediction_psi: float,
    realised: dict[str, float] | None,
    reference: dict[str, float],
    thresholds: Thresholds,
) -> tuple[Decision, list[str]]:
    """``degraded`` (realised quality), else ``drift`` (PSI), else ``ok``; with every reason found.

    Args:
        field_psi: PSI per monitored field.
        prediction_psi: PSI of the predicted probability.
        realised: Realised metrics, or ``None`` while labels are pending.
        reference: The version's test metrics (``roc_auc``).
        thresholds: The rule's thresholds.

    Returns:
        The decision and its reasons (for ``ok``, why it is ok).
    """
    drift = [
        f"PSI of {name} {value:.3f} >= {thresholds.psi:g}"
        for name, value in sorted(field_psi.items(), key=lambda kv: -kv[1])
        if value >= thresholds.psi
    ]
    if prediction_psi >= thresholds.psi:
        drift.insert(0, f"PSI of the prediction {prediction_psi:.3f} >= {thresholds.psi:g}")
    degraded = []
    if realised is not None:
        ref_auc = reference.get("roc_auc")
        if ref_auc is not None and realised["roc_auc"] < ref_auc - thresholds.max_auc_drop:
            degraded.append(
                f"realised ROC-AUC {realised['roc_auc']:.4f} < test ROC-AUC {ref_auc:.4f} - "
                f"{thresholds.max_auc_drop:g}"
            )
        if realised["ece"] > thresholds.max_ece:
            degraded.append(f"realised ECE {realised['ece']:.4f} > {thresholds.max_ece:g}")
    if degraded:
        return "degraded", degraded + drift
    if drift:
        return "drift", drift
    worst = max(field_psi.items(), key=lambda kv: kv[1], default=("-", 0.0))
    reasons = [
        f"largest PSI {worst[1]:.3f} ({worst[0]}), prediction {prediction_psi:.3f}: under {thresholds.psi:g}"
    ]
    reasons.append(
        "realised metrics pending (no labels yet)"
        if realised is None
        else f"realised ROC-AUC {realised['roc_auc']:.4f}, ECE {realised['ece']:.4f} within bounds"
    )
    return "ok", reasons


@dataclass
class MonitorResult:
    """Everything one monitoring run found (the SUMMARY json is :meth:`summary`).

    Attributes:
        decision: ``ok``, ``drift`` or ``degraded``.
        reasons: Why.
        psi: PSI per monitored field.
        prediction_psi: PSI of the predicted probability.
        realised: Realised metrics, or ``None`` (pending).
        reference: The version's test metrics.
        current_prediction: Current shares of the prediction bins.
        reference_prediction: The profile's shares of the prediction bins.
        current_fields: Current shares per field.
        rows: Records monitored.
        model_version: The version compared against.
        thresholds: The thresholds used.
        retrain: ``started``, ``not needed`` or ``disabled``.
        retrain_run: Where the training run it started is (a URL or a log path), when started.
        served: On served traffic (:mod:`chicago_arrest.monitoring.realised`): ``realised_served`` (per
            version), ``labels`` (where they came from, how many records have one, how old),
            ``comparison`` (champion against challenger, or ``None``), ``problems``, ``sources``.
    """

    decision: Decision
    reasons: list[str]
    psi: dict[str, float]
    prediction_psi: float
    realised: dict[str, float] | None
    reference: dict[str, float]
    current_prediction: list[float]
    reference_prediction: list[float]
    current_fields: dict[str, list[float]]
    rows: int
    model_version: str
    thresholds: Thresholds
    retrain: str = "not needed"
    retrain_run: str = ""
    served: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The SUMMARY json: decision, reasons, psi, prediction_psi, realised (or null), retrain.

        On served traffic also ``realised_served`` (keyed by version) and ``served``.
        """
        out = {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "psi": dict(self.psi),
            "prediction_psi": self.prediction_psi,
            "realised": self.realised,
            "retrain": self.retrain,
        }
        if self.served is not None:
            out["realised_served"] = self.served["realised_served"]
            out["served"] = {k: v for k, v in self.served.items() if k != "realised_served"}
        return out


def monitor(
    profile: Profile,
    records: pd.DataFrame,
    probabilities: np.ndarray,
    thresholds: Thresholds | None = None,
    realised: dict[str, float] | None = None,
) -> MonitorResult:
    """Compare recent records and the version's predictions on them with the version's reference profile.

    Args:
        profile: The version's reference profile.
        records: The records.
        probabilities: The version's probabilities on them.
        thresholds: The decision's thresholds.
        realised: Realised metrics measured elsewhere (served traffic joined with its labels); default: from
            the records' ``arrest`` column (:func:`realised_metrics`).

    Raises:
        ValueError: When there are no records.
    """
    thresholds = thresholds or Thresholds()
    if len(records) == 0:
        raise ValueError("no records to monitor (empty source)")
    shares = current_shares(profile, records)
    field_psi = psi_by_field(profile, shares)
    current_prediction = prediction_shares(probabilities)
    prediction_psi = round(psi(profile.prediction, current_prediction), 6)
    if realised is None:
        realised = realised_metrics(records, probabilities)
    decision, reasons = decide(field_psi, prediction_psi, realised, profile.metrics, thresholds)
    return MonitorResult(
        decision,
        reasons,
        field_psi,
        prediction_psi,
        realised,
        dict(profile.metrics),
        current_prediction,
        list(profile.prediction),
        shares,
        len(records),
        profile.model_version,
        thresholds,
    )
