"""Per-area figures: known rates on generated data, the spatial-join fallback, gaps, maps."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from chicago_arrest.data.areas import area_key, assign_areas, boundaries, name_districts, read_boundaries
from chicago_arrest.model.areas import area_table, area_tables, largest_gaps, worst_area_ece
from chicago_arrest.reports.areas import gaps_sentence
from chicago_arrest.reports.maps import choropleths

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _grid_shapes(level: str) -> gpd.GeoDataFrame:
    """Four generated squares around Chicago, keyed like the City's exports."""
    squares = [box(-87.8 + 0.1 * i, 41.8, -87.7 + 0.1 * i, 41.9) for i in range(2)]
    squares += [box(-87.8 + 0.1 * i, 41.9, -87.7 + 0.1 * i, 42.0) for i in range(2)]
    key = "dist_num" if level == "district" else "area_numbe"
    name = "dist_label" if level == "district" else "community"
    frame = pd.DataFrame({key: ["1", "2", "3", "4"], name: ["A", "B", "C", "D"]})
    return gpd.GeoDataFrame(frame, geometry=squares, crs="EPSG:4326")


def test_area_table_known_rates() -> None:
    # Area 1: 4 rows, 2 arrests, all predicted 0.5 at threshold 0.5 -> FPR 1, FNR 0.
    # Area 2: 4 rows, no arrest, predicted 0.1 -> FPR 0, FNR NaN, ROC-AUC NaN.
    # Area 7 ("007" in the record): 2 rows, 1 arrest, perfect ranking below the threshold -> FNR 1.
    areas = pd.Series(["1", "1", "1", "1", "2", "2", "2", "2", "7", "7"])
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.4, 0.2])
    table = area_table(areas, y, p, threshold=0.5)
    assert list(table.index) == ["1", "2", "7"]
    assert table.loc["1", "rows"] == 4
    assert table.loc["1", "arrest_rate"] == 0.5
    assert table.loc["1", "mean_predicted"] == 0.5
    assert table.loc["1", "fpr"] == 1.0
    assert table.loc["1", "fnr"] == 0.0
    assert table.loc["1", "ece"] == pytest.approx(0.0)
    assert table.loc["1", "roc_auc"] == 0.5
    assert table.loc["2", "fpr"] == 0.0
    assert np.isnan(table.loc["2", "fnr"])
    assert np.isnan(table.loc["2", "roc_auc"])
    assert table.loc["2", "ece"] == pytest.approx(0.1)
    assert table.loc["7", "roc_auc"] == 1.0
    assert table.loc["7", "fnr"] == 1.0


def test_area_key_normalises_codes() -> None:
    assert area_key(["005", "5", 5, "31", None, "x", "2.5"]).tolist()[:4] == ["5", "5", "5", "31"]
    assert area_key([None, "x", "2.5"]).isna().all()


def test_rates_recovered_on_generated_records() -> None:
    rng = np.random.default_rng(0)
    rates = {"1": 0.1, "2": 0.3, "3": 0.6}
    areas = np.repeat(list(rates), 4000)
    y = (rng.random(len(areas)) < np.vectorize(rates.get)(areas)).astype(int)
    p = np.vectorize(rates.get)(areas).astype(float)
    table = area_table(pd.Series(areas), y, p, threshold=0.5)
    for area, rate in rates.items():
        assert abs(table.loc[area, "arrest_rate"] - rate) < 0.03
        assert table.loc[area, "mean_predicted"] == pytest.approx(rate)
        assert table.loc[area, "ece"] < 0.03
    assert worst_area_ece(table)[0] in rates


def test_spatial_join_fills_missing_fields_only() -> None:
    shapes = {level: boundaries(_grid_shapes(level), level) for level in ("district", "community_area")}
    records = pd.DataFrame(
        {
            "district": ["009", None, None, None, ""],
            "community_area": ["12", None, None, "x", None],
            "latitude": [41.85, 41.85, None, 41.95, None],
            "longitude": [-87.75, -87.65, None, -87.65, None],
            # row 2 only has State Plane feet: a point inside square 3 (north-west).
            "x_coordinate": [None, None, 1_150_000.0, None, None],
            "y_coordinate": [None, None, 1_915_000.0, None, None],
        }
    )
    got = assign_areas(records, shapes)
    assert got["district"].tolist()[:2] == ["9", "2"]  # the record's own field wins
    assert got["district_source"].tolist() == ["record", "spatial", "spatial", "spatial", "none"]
    assert got.loc[2, "district"] == "3"
    assert got.loc[3, "community_area"] == "4"
    assert got.loc[0, "community_area"] == "12"
    assert pd.isna(got.loc[4, "district"])
    without = assign_areas(records, None)
    assert without["district_source"].tolist() == ["record", "none", "none", "none", "none"]


def test_area_tables_names_and_gaps_sentence() -> None:
    shapes = {level: boundaries(_grid_shapes(level), level) for level in ("district", "community_area")}
    rng = np.random.default_rng(1)
    n = 400
    records = pd.DataFrame(
        {
            "district": rng.choice(["1", "2", "3"], n),
            "community_area": rng.choice(["1", "2", "4"], n),
        }
    )
    y = rng.integers(0, 2, n)
    p = np.where(records["community_area"] == "4", 0.9, 0.5)  # community area 4 is badly calibrated
    tables = area_tables(records, y, p, 0.5, shapes)
    assert tables["community_area"].loc["4", "name"] == "D"
    sentence = gaps_sentence(largest_gaps(tables))
    assert "community area 4 (D)" in sentence
    assert sentence.count("Among") == 2


