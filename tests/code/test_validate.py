"""The data contract: every rule, the bookkeeping invariant, and corrupted records quarantined with reasons."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.core.schema import FIELD_BY_NAME, RAW_COLUMNS
from chicago_arrest.data.validate import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ContractError,
    ValidationResult,
    _check_invariants,
    validate_records,
)

NOW = pd.Timestamp("2018-06-01 12:00:00")
CANONICAL_DTYPES = {
    "id": "Int64",
    "case_number": "string",
    "date": "datetime64[ns]",
    "block": "string",
    "iucr": "string",
    "primary_type": "string",
    "description": "string",
    "location_description": "string",
    "arrest": "boolean",
    "domestic": "boolean",
    "beat": "string",
    "district": "string",
    "ward": "Int64",
    "community_area": "Int64",
    "fbi_code": "string",
    "x_coordinate": "float64",
    "y_coordinate": "float64",
    "year": "Int64",
    "updated_on": "datetime64[ns]",
    "latitude": "float64",
    "longitude": "float64",
}

#: (changes to one record, its expected reason): the corruptions seen in the wild, and combinations.
CORRUPTIONS: list[tuple[dict[str, str], str]] = [
    ({"date": "not-a-date"}, "bad_date:date"),
    ({"date": "2099-01-01T00:00:00.000"}, "future_date"),
    ({"latitude": "40.7", "longitude": "-74.0"}, "outside_chicago"),  # New York
    ({"x_coordinate": "0", "y_coordinate": "0"}, "outside_chicago"),
    ({"arrest": "maybe"}, "bad_bool:arrest"),
    ({"domestic": "Y"}, "bad_bool:domestic"),
    ({"arrest": ""}, "null:arrest"),
    ({"iucr": ""}, "null:iucr"),
    ({"iucr": "04866"}, "bad_code:iucr"),
    ({"primary_type": "  "}, "null:primary_type"),
    ({"ward": "12.5"}, "bad_number:ward"),
    ({"latitude": "north"}, "bad_number:latitude"),
    ({"longitude": ""}, "partial_coordinates"),
    ({"updated_on": "last tuesday"}, "bad_date:updated_on"),
    ({"date": "", "arrest": "yes"}, "null:date;bad_bool:arrest"),
    (
        {"date": "2099-01-01T00:00:00.000", "latitude": "40.7", "longitude": "-74.0", "iucr": "4 86"},
        "bad_code:iucr;future_date;outside_chicago",
    ),
]


def _geocoded_positions(frame: pd.DataFrame, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct row positions of records that have coordinates (so coordinate corruptions show)."""
    candidates = np.flatnonzero((frame["latitude"] != "").to_numpy())
    return np.sort(np.random.default_rng(seed).choice(candidates, k, replace=False))


