"""Generated Socrata-schema records for tests, demos and benchmarks when the real data is not at hand.

The records look like the real export (same field names, text encodings, leading zeros, empty fields) and
carry a learnable arrest signal: a base rate per crime type (close to Chicago's published rates), shifted by
location, domestic flag, hour and distance to the nearest station. They are not real crimes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Transformer

from chicago_arrest.core.schema import RAW_COLUMNS

# (primary_type, share of records, arrest rate, [(iucr, description, fbi_code), ...])
_TYPES: tuple[tuple[str, float, float, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "THEFT",
        0.24,
        0.10,
        (("0820", "$500 AND UNDER", "06"), ("0810", "OVER $500", "06"), ("0860", "RETAIL THEFT", "06")),
    ),
    ("BATTERY", 0.18, 0.21, (("0486", "DOMESTIC BATTERY SIMPLE", "08B"), ("0460", "SIMPLE", "08B"))),
    ("CRIMINAL DAMAGE", 0.11, 0.06, (("1320", "TO VEHICLE", "14"), ("1310", "TO PROPERTY", "14"))),
    ("ASSAULT", 0.07, 0.17, (("0560", "SIMPLE", "08A"), ("051A", "AGGRAVATED: HANDGUN", "04A"))),
    ("DECEPTIVE PRACTICE", 0.06, 0.06, (("1153", "FINANCIAL IDENTITY THEFT OVER $ 300", "11"),)),
    ("OTHER OFFENSE", 0.06, 0.17, (("2825", "HARASSMENT BY TELEPHONE", "26"),)),
    ("BURGLARY", 0.05, 0.05, (("0610", "FORCIBLE ENTRY", "05"),)),
    (
        "NARCOTICS",
        0.05,
        0.995,
        (("2027", "POSS: CRACK", "18"), ("1811", "POSS: CANNABIS 30GMS OR LESS", "18")),
    ),
    ("ROBBERY", 0.04, 0.09, (("031A", "ARMED: HANDGUN", "03"),)),
    ("MOTOR VEHICLE THEFT", 0.04, 0.08, (("0910", "AUTOMOBILE", "07"),)),
    ("CRIMINAL TRESPASS", 0.025, 0.70, (("1330", "TO LAND", "26"),)),
    ("WEAPONS VIOLATION", 0.02, 0.78, (("143A", "UNLAWFUL POSS OF HANDGUN", "15"),)),
    ("PUBLIC PEACE VIOLATION", 0.008, 0.45, (("2820", "TELEPHONE THREAT", "24"),)),
    ("INTERFERENCE WITH PUBLIC OFFICER", 0.005, 0.92, (("3731", "OBSTRUCTING IDENTIFICATION", "24"),)),
    ("PROSTITUTION", 0.003, 0.996, (("1537", "SOLICIT FOR PROSTITUTE", "16"),)),
    ("LIQUOR LAW VIOLATION", 0.002, 0.99, (("2230", "ILLEGAL CONSUMPTION BY MINOR", "22"),)),
    ("GAMBLING", 0.001, 0.99, (("1661", "GAME/DICE", "19"),)),
)
# (location_description, share, log-odds shift)
_LOCATIONS: tuple[tuple[str, float, float], ...] = (
    ("STREET", 0.23, 0.3),
    ("RESIDENCE", 0.17, -0.6),
    ("APARTMENT", 0.13, -0.4),
    ("SIDEWALK", 0.08, 0.8),
    ("OTHER", 0.04, 0.0),
    ("PARKING LOT/GARAGE(NON.RESID.)", 0.03, -0.2),
    ("SMALL RETAIL STORE", 0.03, 0.9),
    ("DEPARTMENT STORE", 0.02, 1.4),
    ("RESTAURANT", 0.02, 0.1),
    ("ALLEY", 0.02, 0.5),
    ("RESIDENCE-GARAGE", 0.02, -0.5),
    ("CTA TRAIN", 0.01, 0.9),
    ("POLICE FACILITY/VEH PARKING LOT", 0.005, 2.0),
    ("GROCERY FOOD STORE", 0.015, 1.2),
    ("SCHOOL, PUBLIC, BUILDING", 0.01, 0.4),
)
_LAT0, _LON0 = 41.8781, -87.6298
_TO_3435 = Transformer.from_crs("EPSG:4326", "EPSG:3435", always_xy=True)


def generate_stations(seed: int = 7, n: int = 23) -> pd.DataFrame:
    """Generate police stations in the Socrata "Police Stations" schema.

    Args:
        seed: Random seed.
        n: Number of stations (the real table has 22 districts plus Headquarters).

    Returns:
        Frame with ``district, district_name, x_coordinate, y_coordinate, latitude, longitude`` (text values,
        as the export has them).
    """
    rng = np.random.default_rng(seed)
    lat = rng.uniform(41.66, 42.00, n)
    lon = rng.uniform(-87.80, -87.56, n)
    x, y = _TO_3435.transform(lon, lat)
    districts = [str(i + 1) for i in range(n - 1)] + ["Headquarters"]
    return pd.DataFrame(
        {
            "district": districts,
            "district_name": [f"Station {d}" for d in districts],
            "x_coordinate": [f"{v:.3f}" for v in x],
            "y_coordinate": [f"{v:.3f}" for v in y],
            "latitude": [f"{v:.8f}" for v in lat],
            "longitude": [f"{v:.8f}" for v in lon],
        }
    )


def generate_crimes(
    n: int = 5_000,
    start: str = "2017-01-01",
    months: int = 12,
    seed: int = 2017,
    stations: pd.DataFrame | None = None,
    missing_coordinates: float = 0.011,
) -> pd.DataFrame:
    """Generate crime records in the Socrata schema with a learnable arrest signal.

    Args:
        n: Number of records.
        start: First day of the first month.
        months: Number of calendar months covered.
        seed: Random seed (same seed, same records).
        stations: Stations to measure distance to (default: :func:`generate_stations`).
        missing_coordinates: Share of records with empty coordinates (1.1 % in the real 2017 data).

    Returns:
        Frame with the columns of :data:`chicago_arrest.core.schema.RAW_COLUMNS`, every value as text (empty string
        for missing), sorted by ``date`` then ``id`` like the export.
    """
    rng = np.random.default_rng(seed)
    stations = generate_stations() if stations is None else stations

    t0 = pd.Timestamp(start)
    t1 = t0 + pd.DateOffset(months=months)
    seconds = rng.uniform(0, (t1 - t0).total_seconds(), n)
    # Crime times cluster in the afternoon / evening.
    dates = (t0 + pd.to_timedelta(seconds, unit="s")).floor("min")
    hour_shift = rng.normal(16, 5, n).round().astype(int) % 24
    dates = (
        dates.normalize() + pd.to_timedelta(hour_shift, unit="h") + pd.to_timedelta(dates.minute, unit="m")
    )

    type_p = np.array([t[1] for t in _TYPES])
    type_idx = rng.choice(len(_TYPES), n, p=type_p / type_p.sum())
    loc_p = np.array([loc[1] for loc in _LOCATIONS])
    loc_idx = rng.choice(len(_LOCATIONS), n, p=loc_p / loc_p.sum())

    lat = np.clip(rng.normal(_LAT0, 0.075, n), 41.65, 42.02)
    lon = np.clip(rng.normal(_LON0 - 0.06, 0.055, n), -87.93, -87.53)
    x, y = _TO_3435.transform(lon, lat)
    sx = stations["x_coordinate"].astype(float).to_numpy()
    sy = stations["y_coordinate"].astype(float).to_numpy()
    dist_m = np.sqrt((x[:, None] - sx[None, :]) ** 2 + (y[:, None] - sy[None, :]) ** 2).min(axis=1) * 0.3048

    domestic = rng.random(n) < np.where(np.isin(type_idx, [1, 3]), 0.45, 0.08)
    base = np.array([t[2] for t in _TYPES])[type_idx]
    logit = np.log(base / (1 - base))
    logit += np.array([loc[2] for loc in _LOCATIONS])[loc_idx] * (base < 0.9)
    logit += 0.5 * domestic - 0.00015 * (dist_m - 1500) * (base < 0.9)
    logit += 0.25 * np.cos(2 * np.pi * (dates.hour.to_numpy() - 21) / 24)
    arrest = rng.random(n) < 1 / (1 + np.exp(-logit))

    iucr, desc, fbi = [], [], []
    for i in type_idx:
        options = _TYPES[i][3]
        code, d, f = options[rng.integers(len(options))]
        iucr.append(code)
        desc.append(d)
        fbi.append(f)
    districts = rng.integers(1, 26, n)
    beats = districts * 100 + rng.integers(11, 35, n)
    no_xy = rng.random(n) < missing_coordinates

    def fmt(values: np.ndarray, spec: str) -> list[str]:
        return ["" if m else format(v, spec) for v, m in zip(values, no_xy, strict=True)]

    frame = pd.DataFrame(
        {
            "id": (10_800_000 + rng.permutation(n) * 3).astype(str),
            "case_number": [f"JA{100000 + i}" for i in rng.permutation(n)],
            "date": dates.strftime("%Y-%m-%dT%H:%M:%S.000"),
            "block": [f"0{rng.integers(10, 99)}XX S STATE ST" for _ in range(n)],
            "iucr": iucr,
            "primary_type": [_TYPES[i][0] for i in type_idx],
            "description": desc,
            "location_description": [_LOCATIONS[i][0] for i in loc_idx],
            "arrest": np.where(arrest, "true", "false"),
            "domestic": np.where(domestic, "true", "false"),
            "beat": [f"{b:04d}" for b in beats],
            "district": [f"{d:03d}" for d in districts],
            "ward": rng.integers(1, 51, n).astype(str),
            "community_area": rng.integers(1, 78, n).astype(str),
            "fbi_code": fbi,
            "x_coordinate": fmt(np.round(x), ".0f"),
            "y_coordinate": fmt(np.round(y), ".0f"),
            "year": dates.year.astype(str),
            "updated_on": (dates + pd.Timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000"),
            "latitude": fmt(lat, ".9f"),
            "longitude": fmt(lon, ".9f"),
        }
    )
    frame = frame[list(RAW_COLUMNS)]
    return frame.sort_values(["date", "id"], kind="stable").reset_index(drop=True)
