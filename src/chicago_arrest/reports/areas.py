"""The per-area figures as people read them: each area's number and name, worst calibration first.

Shared by the training report and the model card (HTML and Markdown): :func:`area_view` orders and labels a
:func:`chicago_arrest.model.areas.area_table`, :func:`gaps_sentence` names the largest gaps in words.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from chicago_arrest.data.areas import LEVEL_LABELS, Level
from chicago_arrest.model.areas import MIN_ROWS_FOR_GAPS, Gap
from chicago_arrest.reports.format import COLUMNS, Column, metric, rate, title_name, worst_first

#: The columns of an area table, in order (the figures' headers and legends are :data:`COLUMNS`').
AREA_VIEW: dict[str, Column] = {
    "area": Column("no.", "text"),
    "name": Column("name", "text"),
    **{k: COLUMNS[k] for k in ("rows", "arrest_rate", "mean_predicted", "roc_auc", "ece", "fpr", "fnr")},
}


def area_view(table: pd.DataFrame, min_rows: int = MIN_ROWS_FOR_GAPS) -> pd.DataFrame:
    """An area table ready to show: number and name first, largest ECE first, small areas and ``unknown`` last.

    Args:
        table: :func:`chicago_arrest.model.areas.area_table` output (index ``area``).
        min_rows: Areas with fewer test rows go after the others (their ECE is mostly noise).

    Returns:
        Columns :data:`AREA_VIEW`, one row per area; names as people write them (``Austin``), empty when no
        boundaries named the area.
    """
    frame = table.reset_index()
    frame["name"] = [
        "" if str(n) == str(a) else title_name(n) for a, n in zip(frame["area"], frame["name"], strict=True)
    ]
    frame = worst_first(frame.assign(_unknown=frame["area"].eq("unknown")), "ece", min_rows=min_rows)
    frame = frame.sort_values("_unknown", kind="stable")
    return frame[list(AREA_VIEW)].reset_index(drop=True)


def area_note(level: Level, min_rows: int = MIN_ROWS_FOR_GAPS) -> str:
    """The line above an area table: how it is ordered."""
    return (
        f"Per {LEVEL_LABELS[level]} on the test window, largest calibration error (ECE) first; "
        f"{LEVEL_LABELS[level]}s with fewer than {min_rows} test rows come last (their ECE is mostly noise)."
    )


def _named(gap: Gap) -> str:
    name = "" if gap.name == gap.area else f" ({title_name(gap.name)})"
    return f"{LEVEL_LABELS[gap.level]} {gap.area}{name}"


_PHRASES: Mapping[str, str] = {
    "ece": "the largest calibration error is in {area} (ECE {value})",
    "roc_auc": "the lowest ROC-AUC in {area} ({value})",
    "rate_gap": "the largest gap between predicted and observed arrest rate in {area} "
    "({value} predicted, {observed} observed)",
    "fnr": "the highest false-negative rate in {area} ({value})",
}


def gaps_sentence(gaps: list[Gap], min_rows: int = MIN_ROWS_FOR_GAPS) -> str:
    """One sentence per level naming its largest gaps (:func:`chicago_arrest.model.areas.largest_gaps`)."""
    parts = []
    for level in dict.fromkeys(g.level for g in gaps):
        bits = []
        for gap in (g for g in gaps if g.level == level):
            shown = rate if gap.kind in ("rate_gap", "fnr") else metric
            bits.append(
                _PHRASES[gap.kind].format(
                    area=_named(gap), value=shown(gap.value), observed=rate(gap.observed)
                )
            )
        parts.append(
            f"Among {LEVEL_LABELS[level]}s with at least {min_rows} test rows, " + "; ".join(bits) + "."
        )
    return " ".join(parts) if parts else "No area has enough test rows to compare."
