"""Where the model is weaker: per police district and per community area figures on the test window, and maps.

Each record's area comes from its own ``district`` / ``community_area`` field; where that is missing (or not a
number), from its point (latitude/longitude, else the State Plane x/y) by a geopandas spatial join with the
City's boundaries (Socrata "Boundaries - Police Districts (current)" and "Boundaries - Community Areas
(current)", landed next to the police stations). Per area: rows, arrest rate, mean predicted probability,
ROC-AUC (where both classes occur), expected calibration error, and the false-positive and false-negative
rates at the serving threshold.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from chicago_arrest.model.evaluate import expected_calibration_error

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

Level = Literal["district", "community_area"]
LEVELS: tuple[Level, ...] = ("district", "community_area")
#: Key and name columns of the Socrata boundary datasets (their GeoJSON exports).
BOUNDARY_KEYS: dict[Level, tuple[str, ...]] = {
    "district": ("dist_num", "district"),
    "community_area": ("area_numbe", "area_num_1", "community_area"),
}
BOUNDARY_NAMES: dict[Level, tuple[str, ...]] = {
    "district": ("dist_label", "name"),
    "community_area": ("community", "name"),
}
#: Illinois State Plane East (US feet): the crimes' x_coordinate / y_coordinate.
STATE_PLANE = "EPSG:3435"
#: Areas with fewer test rows are listed but not named among the largest gaps.
MIN_ROWS_FOR_GAPS = 30
AREA_COLUMNS = ("rows", "arrest_rate", "mean_predicted", "roc_auc", "ece", "fpr", "fnr")


def area_key(values: Any) -> pd.Series:
    """Normalise district / community-area codes to the text of an integer (``"005"`` → ``"5"``; bad → NA)."""
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    valid = numbers.notna() & (numbers == numbers.round()) & (numbers >= 0)
    out = pd.Series(pd.NA, index=numbers.index, dtype="string")
    out[valid] = numbers[valid].astype(np.int64).astype(str)
    return out


def boundaries(frame: gpd.GeoDataFrame, level: Level) -> gpd.GeoDataFrame:
    """The boundary table with two columns besides the geometry: ``area`` (key) and ``name``, in EPSG:4326.

    Args:
        frame: A boundary dataset (GeoJSON export of the City's portal or generated shapes).
        level: ``district`` or ``community_area``.

    Raises:
        ValueError: When no key column is found.
    """
    key = next((c for c in BOUNDARY_KEYS[level] if c in frame.columns), None)
    if key is None:
        raise ValueError(f"{level} boundaries need one of the columns {BOUNDARY_KEYS[level]}")
    name = next((c for c in BOUNDARY_NAMES[level] if c in frame.columns), key)
    out = frame[[key, name, "geometry"]].copy() if name != key else frame[[key, "geometry"]].copy()
    out["area"] = area_key(out[key]).to_numpy()
    out["name"] = out[name].astype(str) if name != key else out["area"]
    out = out[["area", "name", "geometry"]]
    invalid = ~out.geometry.is_valid
    if invalid.any():  # 3 of the City's 77 community areas self-intersect: buffer(0) repairs them
        out.loc[invalid, "geometry"] = out.geometry[invalid].buffer(0)
    if out.crs is None:
        out = out.set_crs("EPSG:4326")
    out = out.to_crs("EPSG:4326")
    # District 31 comes as several polygons: one row per area.
    return out.dissolve(by="area", as_index=False, aggfunc="first")


def read_boundaries(path: Path, level: Level) -> gpd.GeoDataFrame:
    """Read a GeoJSON (or any file geopandas reads) of district or community-area boundaries."""
    import geopandas as gpd

    return boundaries(gpd.read_file(path), level)


def _column(records: pd.DataFrame, name: str) -> pd.Series:
    if name not in records.columns:
        return pd.Series(np.nan, index=records.index)
    return pd.to_numeric(records[name], errors="coerce")


def _points(records: pd.DataFrame) -> gpd.GeoSeries:
    """Each record's point in EPSG:4326: latitude/longitude, else the State Plane x/y (empty when neither)."""
    import geopandas as gpd

    lat, lon = _column(records, "latitude"), _column(records, "longitude")
    x, y = _column(records, "x_coordinate"), _column(records, "y_coordinate")
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), index=records.index, crs="EPSG:4326")
    use_plane = (lat.isna() | lon.isna()) & x.notna() & y.notna()
    if use_plane.any():
        plane = gpd.GeoSeries(gpd.points_from_xy(x[use_plane], y[use_plane]), crs=STATE_PLANE)
        pts[use_plane.to_numpy()] = plane.to_crs("EPSG:4326").to_numpy()
    return pts