def corrupt(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Corrupt a copy of raw text records in known ways.

    Returns:
        The corrupted frame (a stale duplicate of one record appended) and ``{index label: reason}`` of every
        record that must be quarantined.
    """
    out = frame.copy()
    positions = _geocoded_positions(out, len(CORRUPTIONS) + 1)
    expected: dict[int, str] = {}
    for pos, (changes, reason) in zip(positions, CORRUPTIONS, strict=False):
        label = out.index[pos]
        for column, value in changes.items():
            out.loc[label, column] = value
        expected[label] = reason
    # A stale copy of a clean record (older updated_on) landed twice: the newer one wins.
    original = out.loc[[out.index[positions[-1]]]].copy()
    stale = original.copy()
    stale["updated_on"] = "2017-01-02T00:00:00.000"
    stale.index = [out.index.max() + 1]
    out = pd.concat([out, stale])
    expected[stale.index[0]] = "duplicate_id"
    return out, expected


def _with(frame: pd.DataFrame, label: int, changes: dict[str, object]) -> pd.DataFrame:
    out = frame.copy()
    for column, value in changes.items():
        out.loc[label, column] = value
    return out


@pytest.fixture
def small(crimes: pd.DataFrame) -> pd.DataFrame:
    """200 generated text records; the first one has coordinates."""
    part = crimes.iloc[:200].copy()
    first = int(np.flatnonzero((part["latitude"] != "").to_numpy())[0])
    return part.iloc[[first, *[i for i in range(200) if i != first]]].reset_index(drop=True)


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {c: str(frame[c].dtype) for c in RAW_COLUMNS}


# --- clean records ---------------------------------------------------------------------------------------


def test_clean_records_are_all_valid_with_canonical_dtypes(crimes: pd.DataFrame) -> None:
    result = validate_records(crimes, now=NOW)
    assert result.counts["rows_in"] == result.counts["valid"] == len(crimes)
    assert result.counts["quarantined"] == 0
    assert result.quarantine.empty
    assert list(result.quarantine.columns) == [*crimes.columns, "reason"]
    assert list(result.valid.columns) == list(RAW_COLUMNS)
    assert _dtypes(result.valid) == CANONICAL_DTYPES
    assert result.valid.index.equals(crimes.index)
    # Leading zeros survive: codes are exactly the raw text.
    for column in ("iucr", "beat", "district", "fbi_code"):
        assert result.valid[column].tolist() == crimes[column].tolist()
    assert "0486" in set(result.valid["iucr"])
    assert result.valid["district"].str.fullmatch(r"0\d\d").all()
    assert result.valid["id"].tolist() == crimes["id"].astype(int).tolist()
    assert result.valid["arrest"].tolist() == (crimes["arrest"] == "true").tolist()
    assert result.counts["rows_without_coordinates"] == int((crimes["latitude"] == "").sum()) > 0


def test_values_are_parsed_to_the_right_values(small: pd.DataFrame) -> None:
    row = small.iloc[0]
    valid = validate_records(small, now=NOW).valid.iloc[0]
    assert valid["date"] == pd.Timestamp(row["date"])
    assert valid["latitude"] == pytest.approx(float(row["latitude"]))
    assert valid["x_coordinate"] == float(row["x_coordinate"])
    assert valid["ward"] == int(row["ward"])
    assert valid["primary_type"] == row["primary_type"]


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        ("iucr", "486", "0486"),
        ("iucr", " 0486 ", "0486"),
        ("iucr", "31a", "031A"),
        ("beat", "524", "0524"),
        ("district", "5", "005"),
        ("district", "5.0", "005"),
        ("district", "", pd.NA),
        ("fbi_code", "08b", "08B"),
        ("fbi_code", " 26 ", "26"),
    ],
)
def test_codes_are_zero_padded_and_upper_cased(
    small: pd.DataFrame, column: str, raw: str, expected: object
) -> None:
    result = validate_records(_with(small, 0, {column: raw}), now=NOW)
    assert result.counts["quarantined"] == 0
    value = result.valid.loc[0, column]
    assert (value is pd.NA) if expected is pd.NA else (value == expected)


def test_fbi_code_that_lost_its_leading_zero(small: pd.DataFrame) -> None:
    # "06" read as a number becomes "6". With pad=0 in the schema it is not padded back, so the contract
    # quarantines it rather than guess; with pad=2 it would be restored to "06".
    result = validate_records(_with(small, 0, {"fbi_code": "6"}), now=NOW)
    if FIELD_BY_NAME["fbi_code"].pad >= 2:
        assert result.valid.loc[0, "fbi_code"] == "06"
    else:
        assert result.quarantine.loc[0, "reason"] == "bad_code:fbi_code"


def test_text_is_stripped_and_blank_is_null(small: pd.DataFrame) -> None:
    frame = _with(small, 0, {"block": "  ", "description": "  SIMPLE ", "location_description": ""})
    valid = validate_records(frame, now=NOW).valid
    assert valid.loc[0, "block"] is pd.NA
    assert valid.loc[0, "description"] == "SIMPLE"
    assert valid.loc[0, "location_description"] is pd.NA


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("FALSE", False),
        ("True", True),
        ("False", False),
        ("t", True),
        ("f", False),
        ("1", True),
        ("0", False),
        (" true ", True),
        (True, True),
        (False, False),
    ],
)
def test_boolean_encodings_in_the_wild_are_accepted(small: pd.DataFrame, raw: object, expected: bool) -> None:
    frame = small.copy()
    frame["arrest"] = frame["arrest"].astype(object)
    frame.loc[0, "arrest"] = raw
    result = validate_records(frame, now=NOW)
    assert result.counts["quarantined"] == 0
    assert bool(result.valid.loc[0, "arrest"]) is expected


def test_real_boolean_columns_are_accepted(small: pd.DataFrame) -> None:
    frame = small.copy()
    frame["arrest"] = small["arrest"] == "true"
    frame["domestic"] = (small["domestic"] == "true").astype("boolean")
    result = validate_records(frame, now=NOW)
    assert result.counts["quarantined"] == 0
    assert result.valid["arrest"].tolist() == frame["arrest"].tolist()


# --- one rule at a time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        *CORRUPTIONS,
        ({"date": "2017-13-45T00:00:00.000"}, "bad_date:date"),
        # numpy's ISO parser would read these as the clock, a bare year, or overflow to 1821-03-12.
        ({"date": "now"}, "bad_date:date"),
        ({"date": "Today"}, "bad_date:date"),
        ({"date": "2017"}, "bad_date:date"),
        ({"date": "2017-05"}, "bad_date:date"),
        ({"date": "20170105"}, "bad_date:date"),
        ({"updated_on": "NOW"}, "bad_date:updated_on"),
        ({"ward": "1_000"}, "bad_number:ward"),
        ({"arrest": "2"}, "bad_bool:arrest"),
        ({"domestic": "yes"}, "bad_bool:domestic"),
        ({"domestic": ""}, "null:domestic"),
        ({"id": ""}, "null:id"),
        ({"id": "abc"}, "bad_number:id"),
        ({"id": "10800001.5"}, "bad_number:id"),
        ({"community_area": "x"}, "bad_number:community_area"),
        ({"year": "twenty"}, "bad_number:year"),
        ({"x_coordinate": "inf"}, "bad_number:x_coordinate"),
        ({"iucr": "48$"}, "bad_code:iucr"),
        ({"beat": "12A4"}, "bad_code:beat"),
        ({"district": "0005"}, "bad_code:district"),
        ({"fbi_code": "8BB"}, "bad_code:fbi_code"),
        ({"latitude": "41.0"}, "outside_chicago"),  # south of the city, longitude fine
        ({"longitude": "-87.2"}, "outside_chicago"),  # in Lake Michigan / Indiana
        ({"x_coordinate": "1300000"}, "outside_chicago"),
        ({"x_coordinate": ""}, "partial_coordinates"),
        ({"latitude": "", "longitude": ""}, ""),  # x/y still there: valid
    ],
)
def test_each_rule(small: pd.DataFrame, changes: dict[str, str], reason: str) -> None:
    result = validate_records(_with(small, 0, changes), now=NOW)
    if not reason:
        assert result.counts["quarantined"] == 0
        return
    assert result.quarantine.index.tolist() == [0]
    assert result.quarantine.loc[0, "reason"] == reason
    assert result.counts["valid"] == len(small) - 1
    for name in reason.split(";"):
        assert result.counts[name] == 1
    # The quarantined record keeps its original (raw) values.
    for column, value in changes.items():
        assert result.quarantine.loc[0, column] == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2017-01-05T22:00:00.000", "2017-01-05 22:00"),  # Socrata floating timestamp
        ("2017-01-05 22:00:00", "2017-01-05 22:00"),
        ("01/05/2017 10:00:00 PM", "2017-01-05 22:00"),  # the CSV export's format, Chicago local time
        ("2017-01-05T22:00:00.000-06:00", "2017-01-05 22:00"),  # explicit zone: converted to Chicago time
        ("2017-07-05T03:00:00Z", "2017-07-04 22:00"),
    ],
)
def test_timestamp_formats(small: pd.DataFrame, raw: str, expected: str) -> None:
    result = validate_records(_with(small, 0, {"date": raw}), now=NOW)
    assert result.counts["quarantined"] == 0
    assert result.valid.loc[0, "date"] == pd.Timestamp(expected)


@pytest.mark.parametrize("others", ["12", "x"], ids=["clean-column", "column-with-a-bad-value"])
def test_number_outcome_does_not_depend_on_the_other_rows(small: pd.DataFrame, others: str) -> None:
    # "nan" (a pandas artefact) is missing and "1_000" is not a number, whatever the rest of the column holds.
    frame = _with(_with(_with(small, 0, {"ward": "nan"}), 1, {"ward": "1_000"}), 2, {"ward": others})
    result = validate_records(frame, now=NOW)
    assert 0 in result.valid.index
    assert result.valid.loc[0, "ward"] is pd.NA
    assert result.quarantine.loc[1, "reason"] == "bad_number:ward"
    assert (2 in result.valid.index) == (others == "12")


def test_rows_without_coordinates_are_valid_and_counted(small: pd.DataFrame) -> None:
    empty = dict.fromkeys(("latitude", "longitude", "x_coordinate", "y_coordinate"), "")
    frame = _with(_with(small, 0, empty), 1, empty)
    result = validate_records(frame, now=NOW)
    assert result.counts["quarantined"] == 0
    expected = int(((frame["latitude"] == "") & (frame["x_coordinate"] == "")).sum())
    assert result.counts["rows_without_coordinates"] == expected >= 2
    assert np.isnan(result.valid.loc[0, "latitude"])
    assert np.isnan(result.valid.loc[0, "x_coordinate"])


def test_only_xy_coordinates_count_as_coordinates(small: pd.DataFrame) -> None:
    frame = _with(small, 0, {"latitude": "", "longitude": ""})
    base = validate_records(small, now=NOW).counts["rows_without_coordinates"]
    assert validate_records(frame, now=NOW).counts["rows_without_coordinates"] == base


def test_future_date_is_relative_to_now(small: pd.DataFrame) -> None:
    latest = pd.to_datetime(small["date"]).idxmax()
    date = pd.Timestamp(small.loc[latest, "date"])
    assert validate_records(small, now=date).counts["quarantined"] == 0  # equal is fine
    before = validate_records(small, now=date - pd.Timedelta(minutes=1))
    assert before.quarantine.loc[latest, "reason"] == "future_date"


def test_zone_aware_now_is_converted_to_chicago_time(small: pd.DataFrame) -> None:
    frame = _with(small, 0, {"date": "2018-06-01T10:00:00.000"})
    # 15:30 UTC is 10:30 in Chicago (CDT): 10:00 is in the past.
    assert validate_records(frame, now=pd.Timestamp("2018-06-01 15:30", tz="UTC")).counts["quarantined"] == 0
    # 14:30 UTC is 09:30 in Chicago: 10:00 is in the future.
    late = validate_records(frame, now=pd.Timestamp("2018-06-01 14:30", tz="UTC"))
    assert late.quarantine.loc[0, "reason"] == "future_date"


def test_default_now_is_the_current_time(small: pd.DataFrame) -> None:
    assert validate_records(small).counts["quarantined"] == 0
    tomorrow = pd.Timestamp.now() + pd.Timedelta(days=2)
    frame = _with(small, 0, {"date": tomorrow.strftime("%Y-%m-%dT%H:%M:%S.000")})
    assert validate_records(frame).quarantine.loc[0, "reason"] == "future_date"


def test_several_reasons_are_joined_in_order(small: pd.DataFrame) -> None:
    frame = _with(small, 0, {"id": "x", "arrest": "maybe", "date": "bad", "latitude": "1", "longitude": "1"})
    reason = validate_records(frame, now=NOW).quarantine.loc[0, "reason"]
    assert reason == "bad_number:id;bad_date:date;bad_bool:arrest;outside_chicago"


# --- duplicates -------------------------------------------------------------------------------------------


def _twice(frame: pd.DataFrame, first: dict[str, str], second: dict[str, str]) -> pd.DataFrame:
    """The first record, then a copy of it at the end, with changes to each."""
    copy = frame.iloc[[0]].copy()
    copy.index = [len(frame)]
    out = pd.concat([frame, copy])
    out = _with(out, 0, first)
    return _with(out, len(frame), second)


def test_duplicate_id_keeps_the_latest_update(small: pd.DataFrame) -> None:
    frame = _twice(
        small, {"updated_on": "2018-01-01T00:00:00.000"}, {"updated_on": "2017-12-01T00:00:00.000"}
    )
    result = validate_records(frame, now=NOW)
    assert result.quarantine.index.tolist() == [len(small)]
    assert result.quarantine["reason"].tolist() == ["duplicate_id"]
    assert result.valid.loc[0, "updated_on"] == pd.Timestamp("2018-01-01")
    assert result.valid["id"].is_unique


def test_duplicate_id_without_updates_keeps_the_last_occurrence(small: pd.DataFrame) -> None:
    frame = _twice(small, {"updated_on": ""}, {"updated_on": ""})
    result = validate_records(frame, now=NOW)
    assert result.quarantine.index.tolist() == [0]
    assert result.quarantine.loc[0, "reason"] == "duplicate_id"
    assert len(small) in result.valid.index


def test_duplicate_id_prefers_the_copy_that_passes(small: pd.DataFrame) -> None:
    # The newer copy is broken: the older, valid one is kept; the broken one carries both reasons.
    frame = _twice(
        small,
        {"updated_on": "2017-12-01T00:00:00.000"},
        {"updated_on": "2018-01-01T00:00:00.000", "arrest": "maybe"},
    )
    result = validate_records(frame, now=NOW)
    assert result.quarantine.index.tolist() == [len(small)]
    assert result.quarantine.loc[len(small), "reason"] == "bad_bool:arrest;duplicate_id"
    assert 0 in result.valid.index


def test_triplicate_id_keeps_one(small: pd.DataFrame) -> None:
    frame = pd.concat([small, small.iloc[[0, 0]]], ignore_index=True)
    result = validate_records(frame, now=NOW)
    assert result.reason_counts == {"duplicate_id": 2}
    assert result.quarantine.index.tolist() == [0, len(small)]


def test_ids_differing_only_in_text_are_duplicates(small: pd.DataFrame) -> None:
    frame = _twice(small, {}, {"id": " " + small.loc[0, "id"]})
    assert validate_records(frame, now=NOW).reason_counts == {"duplicate_id": 1}


# --- columns ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_missing_required_column_quarantines_every_row(small: pd.DataFrame, column: str) -> None:
    result = validate_records(small.drop(columns=[column]), now=NOW)
    assert result.counts["valid"] == 0
    assert result.counts["quarantined"] == len(small)
    assert result.missing_columns == [column]
    assert result.counts[f"missing_column:{column}"] == len(small)
    assert set(result.quarantine["reason"]) == {f"missing_column:{column}"}
    assert column not in result.quarantine.columns  # original values only
    assert _dtypes(result.valid) == CANONICAL_DTYPES


def test_several_missing_columns_are_all_named(small: pd.DataFrame) -> None:
    result = validate_records(small.drop(columns=["beat", "latitude"]), now=NOW)
    assert set(result.quarantine["reason"]) == {"missing_column:beat;missing_column:latitude"}


@pytest.mark.parametrize("column", OPTIONAL_COLUMNS)
def test_missing_optional_column_is_added_as_null(small: pd.DataFrame, column: str) -> None:
    result = validate_records(small.drop(columns=[column]), now=NOW)
    assert result.counts["quarantined"] == 0
    assert result.valid[column].isna().all()
    assert _dtypes(result.valid) == CANONICAL_DTYPES


def test_optional_columns_are_what_the_model_does_not_need() -> None:
    assert set(OPTIONAL_COLUMNS) == {"case_number", "block", "year", "updated_on"}
    assert set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) == set(RAW_COLUMNS)


def test_extra_columns_are_carried_along_and_stale_reason_dropped(small: pd.DataFrame) -> None:
    frame = small.assign(source="socrata", reason="old")
    frame = _with(frame, 0, {"arrest": "maybe"})
    result = validate_records(frame, now=NOW)
    assert list(result.valid.columns) == [*RAW_COLUMNS, "source"]
    assert (result.valid["source"] == "socrata").all()
    assert result.quarantine.loc[0, "reason"] == "bad_bool:arrest"
    assert list(result.quarantine.columns) == [*RAW_COLUMNS, "source", "reason"]


# --- input forms ------------------------------------------------------------------------------------------


def test_landed_string_dtype_gives_the_same_result(crimes: pd.DataFrame) -> None:
    corrupted, _ = corrupt(crimes)
    landed = corrupted.astype("string").mask(corrupted == "")  # as ingest lands it: string, <NA>
    as_text = validate_records(corrupted, now=NOW)
    as_landed = validate_records(landed, now=NOW)
    pd.testing.assert_frame_equal(as_landed.valid, as_text.valid)
    assert as_landed.quarantine["reason"].tolist() == as_text.quarantine["reason"].tolist()
    assert as_landed.counts == as_text.counts


def test_typed_records_give_the_same_result(crimes: pd.DataFrame) -> None:
    text = validate_records(crimes, now=NOW)
    typed = crimes.copy()
    for column in ("id", "ward", "community_area", "year"):
        typed[column] = typed[column].astype(int)
    for column in ("x_coordinate", "y_coordinate", "latitude", "longitude"):
        typed[column] = pd.to_numeric(typed[column].replace("", np.nan))
    typed["date"] = pd.to_datetime(typed["date"])
    typed["updated_on"] = pd.to_datetime(typed["updated_on"])
    typed["arrest"] = typed["arrest"] == "true"
    typed["domestic"] = typed["domestic"] == "true"
    typed["district"] = typed["district"].astype(int)  # leading zeros lost: restored by padding
    typed["beat"] = typed["beat"].astype(float)  # through a float column: "524.0"
    pd.testing.assert_frame_equal(validate_records(typed, now=NOW).valid, text.valid)


def test_validation_is_idempotent(crimes: pd.DataFrame) -> None:
    first = validate_records(corrupt(crimes)[0], now=NOW)
    again = validate_records(first.valid, now=NOW)
    assert again.counts["quarantined"] == 0
    pd.testing.assert_frame_equal(again.valid, first.valid)


def test_zone_aware_dates_are_converted(small: pd.DataFrame) -> None:
    frame = small.copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize("America/Chicago").dt.tz_convert("UTC")
    result = validate_records(frame, now=NOW)
    assert result.counts["quarantined"] == 0
    pd.testing.assert_series_equal(
        result.valid["date"], pd.to_datetime(small["date"]).astype("datetime64[ns]"), check_names=False
    )


def test_empty_frame(small: pd.DataFrame) -> None:
    result = validate_records(small.iloc[:0], now=NOW)
    assert result.counts == {
        "rows_in": 0,
        "valid": 0,
        "quarantined": 0,
        "rows_without_coordinates": 0,
    }
    assert result.missing_columns == []
    assert _dtypes(result.valid) == CANONICAL_DTYPES


def test_original_index_is_kept(small: pd.DataFrame) -> None:
    frame = _with(small, 3, {"date": "not-a-date"})
    frame.index = frame.index + 1000
    result = validate_records(frame, now=NOW)
    assert result.quarantine.index.tolist() == [1003]
    assert 1003 not in result.valid.index
    assert len(result.valid.index.union(result.quarantine.index)) == len(frame)


# --- the invariant and the summary ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_every_row_ends_up_in_exactly_one_output(crimes: pd.DataFrame, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = crimes.iloc[:500].copy()
    junk = ["", "x", "2099-01-01T00:00:00.000", "-1", "0", "maybe", "40.7", "1e9", " "]
    for column in rng.choice(frame.columns, 8, replace=False):
        rows = rng.choice(len(frame), 30, replace=False)
        frame.iloc[rows, frame.columns.get_loc(column)] = rng.choice(junk, 30)
    frame = pd.concat([frame, frame.sample(20, random_state=seed)])  # duplicate ids, repeated index labels
    result = validate_records(frame, now=NOW)
    assert result.counts["rows_in"] == len(frame) == result.counts["valid"] + result.counts["quarantined"]
    assert len(result.valid) + len(result.quarantine) == len(frame)
    assert result.quarantine["reason"].str.len().gt(0).all()
    assert result.valid["id"].is_unique
    assert set(result.valid["id"]) <= set(pd.to_numeric(frame["id"], errors="coerce").dropna())


def test_contract_error_on_lost_rows(crimes: pd.DataFrame) -> None:
    result = validate_records(crimes.iloc[:10], now=NOW)
    assert issubclass(ContractError, AssertionError)
    with pytest.raises(ContractError, match="rows in"):
        _check_invariants(11, result.valid, result.quarantine)
    no_reason = result.valid.iloc[:1].assign(reason="")
    with pytest.raises(ContractError, match="no reason"):
        _check_invariants(10, result.valid.iloc[1:], no_reason)
    with pytest.raises(ContractError, match="repeated id"):
        _check_invariants(11, pd.concat([result.valid, result.valid.iloc[:1]]), result.quarantine)
    _check_invariants(10, result.valid, result.quarantine)


def test_summary(crimes: pd.DataFrame) -> None:
    result = validate_records(corrupt(crimes)[0], now=NOW)
    text = result.summary()
    assert text.startswith(f"{len(crimes) + 1} rows: ")
    assert f"{result.counts['quarantined']} quarantined" in text
    assert "bad_date:date=1" in text
    assert "valid rows without coordinates" in text
    assert str(result) == text
    totals = ("rows_in", "valid", "quarantined", "rows_without_coordinates")
    assert list(result.counts)[:4] == list(totals)
    assert result.reason_counts == {k: v for k, v in result.counts.items() if k not in totals}
    assert sum(result.reason_counts.values()) >= result.counts["quarantined"]
    assert all(isinstance(v, int) for v in result.counts.values())
    metrics = result.metrics()
    assert metrics["reason_bad_date_date"] == 1
    assert metrics["reason_duplicate_id"] == 1
    assert metrics["rows_in"] == result.counts["rows_in"]
    assert not any(":" in k for k in metrics)
    assert isinstance(result, ValidationResult)


def test_fast_enough(crimes: pd.DataFrame) -> None:
    # Vectorised: 52k rows well under a second on a quiet machine (generous bound for loaded CI runners).
    big = pd.concat([crimes] * 13, ignore_index=True)
    big["id"] = np.arange(len(big)).astype(str)
    validate_records(big.iloc[:100], now=NOW)
    start = time.perf_counter()
    result = validate_records(big, now=NOW)
    assert time.perf_counter() - start < 3.0
    assert result.counts["valid"] == len(big)


# --- THE test: a corrupted copy of records, every bad row quarantined with its reason ----------------------


def test_corrupted_records_every_bad_row_quarantined_with_its_reason(crimes: pd.DataFrame) -> None:
    corrupted, expected = corrupt(crimes)
    result = validate_records(corrupted, now=NOW)

    assert dict(zip(result.quarantine.index, result.quarantine["reason"], strict=True)) == expected
    expected_ids = set(corrupted.loc[list(expected), "id"])
    assert set(result.quarantine["id"]) == expected_ids
    assert result.counts["quarantined"] == len(expected)
    assert result.counts["valid"] == len(corrupted) - len(expected)
    # Original values, untouched.
    pd.testing.assert_frame_equal(result.quarantine.drop(columns="reason"), corrupted.loc[list(expected)])

    # Everything else is valid, typed, leading zeros kept.
    clean = corrupted.drop(index=list(expected))
    assert result.valid.index.tolist() == clean.index.tolist()
    assert _dtypes(result.valid) == CANONICAL_DTYPES
    for column in ("iucr", "beat", "district", "fbi_code"):
        assert result.valid[column].tolist() == clean[column].tolist()
    assert {"0486", "0820"} <= set(result.valid["iucr"])
    assert result.valid["district"].str.startswith("0").all()
    assert result.valid["beat"].str.len().eq(4).all()
    assert result.valid["id"].is_unique

    reasons = {r for reason in expected.values() for r in reason.split(";")}
    assert set(result.reason_counts) == reasons


def test_corrupted_records_with_a_required_column_dropped(crimes: pd.DataFrame) -> None:
    corrupted, expected = corrupt(crimes)
    result = validate_records(corrupted.drop(columns=["beat"]), now=NOW)
    assert result.counts["valid"] == 0
    assert result.counts["quarantined"] == len(corrupted)
    got = dict(zip(result.quarantine.index, result.quarantine["reason"], strict=True))
    for label in corrupted.index:
        own = expected.get(label)
        assert got[label] == ("missing_column:beat" + (f";{own}" if own else "")), label


# -- the hour-of-day rule (issue 28) --------------------------------------------------------------------------


def _dated(hours: list[int], n: int) -> pd.DataFrame:
    """``n`` generated-looking records whose dates cycle through ``hours``."""
    from chicago_arrest.data.synthetic import generate_crimes

    frame = generate_crimes(n, start="2018-01-01", months=3)
    days = pd.to_datetime(frame["date"]).dt.normalize()
    stamps = days + pd.to_timedelta([hours[i % len(hours)] for i in range(n)], unit="h")
    return frame.assign(date=stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.000").tolist())


def test_hour_rule_passes_chicago_like_hours(crimes: pd.DataFrame) -> None:
    from chicago_arrest.data.validate import check_hours

    result = validate_records(crimes, now=NOW)
    counts = check_hours(result.valid["date"])
    assert sum(counts.values()) == result.counts["valid"]
    assert sum(counts[h] for h in range(13, 24)) > 0.3 * result.counts["valid"]


def test_hour_rule_fails_a_12_hour_clock_without_am_pm() -> None:
    from chicago_arrest.data.validate import ImplausibleHoursError

    frame = _dated(list(range(1, 13)), 600)
    with pytest.raises(ImplausibleHoursError, match=r"only 0\.0% of 600 dated records.*01, 02.*12\)"):
        validate_records(frame, now=NOW)
    assert validate_records(frame, now=NOW, hour_rule=False).counts["valid"] == 600


def test_hour_rule_fails_records_without_a_time_of_day() -> None:
    from chicago_arrest.data.validate import ImplausibleHoursError

    with pytest.raises(ImplausibleHoursError, match="all 600 dated records are at hour 00"):
        validate_records(_dated([0], 600), now=NOW)


def test_hour_rule_gives_no_verdict_on_few_records() -> None:
    from chicago_arrest.data.validate import HOUR_RULE_MIN_RECORDS

    small = _dated(list(range(1, 13)), HOUR_RULE_MIN_RECORDS - 1)
    assert validate_records(small, now=NOW).counts["valid"] == HOUR_RULE_MIN_RECORDS - 1


def test_hour_rule_counts_only_valid_records() -> None:
    """Quarantined records (bad dates) do not count towards the rule's sample."""
    from chicago_arrest.data.validate import check_hours

    frame = _dated(list(range(1, 13)), 600)
    frame.loc[frame.index[:200], "date"] = "not-a-date"
    result = validate_records(frame, now=NOW)  # 400 valid: below the rule's minimum
    assert result.counts["valid"] == 400
    assert sum(check_hours(result.valid["date"]).values()) == 400
