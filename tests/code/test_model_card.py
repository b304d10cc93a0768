"""The model card: insights written by the evaluate step, the card's sections, publishing it with a version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from chicago_arrest.core.names import MODEL_NAME
from chicago_arrest.data.areas import boundaries
from chicago_arrest.data.split import time_split
from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.model.evaluate import evaluate_model
from chicago_arrest.model.training import TrainConfig, train_model
from chicago_arrest.reports.format import metric
from chicago_arrest.reports.maps import maps_png
from chicago_arrest.reports.model_card import (
    CARD_TAG,
    INSIGHTS_JSON,
    SECTIONS,
    build_card,
    insight_sections,
    publish_model_card,
    write_insights,
)

WINDOW = {
    "train_start": "2017-01-01",
    "train_end": "2017-11-30",
    "test_start": "2017-12-01",
    "test_end": "2017-12-31",
    "train_rows": 2700,
    "test_rows": 300,
    "kind": "time",
}


def _shapes(stations: pd.DataFrame) -> dict[str, Any]:
    """Generated community-area squares over the synthetic records' extent (keys 1..77 like the City's)."""
    squares, keys = [], []
    for i in range(11):
        for j in range(7):
            lon0, lat0 = -87.95 + 0.04 * i, 41.64 + 0.06 * j
            squares.append(box(lon0, lat0, lon0 + 0.04, lat0 + 0.06))
            keys.append(str(len(keys) + 1))
    frame = gpd.GeoDataFrame({"area_numbe": keys, "community": keys}, geometry=squares, crs="EPSG:4326")
    return {"community_area": boundaries(frame, "community_area"), "district": None}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, pd.DataFrame, Path]:
    stations = generate_stations()
    train, test, _ = time_split(generate_crimes(3_000, stations=stations, seed=8))
    model = train_model(train, stations, TrainConfig(model_type="logreg", backtest_folds=0, n_jobs=1)).model
    evaluation = evaluate_model(model, test)
    out = tmp_path_factory.mktemp("charts")
    write_insights(
        model,
        evaluation,
        test,
        out,
        shapes=_shapes(stations),
        upstream={"validate": {"rows_in": 3010, "quarantined": 10}},
        min_rows=5,
    )
    return model, evaluation, test, out


def test_insights_files(evaluated: tuple[Any, Any, pd.DataFrame, Path]) -> None:
    _model, evaluation, test, out = evaluated
    insights = json.loads((out / INSIGHTS_JSON).read_text())
    assert "date" in insights["importance"]
    assert "hour_sin" not in insights["importance"]
    assert list(insights["importance"].values()) == sorted(insights["importance"].values(), reverse=True)
    assert insights["quarantined"] == 10
    assert (out / maps_png("community_area")).read_bytes()[:4] == b"\x89PNG"
    district = pd.read_json(out / "areas_district.json", dtype={"area": str})
    assert district["rows"].sum() == len(test)
    # The rows of each district are the test rows with that district.
    first = district.iloc[0]
    mask = pd.to_numeric(test["district"], errors="coerce") == int(first["area"])
    assert first["rows"] == mask.sum()
    assert first["arrest_rate"] == pytest.approx(evaluation.y[mask.to_numpy()].mean())
    headings = [h for h, _ in insight_sections(out)]
    assert headings[0].startswith("Global importance")
    assert "Per community area (selected model, test window)" in headings


def test_card_has_every_section_in_order(evaluated: tuple[Any, Any, pd.DataFrame, Path]) -> None:
    model, evaluation, _, out = evaluated
    card = build_card(
        version="7",
        model_type="logreg",
        window=WINDOW,
        metrics=evaluation.flat_metrics(),
        source="generated",
        charts_dir=out,
        threshold=model.threshold,
    )
    md = card.markdown()
    positions = [md.index(f"## {s}") for s in SECTIONS]
    assert positions == sorted(positions)
    assert "version 7" in md
    assert "any decision about a person" in md.lower()
    assert "patrol allocation" in md
    assert "NARCOTICS" in md
    assert "updated after the report" in md
    assert "quarantined by the data contract: 10." in md
    assert "(2,700 rows)" in md
    low = evaluation.flat_metrics()["test_roc_auc_ci_low"]
    assert metric(low) in md  # the interval is in the metrics table
    assert "Among police districts with at least 5 test rows" in md
    assert f"![area maps community area]({maps_png('community_area')})" in md
    page = card.html()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page
    assert "data:image/png;base64" in page


def test_publish_logs_the_card_with_the_version(
    evaluated: tuple[Any, Any, pd.DataFrame, Path], tmp_path: Path
) -> None:
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model

    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    model, evaluation, test, out = evaluated
    client = configure_mlflow(Settings(data_dir=tmp_path))
    try:
        with mlflow.start_run() as run:
            info = log_arrest_model(model, test, "card-test-model")
        version = str(info.registered_model_version)
        client.update_model_version("card-test-model", version, description="logreg: ...\nGate: not run yet.")
        uri = publish_model_card(
            client,
            {"version": version, "run_id": run.info.run_id, "metrics": evaluation.flat_metrics()},
            model_type="logreg",
            window=WINDOW,
            source="generated",
            charts_dir=out,
            card_out=tmp_path / "kfp" / "card.html",
            name="card-test-model",
        )
        assert uri == f"runs:/{run.info.run_id}/model_card/model_card.html"
        mv = client.get_model_version("card-test-model", version)
        assert mv.tags[CARD_TAG] == uri
        # The served model's own metadata (its MLmodel file) names the same card.
        assert mlflow.models.get_model_info(info.model_uri).metadata["model_card"] == uri
        lines = mv.description.splitlines()
        assert lines[-1] == "Gate: not run yet."
        assert lines[-2].startswith(f"Model card: {uri}")
        files = {f.path for f in client.list_artifacts(run.info.run_id, "model_card")}
        assert {
            "model_card/model_card.md",
            "model_card/model_card.html",
            f"model_card/{maps_png('community_area')}",
        } <= files
        md = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/model_card/model_card.md")
        assert md.startswith(f"# Model card: {MODEL_NAME} version {version}")
        assert "<h2>Intended use</h2>" in (tmp_path / "kfp" / "card.html").read_text()
        assert np.isfinite(float(json.loads((out / INSIGHTS_JSON).read_text())["ece_worst_area"]))
    finally:
        mlflow.set_tracking_uri("")


def test_gate_option_refuses_a_challenger_whose_worst_area_ece_exceeds_the_bound() -> None:
    from chicago_arrest.release.gate import _headline, decide

    champion = {"roc_auc": 0.80, "ece": 0.01}
    challenger = {"roc_auc": 0.85, "ece": 0.01, "ece_worst_area": 0.09}
    assert decide(challenger, champion, 0.0, 0.05)[0]  # off by default
    passed, reason = decide(challenger, champion, 0.0, 0.05, max_area_ece=0.08)
    assert not passed
    assert "worst area 0.0900 exceeds the bound 0.0800" in reason
    assert decide(challenger, champion, 0.0, 0.05, max_area_ece=0.10)[0]
    no_area = {**challenger, "ece_worst_area": float("nan")}
    assert decide(no_area, champion, 0.0, 0.05, max_area_ece=0.01)[0]
    assert "ece_worst_area" not in _headline({"roc_auc": 1, "ece": 0, "pr_auc": 1, "brier": 0})
    assert _headline({**challenger, "pr_auc": 1, "brier": 0})["ece_worst_area"] == 0.09