def assign_areas(
    records: pd.DataFrame, shapes: dict[Level, gpd.GeoDataFrame | None] | None = None
) -> pd.DataFrame:
    """Each record's district and community area, from its fields or else from its point.

    Args:
        records: Raw records.
        shapes: Boundaries per level (from :func:`boundaries`); a level without them uses the fields only.

    Returns:
        Columns ``district``, ``community_area`` (normalised keys; NA when unknown) and
        ``district_source`` / ``community_area_source`` (``record``, ``spatial`` or ``none``), same index.
    """
    import geopandas as gpd

    shapes = shapes or {}
    out = pd.DataFrame(index=records.index)
    points = None
    for level in LEVELS:
        key = area_key(records[level] if level in records.columns else [None] * len(records))
        key.index = records.index
        source = pd.Series(np.where(key.notna(), "record", "none"), index=records.index, dtype=object)
        shape = shapes.get(level)
        missing = key.isna()
        if shape is not None and missing.any():
            if points is None:
                points = _points(records)
            todo = points[missing.to_numpy() & ~points.is_empty & points.notna()]
            todo = todo[np.isfinite(todo.x) & np.isfinite(todo.y)]
            if len(todo):
                joined = gpd.sjoin(
                    gpd.GeoDataFrame(geometry=todo),
                    shape[["area", "geometry"]],
                    how="left",
                    predicate="within",
                )
                joined = joined[~joined.index.duplicated(keep="first")]
                found = joined["area"].dropna()
                key.loc[found.index] = found.astype(str).to_numpy()
                source.loc[found.index] = "spatial"
        out[level] = key
        out[f"{level}_source"] = source
    return out


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
    order = pd.to_numeric(table["area"], errors="coerce").fillna(np.inf)
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


def gaps_sentence(tables: dict[Level, pd.DataFrame], min_rows: int = MIN_ROWS_FOR_GAPS) -> str:
    """One sentence naming the largest per-area gaps (calibration, ROC-AUC, error rates)."""
    parts = []
    label = {"district": "district", "community_area": "community area"}
    for level, table in tables.items():
        known = table[(table.index != "unknown") & (table["rows"] >= min_rows)]
        if known.empty:
            continue

        def name(area: Any, known: pd.DataFrame = known, level: Level = level) -> str:
            shown = known.loc[area, "name"]
            return f"{label[level]} {area}" + (f" ({shown})" if str(shown) != str(area) else "")

        bits = []
        if known["ece"].notna().any():
            area = known["ece"].idxmax()
            bits.append(
                f"the largest calibration error is in {name(area)} (ECE {known.loc[area, 'ece']:.3f})"
            )
        if known["roc_auc"].notna().any():
            area = known["roc_auc"].idxmin()
            bits.append(f"the lowest ROC-AUC in {name(area)} ({known.loc[area, 'roc_auc']:.3f})")
        gap = (known["mean_predicted"] - known["arrest_rate"]).abs()
        area = gap.idxmax()
        bits.append(
            f"the largest gap between predicted and observed arrest rate in {name(area)} "
            f"({known.loc[area, 'mean_predicted']:.1%} predicted, {known.loc[area, 'arrest_rate']:.1%} observed)"
        )
        if known["fnr"].notna().any():
            area = known["fnr"].idxmax()
            bits.append(f"the highest false-negative rate in {name(area)} ({known.loc[area, 'fnr']:.1%})")
        parts.append(f"Among {label[level]}s with at least {min_rows} test rows, " + "; ".join(bits) + ".")
    return " ".join(parts) if parts else "No area has enough test rows to compare."


