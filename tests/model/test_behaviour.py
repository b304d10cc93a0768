"""Behavioural tests of the served model (Made-With-ML's model tier): directional, invariance and
minimum-functionality expectations on real-looking raw records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from chicago_arrest.model.artifact import ArrestModel

BASE = {
    "date": "2017-12-14T21:30:00.000",
    "iucr": "2027",
    "primary_type": "NARCOTICS",
    "description": "POSS: CRACK",
    "location_description": "SIDEWALK",
    "domestic": "false",
    "beat": "1113",
    "district": "011",
    "ward": "28",
    "community_area": "26",
    "fbi_code": "18",
    "x_coordinate": "1149000",
    "y_coordinate": "1899000",
    "latitude": "41.87",
    "longitude": "-87.72",
}
THEFT_ON_STREET = {
    **BASE,
    "iucr": "0820",
    "primary_type": "THEFT",
    "description": "$500 AND UNDER",
    "location_description": "STREET",
    "fbi_code": "06",
}


def score(model: ArrestModel, *records: dict) -> np.ndarray:
    return model.predict_arrest_probability(pd.DataFrame(list(records)))


def test_narcotics_scores_high(trained: ArrestModel) -> None:
    assert score(trained, BASE)[0] > 0.9


def test_theft_on_street_scores_well_below_narcotics(trained: ArrestModel) -> None:
    narcotics, theft = score(trained, BASE, THEFT_ON_STREET)
    assert theft < 0.35
    assert narcotics - theft > 0.5


@pytest.mark.parametrize("bearing", [0, 90, 180, 270])
def test_moving_a_point_10_metres_barely_changes_the_probability(trained: ArrestModel, bearing: int) -> None:
    to_plane = Transformer.from_crs("EPSG:4326", "EPSG:3435", always_xy=True)
    to_wgs = Transformer.from_crs("EPSG:3435", "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(bearing)
    records, moved = [], []
    for _ in range(40):
        lat, lon = rng.uniform(41.70, 41.98), rng.uniform(-87.80, -87.58)
        x, y = to_plane.transform(lon, lat)
        dx, dy = np.sin(np.radians(bearing)) * 10 / 0.3048006, np.cos(np.radians(bearing)) * 10 / 0.3048006
        lon2, lat2 = to_wgs.transform(x + dx, y + dy)
        for rec, (la, lo, xx, yy) in ((records, (lat, lon, x, y)), (moved, (lat2, lon2, x + dx, y + dy))):
            rec.append(
                {**THEFT_ON_STREET, "latitude": la, "longitude": lo, "x_coordinate": xx, "y_coordinate": yy}
            )
    delta = np.abs(score(trained, *records) - score(trained, *moved))
    assert delta.max() < 0.02, delta.max()
    # and the decision does not flip for points that are not on the threshold
    p = score(trained, *records)
    far = np.abs(p - trained.threshold) > 0.02
    assert (trained.predict(pd.DataFrame(records))[far] == trained.predict(pd.DataFrame(moved))[far]).all()


def test_no_coordinates_and_unseen_categories_still_score(trained: ArrestModel) -> None:
    record = {
        **THEFT_ON_STREET,
        "latitude": None,
        "longitude": "",
        "x_coordinate": None,
        "y_coordinate": "",
        "location_description": "SPACESHIP HANGAR",
        "beat": "9999",
        "iucr": "ZZZZ",
    }
    p = score(trained, record)
    assert np.isfinite(p).all()
    assert 0.0 <= p[0] <= 1.0


def test_only_required_fields_still_score(trained: ArrestModel) -> None:
    p = trained.predict_arrest_probability(
        pd.DataFrame([{"date": BASE["date"], "primary_type": "NARCOTICS", "iucr": "2027"}])
    )
    assert 0.0 <= p[0] <= 1.0


def test_typed_and_text_records_score_the_same(trained: ArrestModel) -> None:
    text = pd.DataFrame([BASE, THEFT_ON_STREET])
    typed = text.copy()
    typed["date"] = pd.to_datetime(typed["date"])
    for col in ("x_coordinate", "y_coordinate", "latitude", "longitude", "ward", "community_area"):
        typed[col] = typed[col].astype(float)
    typed["domestic"] = typed["domestic"] == "true"
    np.testing.assert_allclose(
        trained.predict_arrest_probability(text), trained.predict_arrest_probability(typed)
    )


def test_domestic_battery_direction(trained: ArrestModel) -> None:
    """The generator raises arrest odds for domestic incidents: the model must learn the direction."""
    battery = {
        **THEFT_ON_STREET,
        "primary_type": "BATTERY",
        "iucr": "0486",
        "fbi_code": "08B",
        "description": "DOMESTIC BATTERY SIMPLE",
        "location_description": "RESIDENCE",
    }
    rows = [
        {**battery, "domestic": d, "date": f"2017-12-{day:02d}T20:00:00.000"}
        for d in ("true", "false")
        for day in range(1, 29)
    ]
    p = score(trained, *rows)
    assert p[:28].mean() > p[28:].mean()
