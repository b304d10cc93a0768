"""Records shaped as ``bigquery-public-data.chicago_crime.crime`` holds them, exported as the Vertex pipeline does.

The table's loader is GoogleCloudPlatform/public-datasets-pipelines@18a9c9b1 (2026-04-21),
``datasets/chicago_crime/pipelines/_images/run_csv_transform_kub/csv_transform.py`` (Apache-2.0). It reads the
portal's ``rows.csv`` (``Date`` = ``01/01/2017 01:05:00 PM``), rewrites ``date`` and ``updated_on`` with
:func:`convert_dt_format` (copied below as it is there), and ``crime_dag.py`` loads the CSV into TIMESTAMP columns
(``GCSToBigQueryOperator``, no ``time_zone`` set), so BigQuery reads the zone-less text as UTC.

:func:`write_export` then writes what ``EXPORT DATA ... FORMAT='PARQUET'`` of :func:`window_sql`'s statement gives:
the TIMESTAMP columns as Parquet timestamps (microseconds, UTC; the type BigQuery writes is not verified here, so
:func:`~chicago_arrest.data.bigquery.loader_wall_clock` also takes naive and text values), every other column
as the text the statement casts it to, in shards named ``crimes-000000000000.parquet``...
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def convert_dt_format(dt_str: str) -> str:
    """The loader's conversion, verbatim (``%H`` with ``%p``: strptime ignores AM/PM)."""
    # Old format: MM/dd/yyyy hh:mm:ss aa
    # New format: yyyy-MM-dd HH:mm:ss
    if not dt_str:
        return dt_str
    else:
        return datetime.datetime.strptime(dt_str, "%m/%d/%Y %H:%M:%S %p").strftime("%Y-%m-%d %H:%M:%S")


def convert_dt_format_24h(dt_str: str) -> str:
    """The same conversion done right (``%I``): what the table held before (24-hour wall clock, labelled UTC)."""
    if not dt_str:
        return dt_str
    return datetime.datetime.strptime(dt_str, "%m/%d/%Y %I:%M:%S %p").strftime("%Y-%m-%d %H:%M:%S")


def portal_text(socrata: pd.Series) -> pd.Series:
    """Socrata API timestamps (``2017-01-01T13:05:00.000``) as the portal's CSV export writes them."""
    return pd.to_datetime(socrata, format="mixed").dt.strftime("%m/%d/%Y %I:%M:%S %p")


def loaded(socrata: pd.Series, *, bug: bool = True) -> pd.Series:
    """The TIMESTAMP values the table holds for these records (zone-aware UTC, as BigQuery stores them)."""
    convert = convert_dt_format if bug else convert_dt_format_24h
    text = portal_text(socrata).map(convert)
    return pd.to_datetime(text, utc=True)  # BigQuery: a TIMESTAMP string without a zone is UTC


def write_export(crimes: pd.DataFrame, folder: Path, *, bug: bool = True, shards: int = 2) -> list[Path]:
    """Write ``crimes`` (Socrata records, text) as the export of the loaded table, in ``shards`` Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = crimes.reset_index(drop=True).copy()
    for column in ("date", "updated_on"):
        frame[column] = loaded(frame[column], bug=bug)
    paths = []
    size = -(-len(frame) // shards)
    for k in range(shards):
        part = frame.iloc[k * size : (k + 1) * size]
        table = pa.Table.from_pandas(part, preserve_index=False)
        for column in ("date", "updated_on"):
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, table[column].cast(pa.timestamp("us", tz="UTC")))
        path = folder / f"crimes-{k:012d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return paths