def choropleths(
    table: pd.DataFrame,
    shape: gpd.GeoDataFrame,
    path: Path,
    columns: tuple[str, ...] = ("arrest_rate", "mean_predicted", "ece"),
    title: str = "community area",
) -> Path:
    """One PNG with a choropleth per column (arrest rate, mean predicted, ECE per area).

    Args:
        table: :func:`area_table` output.
        shape: Boundaries of the same level (:func:`boundaries`).
        path: PNG to write.
        columns: Columns mapped.
        title: Level name in the titles.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merged = shape.merge(table[list(columns)], left_on="area", right_index=True, how="left")
    titles = {"arrest_rate": "arrest rate", "mean_predicted": "mean predicted", "ece": "ECE"}
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 6))
    rates = [c for c in columns if c in ("arrest_rate", "mean_predicted")]
    # Observed and predicted rates on one colour scale, so the two maps compare directly.
    shared = (float(merged[rates].min().min()), float(merged[rates].max().max())) if rates else None
    for ax, column in zip(np.atleast_1d(axes), columns, strict=True):
        scale = {"vmin": shared[0], "vmax": shared[1]} if shared and column in rates else {}
        merged.plot(
            column=column,
            ax=ax,
            **scale,
            legend=True,
            cmap="viridis" if column != "ece" else "magma_r",
            missing_kwds={"color": "lightgrey", "label": "no test rows"},
            edgecolor="white",
            linewidth=0.3,
        )
        ax.set_title(f"{titles.get(column, column)} per {title}")
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# -- the boundaries in the object store (landed by ingest like the police stations) ---------------------------

#: Store keys of the boundary GeoJSON files.
BOUNDARY_STORE_KEYS: dict[Level, str] = {
    "district": "raw/boundaries/police_districts.geojson",
    "community_area": "raw/boundaries/community_areas.geojson",
}
#: File names looked for next to a source file (and in ``/work/shared``-style data folders).
BOUNDARY_FILES: dict[Level, str] = {
    "district": "police_districts.geojson",
    "community_area": "community_areas.geojson",
}


def land_boundaries(store: Any, level: Level, geojson: bytes) -> int:
    """Check a boundary GeoJSON (it must parse and have the level's key column) and write it to the store.

    Args:
        store: The object store (:class:`chicago_arrest.core.store.ObjectStore`).
        level: ``district`` or ``community_area``.
        geojson: The file's bytes (Socrata's GeoJSON export, or the shared copy).

    Returns:
        The number of areas.

    Raises:
        ValueError: When the file does not parse or lacks the key column.
    """
    import io

    import geopandas as gpd

    try:
        frame = gpd.read_file(io.BytesIO(geojson))
    except Exception as exc:
        raise ValueError(f"{level} boundaries: not a readable GeoJSON ({type(exc).__name__}: {exc})") from exc
    areas = boundaries(frame, level)
    store.put_bytes(BOUNDARY_STORE_KEYS[level], geojson)
    log.info("landed %s boundaries: %d areas -> %s", level, len(areas), store.uri(BOUNDARY_STORE_KEYS[level]))
    return len(areas)


def land_boundary_files(store: Any, folder: Path) -> dict[str, int]:
    """Land the boundary files found in ``folder`` (:data:`BOUNDARY_FILES`); returns areas per level landed."""
    landed: dict[str, int] = {}
    for level, name in BOUNDARY_FILES.items():
        path = Path(folder) / name
        if path.is_file():
            landed[level] = land_boundaries(store, level, path.read_bytes())
    return landed


def load_boundaries(store: Any) -> dict[Level, gpd.GeoDataFrame | None]:
    """The boundaries in the store (``None`` for a level not landed, or unreadable: logged, never raised)."""
    import io

    import geopandas as gpd

    out: dict[Level, gpd.GeoDataFrame | None] = {}
    for level, key in BOUNDARY_STORE_KEYS.items():
        try:
            out[level] = (
                boundaries(gpd.read_file(io.BytesIO(store.get_bytes(key))), level)
                if store.exists(key)
                else None
            )
        except Exception as exc:  # the report goes on with the records' own fields
            log.warning(
                "%s boundaries at %s unusable (%s): per-area figures use the fields only", level, key, exc
            )
            out[level] = None
    return out


def boundaries_from_settings() -> dict[Level, gpd.GeoDataFrame | None]:
    """The boundaries in the configured object store; empty when the store cannot be reached."""
    try:
        from chicago_arrest.core.settings import get_settings
        from chicago_arrest.core.store import make_store

        return load_boundaries(make_store(get_settings()))
    except Exception as exc:
        log.warning(
            "no boundaries (%s: %s): per-area figures use the records' fields only", type(exc).__name__, exc
        )
        return {}
