"""Truth arrives later: served records joined with their labels, realised metrics per version, champion vs challenger.

The City publishes each report's ``arrest`` flag and updates it as arrests are made. :func:`join_labels` joins
the served records (:mod:`chicago_arrest.monitoring.served_log`) with the labels known now, by the report's
``id``: a record served without an id is profiled but never joined, and an id served more than once counts
once (the first time it was served). :func:`realised_by_version` computes, per model version, the realised
ROC-AUC, PR-AUC and ECE of the probabilities that version actually answered, with bootstrap intervals
(:func:`chicago_arrest.model.evaluate.bootstrap_intervals`), once at least ``min_labelled`` of its records
have a label; below that the metrics are ``None`` (pending).

:func:`compare` puts the champion and the challenger of a canary side by side on the requests each served in
the same period (from the challenger's first to its last served record): the difference of each metric, its
standard error (the two bootstrap standard errors in quadrature: the two versions served different requests)
and whether it is beyond :data:`NOISE_Z` standard errors. The comparison is recorded on the challenger's
registry version (:data:`chicago_arrest.core.names.SERVED_COMPARISON_TAG`); ``make promote`` refuses a
challenger that is measurably worse (:func:`measurably_worse`) and ``make status`` shows it (the text:
:func:`chicago_arrest.reports.monitoring.comparison_lines`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from chicago_arrest.core.parsing import labels
from chicago_arrest.core.schema import DATE, ID, LABEL
from chicago_arrest.monitoring.served_log import key_text

#: A difference counts as beyond the noise at this many standard errors (about 95 % two-sided).
NOISE_Z = 2.0
#: Labelled records a version needs before its realised metrics are computed (pipeline default).
MIN_LABELLED = 200
METRICS = ("roc_auc", "pr_auc", "ece")
#: Higher is better for these; lower is better for ECE.
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "ece": False}


def labels_from_frame(frame: pd.DataFrame, what: str) -> pd.Series:
    """``id`` → known label (bool) of records in the Socrata schema; the last one per id wins.

    Raises:
        ValueError: When ``id`` or ``arrest`` is missing.
    """
    absent = [c for c in (ID, LABEL) if c not in frame.columns]
    if absent:
        raise ValueError(f"labels {what} have no column(s) {', '.join(absent)} (need id and arrest)")
    y, unknown = labels(frame, strict=False)
    ids = key_text(frame[ID].reset_index(drop=True))
    keep = ~unknown & ids.notna().to_numpy(bool)
    known = pd.Series(y[keep].astype(bool), index=ids[keep].to_numpy(), name=LABEL)
    return known[~known.index.duplicated(keep="last")]


def load_labels(store: Any, served: pd.DataFrame, labels_file: str = "") -> tuple[pd.Series, str]:
    """The labels known now for ``served``: a file, else the landed months their dates fall in.

    ``labels_file`` is CSV/Parquet in the Socrata schema (``id`` and ``arrest``); without it the labels come
    from the months landed in ``store`` (the training pipeline re-lands the recent months as the City updates
    them).

    Returns:
        ``id`` → label, and where they came from (for the report).

    Raises:
        FileNotFoundError: A missing ``labels_file``.
        ValueError: A labels file without ``id`` or ``arrest``.
    """
    from pathlib import Path

    from chicago_arrest.data.ingest import load_window, months_in_store
    from chicago_arrest.data.sources import read_source_file

    if labels_file:
        path = Path(labels_file).expanduser()
        return labels_from_frame(read_source_file(path), f"file {path}"), f"file {path}"
    wanted = served_months(served)
    landed = set(months_in_store(store))
    months = [m for m in wanted if m in landed]
    if not months:
        span = f"{wanted[0]}..{wanted[-1]}" if wanted else "no dates"
        empty = pd.Series([], dtype=bool, name=LABEL)
        return (
            empty,
            f"none yet: no month of the served records ({span}) is landed in {store.uri('raw/crimes/')}",
        )
    where = f"months {months[0]}..{months[-1]} landed in {store.uri('raw/crimes/')}"
    return labels_from_frame(load_window(store, months), where), where


def served_months(served: pd.DataFrame) -> list[str]:
    """The months (``YYYY-MM``) of the served records' ``date``: the landed months that can hold their labels."""
    if DATE not in served.columns:
        return []
    dates = pd.to_datetime(served[DATE], errors="coerce").dropna()
    return sorted(dates.dt.strftime("%Y-%m").unique().tolist())


