"""Land raw crime records in the object store, one object per calendar month, and read them back.

Layout::

    raw/crimes/YYYY-MM.parquet      every record whose ``date`` falls in that month
    raw/undated/crimes.parquet      the last file ingest's records that belong to no month (for the contract)
    raw/police_stations.parquet     the police stations (:mod:`chicago_arrest.data.stations`)

The store itself is the state: the months present are the objects under ``raw/crimes/``; there is no side
file. Each month object is written atomically and replaced as a whole, so re-running a month never duplicates
records and an interrupted run leaves complete months or none. Every value is stored as text (pandas
``string``, missing = ``<NA>``) so nothing is lost or coerced before the data contract runs.

Entry point: :func:`ingest` (Socrata when no source file is given, else the files, read by
:mod:`chicago_arrest.data.sources`).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from chicago_arrest.core.errors import IngestError
from chicago_arrest.core.names import CHICAGO_TZ, WINDOW_MONTHS
from chicago_arrest.core.parsing import parse_numbers, parse_timestamps
from chicago_arrest.core.schema import DATE, ID, RAW_COLUMNS
from chicago_arrest.core.settings import Settings
from chicago_arrest.core.store import ObjectStore, make_store, write_parquet
from chicago_arrest.data.sources import TEXT, iter_sources, source_files, to_raw_strings
from chicago_arrest.data.stations import STATIONS_KEY, find_stations, land_stations

logger = logging.getLogger(__name__)

CRIMES_PREFIX = "raw/crimes/"
#: Records of the last file ingest whose ``date`` is missing, unreadable or after now (they belong to no month).
UNDATED_KEY = "raw/undated/crimes.parquet"
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_MONTH_KEY_RE = re.compile(r"^raw/crimes/(\d{4}-(?:0[1-9]|1[0-2]))\.parquet$")
_CHICAGO = ZoneInfo(CHICAGO_TZ)


class MissingMonthsError(IngestError, LookupError):
    """Months asked for are not in the store.

    Attributes:
        months: The missing months (``YYYY-MM``).
    """

    def __init__(self, months: list[str], store_uri: str) -> None:
        super().__init__(
            f"raw month(s) {', '.join(months)} not found in the object store {store_uri}; "
            "run the ingest step for that window first"
        )
        self.months = months


class CrimesSource(Protocol):
    """What :func:`ingest_socrata` needs from a client (:class:`~chicago_arrest.data.socrata.SocrataClient`)."""

    def fetch_crimes(self, start: date, end: date) -> pd.DataFrame:
        """Return every record with ``start <= date < end``."""
        ...

    def fetch_stations(self) -> pd.DataFrame:
        """Return the police stations."""
        ...


@dataclass
class IngestResult:
    """What an ingest run did.

    Attributes:
        landed: Months written by this run (``YYYY-MM``, oldest first).
        skipped: Window months already in the store and not re-fetched.
        window: The months of the training window, oldest first.
        rows: Rows written per landed month.
        source: Where the records came from (``socrata:...`` or ``file:...``).
        duplicates: Records replaced by a later version with the same ``id`` (Socrata's primary key).
        undated: File records whose ``date`` is missing or unreadable: kept under :data:`UNDATED_KEY` and
            exported with the window, so that the data contract quarantines them with a reason instead of losing
            them.
        future: File records dated after now, kept and exported like the undated ones.
        outside_window: File records older than the window (not landed, counted).
    """

    landed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    window: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    source: str = ""
    duplicates: int = 0
    undated: int = 0
    future: int = 0
    outside_window: int = 0


# -- months -------------------------------------------------------------------------------------------------


def month_key(month: str) -> str:
    """Return the object key of a month: ``raw/crimes/YYYY-MM.parquet``."""
    return f"{CRIMES_PREFIX}{_check_month(month)}.parquet"


def month_bounds(month: str) -> tuple[date, date]:
    """Return ``(first day, first day of the next month)`` of ``YYYY-MM``."""
    year, mon = (int(p) for p in _check_month(month).split("-"))
    start = date(year, mon, 1)
    end = date(year + 1, 1, 1) if mon == 12 else date(year, mon + 1, 1)
    return start, end


def _check_month(month: str) -> str:
    if not _MONTH_RE.match(month):
        raise ValueError(f"invalid month {month!r}: expected YYYY-MM")
    return month


def _shift(year: int, month: int, delta: int) -> str:
    index = year * 12 + (month - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_in_store(store: ObjectStore) -> list[str]:
    """Return the months present in the store, oldest first (read from the store's keys).

    Args:
        store: The object store.

    Returns:
        ``YYYY-MM`` strings.
    """
    found = (_MONTH_KEY_RE.match(key) for key in store.list_keys(CRIMES_PREFIX))
    return sorted(m.group(1) for m in found if m)


def plan_months(
    today: date, months: int, in_store: list[str], refresh: int = 1
) -> tuple[list[str], list[str]]:
    """Plan a Socrata ingest.

    Args:
        today: The current day; its month is incomplete and never part of the window.
        months: Number of full calendar months in the training window.
        in_store: Months already in the store.
        refresh: How many of the latest window months to re-land even when present (records get updated, and
            the last month may have been partial when it was landed). 0 re-lands nothing.

    Returns:
        ``(window, to_land)``: the last ``months`` full months before ``today``'s month, oldest first, and the
        window months to fetch (missing ones plus the latest ``refresh``), oldest first.

    Raises:
        ValueError: When ``months < 1`` or ``refresh < 0``.
    """
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    if refresh < 0:
        raise ValueError(f"refresh must be >= 0, got {refresh}")
    window = [_shift(today.year, today.month, -k) for k in range(months, 0, -1)]
    present = set(in_store)
    refreshed = set(window[-refresh:]) if refresh else set()
    to_land = [m for m in window if m not in present or m in refreshed]
    return window, to_land


# -- landing ------------------------------------------------------------------------------------------------


def land_month(store: ObjectStore, month: str, frame: pd.DataFrame) -> int:
    """Write one month of records, replacing the month's object atomically.

    Records are stored as text in :data:`~chicago_arrest.core.schema.RAW_COLUMNS` order (absent raw columns
    added as nulls), extra columns after; deduplicated on ``id`` (keeping the row with the latest
    ``updated_on``, else the last one) and sorted by ``date``, ``id``.

    Args:
        store: The object store.
        month: ``YYYY-MM``.
        frame: The month's records (Socrata field names).

    Returns:
        The number of rows written.

    Raises:
        ValueError: When a record's ``date`` is outside ``month`` or ``id`` / ``date`` columns are missing.
    """
    key = month_key(month)
    missing = [c for c in (ID, DATE) if c not in frame.columns]
    if missing and len(frame):
        raise ValueError(f"month {month}: records lack column(s) {', '.join(missing)}")
    raw = to_raw_strings(frame, RAW_COLUMNS)
    dates = parse_timestamps(raw[DATE]).values
    outside = ~np.isnat(dates) & (dates.astype("datetime64[M]") != np.datetime64(month, "M"))
    if outside.any():
        sample = raw.loc[outside, DATE].head(3).tolist()
        raise ValueError(
            f"month {month}: {int(outside.sum())} record(s) dated outside the month, e.g. {sample}"
        )
    raw = _dedupe(raw)
    dates = parse_timestamps(raw[DATE]).values
    ids = parse_numbers(raw[ID], integral=True).values
    order = pd.DataFrame({"d": dates, "n": ids, "s": raw[ID]}, index=raw.index).sort_values(
        ["d", "n", "s"], kind="stable", na_position="last"
    )
    raw = raw.loc[order.index].reset_index(drop=True)
    write_parquet(store, key, raw)
    logger.info("landed %s: %d rows -> %s", month, len(raw), store.uri(key))
    return len(raw)


def _dedupe(raw: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per non-null ``id``: latest ``updated_on`` (a missing one ranks lowest), else the last."""
    has_id = raw[ID].notna()
    if not raw.loc[has_id, ID].duplicated().any():
        return raw
    keyed = raw[has_id]
    rank = pd.DataFrame(
        {"u": parse_timestamps(keyed["updated_on"]).values, "pos": range(len(keyed))}, index=keyed.index
    )
    rank = rank.sort_values(["u", "pos"], kind="stable", na_position="first")
    keep = keyed.loc[rank.index].drop_duplicates(subset=[ID], keep="last").index
    dropped = int(has_id.sum()) - len(keep)
    logger.info("dropped %d duplicate record(s) by id", dropped)
    return raw.loc[raw.index.isin(keep) | ~has_id]


# -- reading back -------------------------------------------------------------------------------------------


def load_window(store: ObjectStore, months: list[str]) -> pd.DataFrame:
    """Concatenate the month objects of ``months`` (in the given order).

    Args:
        store: The object store.
        months: ``YYYY-MM`` strings.

    Returns:
        All their records, text columns, fresh index.

    Raises:
        MissingMonthsError: Naming every month that is not in the store.
    """
    absent = [m for m in months if not store.exists(month_key(m))]
    if absent:
        raise MissingMonthsError(absent, store.uri(CRIMES_PREFIX))
    frames = [_read_text(store, month_key(m)) for m in months]
    if not frames:
        return to_raw_strings(pd.DataFrame(), RAW_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _read_text(store: ObjectStore, key: str) -> pd.DataFrame:
    """A landed object (every column text) with its text as :data:`TEXT`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(store.get_bytes(key)))
    return table.to_pandas(types_mapper={pa.string(): TEXT, pa.large_string(): TEXT}.get)


def load_undated(store: ObjectStore) -> pd.DataFrame:
    """Records of the last file ingest without a parsable ``date`` (empty when there are none)."""
    if not store.exists(UNDATED_KEY):
        return to_raw_strings(pd.DataFrame(), RAW_COLUMNS)
    return _read_text(store, UNDATED_KEY)


# -- landing from a source: Socrata or files ----------------------------------------------------------------


def _today_in_chicago() -> date:
    return datetime.now(_CHICAGO).date()


def _now_in_chicago() -> datetime:
    """The current wall-clock time in Chicago, naive (like the records' ``date``)."""
    return datetime.now(_CHICAGO).replace(tzinfo=None)


def ingest_socrata(
    store: ObjectStore,
    client: CrimesSource,
    *,
    months: int = WINDOW_MONTHS,
    refresh: int = 1,
    today: date | None = None,
) -> IngestResult:
    """Land the training window from Socrata: only missing months, plus the latest ``refresh`` ones.

    The first run lands the last ``months`` full months; later runs land what the store lacks. A month is
    written only after all its pages arrived, so a failure leaves no partial month; months landed before the
    failure stay and the next run skips them. The police stations (and the area boundaries) are re-landed with
    every run that lands a month. A run with nothing to land and the stations in the store asks Socrata for
    nothing: with ``refresh=0`` over months landed beforehand (``make kind-smoke`` lands generated months and
    their stations through MinIO) a run depends on nothing outside the cluster.

    Args:
        store: The object store.
        client: Source of crimes and stations (a :class:`~chicago_arrest.data.socrata.SocrataClient`).
        months: Full calendar months in the window.
        refresh: Latest window months to re-land even when present.
        today: The current day (default: today in Chicago).

    Returns:
        What was landed and skipped.
    """
    today = today or _today_in_chicago()
    window, to_land = plan_months(today, months, months_in_store(store), refresh)
    result = IngestResult(
        window=window,
        skipped=[m for m in window if m not in set(to_land)],
        source=str(getattr(client, "source", "socrata")),
    )
    logger.info(
        "window %s..%s: %d month(s) to land, %d already in store",
        window[0],
        window[-1],
        len(to_land),
        len(result.skipped),
    )
    if not to_land and store.exists(STATIONS_KEY):
        logger.info(
            "nothing to land: keeping the store's police stations (%s), no Socrata call", STATIONS_KEY
        )
        return result
    land_stations(store, client.fetch_stations())
    _land_socrata_boundaries(store, client)
    for month in to_land:
        start, end = month_bounds(month)
        frame = client.fetch_crimes(start, end)
        result.rows[month] = land_month(store, month, frame)
        result.landed.append(month)
    return result


def _land_socrata_boundaries(store: ObjectStore, client: CrimesSource) -> None:
    """Land the district and community-area boundaries (optional: a failure is logged, the store keeps its own)."""
    fetch = getattr(client, "fetch_boundaries", None)
    settings = getattr(client, "settings", None)
    if fetch is None or settings is None:
        return
    from chicago_arrest.data.areas import land_boundaries

    for level, dataset in (
        ("district", settings.districts_dataset_id),
        ("community_area", settings.community_areas_dataset_id),
    ):
        try:
            land_boundaries(store, level, fetch(dataset))  # type: ignore[arg-type]
        except Exception as exc:  # the per-area figures fall back to the records' fields
            logger.warning("%s boundaries not landed from Socrata %s: %s", level, dataset, exc)


def ingest_file(
    store: ObjectStore,
    path: Path | str | Sequence[Path | str],
    *,
    months: int = WINDOW_MONTHS,
    stations_path: Path | str | None = None,
) -> IngestResult:
    """Land the records of local CSV / Parquet files in the Socrata schema, one object per month.

    ``path`` is one file, several (a list, or one string with commas) or a folder
    (:func:`~chicago_arrest.data.sources.source_files`): several years at once (``MONTHS=24`` over two yearly
    files). The window is the last ``months`` calendar months present in the files; each window month is landed
    (replacing what the store had), so landing the same files again rewrites the same objects. A record in two
    files (the same ``id``) is landed once, the later ``updated_on`` kept. ``date`` is read by
    :func:`~chicago_arrest.core.parsing.parse_timestamps`: records whose ``date`` is missing or unreadable
    (``now``, ``2017``, ``2017-13-01``, ...) or after now belong to no month; they move neither the window nor
    any month object and are kept under :data:`UNDATED_KEY` for the data contract, which quarantines them.
    Records older than the window are not landed (logged as a warning).

    Args:
        store: The object store.
        path: The crimes file(s) or folder (Socrata API field names as headers).
        months: Months in the window.
        stations_path: Police stations file; default: ``police_stations.csv`` / ``.parquet`` next to the
            first file, else what the store already has.

    Returns:
        What was landed.

    Raises:
        IngestError: When the file lacks ``id`` / ``date``, has no readable date, or no stations are available.
        FileNotFoundError: When a file does not exist.
    """
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    paths = source_files(path)
    label = ", ".join(str(p) for p in paths)  # for messages
    stations = find_stations(paths[0], Path(stations_path) if stations_path is not None else None, store)
    # Read file by file: each file's months are known as it is read, and its rows are handed to their month
    # once the window is known; the files are never concatenated as a whole (two years in ~40 % less memory).
    files = [_dated(frame) for frame in iter_sources(paths)]
    present = sorted(set().union(*(f.months for f in files)))
    bad = sum(f.bad for f in files)
    if not present:
        raise IngestError(f"{label}: no record has a readable date (unreadable: {bad})")
    window = present[-months:]
    outside = sum(int((f.month_of.notna() & ~f.month_of.isin(window)).sum()) for f in files)
    if outside:
        logger.warning(
            "%s: %d record(s) are older than the window %s..%s and are not landed",
            label,
            outside,
            window[0],
            window[-1],
        )
    result = IngestResult(
        window=window,
        source="file:" + ",".join(str(p) for p in paths),
        undated=sum(f.undated for f in files),
        future=sum(f.future for f in files),
        outside_window=outside,
    )
    if stations is not None:
        land_stations(store, stations)
    from chicago_arrest.data.areas import land_boundary_files

    land_boundary_files(store, paths[0].parent)  # police_districts / community_areas .geojson next to it
    pieces: dict[str, list[pd.DataFrame]] = {}
    no_month: list[pd.DataFrame] = []
    while files:
        file = files.pop(0)
        if not file.dated.all():
            no_month.append(file.frame[~file.dated])
        for month, group in file.frame.groupby(file.month_of, sort=True):
            if str(month) in window:
                pieces.setdefault(str(month), []).append(group)
        del file
    # Undated and future-dated records belong to no month: kept for the data contract, which quarantines them.
    if no_month:
        logger.warning(
            "%s: %d record(s) without a readable date (%d unreadable) and %d dated after now kept in %s "
            "for the data contract",
            label,
            result.undated,
            bad,
            result.future,
            store.uri(UNDATED_KEY),
        )
        write_parquet(store, UNDATED_KEY, to_raw_strings(pd.concat(no_month), RAW_COLUMNS))
    elif store.exists(UNDATED_KEY):
        store.delete(UNDATED_KEY)
    for month in sorted(pieces):
        group = pd.concat(pieces.pop(month)) if len(pieces[month]) > 1 else pieces.pop(month)[0]
        result.rows[month] = land_month(store, month, group)
        result.duplicates += len(group) - result.rows[month]
        result.landed.append(month)
    return result


@dataclass
class _DatedFile:
    """One source file's records with the month of each (``None`` when undated or dated after now)."""

    frame: pd.DataFrame
    month_of: pd.Series
    dated: np.ndarray
    undated: int
    future: int
    bad: int

    @property
    def months(self) -> set[str]:
        """The months the file has records of."""
        return set(self.month_of.dropna().unique())


def _dated(frame: pd.DataFrame) -> _DatedFile:
    dates = parse_timestamps(frame[DATE])
    # A date after now (Chicago time) is no month of the store either: one such value (a typo, a clock) must
    # not move the window to its month; the data contract quarantines it as future_date.
    future = dates.values > np.datetime64(_now_in_chicago())
    dated = ~np.isnat(dates.values) & ~future
    month_of = pd.Series(dates.values.astype("datetime64[M]").astype(str), index=frame.index).where(dated)
    return _DatedFile(
        frame, month_of, dated, int((~dated & ~future).sum()), int(future.sum()), int(dates.bad.sum())
    )


def ingest(
    settings: Settings,
    *,
    source: str | None,
    months: int = WINDOW_MONTHS,
    refresh: int = 1,
    stations_path: str | Path | None = None,
    today: date | None = None,
    client: CrimesSource | None = None,
) -> IngestResult:
    """Land the raw data: from Socrata when ``source`` is ``None``, else from the local file ``source``.

    Args:
        settings: Store backend and Socrata settings.
        source: CSV / Parquet file(s) in the Socrata schema (a path, paths separated by commas, or a folder:
            :func:`~chicago_arrest.data.sources.source_files`), or ``None`` for the Socrata API.
        months: Months in the training window.
        refresh: Socrata only: latest window months to re-land even when present.
        stations_path: File only: police stations file.
        today: Socrata only: the current day (default: today in Chicago).
        client: Socrata only: the client to use (default: a :class:`~chicago_arrest.data.socrata.SocrataClient`
            built from ``settings``).

    Returns:
        What was landed.
    """
    store = make_store(settings)
    if source is None:
        if client is not None:
            return ingest_socrata(store, client, months=months, refresh=refresh, today=today)
        from chicago_arrest.data.socrata import SocrataClient

        with SocrataClient(settings) as socrata:
            return ingest_socrata(store, socrata, months=months, refresh=refresh, today=today)
    return ingest_file(store, source, months=months, stations_path=stations_path)
