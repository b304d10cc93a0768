"""The public BigQuery table of Chicago crimes as Socrata records (the Vertex pipeline's default source).

:func:`window_sql` is the ``EXPORT DATA`` statement GCPC's ``BigqueryQueryJobOp`` runs for a month window;
:func:`export_shards` finds the Parquet shards BigQuery wrote (through the Cloud Storage API, not a ``/gcs`` folder
listing); :func:`read_export` reads them as Socrata records, converting the table's timestamps with
:func:`loader_wall_clock`.

What the table's ``date`` holds (read from its loader, :data:`LOADER`): the portal's CSV text
``01/01/2017 01:05:00 PM`` is parsed with ``"%m/%d/%Y %H:%M:%S %p"`` and written as ``2017-01-01 01:05:00``
without a zone, which BigQuery loads into a TIMESTAMP column as UTC. So the stored instant's UTC fields are
Chicago's wall clock (no zone conversion happened anywhere), and with ``%H`` Python's ``strptime`` ignores
``%p``: the hour is the 12-hour clock's (1 PM and 1 AM are both ``01``, midnight is ``12``). The first part is
converted here (the UTC fields are read as they are, never shifted to America/Chicago); the second cannot be
undone, and the data contract's hour rule (:func:`chicago_arrest.data.validate.check_hours`) stops a run
whose hours look like it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from chicago_arrest.core.parsing import parse_timestamps
from chicago_arrest.core.schema import FIELD_BY_NAME, RAW_COLUMNS, SOCRATA_TIMESTAMP_FORMAT

#: The public table (project ``bigquery-public-data``, dataset ``chicago_crime``), multi-region ``US``.
BIGQUERY_TABLE = "bigquery-public-data.chicago_crime.crime"
BIGQUERY_LOCATION = "US"
#: The code that loads :data:`BIGQUERY_TABLE` (``convert_dt_format``: the ``%H ... %p`` format), as read.
LOADER = (
    "GoogleCloudPlatform/public-datasets-pipelines@18a9c9b1 (2026-04-21), "
    "datasets/chicago_crime/pipelines/_images/run_csv_transform_kub/csv_transform.py"
)
#: Socrata field (the project's raw schema) → (BigQuery column, BigQuery type): the schema of the loader's
#: ``crime_dag.py`` (``schema_fields``), also listed in github.com/rsyi/whale-bigquery-public-data,
#: metadata/bq-1/bigquery-public-data.chicago_crime.crime.md (21 of its 22 columns; ``location``, the
#: "(lat, lon)" text, is not a raw field of the project).
BIGQUERY_COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("unique_key", "INTEGER"),
    "case_number": ("case_number", "STRING"),
    "date": ("date", "TIMESTAMP"),
    "block": ("block", "STRING"),
    "iucr": ("iucr", "STRING"),
    "primary_type": ("primary_type", "STRING"),
    "description": ("description", "STRING"),
    "location_description": ("location_description", "STRING"),
    "arrest": ("arrest", "BOOLEAN"),
    "domestic": ("domestic", "BOOLEAN"),
    "beat": ("beat", "INTEGER"),
    "district": ("district", "INTEGER"),
    "ward": ("ward", "INTEGER"),
    "community_area": ("community_area", "INTEGER"),
    "fbi_code": ("fbi_code", "STRING"),
    "x_coordinate": ("x_coordinate", "FLOAT"),
    "y_coordinate": ("y_coordinate", "FLOAT"),
    "year": ("year", "INTEGER"),
    "updated_on": ("updated_on", "TIMESTAMP"),
    "latitude": ("latitude", "FLOAT"),
    "longitude": ("longitude", "FLOAT"),
}
#: The fields whose BigQuery column is a TIMESTAMP (exported as they are, converted by :func:`read_export`).
TIMESTAMP_FIELDS: tuple[str, ...] = tuple(
    f for f, (_, kind) in BIGQUERY_COLUMNS.items() if kind == "TIMESTAMP"
)
#: The shards' names: ``EXPORT DATA`` replaces the one ``*`` (e.g. ``crimes-000000000000.parquet``).
EXPORT_SHARDS = "crimes-*.parquet"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def window_months(months: int, end_month: str = "", today: date | None = None) -> list[str]:
    """The ``months`` calendar months ending with ``end_month`` (default: the last full month in Chicago).

    Args:
        months: Months in the window (>= 1).
        end_month: Last month, ``YYYY-MM``; empty = the month before today's (Chicago time).
        today: The current day (default: today in Chicago).

    Returns:
        ``YYYY-MM`` months, oldest first.

    Raises:
        ValueError: For ``months < 1`` or a malformed ``end_month``.
    """
    from chicago_arrest.data.ingest import _today_in_chicago, month_bounds, plan_months

    if end_month and not _MONTH.match(end_month):
        raise ValueError(f"end_month must be YYYY-MM, got {end_month!r}")
    # plan_months gives the last full months before `today`'s month: end_month's successor plays `today`.
    anchor = month_bounds(end_month)[1] if end_month else (today or _today_in_chicago())
    return plan_months(anchor, months, [], 0)[0]


def _column_sql(field: str) -> str:
    """One select item: the BigQuery column under the Socrata field's name (as text, timestamps as they are)."""
    column, kind = BIGQUERY_COLUMNS[field]
    spec = FIELD_BY_NAME[field]
    if kind == "TIMESTAMP":
        # Exported as stored; read_export reads the UTC fields as Chicago's wall clock (loader_wall_clock).
        expr = column
    elif kind == "STRING":
        expr = column
    elif kind == "INTEGER" and spec.kind == "code" and spec.pad:
        # Socrata spells beat 0111 and district 001; BigQuery stores them as integers.
        expr = f"LPAD(CAST({column} AS STRING), {spec.pad}, '0')"
    else:  # INTEGER, FLOAT, BOOLEAN (true / false, as the Socrata CSV export)
        expr = f"CAST({column} AS STRING)"
    return f"  {expr} AS {field}"


