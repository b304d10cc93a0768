"""Rebuild the golden serving fixtures: a small MLflow pyfunc model folder, a V2 request and its expected output.

Run from the repository root after a change that alters predictions or the pickle format (new scikit-learn,
new feature code)::

    .venv/bin/python tests/data/golden/make_golden_model.py

It trains a logistic regression on 3,000 generated records (seeded: the same code gives the same predictions),
logs it exactly as the pipeline does (:func:`chicago_arrest.registry.models.log_arrest_model`) into a throw-away
MLflow store, downloads the logged folder to ``tests/data/golden/model/`` (what KServe's storage initializer
puts in ``/mnt/models``), and writes ``v2_request.json`` / ``v2_expected.json``. The expected values come
from the in-process model, so the end-to-end test checks that the server returns exactly what the model says.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "model"
REQUEST = HERE / "v2_request.json"
EXPECTED = HERE / "v2_expected.json"
ROWS = 6


def _v2_request(rows: Any) -> dict[str, Any]:
    """A V2 pd request with natural datatypes (BYTES, BOOL, INT64, FP64), one null, one extra field."""

    def text(col: str) -> list[str | None]:
        return [v if v != "" else None for v in rows[col]]

    def number(col: str) -> list[float | None]:
        return [float(v) if v != "" else None for v in rows[col]]

    n = len(rows)
    inputs: list[dict[str, Any]] = [
        {"name": "date", "datatype": "BYTES", "data": text("date")},
        {"name": "primary_type", "datatype": "BYTES", "data": text("primary_type")},
        {"name": "iucr", "datatype": "BYTES", "data": text("iucr")},
        {"name": "description", "datatype": "BYTES", "data": text("description")},
        {"name": "location_description", "datatype": "BYTES", "data": text("location_description")},
        {"name": "domestic", "datatype": "BOOL", "data": [v == "true" for v in rows["domestic"]]},
        {"name": "beat", "datatype": "BYTES", "data": text("beat")},
        {"name": "district", "datatype": "BYTES", "data": text("district")},
        {"name": "ward", "datatype": "INT64", "data": [int(v) for v in rows["ward"]]},
        {"name": "community_area", "datatype": "INT64", "data": [int(v) for v in rows["community_area"]]},
        {"name": "fbi_code", "datatype": "BYTES", "data": text("fbi_code")},
        {"name": "x_coordinate", "datatype": "FP64", "data": number("x_coordinate")},
        {"name": "y_coordinate", "datatype": "FP64", "data": number("y_coordinate")},
        {"name": "latitude", "datatype": "FP64", "data": number("latitude")},
        {"name": "longitude", "datatype": "FP64", "data": number("longitude")},
        {
            "name": "case_number",
            "datatype": "BYTES",
            "data": text("case_number"),
        },  # not a model field: ignored
    ]
    for item in inputs:
        item["shape"] = [n]
    return {"id": "golden-1", "parameters": {"content_type": "pd"}, "inputs": inputs}


def main() -> int:
    """Build the fixtures."""
    # MLflow 3 copies uv.lock and pyproject.toml of the working directory into a logged model; the fixture
    # does not need them (requirements.txt pins the versions).
    os.environ["MLFLOW_LOG_UV_FILES"] = "false"
    import mlflow
    import pandas as pd
    from arrest_server.validation import parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, load_arrest_model, log_arrest_model

    logging.basicConfig(level=logging.WARNING)
    stations = generate_stations()
    crimes = generate_crimes(3_000, stations=stations, seed=4242)
    train, test, _ = time_split(crimes)
    result = train_model(train, stations, TrainConfig(model_type="logreg", random_state=0))

    # A mix: a missing-coordinates row, a narcotics row (near-certain arrest) and ordinary ones.
    no_xy = test[test["latitude"] == ""].head(1)
    narcotics = test[test["primary_type"] == "NARCOTICS"].head(1)
    rest = test.drop(index=[*no_xy.index, *narcotics.index]).head(ROWS - len(no_xy) - len(narcotics))
    rows = pd.concat([rest, no_xy, narcotics]).reset_index(drop=True)

    with tempfile.TemporaryDirectory() as tmp:
        configure_mlflow(Settings(data_dir=Path(tmp)))
        with mlflow.start_run():
            info = log_arrest_model(result.model, train)
        if MODEL_DIR.exists():
            shutil.rmtree(MODEL_DIR)
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(MODEL_DIR))

    request = _v2_request(rows)
    model = load_arrest_model(str(MODEL_DIR))
    infer = InferRequest.from_inference_request(InferenceRequest.model_validate(request), "arrest-predictor")
    parsed = parse_v2(infer, max_rows=100)
    probabilities = model.predict_arrest_probability(parsed.frame)
    direct = model.predict_arrest_probability(rows)
    if not all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip(probabilities, direct, strict=True)):
        print("parsed request and raw records disagree", file=sys.stderr)
        return 1
    expected = {
        "model_name": "arrest-predictor",
        "threshold": model.threshold,
        "arrest_probability": [float(p) for p in probabilities],
        "arrest": [bool(p >= model.threshold) for p in probabilities],
        "tolerance": 1e-9,
    }
    REQUEST.write_text(json.dumps(request, indent=1) + "\n")
    EXPECTED.write_text(json.dumps(expected, indent=1) + "\n")
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    print(f"model folder {MODEL_DIR} ({size / 1024:.0f} KiB), threshold {model.threshold:.2f}")
    print("probabilities:", ", ".join(f"{p:.6f}" for p in probabilities))
    return 0


if __name__ == "__main__":
    sys.exit(main())
