"""End-to-end: the batch-scoring and monitoring pipelines under kfp.local (``make batch-score`` / ``make monitor``).

A logistic regression trained on generated records is registered as champion with its reference profile (as
the register step stores it); then the real CLI runs both pipelines as a person would: scoring a file with a
bad record (quarantined, not lost, same object on a re-run), monitoring the same distribution (``ok``), a
shifted time of day with labels removed (``drift``, realised ``pending``) whose retrain trigger starts a local
training run (pointed at a missing file, so it stops at once with its own error line), and bad input (a
missing column, an unknown version): one line, exit 1, nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from tests.mlflow_store import mlflow_state_restored

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose registry has a champion (version 1) with its reference profile; the records as files."""
    import mlflow

    from chicago_arrest.core.names import CHAMPION, MODEL_NAME
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model
    from chicago_arrest.steps.monitoring import store_reference_profile

    root = tmp_path_factory.mktemp("loop")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    with mlflow_state_restored():  # configure_mlflow sets the process-wide tracking URI
        client = configure_mlflow(Settings(data_dir=root / "data"))
        stations = generate_stations()
        train, test, _ = time_split(generate_crimes(12_000, stations=stations, seed=11))
        model = train_model(train, stations, TrainConfig(model_type="logreg")).model
        with mlflow.start_run() as run:
            info = log_arrest_model(model, train, MODEL_NAME)
        version = str(info.registered_model_version)
        metrics = {f"test_{k}": v for k, v in evaluate_model(model, test).overall.items()}
        store_reference_profile(
            client, {"run_id": run.info.run_id, "version": version, "metrics": metrics}, model, test
        )
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    recent = generate_crimes(3_000, stations=stations, seed=12, start="2017-11-01", months=2)
    recent.loc[0, "date"] = "not-a-date"
    recent.to_csv(root / "recent.csv", index=False)
    shifted = recent.drop(columns=["arrest"]).iloc[1:].copy()
    shifted["date"] = pd.to_datetime(shifted["date"]).dt.normalize().add(pd.Timedelta(hours=3)).astype(str)
    shifted.to_csv(root / "shifted.csv", index=False)
    recent.drop(columns=["iucr"]).to_csv(root / "no_iucr.csv", index=False)
    return root


def cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_", "KFP_"))}
    env.update({"ARREST_DATA_DIR": str(workspace / "data"), "ARREST_CPUS": "1"})
    return subprocess.run(
        [sys.executable, "-m", "chicago_arrest.cli", "pipeline", *args, "--target", "local"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_scoring_pipeline(workspace: Path) -> None:
    first = cli(workspace, "batch-score", "--source", str(workspace / "recent.csv"))
    assert first.returncode == 0, first.stderr
    assert "target: local" in first.stdout
    assert "batch-score" in first.stdout  # the quiet progress line of the step
    predictions = sorted((workspace / "data" / "store" / "predictions").glob("recent-*-v1.parquet"))
    assert len(predictions) == 1, predictions
    scored = pd.read_parquet(predictions[0])
    assert len(scored) == 2_999
    assert list(scored.columns) == ["id", "arrest_probability", "arrest", "model_version", "scored_at"]
    quarantine = pd.read_parquet(predictions[0].with_suffix("").with_suffix(".quarantine.parquet"))
    assert quarantine["reason"].tolist() == ["bad_date:date"]
    again = cli(workspace, "batch-score", "--source", str(workspace / "recent.csv"), "--version", "1")
    assert again.returncode == 0, again.stderr
    assert len(list((workspace / "data" / "store" / "predictions").glob("*.parquet"))) == 2  # rewritten


def test_monitoring_pipeline_ok_then_drift_with_a_local_retrain(workspace: Path) -> None:
    summary = workspace / "ok.json"
    ok = cli(
        workspace,
        "monitor",
        "--source",
        str(workspace / "recent.csv"),
        "--retrain",
        "never",
        "--summary",
        str(summary),
    )
    assert ok.returncode == 0, ok.stderr
    result = json.loads(summary.read_text())
    assert result["decision"] == "ok", result
    assert result["retrain"] == "disabled"
    assert set(result["realised"]) >= {"roc_auc", "pr_auc", "ece"}

    summary = workspace / "drift.json"
    drift = cli(
        workspace,
        "monitor",
        "--source",
        str(workspace / "shifted.csv"),
        "--summary",
        str(summary),
        "--training-source",
        str(workspace / "missing.csv"),
    )
    assert drift.returncode == 0, drift.stderr
    result = json.loads(summary.read_text())
    assert result["decision"] == "drift"
    assert result["psi"]["hour_of_day"] >= 0.2
    assert result["realised"] is None  # no labels: pending
    assert result["retrain"] == "started"
    assert "DRIFT" in drift.stdout
    # The trigger started `pipeline run --target local` in the background; pointed at a missing file, that
    # run stops at once with its own one-line error, in its log.
    (log,) = (workspace / "data" / "retrain").glob("*.log")
    deadline = time.monotonic() + 120
    while "SOURCE file not found" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(1)
    assert "pipeline run --target local --source" in log.read_text()
    assert "SOURCE file not found" in log.read_text()
    reports = sorted((workspace / "data" / "kfp").glob("chicago-arrest-monitoring-*/monitor/report.html"))
    assert len(reports) == 2
    assert "PSI per field" in reports[-1].read_text()


def test_bad_input_is_one_line_and_writes_nothing(workspace: Path) -> None:
    before = sorted((workspace / "data" / "store").rglob("*"))
    missing = cli(workspace, "batch-score", "--source", str(workspace / "no_iucr.csv"))
    assert missing.returncode == 1
    assert "missing column(s) iucr" in missing.stderr
    unknown = cli(workspace, "monitor", "--source", str(workspace / "recent.csv"), "--version", "7")
    assert unknown.returncode == 1
    assert "model version 7" in unknown.stderr
    assert sorted((workspace / "data" / "store").rglob("*")) == before