def window_sql(export_uri: str, months: int, end_month: str = "", today: date | None = None) -> str:
    """The BigQuery statement that exports one month window of Chicago crimes as Parquet to ``export_uri``.

    The table's TIMESTAMPs hold Chicago's wall clock labelled UTC (see the module docstring), so a month is
    ``TIMESTAMP('2024-03-01 00:00:00', 'UTC')`` up to the next month's first midnight, read the same way: no
    shift to America/Chicago, which would move every record 5 or 6 hours back. ``date`` and ``updated_on`` are
    exported as TIMESTAMPs and converted when landed (:func:`read_export`); the other columns are renamed to
    the Socrata fields and written as text, codes zero-padded. No ORDER BY: landing sorts each month.

    Args:
        export_uri: ``gs://`` folder for the Parquet shards (the component's output Dataset).
        months: Months in the window.
        end_month: Last month, ``YYYY-MM``; empty = the last full month.
        today: The current day (default: today in Chicago).

    Returns:
        An ``EXPORT DATA ... AS SELECT`` statement for GCPC's ``BigqueryQueryJobOp``.

    Raises:
        ValueError: For a bad window or an export URI that is not a plain ``gs://`` folder.
    """
    from chicago_arrest.data.ingest import month_bounds

    if not export_uri.startswith("gs://") or re.search(r"['\"\\\s*]", export_uri):
        raise ValueError(f"export_uri must be a gs:// folder without quotes, spaces or *, got {export_uri!r}")
    window = window_months(months, end_month, today)
    start, end = month_bounds(window[0])[0], month_bounds(window[-1])[1]
    missing = set(RAW_COLUMNS) - set(BIGQUERY_COLUMNS)
    if missing:  # the schema grew a field BigQuery was never mapped to
        raise ValueError(f"no BigQuery column for raw field(s) {sorted(missing)}")
    select = ",\n".join(_column_sql(field) for field in RAW_COLUMNS)
    return (
        f"-- Chicago crimes {window[0]}..{window[-1]} ({len(window)} months; the table's UTC fields are "
        "Chicago's wall clock) as Socrata records\n"
        "EXPORT DATA OPTIONS (\n"
        f"  uri = '{export_uri.rstrip('/')}/{EXPORT_SHARDS}',\n"
        "  format = 'PARQUET',\n"
        "  overwrite = true\n"
        ") AS\n"
        f"SELECT\n{select}\n"
        f"FROM `{BIGQUERY_TABLE}`\n"
        f"WHERE date >= TIMESTAMP('{start:%Y-%m-%d} 00:00:00', 'UTC')\n"
        f"  AND date < TIMESTAMP('{end:%Y-%m-%d} 00:00:00', 'UTC')\n"
    )


