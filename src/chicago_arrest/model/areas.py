"""Where the model is weaker: per police district and per community area figures on the test window.

Per area (each record's area from :func:`chicago_arrest.data.areas.assign_areas`): rows, arrest rate, mean
predicted probability, ROC-AUC (where both classes occur), expected calibration error, and the false-positive
and false-negative rates at the serving threshold; the areas with the largest gaps (:func:`largest_gaps`).
How they are shown is :mod:`chicago_arrest.reports.areas`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from chicago_arrest.core.parsing import parse_numbers
from chicago_arrest.data.areas import LEVELS, Level, assign_areas
from chicago_arrest.model.evaluate import expected_calibration_error

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

#: Areas with fewer test rows are listed (last) but not named among the largest gaps.
MIN_ROWS_FOR_GAPS = 30
AREA_COLUMNS = ("rows", "arrest_rate", "mean_predicted", "roc_auc", "ece", "fpr", "fnr")


def area_table(
    areas: pd.Series, y: np.ndarray, p: np.ndarray, threshold: float, names: dict[str, str] | None = None
) -> pd.DataFrame:
    """Per-area figures.

    Args:
        areas: Area key per record (NA: unknown, counted under ``"unknown"``).
        y: 0/1 labels.
        p: Calibrated probabilities.
        threshold: The serving threshold (``arrest`` is ``p >= threshold``).
        names: Area key → display name.

    Returns:
        One row per area (index ``area``, sorted by number), columns ``name`` and :data:`AREA_COLUMNS`.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    keys = pd.Series(areas, dtype="string").fillna("unknown").to_numpy()
    rows = []
    for area in pd.unique(keys):
        mask = keys == area
        ya, pa = y[mask], p[mask]
        pred = pa >= threshold
        negatives, positives = int((ya == 0).sum()), int((ya == 1).sum())
        rows.append(
            {
                "area": str(area),
                "name": (names or {}).get(str(area), str(area)),
                "rows": int(mask.sum()),
                "arrest_rate": float(ya.mean()),
                "mean_predicted": float(pa.mean()),
                "roc_auc": float(roc_auc_score(ya, pa)) if negatives and positives else float("nan"),
                "ece": expected_calibration_error(ya, pa),
                "fpr": float((pred & (ya == 0)).sum() / negatives) if negatives else float("nan"),
                "fnr": float((~pred & (ya == 1)).sum() / positives) if positives else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    keys = parse_numbers(table["area"]).values
    order = np.where(np.isnan(keys), np.inf, keys)  # numbered areas first, in order
    return table.assign(_order=order).sort_values(["_order", "area"]).drop(columns="_order").set_index("area")


def area_tables(
    records: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    shapes: dict[Level, gpd.GeoDataFrame | None] | None = None,
) -> dict[Level, pd.DataFrame]:
    """:func:`area_table` per district and per community area (areas from :func:`assign_areas`)."""
    shapes = shapes or {}
    assigned = assign_areas(records, shapes)
    out: dict[Level, pd.DataFrame] = {}
    for level in LEVELS:
        shape = shapes.get(level)
        names = dict(zip(shape["area"], shape["name"], strict=True)) if shape is not None else None
        out[level] = area_table(assigned[level], y, p, threshold, names)
        spatial = int((assigned[f"{level}_source"] == "spatial").sum())
        if spatial:
            log.info("%s: %d record(s) placed by their point (no %s field)", level, spatial, level)
    return out


def worst_area_ece(table: pd.DataFrame, min_rows: int = MIN_ROWS_FOR_GAPS) -> tuple[str, float]:
    """The area with the largest ECE among those with at least ``min_rows`` rows (``("", nan)`` if none)."""
    known = table[(table.index != "unknown") & (table["rows"] >= min_rows)]
    if known.empty or known["ece"].isna().all():
        return "", float("nan")
    area = str(known["ece"].idxmax())
    return area, float(known.loc[area, "ece"])


@dataclass(frozen=True)
class Gap:
    """One of the largest per-area gaps.

    Attributes:
        level: ``district`` or ``community_area``.
        kind: ``ece`` (largest), ``roc_auc`` (lowest), ``rate_gap`` (largest |predicted - observed|) or
            ``fnr`` (highest).
        area: The area's key.
        name: The area's name (its key when no boundaries named it).
        value: The figure (for ``rate_gap``: the mean predicted probability).
        observed: For ``rate_gap``: the observed arrest rate.
    """

    level: Level
    kind: str
    area: str
    name: str
    value: float
    observed: float = float("nan")


def largest_gaps(tables: dict[Level, pd.DataFrame], min_rows: int = MIN_ROWS_FOR_GAPS) -> list[Gap]:
    """The areas that stand out: per level, largest ECE, lowest ROC-AUC, largest |predicted - observed|, highest FNR.

    Only areas with at least ``min_rows`` test rows (and not ``unknown``) are compared.
    """
    out: list[Gap] = []
    for level, table in tables.items():
        known = table[(table.index != "unknown") & (table["rows"] >= min_rows)]
        if known.empty:
            continue

        def gap(
            kind: str,
            area: Any,
            value: float,
            observed: float = float("nan"),
            level: Level = level,
            known: pd.DataFrame = known,
        ) -> Gap:
            return Gap(level, kind, str(area), str(known.loc[area, "name"]), float(value), float(observed))

        if known["ece"].notna().any():
            area = known["ece"].idxmax()
            out.append(gap("ece", area, known.loc[area, "ece"]))
        if known["roc_auc"].notna().any():
            area = known["roc_auc"].idxmin()
            out.append(gap("roc_auc", area, known.loc[area, "roc_auc"]))
        area = (known["mean_predicted"] - known["arrest_rate"]).abs().idxmax()
        out.append(gap("rate_gap", area, known.loc[area, "mean_predicted"], known.loc[area, "arrest_rate"]))
        if known["fnr"].notna().any():
            area = known["fnr"].idxmax()
            out.append(gap("fnr", area, known.loc[area, "fnr"]))
    return out
