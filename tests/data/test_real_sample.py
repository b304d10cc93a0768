"""Data tier: expectations on the real 2017 sample (../shared/data), the contract and enrichment on it.

Skipped when the real data is absent (CI). Expectations in the Made-With-ML style: schema, value ranges,
shares, then the contract and the enrichment on real records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.core.schema import CHICAGO_LAT, CHICAGO_LON, CHICAGO_X, CHICAGO_Y, RAW_COLUMNS
from chicago_arrest.data.enrich import (
    DISTANCE,
    HAS_COORDINATES,
    StationIndex,
    enrich_features,
)
from chicago_arrest.data.validate import validate_records
from tests.geo_reference import station_distance_geopandas

pytestmark = pytest.mark.shared_data

NOW = pd.Timestamp("2018-12-01")  # after the last update of these records (Nov 2018)
COORDINATES = ("x_coordinate", "y_coordinate", "latitude", "longitude")


@pytest.fixture(scope="module")
def raw(shared_data: Path) -> pd.DataFrame:
    """The real sample exactly as exported: every value text, missing = ''."""
    return pd.read_csv(shared_data / "crimes_sample.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def real_stations(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "police_stations.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def station_index(real_stations: pd.DataFrame) -> StationIndex:
    return StationIndex.from_frame(real_stations)


@pytest.fixture(scope="module")
def features(raw: pd.DataFrame, station_index: StationIndex) -> pd.DataFrame:
    return enrich_features(raw, station_index)


def _number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.replace("", np.nan))


# --- schema -----------------------------------------------------------------------------------------------


def test_columns_are_the_raw_schema(raw: pd.DataFrame) -> None:
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert len(raw) == 50_000


def test_id_is_unique_and_integer(raw: pd.DataFrame) -> None:
    assert raw["id"].is_unique
    assert raw["id"].str.fullmatch(r"\d+").all()


def test_no_column_is_entirely_empty(raw: pd.DataFrame) -> None:
    assert ((raw != "").mean() > 0.95).all()


# --- values -----------------------------------------------------------------------------------------------


def test_arrest_rate(raw: pd.DataFrame) -> None:
    assert set(raw["arrest"]) == {"true", "false"}
    assert 0.15 <= (raw["arrest"] == "true").mean() <= 0.25


def test_domestic_flag(raw: pd.DataFrame) -> None:
    assert set(raw["domestic"]) == {"true", "false"}
    assert 0.10 <= (raw["domestic"] == "true").mean() <= 0.25


def test_missing_coordinates_are_rare_and_all_or_nothing(raw: pd.DataFrame) -> None:
    empty = raw[list(COORDINATES)] == ""
    assert empty.any(axis=1).mean() < 0.03
    assert (empty.all(axis=1) == empty.any(axis=1)).all()  # never half a position


def test_dates_are_all_in_2017(raw: pd.DataFrame) -> None:
    dates = pd.to_datetime(raw["date"], format="%Y-%m-%dT%H:%M:%S.%f")
    assert dates.notna().all()
    assert (dates.dt.year == 2017).all()
    assert (raw["year"] == "2017").all()
    assert dates.is_monotonic_increasing  # the sample is sorted by date, then id


def test_updated_on_is_not_before_date(raw: pd.DataFrame) -> None:
    dates = pd.to_datetime(raw["date"], format="%Y-%m-%dT%H:%M:%S.%f")
    updated = pd.to_datetime(raw["updated_on"], format="%Y-%m-%dT%H:%M:%S.%f")
    assert (updated >= dates).all()
    assert updated.max() < NOW


def test_coordinates_are_inside_chicago(raw: pd.DataFrame) -> None:
    for column, (lo, hi) in zip(COORDINATES, (CHICAGO_X, CHICAGO_Y, CHICAGO_LAT, CHICAGO_LON), strict=True):
        values = _number(raw[column]).dropna()
        assert values.between(lo, hi).all(), column


def test_codes_keep_their_leading_zeros(raw: pd.DataFrame) -> None:
    assert raw["iucr"].str.fullmatch(r"[0-9A-Z]{4}").all()
    assert raw["beat"].str.fullmatch(r"\d{4}").all()
    assert raw.loc[raw["district"] != "", "district"].str.fullmatch(r"\d{3}").all()
    assert raw["fbi_code"].str.fullmatch(r"\d\d[A-Z]?").all()
    assert {"0486", "0820"} <= set(raw["iucr"])
    assert raw["beat"].str.startswith("0").any()


def test_ward_and_community_area_ranges(raw: pd.DataFrame) -> None:
    assert _number(raw["ward"]).dropna().between(1, 50).all()
    assert _number(raw["community_area"]).dropna().between(1, 77).all()


# --- the contract on real records -------------------------------------------------------------------------


def test_contract_on_the_real_sample(raw: pd.DataFrame) -> None:
    result = validate_records(raw, now=NOW)
    counts = result.counts
    assert counts["rows_in"] == len(raw) == counts["valid"] + counts["quarantined"]
    assert counts["quarantined"] < 0.01 * len(raw)
    assert result.quarantine["reason"].notna().all()
    assert result.quarantine["reason"].str.len().gt(0).all()
    assert counts["rows_without_coordinates"] == int((raw["latitude"] == "").sum())
    assert result.valid["id"].is_unique
    assert str(result.valid["iucr"].dtype) == "string"
    assert result.valid["iucr"].str.len().eq(4).all()
    assert result.valid["district"].dropna().str.len().eq(3).all()
    assert result.valid["date"].dt.year.eq(2017).all()
    assert 0.15 <= result.valid["arrest"].mean() <= 0.25


def test_corrupted_real_records_are_quarantined_with_their_reason(raw: pd.DataFrame) -> None:
    corruptions: list[tuple[dict[str, str], str]] = [
        ({"date": "not-a-date"}, "bad_date:date"),
        ({"date": "2099-01-01T00:00:00.000"}, "future_date"),
        ({"latitude": "40.7", "longitude": "-74.0"}, "outside_chicago"),
        ({"arrest": "maybe"}, "bad_bool:arrest"),
        ({"domestic": "Y"}, "bad_bool:domestic"),
        ({"iucr": ""}, "null:iucr"),
        ({"beat": "05244"}, "bad_code:beat"),
        ({"x_coordinate": "abc"}, "bad_number:x_coordinate"),
        ({"date": "", "latitude": "0", "longitude": "0"}, "null:date;outside_chicago"),
    ]
    corrupted = raw.copy()
    geocoded = np.flatnonzero((raw["latitude"] != "").to_numpy())
    rows = np.random.default_rng(17).choice(geocoded, len(corruptions) + 1, replace=False)
    expected: dict[int, str] = {}
    for row, (changes, reason) in zip(rows, corruptions, strict=False):
        for column, value in changes.items():
            corrupted.loc[row, column] = value
        expected[int(row)] = reason
    stale = corrupted.loc[[rows[-1]]].assign(updated_on="2017-01-01T00:00:00.000")
    stale.index = [len(corrupted)]
    corrupted = pd.concat([corrupted, stale])
    expected[len(raw)] = "duplicate_id"

    result = validate_records(corrupted, now=NOW)
    assert dict(zip(result.quarantine.index, result.quarantine["reason"], strict=True)) == expected
    assert set(result.quarantine["id"]) == set(corrupted.loc[list(expected), "id"])
    clean = corrupted.drop(index=list(expected))
    assert result.valid.index.tolist() == clean.index.tolist()
    assert result.valid["iucr"].tolist() == clean["iucr"].tolist()
    assert result.valid["beat"].tolist() == clean["beat"].tolist()

    dropped = validate_records(corrupted.drop(columns=["domestic"]), now=NOW)
    assert dropped.counts["valid"] == 0
    assert dropped.quarantine["reason"].str.startswith("missing_column:domestic").all()


# --- enrichment on real records ---------------------------------------------------------------------------


def test_real_station_table(real_stations: pd.DataFrame, station_index: StationIndex) -> None:
    assert len(real_stations) == 23
    assert len(station_index.names) == 23
    assert "Headquarters" in station_index.names


def test_every_geocoded_row_gets_a_distance(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    geocoded = (raw["latitude"] != "").to_numpy()
    assert features.loc[geocoded, DISTANCE].notna().all()
    assert (features.loc[geocoded, HAS_COORDINATES] == 1.0).all()
    assert features.loc[~geocoded, DISTANCE].isna().all()
    assert (features.loc[~geocoded, HAS_COORDINATES] == 0.0).all()


def test_station_distances_are_plausible(features: pd.DataFrame) -> None:
    distance = features[DISTANCE].dropna()
    assert 500 <= distance.median() <= 5_000
    assert distance.min() >= 0
    assert distance.max() < 20_000  # nowhere in Chicago is 20 km from a police station


def test_nearest_station_is_usually_the_own_district(raw: pd.DataFrame, features: pd.DataFrame) -> None:
    geocoded = features[DISTANCE].notna()
    own = features["nearest_station"].astype(str).str.zfill(3) == raw["district"]
    assert own[geocoded].mean() > 0.6


def test_kdtree_matches_geopandas_on_real_records(
    raw: pd.DataFrame, real_stations: pd.DataFrame, features: pd.DataFrame
) -> None:
    reference = station_distance_geopandas(raw, real_stations)
    np.testing.assert_allclose(features[DISTANCE].to_numpy(), reference, rtol=0, atol=1e-6, equal_nan=True)


def test_temporal_quirks_of_the_real_data(features: pd.DataFrame) -> None:
    # Backdated / estimated report times: midnight ~1.4 %, the 1st of the month over-represented (~1/30).
    assert 0.005 < features["is_midnight"].mean() < 0.03
    assert features["is_first_of_month"].mean() > 1.0 / 31
    assert features["season"].notna().all()
    assert set(features["season"]) == {"winter", "spring", "summer", "fall"}


def test_enrichment_of_text_and_validated_records_agree(
    raw: pd.DataFrame, station_index: StationIndex, features: pd.DataFrame
) -> None:
    valid = validate_records(raw, now=NOW).valid
    pd.testing.assert_frame_equal(enrich_features(valid, station_index), features.loc[valid.index])
