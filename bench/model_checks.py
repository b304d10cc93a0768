"""Model facts behind docs/model.md: calibration before/after, the effect of moving a point 10 m, per crime type.

Run: ``.venv/bin/python -m bench.model_checks`` (real sample when present, else generated records). Trains the
XGBoost model on the time split (January-November 2017, test December) exactly as the pipeline does, then:

1. ECE of the resampled classifier's raw scores (what SMOTE + undersampling give) against the calibrated
   probabilities, on the test month;
2. every geocoded test record moved 10 m north, south, east and west: the largest and 99th-percentile change
   in probability, and how many decisions flip;
3. the per-crime-type table of the test month.

Writes ``bench/results/model_checks.json``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Transformer

from bench.common import REPO_ROOT, load_sample, markdown_table

OUTPUT = REPO_ROOT / "bench" / "results" / "model_checks.json"
FEET_PER_M = 1 / 0.3048006096012192


def moved(records: pd.DataFrame, dx_m: float, dy_m: float) -> pd.DataFrame:
    """The records with their coordinates moved by (dx, dy) metres (lat/lon and x/y consistently)."""
    to_plane = Transformer.from_crs("EPSG:4326", "EPSG:3435", always_xy=True)
    to_wgs = Transformer.from_crs("EPSG:3435", "EPSG:4326", always_xy=True)
    x, y = to_plane.transform(
        records["longitude"].astype(float).to_numpy(), records["latitude"].astype(float).to_numpy()
    )
    x, y = x + dx_m * FEET_PER_M, y + dy_m * FEET_PER_M
    lon, lat = to_wgs.transform(x, y)
    out = records.copy()
    out["longitude"], out["latitude"], out["x_coordinate"], out["y_coordinate"] = lon, lat, x, y
    return out


def main() -> dict[str, Any]:
    """Run the checks and print them."""
    from chicago_arrest.core.parsing import labels
    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.evaluate import evaluate_model, expected_calibration_error
    from chicago_arrest.model.training import TrainConfig, train_model

    crimes, stations, source = load_sample()
    train, test, window = time_split(crimes)
    model = train_model(train, stations, TrainConfig(model_type="xgboost")).model
    y = labels(test).values
    raw = model.raw_scores(test)
    calibrated = model.predict_arrest_probability(test)
    calibration = {
        "positive_rate": float(y.mean()),
        "raw_mean_score": float(raw.mean()),
        "raw_ece": expected_calibration_error(y, raw),
        "calibrated_mean": float(calibrated.mean()),
        "calibrated_ece": expected_calibration_error(y, calibrated),
    }
    geo = test[(test["latitude"] != "") & test["latitude"].notna()]
    base = model.predict_arrest_probability(geo)
    deltas = np.max(
        [
            np.abs(model.predict_arrest_probability(moved(geo, dx, dy)) - base)
            for dx, dy in ((10, 0), (-10, 0), (0, 10), (0, -10))
        ],
        axis=0,
    )
    flips = sum(
        int((model.predict(moved(geo, dx, dy)) != (base >= model.threshold)).sum())
        for dx, dy in ((10, 0), (-10, 0), (0, 10), (0, -10))
    )
    move = {
        "records": len(geo),
        "max_change": float(deltas.max()),
        "p99_change": float(np.quantile(deltas, 0.99)),
        "median_change": float(np.median(deltas)),
        "decision_flips_of_4_moves": flips,
    }
    evaluation = evaluate_model(model, test)
    result = {
        "source": source,
        "window": window.as_dict(),
        "calibration": calibration,
        "move_10m": move,
        "per_type": evaluation.per_type.to_dict(orient="records"),
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    print(json.dumps({"calibration": calibration, "move_10m": move}, indent=2))
    table = evaluation.per_type.head(15)
    print(
        markdown_table(
            list(table.columns),
            [
                [
                    r["primary_type"],
                    r["rows"],
                    f"{r['arrest_rate']:.3f}",
                    f"{r['mean_predicted']:.3f}",
                    f"{r['roc_auc']:.3f}",
                ]
                for _, r in table.iterrows()
            ],
        )
    )
    return result


if __name__ == "__main__":
    main()
