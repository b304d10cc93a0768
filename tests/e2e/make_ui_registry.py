"""Fill a fresh local data folder for the web page's end-to-end tests, as the training pipeline would.

Run as a subprocess (it sets MLflow's global tracking URI), in parallel with other start-up work::

    python tests/e2e/make_ui_registry.py <data_dir> [<community_areas.geojson>]

Two versions trained by :func:`chicago_arrest.model.training.train_model` on generated records (an XGBoost
champion, a logistic-regression challenger), each evaluated on the test month and registered by the pipeline's
own register step (:func:`chicago_arrest.steps.release.register_step`: run metrics, reference profile, model
card); the aliases, a serving state with the challenger loaded at 0 %, and the community-area boundaries
landed in the object store (the real file when given, else 77 generated rectangles). Prints
``{"champion": "1", "challenger": "2", "areas": 77, "test_csv": "<path>"}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def generated_areas() -> bytes:
    """77 rectangles over Chicago in the City's GeoJSON layout (``area_numbe``, ``community``)."""
    features = []
    lon0, lat0, lon1, lat1 = -87.94, 41.64, -87.52, 42.02
    cols, rows = 7, 11
    for i in range(77):
        c, r = i % cols, i // cols
        west = lon0 + (lon1 - lon0) * c / cols
        east = lon0 + (lon1 - lon0) * (c + 1) / cols
        north = lat1 - (lat1 - lat0) * r / rows
        south = lat1 - (lat1 - lat0) * (r + 1) / rows
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append(
            {
                "type": "Feature",
                "properties": {"area_numbe": str(i + 1), "community": f"AREA {i + 1}"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def main(data_dir: str, boundaries: str = "") -> int:
    """Train, register and deploy two versions into ``data_dir``."""
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import joblib
    from mlflow.tracking import MlflowClient

    from chicago_arrest.core.names import CHALLENGER, CHAMPION, MODEL_NAME
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.areas import land_boundaries
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.state import ModelRef, ServingState, save_state
    from chicago_arrest.steps import write_dataset
    from chicago_arrest.steps.release import register_step

    root = Path(data_dir)
    settings = Settings(data_dir=root)
    work = root.parent / "ui-work"
    work.mkdir(parents=True, exist_ok=True)
    stations = generate_stations()
    crimes = generate_crimes(4_000, stations=stations, seed=29)
    train, test, window = time_split(crimes)
    test_path = work / "test.parquet"
    write_dataset(test, test_path)
    report = work / "report.html"
    report.write_text("<html><body>generated</body></html>", encoding="utf-8")
    versions: list[str] = []
    candidates: list[tuple[str, dict[str, Any]]] = [
        ("xgboost", {"n_estimators": 60, "max_depth": 4}),
        ("logreg", {"C": 0.05}),
    ]
    for model_type, params in candidates:
        model = train_model(
            train,
            stations,
            TrainConfig(model_type=model_type, params=params, backtest_folds=0, n_jobs=1),  # type: ignore[arg-type]
        ).model
        path = work / f"{model_type}.joblib"
        joblib.dump(model, path)
        evaluation = {
            "selected": model_type,
            "selected_index": 0,
            "candidates": {model_type: evaluate_model(model, test).flat_metrics()},
        }
        charts = work / f"charts-{model_type}"
        charts.mkdir(exist_ok=True)
        run = register_step(
            [str(path)],
            evaluation,
            test_path,
            report,
            charts,
            window=window.as_dict(),
            source="generated records (tests/e2e/make_ui_registry.py)",
            settings=settings,
        )
        versions.append(str(run["version"]))
    client = MlflowClient(settings.resolved_tracking_uri())
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, versions[0])
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, versions[1])
    save_state(
        ServingState(
            champion=ModelRef(versions[0], f"models:/{MODEL_NAME}/{versions[0]}"),
            challenger=ModelRef(versions[1], f"models:/{MODEL_NAME}/{versions[1]}"),
            canary_percent=0,
        ),
        settings.serving_config_path,
    )
    geojson = Path(boundaries).read_bytes() if boundaries else generated_areas()
    areas = land_boundaries(make_store(settings), "community_area", geojson)
    csv = work / "test.csv"
    test.to_csv(csv, index=False)
    print(json.dumps({CHAMPION: versions[0], CHALLENGER: versions[1], "areas": areas, "test_csv": str(csv)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
