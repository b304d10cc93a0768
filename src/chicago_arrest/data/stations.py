"""The police stations: landed next to the crime records (``raw/police_stations.parquet``) and loaded back.

The stations come from Socrata's "Police Stations" dataset or from a file (``police_stations.csv`` /
``.parquet`` next to the crime files, or one the caller names). The model measures each record's distance to
the nearest station; :mod:`chicago_arrest.data.areas` names the police districts after them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from chicago_arrest.core.errors import IngestError
from chicago_arrest.core.store import KeyNotFoundError, ObjectStore, read_parquet, write_parquet
from chicago_arrest.data.sources import read_source_file, to_raw_strings

logger = logging.getLogger(__name__)

STATIONS_KEY = "raw/police_stations.parquet"
#: The stations files looked for next to the crime files.
STATIONS_NAMES = ("police_stations.csv", "police_stations.parquet")


def land_stations(store: ObjectStore, frame: pd.DataFrame) -> int:
    """Write the police stations (text values) to ``raw/police_stations.parquet`` atomically.

    Args:
        store: The object store.
        frame: Stations in the Socrata schema (needs ``district``).

    Returns:
        The number of stations written.

    Raises:
        IngestError: When the frame is empty or has no ``district`` column.
    """
    if "district" not in frame.columns or frame.empty:
        raise IngestError(
            "police stations data must be a non-empty table with a 'district' column "
            f"(got {len(frame)} rows, columns {list(frame.columns)})"
        )
    raw = to_raw_strings(frame)
    write_parquet(store, STATIONS_KEY, raw)
    logger.info("landed police stations: %d rows -> %s", len(raw), store.uri(STATIONS_KEY))
    return len(raw)


def load_stations(store: ObjectStore) -> pd.DataFrame:
    """Read the police stations.

    Args:
        store: The object store.

    Returns:
        The stations (text columns).

    Raises:
        KeyNotFoundError: When no stations were ingested yet.
    """
    if not store.exists(STATIONS_KEY):
        raise KeyNotFoundError(STATIONS_KEY, store.uri() + " (run the ingest step first)")
    return read_parquet(store, STATIONS_KEY)


def find_stations(path: Path, stations_path: Path | None, store: ObjectStore) -> pd.DataFrame | None:
    """The stations a file ingest lands: the file named, else one next to the crime files, else the store's.

    Args:
        path: The first crime file (:data:`STATIONS_NAMES` are looked for in its folder).
        stations_path: The stations file the caller named, or ``None``.
        store: The object store (its stations are kept when no file is found).

    Returns:
        The stations to land (text columns), or ``None`` to keep the store's.

    Raises:
        IngestError: When there are no stations at all.
    """
    if stations_path is not None:
        return read_source_file(Path(stations_path))
    for name in STATIONS_NAMES:
        candidate = path.parent / name
        if candidate.is_file():
            logger.info("police stations from %s", candidate)
            return read_source_file(candidate)
    if store.exists(STATIONS_KEY):
        logger.info("no stations file given or next to %s: keeping %s", path, store.uri(STATIONS_KEY))
        return None
    raise IngestError(
        f"no police stations data: none in the store, and no {' or '.join(STATIONS_NAMES)} next to {path}; "
        "pass a stations file (stations_path=..., Socrata 'Police Stations' schema)"
    )
