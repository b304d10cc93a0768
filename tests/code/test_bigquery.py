"""The public BigQuery table as the Vertex pipeline's source (issue 28): the SQL, the export folder, the shards
listed through the Cloud Storage API, the timestamps as the table's loader writes them, and the hour rule.

Nothing here talks to Google Cloud: the exports are written by :mod:`tests.bigquery_loader` (the loader's own
conversion, copied from public-datasets-pipelines), the storage client is a fake.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from chicago_arrest.core.schema import RAW_COLUMNS
from chicago_arrest.core.settings import Settings
from chicago_arrest.data import bigquery
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.data.validate import ImplausibleHoursError, validate_records
from chicago_arrest.steps.vertex import bigquery_window_step, land_bigquery_step
from tests.bigquery_loader import convert_dt_format, loaded, portal_text, write_export

EXPORT = "gs://bucket/root/123/bigquery-window/export"


# -- the loader, as read ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("portal", "stored"),
    [
        ("01/01/2017 01:05:00 PM", "2017-01-01 01:05:00"),  # 13:05 loses its PM
        ("01/01/2017 01:05:00 AM", "2017-01-01 01:05:00"),
        ("01/01/2017 12:00:00 AM", "2017-01-01 12:00:00"),  # midnight becomes noon
        ("01/01/2017 11:59:00 PM", "2017-01-01 11:59:00"),
    ],
)
def test_the_loaders_conversion_ignores_am_pm(portal: str, stored: str) -> None:
    assert convert_dt_format(portal) == stored


def test_portal_text_round_trip() -> None:
    socrata = pd.Series(["2017-01-01T13:05:00.000", "2017-07-04T00:30:00.000"])
    assert portal_text(socrata).tolist() == ["01/01/2017 01:05:00 PM", "07/04/2017 12:30:00 AM"]


# -- the conversion ------------------------------------------------------------------------------------------


def test_loader_wall_clock_keeps_the_utc_fields_whatever_the_type() -> None:
    expected = ["2017-01-01T00:30:00.000", "2017-07-04T23:59:00.000", None]
    aware = pd.Series(pd.to_datetime(["2017-01-01 00:30", "2017-07-04 23:59", None], utc=True))
    naive = aware.dt.tz_localize(None)
    text = pd.Series(["2017-01-01 00:30:00 UTC", "2017-07-04T23:59:00+00:00", ""])
    for values in (aware, naive, text, aware.dt.tz_convert("America/Chicago")):
        out = bigquery.loader_wall_clock(values)
        assert out.astype(object).where(out.notna(), None).tolist() == expected, values.dtype


def test_loader_wall_clock_keeps_unparsable_text_for_the_contract() -> None:
    out = bigquery.loader_wall_clock(pd.Series(["not a date", "2017-01-01 01:00:00"]))
    assert out.tolist() == ["not a date", "2017-01-01T01:00:00.000"]


def test_a_chicago_conversion_would_move_records_to_the_day_before() -> None:
    """Why the old statement was wrong: FORMAT_TIMESTAMP(..., 'America/Chicago') of a UTC-labelled wall clock."""
    stored = loaded(pd.Series(["2017-03-01T03:00:00.000"]), bug=False)
    shifted = stored.dt.tz_convert("America/Chicago").dt.strftime("%Y-%m-%dT%H:%M")
    assert shifted.tolist() == ["2017-02-28T21:00"]
    assert bigquery.loader_wall_clock(stored).tolist() == ["2017-03-01T03:00:00.000"]


# -- the statement --------------------------------------------------------------------------------------------


def test_window_bounds_are_the_utc_labelled_wall_clock() -> None:
    sql = bigquery.window_sql(EXPORT, months=3, end_month="2024-03")
    assert "date >= TIMESTAMP('2024-01-01 00:00:00', 'UTC')" in sql
    assert "date < TIMESTAMP('2024-04-01 00:00:00', 'UTC')" in sql
    assert "America/Chicago" not in sql
    assert "2024-01..2024-03 (3 months" in sql
    assert f"uri = '{EXPORT}/crimes-*.parquet'" in sql
    assert "format = 'PARQUET'" in sql
    assert "FROM `bigquery-public-data.chicago_crime.crime`" in sql


def test_window_across_a_year_and_the_default_last_full_month() -> None:
    sql = bigquery.window_sql(EXPORT, months=2, end_month="2024-01")
    assert "TIMESTAMP('2023-12-01 00:00:00', 'UTC')" in sql
    assert "TIMESTAMP('2024-02-01 00:00:00', 'UTC')" in sql
    default = bigquery.window_sql(EXPORT, months=12, today=date(2024, 3, 15))
    assert "TIMESTAMP('2023-03-01 00:00:00', 'UTC')" in default
    assert "TIMESTAMP('2024-03-01 00:00:00', 'UTC')" in default
    assert bigquery.window_months(1, today=date(2024, 1, 1)) == ["2023-12"]


def test_window_selects_every_raw_field_renamed_in_socrata_order() -> None:
    sql = bigquery.window_sql(EXPORT, months=1, end_month="2024-03")
    select = sql.split("SELECT\n", 1)[1].split("\nFROM", 1)[0].splitlines()
    assert [line.rsplit(" AS ", 1)[1].rstrip(",") for line in select] == list(RAW_COLUMNS)
    items = {line.rsplit(" AS ", 1)[1].rstrip(","): line.rsplit(" AS ", 1)[0].strip() for line in select}
    assert items["id"] == "CAST(unique_key AS STRING)"
    assert items["date"] == "date"  # a TIMESTAMP, converted when landed (loader_wall_clock)
    assert items["updated_on"] == "updated_on"
    assert items["beat"] == "LPAD(CAST(beat AS STRING), 4, '0')"
    assert items["district"] == "LPAD(CAST(district AS STRING), 3, '0')"
    assert items["arrest"] == "CAST(arrest AS STRING)"
    assert items["iucr"] == "iucr"
    assert items["ward"] == "CAST(ward AS STRING)"
    assert "location " not in sql.replace("location_description", "")


@pytest.mark.parametrize(
    ("uri", "months", "end"),
    [
        ("/gcs/bucket/x", 1, ""),
        ("gs://bucket/x' OR 1=1 --", 1, ""),
        ("gs://bucket/*", 1, ""),
        (EXPORT, 0, ""),
        (EXPORT, 1, "2024-13"),
        (EXPORT, 1, "2024-3"),
    ],
)
def test_window_sql_rejects_bad_input(uri: str, months: int, end: str) -> None:
    with pytest.raises(ValueError, match=r"export_uri|months|end_month"):
        bigquery.window_sql(uri, months=months, end_month=end)


# -- the export folder and its shards ------------------------------------------------------------------------


def test_the_window_step_creates_the_export_folder_first(tmp_path: Path) -> None:
    folder = tmp_path / "gcs" / "bucket" / "root" / "export"
    sql = bigquery_window_step(EXPORT, folder, months=1, end_month="2024-03")
    assert folder.is_dir()
    assert sql.startswith("-- Chicago crimes 2024-03..2024-03")


def test_the_window_step_creates_nothing_for_a_bad_window(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="end_month"):
        bigquery_window_step(EXPORT, tmp_path / "export", months=1, end_month="2024-13")
    assert not (tmp_path / "export").exists()


class FakeBlob:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data

    def download_to_filename(self, filename: str) -> None:
        Path(filename).write_bytes(self.data)


class FakeStorage:
    """``google.cloud.storage.Client.list_blobs`` over an in-memory bucket; records each listing."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.listed: list[tuple[str, str]] = []

    def list_blobs(self, bucket: str, prefix: str = "") -> list[FakeBlob]:
        self.listed.append((bucket, prefix))
        return [FakeBlob(k, v) for k, v in sorted(self.objects.items()) if k.startswith(prefix)]


