"""Unreadable dates, everywhere a date is read: one bad value never moves a window, lands a month or gets lost.

The fault behind issue 24: ingest read ``date`` with its own lenient parser, so a 2017 file with ``now`` among its
dates landed a month object for the month the run happened in and reported the window 2017-01..2026-12. Every
place that reads dates now reads them with :func:`chicago_arrest.core.parsing.parse_timestamps`; this module feeds
the same values to each of them: ingest, the data contract, the split, the model, the server, batch scoring,
monitoring and the Vertex landing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kserve.errors import InvalidInput

from chicago_arrest.core.parsing import FieldError, parse_timestamps
from chicago_arrest.core.settings import Settings
from chicago_arrest.data.synthetic import generate_crimes

#: Values of ``date`` that are no timestamp: present but unreadable.
UNREADABLE = ("now", "2017", "20170105", "today", "2017-13-01", "02/30/2017 10:00:00 AM")
#: Values of ``date`` that are missing.
EMPTY = ("", " ")
BAD_DATES = UNREADABLE + EMPTY
#: A zone-aware ISO value: readable, converted to Chicago local time (CDT, UTC-5): 2017-06-15 12:00.
ZONED = "2017-06-15T17:00:00Z"
ZONED_LOCAL = pd.Timestamp("2017-06-15 12:00")
MONTHS_2017 = [f"2017-{m:02d}" for m in range(1, 13)]
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


def with_dates(frame: pd.DataFrame, values: tuple[str, ...]) -> pd.DataFrame:
    """A copy of ``frame`` whose first ``len(values)`` records carry ``values`` as their ``date``."""
    out = frame.copy()
    out.loc[out.index[: len(values)], "date"] = list(values)
    return out


def test_the_parser_reads_a_timestamp_or_says_it_could_not() -> None:
    parsed = parse_timestamps([*BAD_DATES, ZONED, None, "2017-03-01T13:05:00.000"])
    assert parsed.bad.tolist() == [True] * len(UNREADABLE) + [False] * (len(EMPTY) + 3)
    assert parsed.missing.tolist() == [False] * len(UNREADABLE) + [True] * len(EMPTY) + [False, True, False]
    assert np.isnat(parsed.values[: len(BAD_DATES)]).all()
    assert parsed.values[-3] == ZONED_LOCAL
    assert parsed.values[-1] == pd.Timestamp("2017-03-01 13:05")


# -- ingest -----------------------------------------------------------------------------------------------------


def test_ingest_keeps_the_window_of_a_2017_file_with_five_unreadable_dates(
    settings: Settings, stations: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 12,004-row scenario of issue 24 at small scale: five bad dates land nothing and move nothing.

    Before the fix: window 2017-02..2026-12, a month object for the month of the run, and January's records
    left out as "older than the window".
    """
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import months_in_store
    from chicago_arrest.steps.data import ingest_step, validate_step

    five = ("now", "2017", "20170105", "today", "2017-13-01")
    crimes = with_dates(generate_crimes(1_204, stations=stations, seed=3), five)
    folder = tmp_path / "src"
    folder.mkdir()
    crimes.to_csv(folder / "crimes.csv", index=False)
    stations.to_csv(folder / "police_stations.csv", index=False)
    raw = tmp_path / "raw.parquet"
    with caplog.at_level("INFO", logger="chicago_arrest.steps"):
        summary = ingest_step(
            raw, tmp_path / "stations.parquet", source=str(folder / "crimes.csv"), settings=settings
        )
    assert (summary["window"][0], summary["window"][-1]) == ("2017-01", "2017-12")
    assert summary["landed"] == MONTHS_2017
    assert months_in_store(make_store(settings)) == MONTHS_2017
    assert summary["undated"] == 5
    assert summary["outside_window"] == 0
    assert summary["rows"] == len(crimes)  # nothing lost: the undated rows travel to the data contract
    # The step's summary: what `make pipeline-run` prints for it.
    (line,) = [
        r.getMessage().removeprefix("summary: ") for r in caplog.records if "summary: " in r.getMessage()
    ]
    assert line.startswith("1,204 rows in the window 2017-01..2017-12, 12 month(s) landed"), line
    assert line.endswith("(undated 5)"), line
    counts = validate_step(raw, tmp_path / "valid.parquet", tmp_path / "quarantine.parquet")
    assert counts["bad_date:date"] == 5
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert sorted(quarantine.loc[quarantine["reason"] == "bad_date:date", "date"]) == sorted(five)


