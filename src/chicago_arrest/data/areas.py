"""Police districts and community areas: the City's boundaries (read, land, load) and each record's area.

The boundaries are Socrata's "Boundaries - Police Districts (current)" and "Boundaries - Community Areas
(current)" GeoJSON exports, landed by ingest next to the police stations (:func:`land_boundaries`) and loaded
back by the steps that need them (:func:`load_boundaries`). A district's name is its police station's
(``11`` → ``Harrison``, from the landed stations) when the stations are there, else the boundary file's label
(``11TH``). Each record's area comes from its own ``district`` / ``community_area`` field; where that is
missing (or not a number), from its point (latitude/longitude, else the State Plane x/y) by a geopandas spatial
join with the boundaries (:func:`assign_areas`). The per-area figures are :mod:`chicago_arrest.model.areas`,
their maps :mod:`chicago_arrest.reports.maps`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from chicago_arrest.core.parsing import parse_numbers

if TYPE_CHECKING:
    import geopandas as gpd

log = logging.getLogger(__name__)

Level = Literal["district", "community_area"]
LEVELS: tuple[Level, ...] = ("district", "community_area")
#: What a level is called in a sentence or a heading.
LEVEL_LABELS: dict[Level, str] = {"district": "police district", "community_area": "community area"}
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


def area_key(values: Any) -> pd.Series:
    """Normalise district / community-area codes to the text of an integer (``"005"`` → ``"5"``; bad → NA).

    Read as whole numbers by the schema's number parser (``inf``, ``2.5`` or text are no area).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    numbers = parse_numbers(series, integral=True).values
    valid = ~np.isnan(numbers) & (numbers >= 0)
    out = pd.Series(pd.NA, index=series.index, dtype="string")
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
    return pd.Series(parse_numbers(records[name]).values, index=records.index)


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


def name_districts(shape: gpd.GeoDataFrame, stations: pd.DataFrame | None) -> gpd.GeoDataFrame:
    """District boundaries named after their police station (``11TH`` → ``Harrison``) where one is known.

    Args:
        shape: District boundaries (:func:`boundaries`).
        stations: The police stations (``district`` and ``district_name`` columns), or ``None``.

    Returns:
        A copy of ``shape`` with ``name`` replaced for each district whose station has a name.
    """
    if stations is None or not {"district", "district_name"} <= set(stations.columns):
        return shape
    keys = area_key(stations["district"]).to_numpy()
    names = {
        str(k): str(n).strip()
        for k, n in zip(keys, stations["district_name"], strict=True)
        if not pd.isna(k) and not pd.isna(n) and str(n).strip()
    }
    out = shape.copy()
    out["name"] = [names.get(str(a), n) for a, n in zip(out["area"], out["name"], strict=True)]
    return out


def load_boundaries(store: Any) -> dict[Level, gpd.GeoDataFrame | None]:
    """The boundaries in the store, districts named after their stations (:func:`name_districts`).

    ``None`` for a level not landed, or unreadable: logged, never raised.
    """
    import io

    import geopandas as gpd

    from chicago_arrest.data.stations import load_stations

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
    district = out.get("district")
    if district is not None:
        try:
            stations = load_stations(store)
        except Exception as exc:  # names are a nicety: the boundary file's labels stay
            log.info("district names from the boundary file (no police stations: %s)", exc)
        else:
            out["district"] = name_districts(district, stations)
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