def test_shards_are_listed_through_the_storage_api_not_the_mount(tmp_path: Path) -> None:
    """No local folder exists for the prefix (as on a /gcs mount without its placeholder): the API lists it."""
    storage = FakeStorage(
        {
            "root/123/bigquery-window/export/crimes-000000000001.parquet": b"one",
            "root/123/bigquery-window/export/crimes-000000000000.parquet": b"zero",
            "root/123/bigquery-window/export/": b"",  # the placeholder prepare_export made through the mount
            "root/123/bigquery-window/export/other.json": b"{}",
            "root/123/bigquery-window/export/old/crimes-000000000000.parquet": b"nested",
            "root/123/bigquery-window/exported/crimes-000000000000.parquet": b"a sibling folder",
        }
    )
    shards = bigquery.export_shards(EXPORT + "/", tmp_path / "dl", client=storage)
    assert storage.listed == [("bucket", "root/123/bigquery-window/export/")]
    assert [p.name for p in shards] == ["crimes-000000000000.parquet", "crimes-000000000001.parquet"]
    assert [p.read_bytes() for p in shards] == [b"zero", b"one"]


def test_a_local_export_folder_is_globbed(tmp_path: Path) -> None:
    (tmp_path / "crimes-000000000000.parquet").write_bytes(b"x")
    (tmp_path / "notes.parquet").write_bytes(b"y")
    assert [p.name for p in bigquery.export_shards(str(tmp_path), tmp_path / "dl")] == [
        "crimes-000000000000.parquet"
    ]
    assert bigquery.export_shards(str(tmp_path / "missing"), tmp_path / "dl") == []


