"""The map of the page: the 77 community areas as SVG paths, from the boundaries the pipeline lands.

The ingest step lands the City's "Boundaries - Community Areas (current)" in the object store
(``raw/boundaries/community_areas.geojson``, :mod:`chicago_arrest.data.areas`). The server reads that object
once, on the first request for the map, simplifies the outlines (about 30 m) and projects them to SVG
coordinates: an equirectangular projection centred on the city, which at Chicago's latitude is within a
fraction of a percent of true shape. The page turns a click back into latitude and longitude with
:class:`Projection`'s numbers. Nothing is written anywhere.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Width of the SVG drawing in its own units (the page scales it).
WIDTH = 600.0
#: Outline simplification, in degrees (about 30 m at Chicago's latitude).
SIMPLIFY_DEG = 0.0003


@dataclass(frozen=True)
class Projection:
    """Degrees to SVG units: ``x = (lon - lon0) * kx``, ``y = (lat_max - lat) * ky``."""

    lon0: float
    lat_max: float
    kx: float
    ky: float
    width: float
    height: float

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """SVG coordinates of a point."""
        return (lon - self.lon0) * self.kx, (self.lat_max - lat) * self.ky


def projection_for(bounds: tuple[float, float, float, float], width: float = WIDTH) -> Projection:
    """The projection of a bounding box ``(min lon, min lat, max lon, max lat)`` into ``width`` units."""
    lon0, lat0, lon1, lat1 = bounds
    ky = width / max((lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2)), 1e-9)
    kx = ky * math.cos(math.radians((lat0 + lat1) / 2))
    return Projection(lon0, lat1, kx, ky, width, round((lat1 - lat0) * ky, 1))


def _ring(coords: Any, projection: Projection) -> str:
    points = [projection.xy(x, y) for x, y, *_ in coords]
    out, last = [], None
    for x, y in points:
        here = f"{x:.1f},{y:.1f}"
        if here != last:
            out.append(here)
            last = here
    return "M" + "L".join(out) + "Z"


def svg_path(geometry: Any, projection: Projection) -> str:
    """One SVG path (``M..L..Z`` per ring, holes included: draw with ``fill-rule: evenodd``)."""
    polygons = list(geometry.geoms) if geometry.geom_type == "MultiPolygon" else [geometry]
    parts = []
    for polygon in polygons:
        parts.append(_ring(polygon.exterior.coords, projection))
        parts.extend(_ring(ring.coords, projection) for ring in polygon.interiors)
    return "".join(parts)


def area_map(frame: Any) -> dict[str, Any]:
    """The map of a boundary table (:func:`chicago_arrest.data.areas.boundaries`, community areas).

    Returns:
        ``{"projection": {...}, "areas": [{"area", "name", "path", "latitude", "longitude"}, ...]}`` with
        each area's representative point (inside the area) as latitude/longitude, sorted by area number.
    """
    projection = projection_for(tuple(float(v) for v in frame.total_bounds))  # type: ignore[arg-type]
    areas = []
    for area, name, geometry in zip(frame["area"], frame["name"], frame.geometry, strict=True):
        if geometry is None or geometry.is_empty:
            continue
        inside = geometry.representative_point()
        areas.append(
            {
                "area": str(area),
                "name": str(name).title(),
                "path": svg_path(geometry.simplify(SIMPLIFY_DEG, preserve_topology=True), projection),
                "latitude": round(inside.y, 6),
                "longitude": round(inside.x, 6),
            }
        )
    areas.sort(key=lambda a: (int(a["area"]) if a["area"].isdigit() else 10**6, a["area"]))
    return {"projection": asdict(projection), "areas": areas}


def load_area_map(store: Any) -> dict[str, Any]:
    """The community-area map from the object store, or why there is none (``areas`` empty, ``reason`` set).

    Args:
        store: The object store the pipeline lands into (:func:`chicago_arrest.core.store.make_store`).
    """
    import geopandas as gpd

    from chicago_arrest.data.areas import BOUNDARY_STORE_KEYS, boundaries

    key = BOUNDARY_STORE_KEYS["community_area"]
    where = f"{store.uri(key)}"
    try:
        if not store.exists(key):
            return _none(
                f"no community area boundaries at {where}: the pipeline's ingest step lands them "
                "(community_areas.geojson next to the source file, or from the City's portal)"
            )
        frame = boundaries(gpd.read_file(io.BytesIO(store.get_bytes(key))), "community_area")
    except Exception as exc:  # the page falls back to typed coordinates
        log.warning("community area map unavailable (%s): %s", where, exc)
        return _none(f"community area boundaries at {where} could not be read: {type(exc).__name__}: {exc}")
    out = area_map(frame)
    log.info("community area map: %d areas from %s", len(out["areas"]), where)
    return out


def _none(reason: str) -> dict[str, Any]:
    return {"projection": None, "areas": [], "reason": reason}
