"""End-to-end: the real training pipeline under kfp.local (``chicago-arrest pipeline run``) on generated data.

Two runs in one MLflow store: the first trains all three model types and its model becomes champion (its
console output is the quiet one a person sees: one line per step, logs in files); the second (one model type,
canary 10 %, ``--verbose``) goes through the champion/challenger gate and the deploy step. A third run, on a
file without the ``arrest`` column, fails in a step and says which, why and where its log is, in one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from chicago_arrest.data.synthetic import generate_crimes, generate_stations
from chicago_arrest.registry.models import CHALLENGER, CHAMPION, EXPERIMENT_NAME, MODEL_NAME, alias_version
from chicago_arrest.steps.experiment import COLUMNS, evaluate_file

REPO = Path(__file__).resolve().parents[2]
TASKS = ("ingest", "validate", "enrich", "split", "train", "evaluate", "register", "gate", "deploy")
#: What the quiet console calls each task of a three-model run (one line each, log file <label>.log).
STEPS = (
    "ingest",
    "validate",
    "split",
    "enrich",
    "train logreg",
    "train random_forest",
    "train xgboost",
    "evaluate",
    "register",
    "gate",
    "deploy",
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    stations = generate_stations()
    crimes = generate_crimes(6_000, stations=stations, seed=21)
    # Known bad rows: the contract must quarantine exactly these, with reasons.
    crimes.loc[0, "date"] = "not-a-date"
    crimes.loc[1, ["latitude", "longitude"]] = ["40.7128", "-74.0060"]  # New York
    crimes.loc[2, "arrest"] = "maybe"
    crimes.loc[3, "id"] = crimes.loc[4, "id"]
    crimes.to_csv(root / "crimes.csv", index=False)
    stations.to_csv(root / "police_stations.csv", index=False)
    return root


def run_pipeline(
    workspace: Path, *args: str, data: str = "data", source: str = "crimes.csv", succeed: bool = True
) -> tuple[subprocess.CompletedProcess, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_", "KFP_"))}
    env.update({"ARREST_DATA_DIR": str(workspace / data), "ARREST_CPUS": "2"})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chicago_arrest.cli",
            "pipeline",
            "run",
            "--source",
            str(workspace / source),
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (proc.returncode == 0) == succeed, proc.stdout[-5000:] + proc.stderr[-5000:]
    runs = sorted(
        (workspace / data / "kfp").glob("chicago-arrest-training-*"), key=lambda p: p.stat().st_mtime
    )
    return proc, runs[-1]


def outputs(run_dir: Path, task: str) -> dict:
    path = next(run_dir.rglob(f"{task}/executor_output.json"))
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def first_run(workspace: Path) -> tuple[subprocess.CompletedProcess, Path]:
    return run_pipeline(workspace, "--canary-percent", "10")


def test_every_task_succeeded(first_run) -> None:
    _, run_dir = first_run
    log = re.sub(r"\x1b\[[0-9;]*m", "", (run_dir / "logs" / "kfp.log").read_text())
    for task in TASKS:
        assert f"Task '{task}' finished with status SUCCESS" in log
    assert "FAILURE" not in log
    assert len(list(run_dir.glob("for-loop-*/train/executor_output.json"))) == 3


def test_quiet_output_is_one_line_per_step(first_run) -> None:
    proc, run_dir = first_run
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("target: local (")
    assert lines[1].startswith("pipeline    chicago-arrest-training on local")
    for label in STEPS:
        named = [line for line in lines if re.match(rf"  {label} +\d+\.\d s  \S", line)]
        assert len(named) == 1, (label, named)
    assert len(lines) < 60, proc.stdout
    for chatter in ("executor_input", "KFP Executor", "Streamed logs", "finished with status", "Traceback"):
        assert chatter not in proc.stdout + proc.stderr
    (validate,) = (line for line in lines if line.startswith("  validate "))
    assert validate.endswith("5,996 valid, 3 quarantined (of 5,999)")
    (evaluate,) = (line for line in lines if line.startswith("  evaluate "))
    selected = outputs(run_dir, "evaluate")["parameterValues"]["Output"]["selected"]
    assert f"  selected {selected}: " in evaluate
    (train,) = (line for line in lines if line.startswith("  train logreg "))
    assert re.search(r"calibration ROC-AUC 0\.\d{3}, fit [\d.,]+ s, \d+ features$", train)
    (gate,) = (line for line in lines if line.startswith("  gate "))
    assert "promote v1: first model" in gate
    assert f"step logs        {run_dir / 'logs'}" in proc.stdout
    assert f"training report  {run_dir / 'evaluate' / 'report.html'}" in proc.stdout


def test_every_step_has_its_full_log(first_run) -> None:
    _, run_dir = first_run
    logs = run_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        [*(f"{s.replace(' ', '-')}.log" for s in STEPS), "kfp.log", "steps.json"]
    )
    resources = {r["step"]: r for r in json.loads((logs / "steps.json").read_text())}
    assert sorted(resources) == sorted(STEPS)
    assert all(r["ok"] and r["cpu_s"] > 0 and 50 < r["peak_rss_mb"] < 1024 for r in resources.values())
    assert "Got executor_input" in (logs / "ingest.log").read_text()
    assert "summary: 5,996 valid, 3 quarantined (of 5,999)" in (logs / "validate.log").read_text()
    assert "xgboost trained in" in (logs / "train-xgboost.log").read_text()


def test_quarantine_counts_add_up(first_run) -> None:
    _, run_dir = first_run
    ingested = outputs(run_dir, "ingest")["parameterValues"]["Output"]
    # Nothing is lost: the one duplicated id is replaced by its latest version at landing (Socrata's
    # primary key), the undated record travels with the window to the contract.
    assert ingested["duplicates_replaced"] == 1
    assert ingested["undated"] == 1
    assert ingested["rows"] == 6_000 - 1
    counts = outputs(run_dir, "validate")["parameterValues"]["Output"]
    assert counts["rows_in"] == ingested["rows"]
    assert counts["rows_in"] == counts["valid"] + counts["quarantined"]
    assert counts["quarantined"] == 3
    quarantine = pd.read_parquet(run_dir / "validate" / "quarantine")
    assert len(quarantine) == 3
    assert quarantine["reason"].str.len().gt(0).all()
    reasons = ";".join(quarantine["reason"])
    for reason in ("bad_date:date", "outside_chicago", "bad_bool:arrest"):
        assert reason in reasons


def test_champion_registered_with_metrics_and_report(first_run, workspace: Path) -> None:
    proc, run_dir = first_run
    client = MlflowClient(f"sqlite:///{workspace / 'data' / 'mlflow' / 'mlflow.db'}")
    champion = alias_version(client, CHAMPION)
    assert champion == "1"
    assert alias_version(client, CHALLENGER) is None  # a first run leaves no challenger
    version = client.get_model_version(MODEL_NAME, champion)
    assert {"model_type", "train_window", "test_window", "gate", "source"} <= set(version.tags)
    assert version.tags["gate"] == "passed"
    metric_tags = [k for k in version.tags if k.startswith(("test_", "window.")) and k != "test_window"]
    assert not metric_tags  # metrics stay on the run
    assert "Test: ROC-AUC 0." in version.description
    assert version.description.splitlines()[-1].startswith("Gate: promoted to champion: first model")
    metrics = client.get_run(version.run_id).data.metrics
    assert 0.5 < metrics["selected_test_roc_auc"] <= 1.0
    assert metrics["selected_test_ece"] < 0.1
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    nested = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert len(nested) == 3
    assert all("test_roc_auc" in r.data.metrics and "test_no_ab_roc_auc" in r.data.metrics for r in nested)
    report = (run_dir / "evaluate" / "report").read_text()
    assert "Data flow" in report
    assert report.count("data:image/png;base64,") >= 3
    assert (run_dir / "evaluate" / "report.html").read_text() == report
    assert "Champion vs challenger" in (run_dir / "gate" / "report.html").read_text()
    assert (run_dir / "validate" / "report.html").is_file()
    artifacts = client.list_artifacts(parents[0].info.run_id, "report")
    assert [a.path for a in artifacts] == ["report/training_report.html"]
    state = json.loads((workspace / "data" / "serving" / "serving.json").read_text())
    assert state["champion"]["version"] == "1"
    assert state["canary_percent"] == 0
    assert "champion         Test: ROC-AUC" in proc.stdout
    assert "registered model" in proc.stdout


def test_model_evaluate_gives_the_pipeline_metrics(first_run, workspace: Path) -> None:
    """One training path: ``model evaluate`` on the same file gives the KFP run's metrics, exactly."""
    _, run_dir = first_run
    evaluation = outputs(run_dir, "evaluate")["parameterValues"]["Output"]
    table, window = evaluate_file(workspace / "crimes.csv")
    assert window == outputs(run_dir, "split")["parameterValues"]["Output"]
    for row in table.to_dict(orient="records"):
        metrics = evaluation["candidates"][row["model"]]
        assert row["calibration_auc"] == metrics["calibration_auc"]
        for key in COLUMNS:
            assert row[key] == metrics[f"test_{key}"], (row["model"], key)
            assert row[f"no_ab_{key}"] == metrics[f"test_no_ab_{key}"], (row["model"], key)
        assert row["selected"] == (row["model"] == evaluation["selected"])


