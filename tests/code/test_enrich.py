"""Enrichment: nearest police station distance (KD-tree vs the geopandas reference) and temporal features."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod, Transformer

from chicago_arrest.data.enrich import (
    DISTANCE,
    HAS_COORDINATES,
    PARTS_OF_DAY,
    SEASONS,
    TEMPORAL_COLUMNS,
    US_FOOT_M,
    StationIndex,
    enrich,
    enrich_features,
    project_points,
    station_distance,
    temporal_features,
)
from chicago_arrest.data.validate import validate_records
from tests.geo_reference import station_distance_geopandas

GEOD = Geod(ellps="WGS84")
TO_3435 = Transformer.from_crs("EPSG:4326", "EPSG:3435", always_xy=True)
# Chicago Police Headquarters, 3510 S Michigan Ave (from the real stations table).
HQ_LAT, HQ_LON = 41.83070169, -87.62339535


@pytest.fixture(scope="module")
def index(stations: pd.DataFrame) -> StationIndex:
    return StationIndex.from_frame(stations)


def _one_station(lat: float = HQ_LAT, lon: float = HQ_LON) -> pd.DataFrame:
    return pd.DataFrame({"district": ["Headquarters"], "latitude": [f"{lat}"], "longitude": [f"{lon}"]})


def _points(lat: list[float], lon: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"latitude": [f"{v:.9f}" for v in lat], "longitude": [f"{v:.9f}" for v in lon]})


# --- distances --------------------------------------------------------------------------------------------


def test_kdtree_matches_the_geopandas_reference(
    crimes: pd.DataFrame, stations: pd.DataFrame, index: StationIndex
) -> None:
    ours = station_distance(crimes, index)[DISTANCE].to_numpy()
    reference = station_distance_geopandas(crimes, stations)
    assert np.array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6, equal_nan=True)
    assert np.nanmin(ours) >= 0


def test_point_at_a_station_is_zero_metres(stations: pd.DataFrame, index: StationIndex) -> None:
    at = stations[["latitude", "longitude"]].copy()
    dist = station_distance(at, index)
    np.testing.assert_allclose(dist[DISTANCE].to_numpy(), 0.0, atol=1e-3)
    assert dist["nearest_station"].astype(str).tolist() == stations["district"].tolist()


def test_point_one_km_east_of_a_station_is_one_km() -> None:
    index = StationIndex.from_frame(_one_station())
    lon, lat, _ = GEOD.fwd(HQ_LON, HQ_LAT, 90.0, 1000.0)  # 1 km due east on the ellipsoid
    dist = station_distance(_points([lat], [lon]), index)[DISTANCE].iloc[0]
    assert dist == pytest.approx(1000.0, rel=0.01)
    # State Plane is conformal with a scale error far below 1 % in Chicago: in fact within 0.1 %.
    assert dist == pytest.approx(1000.0, rel=0.001)


@pytest.mark.parametrize(
    ("azimuth", "metres"), [(0.0, 250.0), (45.0, 2000.0), (180.0, 5000.0), (270.0, 12.5)]
)
def test_known_distances_in_every_direction(azimuth: float, metres: float) -> None:
    index = StationIndex.from_frame(_one_station())
    lon, lat, _ = GEOD.fwd(HQ_LON, HQ_LAT, azimuth, metres)
    assert station_distance(_points([lat], [lon]), index)[DISTANCE].iloc[0] == pytest.approx(
        metres, rel=0.001
    )


def test_state_plane_feet_are_converted_to_metres() -> None:
    x, y = TO_3435.transform(HQ_LON, HQ_LAT)
    index = StationIndex(x=np.array([x]), y=np.array([y]), names=("HQ",))
    feet = 1000.0 / US_FOOT_M
    dist, which = index.query(np.array([x + feet, x, np.nan]), np.array([y, y - 2 * feet, y]))
    np.testing.assert_allclose(dist[:2], [1000.0, 2000.0], rtol=1e-12)
    assert np.isnan(dist[2])
    assert which.tolist() == [0, 0, -1]


def test_nearest_of_several_stations() -> None:
    stations = pd.DataFrame(
        {"district": ["A", "B"], "latitude": [f"{HQ_LAT}", "41.9"], "longitude": [f"{HQ_LON}", "-87.7"]}
    )
    index = StationIndex.from_frame(stations)
    lon, lat, _ = GEOD.fwd(-87.7, 41.9, 10.0, 300.0)
    out = station_distance(_points([lat, HQ_LAT], [lon, HQ_LON]), index)
    assert out["nearest_station"].astype(str).tolist() == ["B", "A"]
    assert out[DISTANCE].iloc[0] == pytest.approx(300.0, rel=0.001)


def test_rows_without_coordinates_are_kept_and_flagged(crimes: pd.DataFrame, index: StationIndex) -> None:
    out = station_distance(crimes, index)
    assert out.index.equals(crimes.index)
    missing = (crimes["latitude"] == "").to_numpy()
    assert missing.any()
    assert np.isnan(out.loc[missing, DISTANCE]).all()
    assert (out.loc[missing, HAS_COORDINATES] == 0.0).all()
    assert out.loc[missing, "nearest_station"].isna().all()
    assert out.loc[~missing, DISTANCE].notna().all()
    assert (out.loc[~missing, HAS_COORDINATES] == 1.0).all()


def test_coordinates_outside_chicago_count_as_missing(index: StationIndex) -> None:
    frame = pd.DataFrame({"latitude": ["40.7", "0", ""], "longitude": ["-74.0", "0", ""]})  # New York, (0, 0)
    out = station_distance(frame, index)
    assert np.isnan(out[DISTANCE]).all()
    assert (out[HAS_COORDINATES] == 0.0).all()


def test_falls_back_from_lat_lon_to_state_plane_xy(crimes: pd.DataFrame, index: StationIndex) -> None:
    geocoded = crimes[crimes["latitude"] != ""].head(300)
    full = station_distance(geocoded, index)[DISTANCE].to_numpy()
    xy_only = station_distance(geocoded.drop(columns=["latitude", "longitude"]), index)[DISTANCE].to_numpy()
    blank = geocoded.assign(latitude="", longitude="")
    outside = geocoded.assign(latitude="0", longitude="0")  # unusable lat/lon, usable x/y
    # x/y are whole feet in the export: at most ~0.22 m (half a foot diagonally) from the lat/lon position.
    for other in (
        xy_only,
        station_distance(blank, index)[DISTANCE],
        station_distance(outside, index)[DISTANCE],
    ):
        np.testing.assert_allclose(np.asarray(other), full, atol=0.25)


def test_lat_lon_wins_over_xy_when_both_are_usable() -> None:
    index = StationIndex.from_frame(_one_station())
    lon, lat, _ = GEOD.fwd(HQ_LON, HQ_LAT, 90.0, 1000.0)
    x, y = TO_3435.transform(HQ_LON, HQ_LAT)  # x/y at the station itself
    frame = _points([lat], [lon]).assign(x_coordinate=[f"{x}"], y_coordinate=[f"{y}"])
    assert station_distance(frame, index)[DISTANCE].iloc[0] == pytest.approx(1000.0, rel=0.001)


def test_project_points_without_any_coordinate_column() -> None:
    x, y = project_points(pd.DataFrame({"date": ["2017-01-01T00:00:00.000"]}))
    assert np.isnan(x).all()
    assert np.isnan(y).all()


# --- StationIndex -----------------------------------------------------------------------------------------


def test_station_index_pickles(crimes: pd.DataFrame, index: StationIndex) -> None:
    clone = pickle.loads(pickle.dumps(index))
    assert clone.names == index.names
    np.testing.assert_array_equal(clone.x, index.x)
    pd.testing.assert_frame_equal(station_distance(crimes, clone), station_distance(crimes, index))


def test_station_index_from_real_looking_table(stations: pd.DataFrame, index: StationIndex) -> None:
    assert len(index.names) == len(stations) == 23
    assert index.names[-1] == "Headquarters"
    # x/y only (no lat/lon) gives the same stations.
    xy = StationIndex.from_frame(stations.drop(columns=["latitude", "longitude"]))
    np.testing.assert_allclose(xy.x, index.x, atol=1.0)
    np.testing.assert_allclose(xy.y, index.y, atol=1.0)


def test_stations_without_coordinates_are_skipped(stations: pd.DataFrame) -> None:
    table = stations.copy()
    table.loc[0, ["latitude", "longitude", "x_coordinate", "y_coordinate"]] = ""
    index = StationIndex.from_frame(table)
    assert len(index.names) == len(stations) - 1
    assert stations.loc[0, "district"] not in index.names


def test_stations_without_a_district_column_are_numbered(stations: pd.DataFrame) -> None:
    index = StationIndex.from_frame(stations.drop(columns=["district"]))
    assert index.names == tuple(str(i) for i in range(len(stations)))


@pytest.mark.parametrize(
    "table",
    [
        pd.DataFrame(columns=["district", "latitude", "longitude"]),
        pd.DataFrame({"district": ["1"], "latitude": [""], "longitude": [""]}),
        pd.DataFrame({"district": ["1"], "address": ["1718 S State St"]}),
        pd.DataFrame({"district": ["1"], "latitude": ["40.7"], "longitude": ["-74.0"]}),
    ],
    ids=["empty", "blank", "no-coordinate-columns", "outside-chicago"],
)
def test_empty_station_table_is_a_clear_error(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"police stations has coordinates inside Chicago"):
        StationIndex.from_frame(table)


def test_station_index_needs_a_station() -> None:
    with pytest.raises(ValueError, match="at least one police station"):
        StationIndex(x=np.array([]), y=np.array([]), names=())


def test_repeated_station_labels_label_the_right_station() -> None:
    stations = pd.DataFrame(
        {
            "district": ["1", "1", "2"],
            "latitude": ["41.70", "41.80", "41.95"],
            "longitude": ["-87.60", "-87.65", "-87.70"],
        }
    )
    index = StationIndex.from_frame(stations)
    out = station_distance(_points([41.95, 41.80, 41.70], [-87.70, -87.65, -87.60]), index)
    assert out["nearest_station"].astype(str).tolist() == ["2", "1", "1"]


# --- temporal features ------------------------------------------------------------------------------------


def _temporal(*stamps: str) -> pd.DataFrame:
    return temporal_features(pd.Series(list(stamps), dtype=object))


def test_hour_weekday_month() -> None:
    # 2017-01-02 was a Monday; 2017-01-08 a Sunday.
    out = _temporal("2017-01-02T13:45:00.000", "2017-01-07T00:00:00.000", "2017-01-08T23:59:00.000")
    assert out["hour"].tolist() == [13, 0, 23]
    assert out["day_of_week"].tolist() == [0, 5, 6]
    assert out["is_weekend"].tolist() == [0, 1, 1]
    assert out["month"].tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("month", "season"),
    [
        (12, "winter"),
        (1, "winter"),
        (2, "winter"),
        (3, "spring"),
        (4, "spring"),
        (5, "spring"),
        (6, "summer"),
        (7, "summer"),
        (8, "summer"),
        (9, "fall"),
        (10, "fall"),
        (11, "fall"),
    ],
)
def test_season_of_each_month(month: int, season: str) -> None:
    out = _temporal(f"2017-{month:02d}-15T12:00:00.000")
    assert out["season"].iloc[0] == season
    assert out["month"].iloc[0] == month


@pytest.mark.parametrize(
    ("clock", "part"),
    [
        ("00:00", "night"),
        ("05:59", "night"),
        ("06:00", "morning"),
        ("11:59", "morning"),
        ("12:00", "afternoon"),
        ("17:59", "afternoon"),
        ("18:00", "evening"),
        ("23:59", "evening"),
    ],
)
def test_part_of_day_boundaries(clock: str, part: str) -> None:
    assert _temporal(f"2017-05-10T{clock}:00.000")["part_of_day"].iloc[0] == part


def test_categories_are_fixed_and_ordered() -> None:
    out = _temporal("2017-05-10T12:00:00.000")
    assert list(out["season"].cat.categories) == list(SEASONS)
    assert list(out["part_of_day"].cat.categories) == list(PARTS_OF_DAY)


def test_midnight_and_first_of_month_flags() -> None:
    out = _temporal(
        "2017-03-01T00:00:00.000",
        "2017-03-01T00:01:00.000",
        "2017-03-02T00:00:00.000",
        "2017-03-31T12:00:00.000",
    )
    assert out["is_midnight"].tolist() == [1, 0, 1, 0]
    assert out["is_first_of_month"].tolist() == [1, 1, 0, 0]


def test_cyclic_encodings_lie_on_the_unit_circle(crimes: pd.DataFrame) -> None:
    out = temporal_features(crimes["date"])
    for name in ("hour", "dow", "month"):
        radius = out[f"{name}_sin"] ** 2 + out[f"{name}_cos"] ** 2
        np.testing.assert_allclose(radius, 1.0, atol=1e-12)
    six = _temporal("2017-01-02T06:00:00.000", "2017-01-02T18:30:00.000", "2017-07-01T00:00:00.000")
    np.testing.assert_allclose(six["hour_sin"].iloc[0], 1.0, atol=1e-12)  # 06:00 is a quarter turn
    np.testing.assert_allclose(six["hour_cos"].iloc[0], 0.0, atol=1e-12)
    angle = 2 * np.pi * 18.5 / 24  # minutes count: 18:30
    np.testing.assert_allclose(
        [six["hour_sin"].iloc[1], six["hour_cos"].iloc[1]], [np.sin(angle), np.cos(angle)]
    )
    np.testing.assert_allclose(six["dow_sin"].iloc[0], 0.0, atol=1e-12)  # Monday = 0
    np.testing.assert_allclose(six["month_cos"].iloc[2], -1.0, atol=1e-12)  # July is half a year on


def test_missing_or_bad_dates_give_nan_features() -> None:
    out = _temporal("2017-05-10T12:00:00.000", "", "not-a-date")
    numeric = out.drop(columns=["season", "part_of_day"])
    assert numeric.iloc[0].notna().all()
    assert numeric.iloc[1:].isna().all().all()
    assert out["season"].iloc[1:].isna().all()
    assert out["part_of_day"].iloc[1:].isna().all()


def test_temporal_features_keep_the_index() -> None:
    dates = pd.Series(["2017-05-10T12:00:00.000", "2017-05-11T12:00:00.000"], index=[10, 3])
    assert temporal_features(dates).index.tolist() == [10, 3]


# --- the whole enrichment ---------------------------------------------------------------------------------


def test_enrich_features_columns(crimes: pd.DataFrame, index: StationIndex) -> None:
    out = enrich_features(crimes, index)
    assert list(out.columns) == [DISTANCE, HAS_COORDINATES, "nearest_station", *TEMPORAL_COLUMNS]
    assert out.index.equals(crimes.index)
    enriched = enrich(crimes, index)
    assert list(enriched.columns) == [*crimes.columns, *out.columns]
    pd.testing.assert_frame_equal(enriched[crimes.columns], crimes)


def test_text_and_typed_inputs_give_the_same_features(crimes: pd.DataFrame, index: StationIndex) -> None:
    typed = validate_records(crimes, now=pd.Timestamp("2018-06-01")).valid
    assert len(typed) == len(crimes)
    pd.testing.assert_frame_equal(enrich_features(typed, index), enrich_features(crimes, index))
    landed = crimes.astype("string").mask(crimes == "")
    pd.testing.assert_frame_equal(enrich_features(landed, index), enrich_features(crimes, index))


def test_enrich_needs_a_date(crimes: pd.DataFrame, index: StationIndex) -> None:
    with pytest.raises(KeyError, match="date"):
        enrich_features(crimes.drop(columns=["date"]), index)


def test_temporal_arrays_match_pandas_accessors_including_pre_1970_and_nat() -> None:
    from chicago_arrest.data.enrich import temporal_arrays

    rng = np.random.default_rng(0)
    stamps = pd.to_datetime(rng.integers(-3_000_000_000, 2_000_000_000, 5_000), unit="s").to_numpy()
    stamps[::97] = np.datetime64("NaT")
    block, season, part = temporal_arrays(stamps)
    index = pd.DatetimeIndex(stamps)
    for column, expected in ((0, index.hour), (1, index.dayofweek), (2, index.month)):
        np.testing.assert_array_equal(block[:, column], expected.to_numpy(dtype=float, na_value=np.nan))
    first = np.where(index.isna(), np.nan, (index.day == 1).astype(float))
    np.testing.assert_array_equal(block[:, 5], first)
    assert (season[index.isna()] == -1).all()
    assert (part[index.isna()] == -1).all()
