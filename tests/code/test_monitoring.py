"""Monitoring: the reference profile, PSI, realised metrics, the decision, batch scoring and the retrain trigger."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from chicago_arrest.core.settings import Settings
from chicago_arrest.data.synthetic import generate_crimes
from chicago_arrest.monitoring.drift import (
    HOUR,
    Profile,
    ProfileError,
    Thresholds,
    build_profile,
    decide,
    monitor,
    psi,
)

#: A calibrated scorer: the arrest rate of each crime type in a large generated sample.
_RATES = (
    generate_crimes(20_000, seed=1)
    .assign(y=lambda f: f["arrest"].str.lower().eq("true"))
    .groupby("primary_type")["y"]
    .mean()
)


def _probabilities(frame: pd.DataFrame) -> np.ndarray:
    return frame["primary_type"].map(_RATES).fillna(_RATES.mean()).to_numpy(dtype=float)


@pytest.fixture(scope="module")
def reference(stations: pd.DataFrame) -> tuple[pd.DataFrame, Profile]:
    from chicago_arrest.monitoring.drift import realised_metrics

    test = generate_crimes(6_000, stations=stations, seed=5, months=2)
    metrics = realised_metrics(test, _probabilities(test))
    assert metrics is not None
    return test, build_profile(test, _probabilities(test), metrics, "3")


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert 0 < psi([0.5, 0.5], [0.6, 0.4]) < psi([0.5, 0.5], [0.9, 0.1])
    assert np.isfinite(psi([1.0, 0.0], [0.0, 1.0]))  # empty bins are floored, never infinite


def test_profile_has_time_of_day_and_weekday_but_no_month_or_date(reference: Any) -> None:
    _, profile = reference
    assert {HOUR, "day_of_week", "primary_type", "latitude"} <= set(profile.fields)
    assert "date" not in profile.fields
    assert "month" not in profile.fields
    assert profile.fields["latitude"].kind == "numeric"
    assert len(profile.fields["latitude"].edges) >= 5
    categorical = profile.fields["primary_type"]
    assert categorical.labels()[-2:] == ["other", "missing"]
    for spec in profile.fields.values():
        assert sum(spec.shares) == pytest.approx(1.0)
    assert sum(profile.prediction) == pytest.approx(1.0)
    assert Profile.from_json(profile.to_json()) == profile


def test_unreadable_profile_is_one_clear_error() -> None:
    with pytest.raises(ProfileError, match="profile"):
        Profile.from_json("{}")


def test_same_distribution_is_ok(reference: Any, stations: pd.DataFrame) -> None:
    _, profile = reference
    current = generate_crimes(4_000, stations=stations, seed=99, months=1, start="2018-01-01")
    result = monitor(profile, current, _probabilities(current))
    assert result.decision == "ok", result.reasons
    assert max(result.psi.values()) < 0.2
    assert result.prediction_psi < 0.2
    assert result.realised is not None
    assert result.summary()["retrain"] == "not needed"


def test_a_shifted_field_crosses_the_threshold_and_says_drift(reference: Any, stations: pd.DataFrame) -> None:
    _, profile = reference
    current = generate_crimes(4_000, stations=stations, seed=99, months=1, start="2018-01-01")
    # Every record in the small hours: time of day shifts, nothing else does.
    current["date"] = pd.to_datetime(current["date"]).dt.normalize().add(pd.Timedelta(hours=3)).astype(str)
    result = monitor(profile, current, _probabilities(current))
    assert result.psi[HOUR] >= 0.2
    assert result.psi["primary_type"] < 0.2
    assert result.decision == "drift"
    assert any(HOUR in reason for reason in result.reasons)


def test_no_labels_is_pending(reference: Any, stations: pd.DataFrame) -> None:
    _, profile = reference
    current = generate_crimes(3_000, stations=stations, seed=7, months=1).drop(columns=["arrest"])
    result = monitor(profile, current, _probabilities(current))
    assert result.realised is None
    assert result.summary()["realised"] is None
    assert any("pending" in reason for reason in result.reasons)


def test_worse_realised_quality_is_degraded() -> None:
    thresholds = Thresholds(psi=0.2, max_auc_drop=0.03, max_ece=0.05)
    realised = {"roc_auc": 0.70, "pr_auc": 0.4, "ece": 0.08}
    decision, reasons = decide({"a": 0.01}, 0.01, realised, {"roc_auc": 0.80}, thresholds)
    assert decision == "degraded"
    assert any("ROC-AUC" in r for r in reasons)
    assert any("ECE" in r for r in reasons)
    # The thresholds are parameters: a looser bound lets the same numbers pass.
    assert decide({"a": 0.01}, 0.01, realised, {"roc_auc": 0.80}, Thresholds(0.2, 0.2, 0.1))[0] == "ok"


def test_summary_has_exactly_the_issue_keys(reference: Any) -> None:
    test, profile = reference
    summary = monitor(profile, test, _probabilities(test)).summary()
    assert set(summary) == {"decision", "reasons", "psi", "prediction_psi", "realised", "retrain"}
    json.dumps(summary)


# --- the retrain trigger -------------------------------------------------------------------------------------


class FakeKfp:
    """The few kfp.Client calls the trigger makes."""

    def __init__(self, uploaded: bool = True) -> None:
        self.uploaded, self.runs = uploaded, []

    def get_pipeline_id(self, name: str) -> str | None:
        return "pid" if self.uploaded else None

    def list_pipeline_versions(self, **kwargs: Any) -> Any:
        return SimpleNamespace(pipeline_versions=[SimpleNamespace(pipeline_version_id="v-new")])

    def create_experiment(self, name: str) -> Any:
        return SimpleNamespace(experiment_id="exp")

    def run_pipeline(self, **kwargs: Any) -> Any:
        self.runs.append(kwargs)
        return SimpleNamespace(run_id="run-42")

    def list_runs(self, experiment_id: str, filter: str, page_size: int) -> Any:
        (predicate,) = json.loads(filter)["predicates"]
        assert (predicate["operation"], predicate["key"]) == ("EQUALS", "display_name")
        found = [r for r in self.runs if r["job_name"] == predicate["stringValue"]]
        return SimpleNamespace(runs=[SimpleNamespace(run_id="run-42") for _ in found])


def test_cluster_trigger_starts_the_newest_training_version() -> None:
    from chicago_arrest.monitoring.retrain import start_cluster_run

    client = FakeKfp()
    assert start_cluster_run({"source": "s"}, client=client) == "kfp run run-42"
    (run,) = client.runs
    assert run["pipeline_id"] == "pid"
    assert run["version_id"] == "v-new"
    assert run["params"] == {"source": "s"}
    with pytest.raises(LookupError, match="not on KFP"):
        start_cluster_run({}, client=FakeKfp(uploaded=False))


def test_local_trigger_starts_a_detached_local_pipeline_run(settings: Settings) -> None:
    from chicago_arrest.monitoring.retrain import start_local_run

    calls = []
    log = start_local_run("/data/crimes.csv", settings, popen=lambda cmd, **kw: calls.append((cmd, kw)))
    ((command, kwargs),) = calls
    assert command[-6:] == ["pipeline", "run", "--target", "local", "--source", "/data/crimes.csv"]
    assert kwargs["start_new_session"] is True
    assert Path(log).is_file()
    assert Path(log).parent == (settings.data_dir / "retrain").resolve()


# --- the steps on a registered model ------------------------------------------------------------------------


@pytest.fixture
def registered(settings: Settings, stations: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A logistic regression registered as version 1 (champion) with its reference profile; version 2 without."""
    import mlflow

    from chicago_arrest.core.names import CHAMPION, MODEL_NAME
    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model
    from chicago_arrest.steps.monitoring import store_reference_profile

    monkeypatch.setenv("ARREST_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MLFLOW_LOG_UV_FILES", "false")
    client = configure_mlflow(settings)
    crimes = generate_crimes(3_000, stations=stations, seed=11)
    train, test, _ = time_split(crimes)
    model = train_model(train, stations, TrainConfig(model_type="logreg")).model
    runs = []
    for _ in range(2):
        with mlflow.start_run() as run:
            info = log_arrest_model(model, train, MODEL_NAME)
        runs.append({"run_id": run.info.run_id, "version": str(info.registered_model_version)})
    metrics = {f"test_{k}": v for k, v in evaluate_model(model, test).overall.items()}
    store_reference_profile(client, {**runs[0], "metrics": metrics}, model, test)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, runs[0]["version"])
    return {"client": client, "test": test, "crimes": crimes}


