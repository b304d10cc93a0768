"""Choropleth maps of the per-area figures (:mod:`chicago_arrest.model.areas`) on the City's boundaries.

One PNG per level (police districts, community areas): observed arrest rate and mean predicted probability on
one colour scale (so the two maps compare directly), and the expected calibration error; the areas of largest
ECE are labelled with their names. Areas without test rows are grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from chicago_arrest.data.areas import LEVEL_LABELS, Level
from chicago_arrest.reports.format import number, title_name

if TYPE_CHECKING:
    import geopandas as gpd

#: What each mapped column is called in its map's title.
TITLES = {"arrest_rate": "observed arrest rate", "mean_predicted": "mean predicted probability", "ece": "ECE"}
#: Areas of largest ECE labelled on the ECE map.
LABELLED = 3


def maps_png(level: Level) -> str:
    """The file name of a level's maps (``area_maps_district.png``)."""
    return f"area_maps_{level}.png"


def choropleths(
    table: pd.DataFrame,
    shape: gpd.GeoDataFrame,
    path: Path,
    columns: tuple[str, ...] = ("arrest_rate", "mean_predicted", "ece"),
    level: Level = "community_area",
    min_rows: int = 0,
) -> Path:
    """One PNG with a choropleth per column (arrest rate, mean predicted, ECE per area).

    Args:
        table: :func:`chicago_arrest.model.areas.area_table` output (index ``area``).
        shape: Boundaries of the same level (:func:`chicago_arrest.data.areas.boundaries`).
        path: PNG to write.
        columns: Columns mapped.
        level: The level, for the titles.
        min_rows: Areas with fewer test rows are not labelled among the worst.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    merged = shape.merge(table[list(columns)], left_on="area", right_index=True, how="left")
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 6.2))
    rates = [c for c in columns if c in ("arrest_rate", "mean_predicted")]
    # Observed and predicted rates on one colour scale, so the two maps compare directly.
    shared = (float(merged[rates].min().min()), float(merged[rates].max().max())) if rates else None
    for ax, column in zip(np.atleast_1d(axes), columns, strict=True):
        scale = {"vmin": shared[0], "vmax": shared[1]} if shared and column in rates else {}
        # Tick labels: percentages for rates (10 %, 12.5 %), plain numbers otherwise (0.04, 0.1).
        shown = (lambda v: f"{number(v * 100)} %") if column in rates else number
        merged.plot(
            column=column,
            ax=ax,
            **scale,
            legend=True,
            legend_kwds={
                "shrink": 0.6,
                "format": FuncFormatter(lambda v, _pos, shown=shown: shown(v)),
            },
            cmap="viridis" if column != "ece" else "magma_r",
            missing_kwds={"color": "lightgrey", "label": "no test rows"},
            edgecolor="white",
            linewidth=0.3,
        )
        if column == "ece":
            eligible = table[(table.index != "unknown") & (table["rows"] >= min_rows)]
            worst = eligible["ece"].dropna().sort_values(ascending=False).head(LABELLED)
            points = merged.set_index("area").representative_point()
            for area in worst.index:
                if area in points.index:
                    point = points.loc[area]
                    name = title_name(shape.set_index("area").loc[area, "name"])
                    ax.annotate(
                        f"{area} {name}" if name != area else area,
                        (point.x, point.y),
                        fontsize=8,
                        ha="center",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
                    )
        ax.set_title(f"{TITLES.get(column, column)}\nper {LEVEL_LABELS[level]}", fontsize=11)
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