def test_choropleth_writes_png(tmp_path: Path) -> None:
    shape = boundaries(_grid_shapes("community_area"), "community_area")
    table = area_table(pd.Series(["1", "2", "3"]), np.array([1, 0, 1]), np.array([0.6, 0.2, 0.7]), 0.5)
    path = choropleths(table, shape, tmp_path / "maps.png")
    assert path.stat().st_size > 5_000
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not (SHARED / "community_areas.geojson").exists(), reason="no shared boundaries")
def test_spatial_join_with_the_city_boundaries_agrees_with_the_fields() -> None:
    """On real records, the point's district / community area equals the record's own field (almost always)."""
    if not (SHARED / "crimes_sample.csv").exists() or not (SHARED / "police_districts.geojson").exists():
        pytest.skip("no shared crimes sample")
    shapes = {
        "district": read_boundaries(SHARED / "police_districts.geojson", "district"),
        "community_area": read_boundaries(SHARED / "community_areas.geojson", "community_area"),
    }
    assert len(shapes["community_area"]) == 77
    real = pd.read_csv(SHARED / "crimes_sample.csv", dtype=str, nrows=2_000).dropna(subset=["latitude"])
    blank = real.assign(district=None, community_area=None)
    got = assign_areas(blank, shapes)
    for level in ("district", "community_area"):
        truth = area_key(real[level]).reset_index(drop=True)
        agree = (got[level].reset_index(drop=True) == truth).fillna(False).mean()
        assert agree > 0.95, (level, agree)


def test_boundaries_land_in_the_store_and_load_back(tmp_path: Path) -> None:
    from chicago_arrest.core.store import LocalStore
    from chicago_arrest.data.areas import (
        BOUNDARY_STORE_KEYS,
        land_boundaries,
        land_boundary_files,
        load_boundaries,
    )

    store = LocalStore(tmp_path / "store")
    assert load_boundaries(store) == {"district": None, "community_area": None}
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "community_areas.geojson").write_text(_grid_shapes("community_area").to_json())
    assert land_boundary_files(store, folder) == {"community_area": 4}
    loaded = load_boundaries(store)
    assert loaded["district"] is None
    assert loaded["community_area"] is not None
    assert sorted(loaded["community_area"]["area"]) == ["1", "2", "3", "4"]
    with pytest.raises(ValueError, match="district boundaries"):
        land_boundaries(store, "district", _grid_shapes("community_area").to_json().encode())
    assert not store.exists(BOUNDARY_STORE_KEYS["district"])
    with pytest.raises(ValueError, match="not a readable GeoJSON"):
        land_boundaries(store, "district", b"{oops")


def test_ingest_lands_the_boundaries_from_socrata_and_next_to_a_file(tmp_path: Path) -> None:
    from datetime import date

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.core.store import LocalStore
    from chicago_arrest.data.areas import BOUNDARY_STORE_KEYS
    from chicago_arrest.data.ingest import ingest_file, ingest_socrata
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations

    stations = generate_stations()
    crimes = generate_crimes(300, stations=stations, months=2)

    class Source:
        settings = Settings(data_dir=tmp_path)
        source = "fake"

        def fetch_crimes(self, start: date, end: date) -> pd.DataFrame:
            return crimes.iloc[:0]

        def fetch_stations(self) -> pd.DataFrame:
            return stations

        def fetch_boundaries(self, dataset_id: str) -> bytes:
            level = "district" if dataset_id == self.settings.districts_dataset_id else "community_area"
            return _grid_shapes(level).to_json().encode()

    store = LocalStore(tmp_path / "a")
    ingest_socrata(store, Source(), months=1, today=date(2017, 3, 5))
    assert all(store.exists(key) for key in BOUNDARY_STORE_KEYS.values())

    folder = tmp_path / "files"
    folder.mkdir()
    crimes.to_csv(folder / "crimes.csv", index=False)
    stations.to_csv(folder / "police_stations.csv", index=False)
    (folder / "police_districts.geojson").write_text(_grid_shapes("district").to_json())
    other = LocalStore(tmp_path / "b")
    ingest_file(other, folder / "crimes.csv", months=1)
    assert other.exists(BOUNDARY_STORE_KEYS["district"])
    assert not other.exists(BOUNDARY_STORE_KEYS["community_area"])


def test_districts_take_their_station_names_when_the_stations_are_landed(tmp_path: Path) -> None:
    from chicago_arrest.core.store import LocalStore
    from chicago_arrest.data.areas import land_boundaries, load_boundaries
    from chicago_arrest.data.stations import land_stations
    from chicago_arrest.data.synthetic import generate_stations

    shape = boundaries(_grid_shapes("district"), "district")
    stations = pd.DataFrame(
        {"district": ["001", "2", "Headquarters"], "district_name": ["Central", " ", "HQ"]}
    )
    named = name_districts(shape, stations)
    assert dict(zip(named["area"], named["name"], strict=True)) == {
        "1": "Central",
        "2": "B",
        "3": "C",
        "4": "D",
    }
    assert name_districts(shape, None) is shape

    store = LocalStore(tmp_path / "store")
    land_boundaries(store, "district", _grid_shapes("district").to_json().encode())
    assert list(load_boundaries(store)["district"]["name"]) == ["A", "B", "C", "D"]  # no stations yet
    land_stations(store, generate_stations())
    assert list(load_boundaries(store)["district"]["name"]) == [f"Station {i}" for i in range(1, 5)]
