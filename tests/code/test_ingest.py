"""Ingest: month planning, idempotent landing, resume after a failure, file sources."""

from __future__ import annotations

import gzip
import re
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from chicago_arrest.core.errors import IngestError
from chicago_arrest.core.parsing import parse_timestamps
from chicago_arrest.core.schema import RAW_COLUMNS
from chicago_arrest.core.settings import Settings
from chicago_arrest.core.store import KeyNotFoundError, LocalStore, ObjectStore, S3Store, read_parquet
from chicago_arrest.data import ingest as ingest_mod
from chicago_arrest.data.ingest import (
    IngestResult,
    MissingMonthsError,
    ingest,
    ingest_file,
    ingest_socrata,
    land_month,
    load_window,
    month_key,
    months_in_store,
    plan_months,
)
from chicago_arrest.data.socrata import SocrataClient, SocrataError
from chicago_arrest.data.sources import TEXT, source_files
from chicago_arrest.data.stations import STATIONS_KEY, load_stations
from chicago_arrest.data.synthetic import generate_crimes
from tests.moto_s3 import moto_server

MONTHS_2017 = [f"2017-{m:02d}" for m in range(1, 13)]
TODAY = date(2018, 1, 15)


def expected(frame: pd.DataFrame) -> pd.DataFrame:
    """The source as ingest should store it: text (Arrow-backed pandas strings), '' -> <NA>, sorted by id."""
    out = frame.astype(TEXT)
    out = out.mask(out == "")
    return out.sort_values("id", key=lambda s: s.astype(int)).reset_index(drop=True)


def month_of(frame: pd.DataFrame) -> pd.Series:
    return frame["date"].str.slice(0, 7)


