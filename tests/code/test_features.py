"""Feature transformers: soft IQR fences, frequency encoding, binned mutual information, the compiled encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score

from chicago_arrest.model.encoding import build_feature_pipeline
from chicago_arrest.model.feature_spec import MISSING
from chicago_arrest.model.features import (
    FastEncoder,
    FrequencyEncoder,
    IQRClipper,
    MutualInfoSelector,
    RawFeatures,
)
from chicago_arrest.model.mutual_info import binned_mutual_information


def test_soft_fences_are_continuous_and_monotone() -> None:
    x = np.r_[np.arange(100.0), 1_000.0, 10_000.0][:, None]
    clip = IQRClipper(k=1.5).fit(x)
    grid = np.linspace(-500, 20_000, 5_000)[:, None]
    out = clip.transform(grid).ravel()
    assert (np.diff(out) > 0).all()  # strictly monotone: no point mass for a tree to split on
    assert np.abs(np.diff(out)).max() < 5  # continuous (grid step ~4.1)
    inside = (grid.ravel() >= clip.low_[0]) & (grid.ravel() <= clip.high_[0])
    np.testing.assert_allclose(out[inside], grid.ravel()[inside])
    hard = IQRClipper(mode="hard").fit(x).transform(grid).ravel()
    assert hard.max() == pytest.approx(clip.high_[0])
    with pytest.raises(ValueError, match="mode"):
        IQRClipper(mode="medium").fit(x)


def test_frequency_encoder_unknown_is_zero() -> None:
    enc = FrequencyEncoder().fit(pd.DataFrame({"c": ["a", "a", "b", "c"]}))
    np.testing.assert_allclose(enc.transform(pd.DataFrame({"c": ["a", "zzz"]})).ravel(), [0.5, 0.0])


def test_binned_mutual_information_matches_exact_for_discrete() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    noisy = np.where(rng.uniform(size=y.size) < 0.8, y, 1 - y)
    mi = binned_mutual_information(np.c_[y, noisy, rng.normal(size=y.size)], y)
    assert mi[0] == pytest.approx(mutual_info_score(y, y))
    assert mi[1] == pytest.approx(mutual_info_score(y, noisy))
    assert mi[2] < 0.002


def test_mi_selector_threshold_and_minimum() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5_000)
    X = np.c_[y + rng.normal(0, 0.3, y.size), rng.normal(size=(y.size, 6))]
    sel = MutualInfoSelector(threshold=0.05, min_features=1).fit(X, y)
    assert sel.get_support().tolist() == [True] + [False] * 6
    assert MutualInfoSelector(threshold=10.0, min_features=3).fit(X, y).get_support().sum() == 3


def test_raw_features_never_fail_on_bad_values(stations: pd.DataFrame, crimes: pd.DataFrame) -> None:
    raw = RawFeatures(stations).fit(crimes)
    odd = pd.DataFrame(
        [{"date": "garbage", "primary_type": None, "latitude": "north", "beat": 12.0, "domestic": "maybe"}]
    )
    out = raw.transform(odd)
    assert out.loc[0, "primary_type"] == MISSING
    assert out.loc[0, "beat"] == "0012"
    assert out.loc[0, "domestic"] == MISSING
    assert np.isnan(out.loc[0, "station_distance_m"])
    assert out.loc[0, "has_coordinates"] == 0.0


def test_compiled_encoder_reproduces_scikit_learn(stations: pd.DataFrame, crimes: pd.DataFrame) -> None:
    y = (crimes["arrest"] == "true").astype(int).to_numpy()
    pipe = build_feature_pipeline(stations).fit(crimes, y)
    raw, encoder = pipe.named_steps["raw"], pipe.named_steps["encode"]
    fast = FastEncoder(encoder)
    unseen = crimes.head(200).copy()
    unseen.loc[unseen.index[:50], "iucr"] = "ZZZZ"
    unseen.loc[unseen.index[50:100], "location_description"] = "MOON BASE"
    unseen.loc[unseen.index[100:150], ["latitude", "longitude", "x_coordinate", "y_coordinate"]] = ""
    for frame in (crimes, unseen):
        assert fast.verify(encoder, raw.transform(frame))
    cols = fast.block_slice("skewed")
    arrays = raw.transform_arrays(crimes.head(30))
    np.testing.assert_allclose(
        fast.transform(arrays)[:, cols],
        fast.transform_block("skewed", {"station_distance_m": arrays["station_distance_m"]}),
    )