def loader_wall_clock(values: pd.Series) -> pd.Series:
    """The table's timestamps as Socrata's floating text: the stored UTC fields, read as Chicago's wall clock.

    Whatever type the Parquet export gives (zone-aware UTC, naive, or text such as ``2017-01-01 01:05:00 UTC``),
    the value's UTC fields are kept as they are (``2017-01-01T01:05:00.000``): the loader never converted a zone
    (:data:`LOADER`), so converting to America/Chicago would move every record 5 or 6 hours back. Missing values
    stay missing; text the schema's parser cannot read (``now``, ``2017``, ...) is kept as it is (the data
    contract then quarantines it, and ingest lands it in no month).

    Args:
        values: One exported TIMESTAMP column.

    Returns:
        Text (pandas ``string``) in Socrata's spelling ``YYYY-MM-DDTHH:MM:SS.mmm``.
    """
    # The schema's timestamp parser, with UTC as the local zone: a zone-aware value keeps its UTC fields.
    parsed = parse_timestamps(values, tz="UTC")
    stamps = pd.Series(parsed.values, index=values.index)
    out = (
        stamps.dt.strftime(SOCRATA_TIMESTAMP_FORMAT).str[:-3].astype("string")
    )  # microseconds -> milliseconds
    if parsed.bad.any():  # kept as given: the data contract quarantines it (bad_date)
        out[parsed.bad] = values[parsed.bad].astype("string").to_numpy()
    return out


def prepare_export(export_path: str | Path) -> Path:
    """Create the export folder before BigQuery writes into it (on Vertex: ``/gcs/...``, a placeholder object).

    Cloud Storage has no folders: BigQuery writes full object names whether or not a folder exists. The folder
    made here is for the ``/gcs`` mount, where a prefix without its placeholder object may not be listed (gcsfuse
    without ``--implicit-dirs``); the landing step does not rely on it either (:func:`export_shards`).
    """
    path = Path(export_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shard_name(name: str) -> str | None:
    """The shard's file name when ``name`` (an object name or a file name) is one of the export's shards."""
    leaf = name.rsplit("/", 1)[-1]
    return leaf if fnmatch.fnmatchcase(leaf, EXPORT_SHARDS) else None


def export_shards(export: str, download_to: str | Path, *, client: Any = None) -> list[Path]:
    """The Parquet shards of one export, as local files.

    A ``gs://`` folder is listed and downloaded through the Cloud Storage API (``list_blobs`` with the folder's
    prefix), so the result does not depend on how Vertex's ``/gcs`` mount lists a prefix whose objects another
    service wrote. A local folder (``kfp.local``, tests) is globbed in place.

    Args:
        export: The export folder: the output Dataset's ``uri`` (``gs://bucket/...`` on Vertex) or a local path.
        download_to: Folder for downloaded shards.
        client: A ``google.cloud.storage.Client`` (default: one with Application Default Credentials, on Vertex
            the run's service account).

    Returns:
        The shard files, in name order (empty when there is none).
    """
    if not export.startswith("gs://"):
        return sorted(p for p in Path(export).glob(EXPORT_SHARDS) if p.is_file())
    bucket, _, prefix = export.removeprefix("gs://").partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    folder = Path(download_to)
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for blob in client.list_blobs(bucket, prefix=prefix):
        leaf = _shard_name(blob.name)
        if leaf is None or "/" in blob.name[len(prefix) :]:  # another file, or one in a sub-folder
            continue
        target = folder / leaf
        blob.download_to_filename(str(target))
        shards.append(target)
    return sorted(shards)


def read_export(shards: Iterable[str | Path]) -> pd.DataFrame:
    """The exported records as Socrata records: the shards concatenated, the timestamps converted.

    Args:
        shards: Parquet files written by :func:`window_sql`'s statement.

    Returns:
        One frame with the raw fields (timestamps as Socrata text, :func:`loader_wall_clock`).
    """
    frames = [pd.read_parquet(p) for p in shards]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RAW_COLUMNS))
    for field in TIMESTAMP_FIELDS:
        if field in frame.columns:
            frame[field] = loader_wall_clock(frame[field])
    return frame