class FakeSoda:
    """A sodapy-like ``get`` that serves a frame of crimes like the SODA API does.

    Honours ``where`` (the date window), ``order``, ``limit`` and ``offset``; omits empty fields and adds the
    ``location`` / computed-region fields like the API. ``fail(month, page)`` may raise to simulate errors.
    """

    def __init__(
        self,
        crimes: pd.DataFrame,
        stations: pd.DataFrame,
        fail: Callable[[str, int], None] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.crimes = crimes.sort_values("id", key=lambda s: s.astype(int))
        self.stations = stations
        self.fail = fail
        self.settings = settings or Settings()
        self.calls: list[dict[str, Any]] = []

    def get(self, dataset_identifier: str, **params: Any) -> list[dict[str, Any]]:
        self.calls.append({"dataset": dataset_identifier, **params})
        assert params["order"] == ":id"
        if dataset_identifier == self.settings.stations_dataset_id:
            table = self.stations
        else:
            assert dataset_identifier == self.settings.crimes_dataset_id
            lo, hi = re.fullmatch(r"date >= '(.+)' AND date < '(.+)'", params["where"]).groups()  # type: ignore[union-attr]
            table = self.crimes[(self.crimes["date"] >= lo) & (self.crimes["date"] < hi)]
            page = params["offset"] // params["limit"] + 1
            if self.fail is not None:
                self.fail(lo[:7], page)
        chunk = table.iloc[params["offset"] : params["offset"] + params["limit"]]
        records = []
        for rec in chunk.to_dict("records"):
            row = {str(k): v for k, v in rec.items() if v != ""}
            row[":@computed_region_awaf_s7ux"] = "7"
            if "latitude" in row:
                row["location"] = {"latitude": row["latitude"], "longitude": row.get("longitude")}
            records.append(row)
        return records


def socrata_client(fake: FakeSoda, page_size: int = 100) -> SocrataClient:
    settings = Settings(socrata_page_size=page_size)
    return SocrataClient(settings, client=fake)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


# -- plan_months --------------------------------------------------------------------------------------------


def test_plan_first_run_takes_last_full_months() -> None:
    window, to_land = plan_months(TODAY, 12, [])
    assert window == MONTHS_2017
    assert to_land == MONTHS_2017


@pytest.mark.parametrize("today", [date(2018, 1, 1), date(2018, 1, 31)])
def test_plan_current_month_never_in_window(today: date) -> None:
    window, _ = plan_months(today, 12, [])
    assert window[0] == "2017-01"
    assert window[-1] == "2017-12"


def test_plan_january_rollover() -> None:
    window, to_land = plan_months(date(2018, 2, 10), 3, ["2017-11", "2017-12", "2018-01"])
    assert window == ["2017-11", "2017-12", "2018-01"]
    assert to_land == ["2018-01"]
    window, _ = plan_months(date(2018, 1, 2), 2, [])
    assert window == ["2017-11", "2017-12"]
    window, _ = plan_months(date(2018, 3, 1), 14, [])
    assert window[0] == "2017-01"
    assert window[-1] == "2018-02"
    assert len(window) == 14


def test_plan_later_run_lands_missing_plus_refresh() -> None:
    in_store = [*MONTHS_2017[:5], *MONTHS_2017[7:], "2015-06"]  # a gap (06, 07) and an old month
    window, to_land = plan_months(TODAY, 12, in_store, refresh=1)
    assert window == MONTHS_2017
    assert to_land == ["2017-06", "2017-07", "2017-12"]
    _, to_land = plan_months(TODAY, 12, in_store, refresh=3)
    assert to_land == ["2017-06", "2017-07", "2017-10", "2017-11", "2017-12"]


def test_plan_refresh_zero_and_large() -> None:
    assert plan_months(TODAY, 12, MONTHS_2017, refresh=0) == (MONTHS_2017, [])
    assert plan_months(TODAY, 12, MONTHS_2017, refresh=1)[1] == ["2017-12"]
    assert plan_months(TODAY, 12, MONTHS_2017, refresh=50)[1] == MONTHS_2017


@pytest.mark.parametrize(("months", "refresh"), [(0, 1), (-1, 0), (12, -1)])
def test_plan_rejects_bad_arguments(months: int, refresh: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        plan_months(TODAY, months, [], refresh=refresh)


# -- land_month ---------------------------------------------------------------------------------------------


def test_land_month_twice_is_identical(store: LocalStore, crimes: pd.DataFrame) -> None:
    january = crimes[month_of(crimes) == "2017-01"]
    rows = land_month(store, "2017-01", january)
    first = store.get_bytes(month_key("2017-01"))
    # The same records in another order, twice over: same object.
    rows_again = land_month(store, "2017-01", pd.concat([january, january]).sample(frac=1.0, random_state=3))
    assert rows == rows_again == len(january)
    assert store.get_bytes(month_key("2017-01")) == first
    assert store.list_keys("raw/") == ["raw/crimes/2017-01.parquet"]


def test_land_month_stores_text_in_schema_order(store: LocalStore, crimes: pd.DataFrame) -> None:
    march = crimes[month_of(crimes) == "2017-03"].copy()
    march["extra_field"] = "x"
    march = march[["extra_field", *reversed(RAW_COLUMNS)]]  # scrambled column order
    land_month(store, "2017-03", march)
    back = read_parquet(store, month_key("2017-03"))
    assert list(back.columns) == [*RAW_COLUMNS, "extra_field"]
    assert all(str(t) == "string" for t in back.dtypes)
    want = expected(march[[*RAW_COLUMNS, "extra_field"]]).astype("string")  # read back as pandas reads it
    # Sorted by date, then id.
    key = pd.DataFrame({"d": back["date"], "i": back["id"].astype(int)})
    assert key.equals(key.sort_values(["d", "i"]))
    pd.testing.assert_frame_equal(
        back.sort_values("id", key=lambda s: s.astype(int)).reset_index(drop=True), want
    )


def test_land_month_dedupes_on_latest_update(store: LocalStore) -> None:
    rows = pd.DataFrame(
        {
            "id": ["1", "1", "1", "2", "2", "3", "4"],
            "date": ["2017-05-02T10:00:00.000"] * 4 + ["2017-05-01T00:00:00.000"] * 3,
            "arrest": ["false", "true", "false", "false", "true", "false", "true"],
            "updated_on": [
                "2017-05-03T00:00:00.000",
                "2017-06-01T00:00:00.000",  # the latest update of id 1 wins
                "",
                "2017-06-01T00:00:00.000",
                "2017-06-01T00:00:00.000",  # a tie: the last one wins
                "",
                "",
            ],
        }
    )
    assert land_month(store, "2017-05", rows) == 4
    back = read_parquet(store, month_key("2017-05"))
    assert back["id"].tolist() == ["2", "3", "4", "1"]  # by date, then id
    assert back.set_index("id")["arrest"].to_dict() == {"1": "true", "2": "true", "3": "false", "4": "true"}
    assert back["year"].isna().all()  # absent raw columns are added as nulls
    assert back["updated_on"].isna().sum() == 2


def test_land_month_rejects_records_of_another_month(store: LocalStore, crimes: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="outside the month"):
        land_month(store, "2017-01", crimes.head(2000))
    assert store.list_keys() == []
    with pytest.raises(ValueError, match="invalid month"):
        land_month(store, "2017-13", crimes.head(0))


# -- ingest_socrata -----------------------------------------------------------------------------------------


def assert_complete(store: ObjectStore, crimes: pd.DataFrame) -> None:
    """Every month is in the store exactly once, complete, nothing duplicated, nothing coerced."""
    assert months_in_store(store) == MONTHS_2017
    for month in MONTHS_2017:
        assert len(read_parquet(store, month_key(month))) == int((month_of(crimes) == month).sum())
    everything = load_window(store, MONTHS_2017)
    assert everything["id"].is_unique
    back = everything.sort_values("id", key=lambda s: s.astype(int)).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected(crimes))


def test_socrata_first_run_then_incremental(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame
) -> None:
    fake = FakeSoda(crimes, stations)
    result = ingest_socrata(store, socrata_client(fake), months=12, today=TODAY)
    assert isinstance(result, IngestResult)
    assert result.landed == MONTHS_2017
    assert result.skipped == []
    assert result.window == MONTHS_2017
    assert sum(result.rows.values()) == len(crimes)
    assert result.source == "socrata:https://data.cityofchicago.org/resource/ijzp-q8t2"
    assert_complete(store, crimes)
    stations_back = load_stations(store)
    assert stations_back["district"].tolist() == stations["district"].tolist()
    # Paged by 100 with $limit/$offset: every month of ~330 rows took 4 pages.
    crime_calls = [c for c in fake.calls if c["dataset"] == "ijzp-q8t2"]
    assert {c["limit"] for c in crime_calls} == {100}
    assert len(crime_calls) == sum(len(range(0, n + 1, 100)) for n in result.rows.values())

    before = {m: store.get_bytes(month_key(m)) for m in MONTHS_2017}
    again = ingest_socrata(store, socrata_client(FakeSoda(crimes, stations)), months=12, today=TODAY)
    assert again.landed == ["2017-12"]
    assert again.skipped == MONTHS_2017[:11]
    assert {m: store.get_bytes(month_key(m)) for m in MONTHS_2017} == before

    # A month later the window moves on: only the new month (and the refresh) is fetched.
    fake = FakeSoda(crimes, stations)
    later = ingest_socrata(store, socrata_client(fake), months=12, refresh=0, today=date(2018, 2, 3))
    assert later.window == [*MONTHS_2017[1:], "2018-01"]
    assert later.landed == ["2018-01"]
    assert later.rows == {"2018-01": 0}
    wheres = {c["where"] for c in fake.calls if "where" in c}
    assert wheres == {"date >= '2018-01-01T00:00:00' AND date < '2018-02-01T00:00:00'"}


class NoNetwork:
    """A crimes source that must not be asked for anything (``make kind-smoke``'s runs: everything is landed)."""

    source = "socrata:test"

    def fetch_crimes(self, start: date, end: date) -> pd.DataFrame:
        raise AssertionError(f"Socrata asked for crimes {start}..{end}")

    def fetch_stations(self) -> pd.DataFrame:
        raise AssertionError("Socrata asked for the police stations")

    def fetch_boundaries(self, dataset: str) -> dict[str, Any]:
        raise AssertionError(f"Socrata asked for boundaries {dataset}")


def test_nothing_to_land_asks_socrata_for_nothing(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame
) -> None:
    """Issue 25: months and stations landed beforehand + refresh 0 = no call outside the cluster."""
    ingest_socrata(store, socrata_client(FakeSoda(crimes, stations)), months=12, today=TODAY)
    before = store.get_bytes(STATIONS_KEY)
    result = ingest_socrata(store, NoNetwork(), months=12, refresh=0, today=TODAY)  # type: ignore[arg-type]
    assert (result.landed, result.skipped) == ([], MONTHS_2017)
    assert store.get_bytes(STATIONS_KEY) == before
    # a month to land still fetches the stations with it; no stations in the store, neither
    with pytest.raises(AssertionError, match="police stations"):
        ingest_socrata(store, NoNetwork(), months=12, refresh=1, today=TODAY)  # type: ignore[arg-type]
    store.delete(STATIONS_KEY)
    with pytest.raises(AssertionError, match="police stations"):
        ingest_socrata(store, NoNetwork(), months=12, refresh=0, today=TODAY)  # type: ignore[arg-type]


def test_failure_half_way_then_rerun_gives_every_month_once(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame
) -> None:
    def fail_page_3_of_february(month: str, page: int) -> None:
        if month == "2017-02" and page == 3:
            raise requests.exceptions.ConnectionError("connection reset by peer")

    broken = FakeSoda(crimes, stations, fail=fail_page_3_of_february)
    with pytest.raises(SocrataError, match="connection reset"):
        ingest_socrata(store, socrata_client(broken), months=12, today=TODAY)
    # January is complete; nothing at all of February (pages 1-2 were fetched, never written).
    assert months_in_store(store) == ["2017-01"]
    assert len(read_parquet(store, month_key("2017-01"))) == int((month_of(crimes) == "2017-01").sum())
    assert sorted(p.name for p in (store.root / "raw" / "crimes").iterdir()) == ["2017-01.parquet"]

    result = ingest_socrata(store, socrata_client(FakeSoda(crimes, stations)), months=12, today=TODAY)
    assert result.skipped == ["2017-01"]
    assert result.landed == MONTHS_2017[1:]
    assert_complete(store, crimes)


# -- ingest_file --------------------------------------------------------------------------------------------


def write_source(folder: Path, crimes: pd.DataFrame, stations: pd.DataFrame | None, fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crimes.{fmt}"
    if fmt == "csv":
        crimes.to_csv(path, index=False)
    else:
        crimes.to_parquet(path, index=False)
    if stations is not None:
        stations.to_csv(folder / "police_stations.csv", index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_ingest_file_lands_twelve_months(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    path = write_source(tmp_path / "src", crimes, stations, fmt)
    result = ingest_file(store, path, months=12)
    assert result.window == MONTHS_2017
    assert result.landed == MONTHS_2017
    assert sum(result.rows.values()) == len(crimes)
    assert result.source == f"file:{path.resolve()}"
    assert_complete(store, crimes)
    back = load_window(store, MONTHS_2017)
    assert "0486" in set(back["iucr"])
    assert "005" in set(back["district"])
    assert back["beat"].str.len().eq(4).all()
    assert load_stations(store)["district"].tolist() == stations["district"].tolist()

    # Re-running replaces, never duplicates.
    before = {m: store.get_bytes(month_key(m)) for m in MONTHS_2017}
    ingest_file(store, path, months=12)
    assert {m: store.get_bytes(month_key(m)) for m in MONTHS_2017} == before


def test_ingest_file_window_is_last_months_of_the_file(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_source(tmp_path / "src", crimes, stations)
    result = ingest_file(store, path, months=3)
    assert result.window == ["2017-10", "2017-11", "2017-12"]
    assert months_in_store(store) == result.window
    assert result.rows == {m: int((month_of(crimes) == m).sum()) for m in result.window}


def test_ingest_file_stations_resolution(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path
) -> None:
    small = crimes.head(200)
    lonely = write_source(tmp_path / "lonely", small, None)
    with pytest.raises(IngestError, match="pass a stations file"):
        ingest_file(store, lonely)
    assert store.list_keys() == []  # nothing landed before the check

    elsewhere = tmp_path / "elsewhere.csv"
    stations.head(5).to_csv(elsewhere, index=False)
    ingest_file(store, lonely, stations_path=elsewhere)
    assert len(load_stations(store)) == 5

    # No stations given or found: the store's are kept.
    ingest_file(store, lonely)
    assert len(load_stations(store)) == 5


def test_ingest_file_rejects_files_without_socrata_fields(store: LocalStore, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    pd.DataFrame({"ID": ["1"], "Date": ["01/01/2017 12:00:00 AM"]}).to_csv(path, index=False)
    with pytest.raises(IngestError, match="lacks column"):
        ingest_file(store, path, stations_path=path)
    with pytest.raises(FileNotFoundError):
        ingest_file(store, tmp_path / "missing.csv")


# -- several files, several years ---------------------------------------------------------------------------


def two_years(stations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated 2016 and 2017 records with ids that do not collide."""
    first = generate_crimes(600, start="2016-01-01", months=12, seed=16, stations=stations)
    second = generate_crimes(600, start="2017-01-01", months=12, seed=17, stations=stations)
    first["id"] = (first["id"].astype(int) + 10_000_000).astype(str)
    return first, second


MONTHS_2016_2017 = [f"{y}-{m:02d}" for y in (2016, 2017) for m in range(1, 13)]


@pytest.mark.parametrize("spelling", ["list", "commas", "folder"])
def test_ingest_several_files_lands_two_years_once(
    store: LocalStore, stations: pd.DataFrame, tmp_path: Path, spelling: str
) -> None:
    first, second = two_years(stations)
    folder = tmp_path / "years"
    folder.mkdir()
    with gzip.open(folder / "crimes_2016.csv.gz", "wt") as handle:  # gzip CSV and Parquet side by side
        first.to_csv(handle, index=False)
    second.to_parquet(folder / "crimes_2017.parquet", index=False)
    stations.to_csv(folder / "police_stations.csv", index=False)  # no id/date: not a crime file
    pd.DataFrame({"iucr": ["0486"], "primary_description": ["BATTERY"]}).to_csv(folder / "iucr_codes.csv")
    files = [folder / "crimes_2016.csv.gz", folder / "crimes_2017.parquet"]
    source: Any = {"list": files, "commas": ",".join(map(str, files)), "folder": folder}[spelling]
    assert source_files(source) == [f.resolve() for f in files]

    result = ingest_file(store, source, months=24)
    assert result.window == MONTHS_2016_2017
    assert months_in_store(store) == MONTHS_2016_2017
    assert sum(result.rows.values()) == len(first) + len(second)
    assert result.source == "file:" + ",".join(str(f.resolve()) for f in files)
    both = pd.concat([first, second], ignore_index=True)
    back = load_window(store, MONTHS_2016_2017)
    assert back["id"].is_unique
    pd.testing.assert_frame_equal(
        back.sort_values("id", key=lambda s: s.astype(int)).reset_index(drop=True), expected(both)
    )
    # Landing the same files again rewrites the same objects: one object per month, nothing duplicated.
    before = {m: store.get_bytes(month_key(m)) for m in MONTHS_2016_2017}
    ingest_file(store, source, months=24)
    assert {m: store.get_bytes(month_key(m)) for m in MONTHS_2016_2017} == before


def test_ingest_several_files_window_and_overlap(
    store: LocalStore, stations: pd.DataFrame, tmp_path: Path
) -> None:
    first, second = two_years(stations)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    first.to_csv(a, index=False)
    # The second file repeats ten 2016 records, updated later: each is landed once, the later version kept.
    again = first.tail(10).copy()
    again["updated_on"] = "2018-11-19T00:00:00.000"
    again["description"] = "UPDATED"
    pd.concat([again, second]).to_csv(b, index=False)
    stations.to_csv(tmp_path / "police_stations.csv", index=False)

    result = ingest_file(store, [a, b], months=12)
    assert result.window == MONTHS_2017  # the last 12 months of the files together
    assert result.outside_window == len(first) + len(again)

    result = ingest_file(store, f"{a},{b}", months=18)
    assert result.window == MONTHS_2016_2017[6:]
    assert result.duplicates == 10
    back = load_window(store, result.window)
    assert back["id"].is_unique
    updated = back[back["id"].isin(again["id"])]
    assert (updated["description"] == "UPDATED").all()


def test_source_files_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        source_files(f"{tmp_path / 'nowhere.csv'}")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(IngestError, match="no crime file"):
        source_files(tmp_path)


def test_ingest_file_leaves_out_undated_records(
    store: LocalStore, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path
) -> None:
    data = crimes.head(300).copy()
    data.loc[data.index[0], "date"] = ""
    path = write_source(tmp_path / "src", data, stations)
    result = ingest_file(store, path)
    assert sum(result.rows.values()) == 299


def test_month_of_other_timestamp_spellings_is_local_time(store: LocalStore, tmp_path: Path) -> None:
    """Just after midnight on the 1st stays in its month, whatever the spelling (never read as UTC)."""
    values = [
        "2017-02-01T00:30:00.000",
        "2017-02-01T00:30:00",
        "2017-02-01 00:30:00",
        "02/01/2017 12:30:00 AM",
        "2017-02-01T06:30:00Z",  # zone-aware: 00:30 in Chicago
    ]
    assert parse_timestamps(pd.Series(values)).values.tolist() == [pd.Timestamp("2017-02-01 00:30").value] * 5
    rows = pd.DataFrame({"id": [str(i) for i in range(5)], "date": values})
    folder = tmp_path / "src"
    path = write_source(folder, rows, pd.DataFrame({"district": ["1"]}))
    result = ingest_file(store, path)
    assert result.rows == {"2017-02": 5}
    assert read_parquet(store, month_key("2017-02"))["date"].tolist() == values  # stored as given


# -- reading back -------------------------------------------------------------------------------------------


def test_load_window_names_missing_months(store: LocalStore, crimes: pd.DataFrame) -> None:
    land_month(store, "2017-01", crimes[month_of(crimes) == "2017-01"])
    with pytest.raises(MissingMonthsError) as info:
        load_window(store, ["2017-01", "2017-02", "2017-03"])
    assert info.value.months == ["2017-02", "2017-03"]
    assert "2017-02, 2017-03" in str(info.value)
    assert isinstance(info.value, LookupError)
    assert len(load_window(store, ["2017-01"])) == int((month_of(crimes) == "2017-01").sum())


def test_load_stations_missing(store: LocalStore) -> None:
    with pytest.raises(KeyNotFoundError, match="police_stations"):
        load_stations(store)


# -- ingest (entry point) -----------------------------------------------------------------------------------


def test_ingest_entry_point_file(
    settings: Settings, crimes: pd.DataFrame, stations: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_source(tmp_path / "src", crimes, stations)
    result = ingest(settings, source=str(path))
    assert result.landed == MONTHS_2017
    assert sorted(p.name for p in (settings.store_dir / "raw" / "crimes").iterdir()) == [
        f"{m}.parquet" for m in MONTHS_2017
    ]
    assert (settings.store_dir / "raw" / "police_stations.parquet").is_file()


def test_ingest_entry_point_socrata(settings: Settings, crimes: pd.DataFrame, stations: pd.DataFrame) -> None:
    client = socrata_client(FakeSoda(crimes, stations))
    result = ingest(settings, source=None, months=2, refresh=0, today=TODAY, client=client)
    assert result.window == result.landed == ["2017-11", "2017-12"]
    assert months_in_store(LocalStore(settings.store_dir)) == ["2017-11", "2017-12"]


def test_generated_data_months_do_not_leak(stations: pd.DataFrame) -> None:
    """Sanity check of the fixture the tests above rely on: 12 months, all of 2017."""
    frame = generate_crimes(500, stations=stations)
    assert sorted(month_of(frame).unique()) == MONTHS_2017
    assert ingest_mod.month_bounds("2017-12") == (date(2017, 12, 1), date(2018, 1, 1))


def test_ingest_on_s3_store_with_failure_and_rerun(crimes: pd.DataFrame, stations: pd.DataFrame) -> None:
    """The same resume guarantee on the S3 backend (a moto server on 127.0.0.1)."""
    with moto_server() as endpoint:
        s3 = S3Store(endpoint, "k", "s", f"ingest-{uuid.uuid4().hex[:12]}")

        def fail_late(month: str, page: int) -> None:
            if month == "2017-07" and page == 4:
                raise requests.exceptions.HTTPError("boom", response=_response(400))

        with pytest.raises(SocrataError, match="HTTP 400"):
            ingest_socrata(
                s3, socrata_client(FakeSoda(crimes, stations, fail=fail_late)), months=12, today=TODAY
            )
        assert months_in_store(s3) == MONTHS_2017[:6]
        result = ingest_socrata(s3, socrata_client(FakeSoda(crimes, stations)), months=12, today=TODAY)
        assert result.landed == MONTHS_2017[6:]
        assert_complete(s3, crimes)
        assert not any(".tmp-" in k for k in s3.list_keys())


def _response(status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    return response


# -- real data ----------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_ingest_real_sample(shared_data: Path, store: LocalStore) -> None:
    result = ingest_file(store, shared_data / "crimes_sample.csv", months=12)
    assert result.landed == MONTHS_2017
    assert sum(result.rows.values()) == 50_000
    back = load_window(store, MONTHS_2017)
    assert len(back) == 50_000
    assert back["id"].is_unique
    assert {"0486", "031A"} <= set(back["iucr"])
    assert "005" in set(back["district"])
    assert back["x_coordinate"].isna().sum() == 552
    assert len(load_stations(store)) == 23