def test_second_run_goes_through_the_gate(first_run, workspace: Path) -> None:
    # A margin of -1 and a loose ECE bound make the challenger pass whatever the noise of a ~500-row month:
    # this test is about the gate and the canary rollout, the rule itself is tested in test_registry.py.
    proc, run_dir = run_pipeline(
        workspace,
        "--models",
        "logreg",
        "--canary-percent",
        "10",
        "--promotion-margin",
        "-1.0",
        "--max-ece",
        "0.5",
        "--verbose",
    )
    # --verbose streams every step's output as kfp.local does, and the log files are written all the same.
    assert "Streamed logs" in proc.stdout
    assert "logreg trained in" in proc.stdout
    assert "logreg trained in" in (run_dir / "logs" / "train-logreg.log").read_text()
    decision = outputs(run_dir, "gate")["parameterValues"]["Output"]
    assert decision["champion_version"] == "1"
    assert decision["challenger_version"] == "2"
    assert decision["champion"]["roc_auc"] > 0.5
    assert decision["passed"] is True
    assert decision["promoted"] is False
    deployed = outputs(run_dir, "deploy")["parameterValues"]["Output"]
    assert deployed["action"] == "canary"
    assert deployed["challenger"] == "2"
    state = json.loads((workspace / "data" / "serving" / "serving.json").read_text())
    assert state["champion"]["version"] == "1"
    assert state["challenger"]["version"] == "2"
    assert state["canary_percent"] == 10
    client = MlflowClient(f"sqlite:///{workspace / 'data' / 'mlflow' / 'mlflow.db'}")
    assert (alias_version(client, CHAMPION), alias_version(client, CHALLENGER)) == ("1", "2")


def test_a_failing_step_is_named_with_its_log_in_one_line(workspace: Path) -> None:
    crimes = pd.read_csv(workspace / "crimes.csv", dtype=str)
    crimes.drop(columns=["arrest"]).to_csv(workspace / "no_arrest.csv", index=False)
    proc, run_dir = run_pipeline(workspace, data="failing", source="no_arrest.csv", succeed=False)
    assert proc.returncode == 1
    log = run_dir / "logs" / "validate.log"
    (error,) = proc.stderr.strip().splitlines()
    assert error.startswith("error: step 'validate' failed: ValueError: the data contract rejected every row")
    assert error.endswith(f"(log: {log})")
    assert "error: ValueError: the data contract rejected every row" in log.read_text()
    assert re.search(r"^  validate +\d+\.\d s  FAILED$", proc.stdout, re.MULTILINE)
    assert "  split " not in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