def test_batch_scoring_writes_predictions_and_quarantine_idempotently(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    from chicago_arrest.steps.monitoring import batch_score_step

    source = registered["test"].copy()
    source.loc[source.index[0], "date"] = "not-a-date"
    path = tmp_path / "recent.csv"
    source.to_csv(path, index=False)
    first = batch_score_step(source=str(path), settings=settings)
    assert first["model_version"] == "1"
    assert first["quarantined"] == 1
    assert first["scored"] == len(source) - 1
    assert first["reasons"] == {"bad_date:date": 1}
    predictions = pd.read_parquet(first["predictions"].removeprefix("file://"))
    assert list(predictions.columns) == ["id", "arrest_probability", "arrest", "model_version", "scored_at"]
    assert predictions["arrest_probability"].between(0, 1).all()
    quarantine = pd.read_parquet(first["quarantine"].removeprefix("file://"))
    assert quarantine["reason"].tolist() == ["bad_date:date"]
    again = batch_score_step(source=str(path), settings=settings)
    assert again["predictions"] == first["predictions"]
    files = sorted(p.name for p in (settings.store_dir / "predictions").glob("*.parquet"))
    assert len(files) == 2, files


def test_batch_scoring_and_monitoring_quarantine_unreadable_dates(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    """``now``, ``2017``, ``2017-13-01``, blanks ... (tests/code/test_bad_dates.py): quarantined with the field
    named, never scored with the clock's date, counted."""
    from chicago_arrest.steps.monitoring import batch_score_step, monitor_step
    from tests.code.test_bad_dates import BAD_DATES, EMPTY, with_dates

    source = with_dates(registered["test"], BAD_DATES)
    path = tmp_path / "bad_dates.csv"
    source.to_csv(path, index=False)
    scored = batch_score_step(source=str(path), settings=settings)
    assert scored["reasons"] == {"bad_date:date": len(BAD_DATES) - len(EMPTY), "null:date": len(EMPTY)}
    assert scored["scored"] == len(source) - len(BAD_DATES)
    monitored = monitor_step(tmp_path / "report.html", source=str(path), retrain="never", settings=settings)
    assert monitored["quarantined"] == len(BAD_DATES)
    assert monitored["rows"] == len(source) - len(BAD_DATES)


def test_bad_inputs_are_one_error_and_write_nothing(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    from chicago_arrest.steps.monitoring import batch_score_step, monitor_step

    good = tmp_path / "good.csv"
    registered["test"].to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    registered["test"].drop(columns=["iucr"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"missing column.*iucr"):
        batch_score_step(source=str(bad), settings=settings)
    with pytest.raises(LookupError, match=r"version 9 .* does not exist"):
        batch_score_step(source=str(good), version="9", settings=settings)
    with pytest.raises(ProfileError, match="version 2 has no reference profile"):
        monitor_step(tmp_path / "r.html", source=str(good), version="2", settings=settings)
    with pytest.raises(LookupError, match="2016-01"):
        batch_score_step(months="2016-01", settings=settings)
    from chicago_arrest.core.schema import RAW_COLUMNS
    from chicago_arrest.core.store import make_store, write_parquet
    from chicago_arrest.data.ingest import month_key
    from chicago_arrest.data.sources import to_raw_strings

    write_parquet(make_store(settings), month_key("2016-02"), to_raw_strings(pd.DataFrame(), RAW_COLUMNS))
    with pytest.raises(ValueError, match="2016-02 has no records"):
        batch_score_step(months="2016-02", settings=settings)
    assert not (settings.store_dir / "predictions").exists()
    assert not (tmp_path / "r.html").exists()


def test_monitor_step_reports_logs_and_retrains(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    import mlflow

    from chicago_arrest.core.names import MODEL_NAME
    from chicago_arrest.steps.monitoring import monitor_step

    shifted = registered["test"].copy()
    shifted["date"] = pd.to_datetime(shifted["date"]).dt.normalize().add(pd.Timedelta(hours=4)).astype(str)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    client = FakeKfp()
    summary_path = tmp_path / "summary.json"
    out = monitor_step(
        tmp_path / "report.html",
        source=str(path),
        settings=settings,
        kfp_client=client,
        summary_out=summary_path,
    )
    assert out["decision"] in ("drift", "degraded")
    assert out["retrain"] == "started"
    assert out["retrain_run"] == "kfp run run-42"
    assert len(client.runs) == 1
    summary = json.loads(summary_path.read_text())
    assert set(summary) == {"decision", "reasons", "psi", "prediction_psi", "realised", "retrain"}
    assert summary["psi"][HOUR] >= 0.2
    page = (tmp_path / "report.html").read_text()
    assert "threshold 0.2" in page
    assert "kfp run run-42" in page
    assert "<svg" in page
    run = mlflow.get_run(out["mlflow_run_id"])
    assert run.data.tags["model_version"] == "1"
    assert run.data.metrics["psi_hour_of_day"] >= 0.2
    assert (
        registered["client"].get_model_version(MODEL_NAME, "1").tags["monitoring.last_run"] == run.info.run_id
    )
    never = monitor_step(tmp_path / "r2.html", source=str(path), retrain="never", settings=settings)
    assert never["retrain"] == "disabled"


# --- the pipelines ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["batch_scoring", "monitoring"])
def test_committed_yaml_of_the_monitoring_loop_matches_the_source(which: str, tmp_path: Path) -> None:
    import yaml

    import chicago_arrest.pipelines.compile as c

    fresh = getattr(c, f"compile_{which}")(tmp_path)
    golden = c.COMPILED_DIR / fresh.name
    load = lambda p: list(yaml.safe_load_all(p.read_text(encoding="utf-8")))  # noqa: E731
    assert load(fresh) == load(golden), (
        "src/chicago_arrest/pipelines/compiled is stale: run `make compile` and commit the YAML"
    )
    spec = load(golden)[0]
    (executor,) = spec["deploymentSpec"]["executors"].values()
    from chicago_arrest.core.names import DEFAULT_IMAGE

    assert executor["container"]["image"] == DEFAULT_IMAGE
    if which == "monitoring":
        outputs = spec["components"]["comp-monitor"]["outputDefinitions"]["artifacts"]
        assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
        params = spec["root"]["inputDefinitions"]["parameters"]
        assert params["psi_threshold"]["defaultValue"] == 0.2
        assert params["retrain"]["defaultValue"] == "auto"


# --- the local server's request log ------------------------------------------------------------------------


def test_request_log_rotates_within_its_cap_and_feeds_monitoring(
    settings: Settings, stations: pd.DataFrame
) -> None:
    from arrest_server.request_log import RequestLog

    from chicago_arrest.steps.monitoring import load_source, request_log_dir

    folder = request_log_dir(settings)
    requests = RequestLog(folder, max_bytes=10**9, flush_s=3600)
    records = generate_crimes(50, stations=stations, seed=3).drop(columns=["arrest"])
    for i in range(5):
        chunk = records.iloc[i * 10 : (i + 1) * 10]
        p = np.full(len(chunk), 0.3)
        requests.append(chunk, p, p >= 0.5, model_version="4", role="champion", request_id=f"r{i}")
    first = requests.flush()
    assert first is not None
    assert requests.flush() is None  # nothing buffered
    frame, name = load_source("serving", settings=settings)
    assert name == "serving"
    assert len(frame) == 50
    assert {
        "arrest_probability",
        "predicted_arrest",
        "model_version",
        "role",
        "request_id",
        "logged_at",
    } <= set(frame.columns)
    assert set(frame["model_version"]) == {"4"}
    assert "arrest" not in frame.columns  # the label's name: the model's answer is not the truth
    # Over the cap the oldest file goes first.
    requests.append(
        records, np.full(50, 0.3), np.zeros(50, bool), model_version="4", role="champion", request_id="x"
    )
    second = requests.flush()
    assert second is not None
    requests.max_bytes = second.stat().st_size
    assert requests.rotate() == [first]
    assert sorted(folder.glob("requests-*.parquet")) == [second]
    requests.close()


def test_request_log_converts_in_slices_and_loses_nothing(tmp_path: Path, stations: pd.DataFrame) -> None:
    """The writer converts at most ``convert_slice`` requests at a time (no long pause), and writes every record."""
    from arrest_server.request_log import RequestLog

    requests = RequestLog(tmp_path, max_bytes=10**9, flush_s=3600, convert_s=3600, convert_slice=4)
    records = generate_crimes(10, stations=stations, seed=5).drop(columns=["arrest"])
    for i in range(10):
        row = records.iloc[[i]] if i % 2 else records.iloc[[i]].drop(columns=["beat"])  # columns vary
        requests.append(
            row,
            np.array([0.1 * i]),
            np.array([i >= 5]),
            model_version="2",
            role="champion",
            request_id=f"r{i}",
        )
    requests._convert()
    assert [len(f) for f in requests._converted] == [4, 4, 2]
    path = requests.flush()
    assert path is not None
    written = pd.read_parquet(path)
    assert written["request_id"].tolist() == [f"r{i}" for i in range(10)]
    np.testing.assert_allclose(written["arrest_probability"], 0.1 * np.arange(10))
    assert written["beat"].isna().tolist() == [i % 2 == 0 for i in range(10)]
    requests.close()


def test_no_request_log_is_one_clear_error(settings: Settings) -> None:
    from chicago_arrest.steps.monitoring import load_source

    with pytest.raises(FileNotFoundError, match="no request log"):
        load_source("serving", settings=settings)


def test_one_source_option_means_a_file_months_or_the_request_log(tmp_path: Path) -> None:
    from chicago_arrest.cli.loop import CommandError, _loop_source

    path = tmp_path / "x.csv"
    path.write_text("id\n")
    assert _loop_source(str(path), on_cluster=False, serving=False) == {"source": str(path), "months": ""}
    assert _loop_source("2017-11..2017-12", on_cluster=False, serving=False) == {
        "source": "",
        "months": "2017-11..2017-12",
    }
    assert _loop_source("", on_cluster=False, serving=True) == {"source": "", "months": ""}  # newest month
    assert _loop_source("serving", on_cluster=False, serving=True)["source"] == "serving"
    with pytest.raises(CommandError, match="make monitor"):
        _loop_source("serving", on_cluster=False, serving=False)
    with pytest.raises(CommandError, match="not found"):
        _loop_source(str(tmp_path / "missing.csv"), on_cluster=False, serving=True)


def test_monitoring_schedule_is_weekly_and_idempotent() -> None:
    from chicago_arrest.pipelines import schedule
    from tests.code.test_schedule import FakeClient

    client = FakeClient()
    first = schedule.ensure_recurring_run(client, pipeline="monitoring")
    again = schedule.ensure_recurring_run(client, pipeline="monitoring")
    assert first.action == "created"
    assert again.action == "unchanged"
    (created,) = [c for c in client.calls if c[0] == "create_recurring_run"]
    assert created[1]["job_name"] == "chicago-arrest-weekly-monitoring"
    assert created[1]["cron_expression"] == "0 0 6 * * 1"


def test_request_log_joins_parsed_columns_into_the_table_frames_give(tmp_path: Path) -> None:
    """Requests logged with their parsed columns are joined column by column (cheap); the file is the same as
    when the writer concatenates their frames, and a request of another shape falls back to the frames."""
    from arrest_server.request_log import RequestLog
    from arrest_server.validation import parse_v1

    rows = [
        {"date": "2017-03-01T13:05:00.000", "primary_type": "THEFT", "iucr": "0820", "domestic": False},
        {"date": "2017-03-02T01:00:00.000", "primary_type": "BATTERY", "iucr": "0486", "domestic": True},
        {"date": "2017-03-03T23:59:00.000", "primary_type": "NARCOTICS", "iucr": "2027", "domestic": False},
    ]
    parsed = [parse_v1({"instances": [row]}, 10) for row in rows]
    odd = parse_v1({"instances": [{**rows[0], "beat": "0111", "latitude": 41.9}]}, 10)  # more fields

    def written(use_columns: bool, requests: list) -> pd.DataFrame:
        folder = tmp_path / f"{use_columns}-{len(requests)}"
        log = RequestLog(folder, max_bytes=10**9, flush_s=3600, convert_s=3600)
        for i, p in enumerate(requests):
            log.append(
                p.columns if use_columns else p.frame,
                np.array([0.1 * i]),
                np.array([i == 1]),
                model_version="1",
                role="champion",
                request_id=f"r{i}",
            )
        path = log.flush()
        log.close()
        assert path is not None
        return pd.read_parquet(path).drop(columns=["logged_at"])

    from arrest_server import request_log

    joined = request_log._joined_columns([p.columns for p in parsed])
    assert joined is not None
    assert request_log._joined_columns([p.columns for p in [*parsed, odd]]) is None
    assert request_log._joined_columns([parsed[0].columns, parsed[1].frame]) is None
    pd.testing.assert_frame_equal(written(True, parsed), written(False, parsed))
    pd.testing.assert_frame_equal(written(True, [*parsed, odd]), written(False, [*parsed, odd]))


# --- issue 25: the network steps are safe to repeat (a retry of the same KFP run) -----------------------------


def test_monitor_step_twice_in_one_kfp_run_starts_one_training_run_and_logs_one_run(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    import mlflow

    from chicago_arrest.steps.monitoring import monitor_step

    shifted = registered["test"].copy()
    shifted["date"] = pd.to_datetime(shifted["date"]).dt.normalize().add(pd.Timedelta(hours=4)).astype(str)
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    client = FakeKfp()
    outs = [
        monitor_step(
            tmp_path / f"r{n}.html",
            source=str(path),
            settings=settings,
            kfp_client=client,
            kfp_run="chicago-arrest-monitoring-7",
        )
        for n in (1, 2)
    ]
    assert [o["retrain"] for o in outs] == ["started", "started"]
    (run,) = client.runs  # one training run, named after the monitoring run
    assert run["job_name"] == "chicago-arrest-training-retrain-for-chicago-arrest-monitoring-7"
    assert outs[0]["mlflow_run_id"] == outs[1]["mlflow_run_id"]
    experiment = mlflow.get_experiment_by_name("chicago-crime-arrest-prediction")
    monitoring = registered["client"].search_runs(
        [experiment.experiment_id], filter_string="tags.kind = 'monitoring'"
    )
    assert len(monitoring) == 1
    # another KFP run is another monitoring run, and may start another training run
    other = monitor_step(
        tmp_path / "r3.html",
        source=str(path),
        settings=settings,
        kfp_client=client,
        kfp_run="chicago-arrest-monitoring-8",
    )
    assert other["mlflow_run_id"] != outs[0]["mlflow_run_id"]
    assert len(client.runs) == 2


def test_batch_score_step_twice_writes_the_same_objects(
    registered: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    from chicago_arrest.steps.monitoring import batch_score_step

    path = tmp_path / "recent.csv"
    registered["test"].to_csv(path, index=False)
    outs = [batch_score_step(source=str(path), settings=settings) for _ in (1, 2)]
    assert outs[0]["predictions"] == outs[1]["predictions"]
    files = sorted((settings.store_dir / "predictions").glob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    assert len(files) == 2  # predictions + (empty) quarantine, once each
    predictions = pd.read_parquet(outs[1]["predictions"].removeprefix("file://"))
    assert predictions["id"].is_unique
    assert len(predictions) == outs[0]["scored"]
    assert all(len(f.columns) for f in frames)