def _land(
    export: str, tmp_path: Path, settings: Settings, stations: pd.DataFrame, months: int, client: Any = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    stations_file = tmp_path / "stations.parquet"
    stations.to_parquet(stations_file, index=False)
    metadata: dict[str, Any] = {}
    summary = land_bigquery_step(
        export,
        tmp_path / "raw.parquet",
        tmp_path / "stations_out.parquet",
        months=months,
        stations_source=str(stations_file),
        settings=settings,
        raw_metadata=metadata,
        storage_client=client,
    )
    raw = pd.read_parquet(tmp_path / "raw.parquet")
    assert summary["rows"] == metadata["rows"] == len(raw)
    return summary, raw


def test_a_24_hour_export_lands_with_chicagos_wall_clock_and_passes_the_contract(
    tmp_path: Path, settings: Settings, stations: pd.DataFrame
) -> None:
    """The table as an earlier loader held it (24-hour wall clock labelled UTC): no hour or day moves."""
    crimes = generate_crimes(1_200, start="2024-01-01", months=3, stations=stations)
    crimes.loc[crimes.index[:3], "date"] = [
        "2024-01-01T00:30:00.000",  # first minutes of the window (a shift to Chicago: the month before)
        "2024-02-29T23:59:00.000",
        "2024-03-31T05:59:00.000",
    ]
    shards = write_export(crimes, tmp_path / "export", bug=False)
    summary, raw = _land(str(tmp_path / "export"), tmp_path, settings, stations, months=3)
    assert summary["source"] == "bigquery:bigquery-public-data.chicago_crime.crime"
    assert summary["shards"] == len(shards) == 2
    assert summary["window"] == ["2024-01", "2024-02", "2024-03"]
    landed = dict(zip(raw["id"], raw["date"], strict=True))
    for crime_id, when in zip(crimes["id"], crimes["date"], strict=True):
        assert landed[crime_id] == when, crime_id
    result = validate_records(raw)
    assert result.counts["valid"] > 0.95 * len(crimes)


def test_a_12_hour_export_fails_the_hour_rule_loudly(
    tmp_path: Path, settings: Settings, stations: pd.DataFrame
) -> None:
    """The table as the current loader writes it: hours 1..12 only; validate stops the run with the reason."""
    from chicago_arrest.steps.data import validate_step

    crimes = generate_crimes(1_200, start="2024-01-01", months=3, stations=stations)
    storage = FakeStorage(
        {
            f"root/123/bigquery-window/export/{p.name}": p.read_bytes()
            for p in write_export(crimes, tmp_path / "written", bug=True)
        }
    )
    summary, raw = _land(EXPORT, tmp_path, settings, stations, months=3, client=storage)
    assert summary["shards"] == 2
    hours = pd.to_datetime(raw["date"]).dt.hour
    assert set(hours) <= set(range(1, 13))
    with pytest.raises(ImplausibleHoursError, match=r"12-hour clock without AM/PM.*SOURCE=socrata"):
        validate_step(tmp_path / "raw.parquet", tmp_path / "valid.parquet", tmp_path / "q.parquet")


def test_real_records_through_the_loader(shared_data: Path) -> None:
    """50,000 real 2017 records: exported as the table's loader writes them they fail, done right they pass."""
    crimes = pd.read_csv(shared_data / "crimes_sample.csv", dtype=str, keep_default_na=False)
    now = pd.Timestamp("2018-01-01")
    for bug in (False, True):
        frame = crimes.copy()
        for column in ("date", "updated_on"):
            frame[column] = bigquery.loader_wall_clock(loaded(frame[column], bug=bug))
        if bug:
            with pytest.raises(ImplausibleHoursError, match=r"only 0\.0% of 50000 dated records"):
                validate_records(frame, now=now)
        else:
            assert frame["date"].tolist() == crimes["date"].tolist()
            assert validate_records(frame, now=now).counts["valid"] > 49_000


def test_land_without_shards_says_where(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match=r"no Parquet shard \(crimes-\*\.parquet\)"):
        land_bigquery_step(str(tmp_path), tmp_path / "r", tmp_path / "s", months=1, settings=settings)
    with pytest.raises(FileNotFoundError, match="gs://bucket/root"):
        land_bigquery_step(
            EXPORT,
            tmp_path / "r",
            tmp_path / "s",
            months=1,
            settings=settings,
            storage_client=FakeStorage({}),
        )
