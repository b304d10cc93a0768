"""The geopandas reference of :func:`chicago_arrest.data.enrich.station_distance` (tests and benchmarks only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from chicago_arrest.data.enrich import US_FOOT_M, project_points


def station_distance_geopandas(frame: pd.DataFrame, stations: pd.DataFrame) -> np.ndarray:
    """:func:`~chicago_arrest.data.enrich.station_distance` with geopandas ``sjoin_nearest`` (slower).

    Args:
        frame: Raw records.
        stations: Police stations table.

    Returns:
        Distance in metres per record, ``NaN`` without coordinates.
    """
    import geopandas as gpd

    x, y = project_points(frame)
    sx, sy = project_points(stations)
    ok = ~np.isnan(x)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x[ok], y[ok]), crs="EPSG:3435")
    targets = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(sx[~np.isnan(sx)], sy[~np.isnan(sy)]), crs="EPSG:3435"
    )
    joined = gpd.sjoin_nearest(points, targets, distance_col="d")
    out = np.full(len(frame), np.nan)
    out[ok] = joined.groupby(level=0)["d"].first().sort_index().to_numpy() * US_FOOT_M
    return out