def test_ingest_counts_every_kind_of_bad_date_and_keeps_the_zoned_one(
    settings: Settings, stations: pd.DataFrame, tmp_path: Path
) -> None:
    from chicago_arrest.core.store import make_store, read_parquet
    from chicago_arrest.data.ingest import UNDATED_KEY, ingest_file, month_key

    crimes = with_dates(
        generate_crimes(600, stations=stations, seed=4), (*BAD_DATES, ZONED, "2099-01-01T00:00:00")
    )
    path = tmp_path / "crimes.csv"
    crimes.to_csv(path, index=False)
    stations.to_csv(tmp_path / "police_stations.csv", index=False)
    store = make_store(settings)
    result = ingest_file(store, path)
    assert result.window == MONTHS_2017
    assert result.landed == MONTHS_2017
    assert (result.undated, result.future, result.outside_window) == (len(BAD_DATES), 1, 0)
    undated = read_parquet(store, UNDATED_KEY)
    assert sorted(undated["date"].fillna("")) == sorted([*BAD_DATES, "2099-01-01T00:00:00"])  # as given
    assert sum(result.rows.values()) + len(undated) == len(crimes)
    june = read_parquet(store, month_key("2017-06"))
    assert ZONED in set(june["date"])  # stored as given, landed in its Chicago month


# -- the data contract ------------------------------------------------------------------------------------------


def test_the_contract_quarantines_bad_dates_with_a_reason_naming_the_field(crimes: pd.DataFrame) -> None:
    from chicago_arrest.data.validate import validate_records

    frame = with_dates(crimes.head(40), (*BAD_DATES, ZONED))
    result = validate_records(frame, now=pd.Timestamp("2018-01-01"))
    reasons = result.quarantine["reason"].to_dict()
    for i, value in enumerate(BAD_DATES):
        assert reasons[frame.index[i]] == ("null:date" if value in EMPTY else "bad_date:date"), value
    assert result.counts["bad_date:date"] == len(UNREADABLE)
    assert result.counts["null:date"] == len(EMPTY)
    assert result.valid.loc[frame.index[len(BAD_DATES)], "date"] == ZONED_LOCAL
    assert result.counts["rows_in"] == len(frame) == result.counts["valid"] + result.counts["quarantined"]


# -- the split --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["time", "random"])
@pytest.mark.parametrize("value", BAD_DATES)
def test_the_split_refuses_a_record_without_a_readable_date(
    crimes: pd.DataFrame, kind: str, value: str
) -> None:
    from chicago_arrest.data.split import split_records

    with pytest.raises(FieldError, match=r"field 'date' is missing or unreadable in 1 of") as info:
        split_records(with_dates(crimes, (value,)), kind=kind)  # type: ignore[arg-type]
    assert info.value.field == "date"


def test_the_split_places_a_zoned_date_in_its_chicago_month(crimes: pd.DataFrame) -> None:
    from chicago_arrest.data.split import time_split

    frame = crimes.copy()
    frame.loc[frame.index[0], "date"] = "2018-01-01T05:30:00Z"  # 2017-12-31 23:30 in Chicago: the test month
    _, test, window = time_split(frame)
    assert frame.index[0] in test.index
    assert window.test_end == "2017-12-31"


# -- the model --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden_model() -> Any:
    from chicago_arrest.registry.models import load_arrest_model

    return load_arrest_model(str(GOLDEN / "model"))