def dedupe_served(served: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Served records with each report id once (its first serving); records without an id all stay.

    Returns:
        The records (in serving order) and how many repeated ids were dropped.
    """
    ordered = served.sort_values("logged_at", kind="stable", na_position="last")
    ids = ordered[ID]
    repeated = ids.notna().to_numpy(bool) & ids.duplicated(keep="first").to_numpy(bool)
    return ordered[~repeated].reset_index(drop=True), int(repeated.sum())


def assign_roles(served: pd.DataFrame, champion: str | None, challenger: str | None) -> pd.DataFrame:
    """Fill the role a record was served in where the log does not say it (cluster records).

    On the cluster each revision serves one version, so the role comes from the registry: the challenger
    alias's version served as ``challenger``, any other as ``champion``.
    """
    out = served.copy()
    missing = out["role"].isna().to_numpy(bool)
    if missing.any():
        versions = out.loc[missing, "model_version"].astype(str)
        out.loc[missing, "role"] = np.where(versions == str(challenger), "challenger", "champion")
    return out


def join_labels(
    served: pd.DataFrame, labels: pd.Series, now: dt.datetime | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Served records (each id once) with their label where one is known, and how many have one, how old.

    Args:
        served: Served records (:class:`~chicago_arrest.monitoring.served_log.ServedLog` ``.records``).
        labels: ``id`` → label (:func:`labels_from_frame`).
        now: The time ages are measured to (default: now).

    Returns:
        ``(joined, coverage)``: the records with a nullable boolean ``label`` column; ``coverage`` has
        ``served_rows``, ``rows`` (after repeated ids), ``duplicate_ids``, ``without_id``, ``labelled_rows``,
        ``unlabelled_rows`` and ``labelled_age_days`` / ``unlabelled_age_days`` (``min``, ``median``, ``max``
        days since each record was served).
    """
    now = now or dt.datetime.now(dt.UTC)
    joined, duplicates = dedupe_served(served)
    label = joined[ID].map(labels)
    joined["label"] = pd.array(label.where(label.notna(), None).tolist(), dtype="boolean")
    has = joined["label"].notna().to_numpy(bool)
    age = (pd.Timestamp(now) - joined["logged_at"]).dt.total_seconds() / 86_400

    def ages(mask: np.ndarray) -> dict[str, float] | None:
        values = age[mask].dropna()
        if values.empty:
            return None
        return {
            k: round(float(f(values)), 5)
            for k, f in (("min", np.min), ("median", np.median), ("max", np.max))
        }

    coverage = {
        "served_rows": len(served),
        "rows": len(joined),
        "duplicate_ids": duplicates,
        "without_id": int(joined[ID].isna().sum()),
        "labelled_rows": int(has.sum()),
        "unlabelled_rows": int((~has).sum()),
        "labelled_age_days": ages(has),
        "unlabelled_age_days": ages(~has),
    }
    return joined, coverage


def realised(y: np.ndarray, p: np.ndarray, min_labelled: int, seed: int = 0) -> dict[str, Any]:
    """ROC-AUC, PR-AUC and ECE of labels ``y`` and probabilities ``p`` with bootstrap intervals, or pending.

    Returns:
        ``labelled_rows``, ``positive_rate`` and, once ``min_labelled`` rows with both classes are there, each
        metric with ``<metric>_ci_low``, ``<metric>_ci_high`` and ``<metric>_se``; otherwise the metrics are
        ``None`` and ``pending`` says why.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    from chicago_arrest.model.evaluate import bootstrap_intervals, expected_calibration_error

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out: dict[str, Any] = {"labelled_rows": len(y), "positive_rate": float(y.mean()) if len(y) else None}
    pending = None
    if len(y) < min_labelled:
        pending = f"{len(y)} labelled < {min_labelled}"
    elif len(np.unique(y)) < 2:
        pending = "one class only among the labelled records"
    if pending is not None:
        out.update(dict.fromkeys(METRICS))
        out["pending"] = pending
        return out
    out.update(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        ece=expected_calibration_error(y, p),
    )
    out.update(bootstrap_intervals(y, p, seed=seed))
    return out


def _version_table(records: pd.DataFrame, min_labelled: int) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for version, group in records.groupby(records["model_version"].astype(str), sort=True):
        known = group["label"].notna().to_numpy(bool)
        y = group["label"].to_numpy(dtype=object)[known].astype(bool).astype(int)
        p = group["arrest_probability"].to_numpy(dtype=float)[known]
        roles = group["role"].dropna().astype(str)
        entry: dict[str, Any] = {
            "version": str(version),
            "role": ", ".join(sorted(roles.unique())) or None,
            "rows": len(group),
            **realised(y, p, min_labelled),
            "first_served": _iso(group["logged_at"].min()),
            "last_served": _iso(group["logged_at"].max()),
        }
        table[str(version)] = entry
    return table


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat(timespec="seconds")


def realised_by_version(joined: pd.DataFrame, min_labelled: int = MIN_LABELLED) -> dict[str, dict[str, Any]]:
    """Per model version: ``rows``, ``labelled_rows``, ``roc_auc``, ``pr_auc``, ``ece`` (+ intervals), ``role``.

    The SUMMARY's ``realised_served``; keyed by version.
    """
    return _version_table(joined, min_labelled)


def compare(
    joined: pd.DataFrame, champion: str, challenger: str, min_labelled: int = MIN_LABELLED
) -> dict[str, Any] | None:
    """Champion and challenger on the requests each served while the challenger served; ``None`` without it.

    Returns:
        ``{"champion": {...}, "challenger": {...}, "period": [first, last], "difference": {metric:
        challenger - champion, metric_se, metric_beyond_noise}, "verdict", "min_labelled"}``. The verdict is
        ``pending`` (a side below ``min_labelled``), ``worse`` (ROC-AUC lower by more than :data:`NOISE_Z`
        standard errors), ``better`` (higher by as much) or ``within noise``.
    """
    versions = joined["model_version"].astype(str)
    mine = joined[versions == str(challenger)]
    if mine.empty:
        return None
    start, end = mine["logged_at"].min(), mine["logged_at"].max()
    window = joined[(joined["logged_at"] >= start) & (joined["logged_at"] <= end)]
    table = _version_table(
        window[window["model_version"].astype(str).isin([str(champion), str(challenger)])], min_labelled
    )
    empty = {"version": str(champion), "rows": 0, **realised(np.array([]), np.array([]), min_labelled)}
    a, b = table.get(str(champion), empty), table[str(challenger)]
    difference: dict[str, Any] = {}
    for metric in METRICS:
        if a.get(metric) is None or b.get(metric) is None:
            continue
        diff = float(b[metric] - a[metric])
        se = math.hypot(a.get(f"{metric}_se") or 0.0, b.get(f"{metric}_se") or 0.0)
        difference[metric] = diff
        difference[f"{metric}_se"] = se
        difference[f"{metric}_beyond_noise"] = bool(se > 0 and abs(diff) > NOISE_Z * se)
    if "roc_auc" not in difference:
        verdict = "pending"
    elif not difference["roc_auc_beyond_noise"]:
        verdict = "within noise"
    else:
        verdict = "better" if difference["roc_auc"] > 0 else "worse"
    return {
        "champion": a,
        "challenger": b,
        "period": [_iso(start), _iso(end)],
        "difference": difference,
        "verdict": verdict,
        "noise_z": NOISE_Z,
        "min_labelled": int(min_labelled),
    }


def measurably_worse(comparison: dict[str, Any] | None) -> bool:
    """Whether the challenger's realised ROC-AUC on served traffic is below the champion's beyond the noise."""
    return bool(comparison) and comparison.get("verdict") == "worse"  # type: ignore[union-attr]


def to_tag(comparison: dict[str, Any]) -> str:
    """The comparison as the compact JSON of a registry tag (what status and promote show)."""
    keep = {
        "version",
        "role",
        "rows",
        "labelled_rows",
        "positive_rate",
        "pending",
        "first_served",
        "last_served",
    }
    keep |= {f"{m}{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high", "_se")}

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    slim = {k: v for k, v in comparison.items() if k not in ("champion", "challenger")}
    for role in ("champion", "challenger"):
        slim[role] = {k: clean(v) for k, v in comparison[role].items() if k in keep}
    slim["difference"] = {k: clean(v) for k, v in (comparison.get("difference") or {}).items()}
    return json.dumps(slim, separators=(",", ":"), allow_nan=False, default=str)


def from_tag(text: str | None) -> dict[str, Any] | None:
    """A comparison recorded by :func:`to_tag`; ``None`` for no tag or an unreadable one."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "champion" in value and "challenger" in value else None