def test_the_model_scores_an_unreadable_date_as_a_missing_one(
    golden_model: Any, crimes: pd.DataFrame
) -> None:
    """Defined behaviour for predict: an unreadable date is a missing date, never the clock or 2017-01-01."""
    records = crimes.head(len(BAD_DATES) + 1).copy()
    records["date"] = [*BAD_DATES, None]
    p = golden_model.predict_arrest_probability(records)
    missing = golden_model.predict_arrest_probability(records.assign(date=None))
    np.testing.assert_array_equal(p, missing)
    zoned = golden_model.predict_arrest_probability(records.head(1).assign(date=ZONED))
    local = golden_model.predict_arrest_probability(records.head(1).assign(date="2017-06-15T12:00:00.000"))
    np.testing.assert_array_equal(zoned, local)


# -- the server -------------------------------------------------------------------------------------------------


def _v2(date: str) -> Any:
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    body = json.loads((GOLDEN / "v2_request.json").read_text())
    for item in body["inputs"]:
        if item["name"] == "date":
            item["data"] = [date, *item["data"][1:]]
    return InferRequest.from_inference_request(InferenceRequest.model_validate(body), "arrest-predictor")


@pytest.mark.parametrize("value", BAD_DATES)
def test_the_server_answers_400_naming_the_field(value: str) -> None:
    from arrest_server.validation import parse_v1, parse_v2
    from kserve.errors import invalid_input_handler

    row = {"date": value, "primary_type": "THEFT", "iucr": "0820"}
    for parse, request in ((parse_v2, _v2(value)), (parse_v1, {"instances": [row]})):
        with pytest.raises(InvalidInput, match=r"field 'date'.*row\(s\) 0") as info:
            parse(request, 10)  # type: ignore[operator]
        response = asyncio.run(invalid_input_handler(None, info.value))
        assert response.status_code == 400
        assert "field 'date'" in json.loads(response.body)["error"]


def test_the_server_reads_a_zoned_date_as_chicago_time() -> None:
    from arrest_server.validation import parse_v1, parse_v2

    assert parse_v2(_v2(ZONED), 10).columns["date"][0] == ZONED_LOCAL
    row = {"date": ZONED, "primary_type": "THEFT", "iucr": "0820"}
    assert parse_v1({"instances": [row]}, 10).columns["date"][0] == ZONED_LOCAL


# -- the Vertex landing -----------------------------------------------------------------------------------------


def test_the_vertex_landing_keeps_its_window(
    settings: Settings, stations: pd.DataFrame, tmp_path: Path
) -> None:
    """A BigQuery export read by the same parser (UTC fields as the wall clock, data/bigquery.py): an unreadable
    value is kept as given for the contract, never turned into the clock's time."""
    from chicago_arrest.steps.vertex import land_bigquery_step

    crimes = with_dates(
        generate_crimes(900, start="2024-01-01", months=3, stations=stations),
        (*BAD_DATES, "2024-03-01T05:30:00Z"),  # the export's UTC fields: 2024-03-01 05:30, March
    )
    export = tmp_path / "export"
    export.mkdir()
    for k, part in enumerate((crimes.iloc[:400], crimes.iloc[400:])):
        part.to_parquet(export / f"crimes-{k:012d}.parquet", index=False)
    stations.to_parquet(tmp_path / "stations.parquet", index=False)
    summary = land_bigquery_step(
        str(export),
        tmp_path / "raw.parquet",
        tmp_path / "stations_out.parquet",
        months=3,
        stations_source=str(tmp_path / "stations.parquet"),
        settings=settings,
    )
    assert summary["window"] == ["2024-01", "2024-02", "2024-03"]
    assert summary["landed"] == summary["window"]
    assert summary["undated"] == len(BAD_DATES)
    assert summary["rows"] == len(crimes)
    assert summary["outside_window"] == 0
    raw = pd.read_parquet(tmp_path / "raw.parquet")
    assert set(UNREADABLE) <= set(raw["date"])  # kept as given for the data contract
    stamps = pd.Series(parse_timestamps(raw["date"]).values)
    assert stamps.max() < pd.Timestamp("2024-04-01")
    assert stamps.isna().sum() == len(BAD_DATES)
    assert "2024-03-01T05:30:00.000" in set(raw["date"])
