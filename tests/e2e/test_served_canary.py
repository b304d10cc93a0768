"""End-to-end (issue 26): records with ids served through a canary, their labels landed later, realised metrics
per version, champion against challenger, and ``make promote`` refusing a challenger that is worse.

A champion (logistic regression on generated records) and a deliberately worse challenger (the same model
trained on shuffled labels) are registered with their reference profiles and deployed as a 50 % canary. The
real server (``python -m arrest_server``) answers V2 and V1 requests carrying the reports' ids (some without);
it is stopped with SIGTERM (its request log must be complete). The labels are landed into the object store as
the pipeline lands months, then ``make monitor SOURCE=serving`` (the real CLI, kfp.local) measures each
version on the requests it served: the same numbers as an offline computation with each registered model on
the same records. ``LABELS=file`` gives the same as the landed months. ``serving promote`` prints the
comparison and refuses; ``--force`` promotes and the override is in the version's tags.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.e2e.helpers import REPO_ROOT, child_env, start_server
from tests.mlflow_store import mlflow_state_restored

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}
FIELDS = [
    "id",
    "case_number",
    "date",
    "primary_type",
    "iucr",
    "description",
    "location_description",
    "domestic",
    "beat",
    "district",
    "ward",
    "community_area",
    "fbi_code",
    "latitude",
    "longitude",
]


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Register champion 1 and the worse challenger 2 with their profiles; serve them at 50 %; send records."""
    import mlflow

    from chicago_arrest.core.names import CHAMPION, GATE_TAG, MODEL_NAME
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model
    from chicago_arrest.release.ops import open_release
    from chicago_arrest.steps.monitoring import store_reference_profile

    root = tmp_path_factory.mktemp("canary")
    settings = Settings(data_dir=root / "data")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    stations = generate_stations()
    train, test, _ = time_split(generate_crimes(6_000, stations=stations, seed=21))
    shuffled = train.assign(arrest=train["arrest"].sample(frac=1.0, random_state=0).to_numpy())
    with mlflow_state_restored():
        client = configure_mlflow(settings)
        versions = []
        for frame in (train, shuffled):  # the challenger learns nothing: measurably worse
            model = train_model(frame, stations, TrainConfig(model_type="logreg")).model
            with mlflow.start_run() as run:
                info = log_arrest_model(model, frame, MODEL_NAME)
            version = str(info.registered_model_version)
            metrics = {f"test_{k}": v for k, v in evaluate_model(model, test).overall.items()}
            store_reference_profile(
                client, {"run_id": run.info.run_id, "version": version, "metrics": metrics}, model, test
            )
            client.set_model_version_tag(MODEL_NAME, version, GATE_TAG, "passed")
            versions.append(version)
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, versions[0])
        open_release("local", settings=settings).deploy(versions[0], versions[1], 50)

    recent = generate_crimes(1_200, stations=stations, seed=22, start="2017-11-01", months=2)
    server = start_server([], root / "server.log", ARREST_DATA_DIR=str(settings.data_dir))
    served: list[dict[str, Any]] = []  # what the client got: record id, version, probability
    try:
        server.wait_ready()
        rows = [{f: (r[f] if r[f] != "" else None) for f in FIELDS} for r in recent.to_dict("records")]
        i, n = 0, 0
        while i < len(rows):
            batch = rows[i : i + 1 + n % 3]
            i += len(batch)
            n += 1
            if n % 10 == 0:  # no id: served and profiled, never joined
                batch = [{k: v for k, v in r.items() if k != "id"} for r in batch]
            if n % 4 == 0:
                r = server.session.post(
                    f"{server.url}/v1/models/arrest-predictor:predict",
                    data=json.dumps({"instances": batch}),
                    headers={**JSON, "x-request-id": f"q{n}"},
                )
                assert r.status_code == 200, r.text
                probabilities = r.json()["predictions"]
            else:
                body = {
                    "id": f"q{n}",
                    "parameters": {"content_type": "pd"},
                    "inputs": [
                        {
                            "name": f,
                            "shape": [len(batch)],
                            "datatype": "BYTES",
                            "data": [b.get(f) for b in batch],
                        }
                        for f in FIELDS
                        if any(f in b for b in batch)
                    ],
                }
                r = server.session.post(server.infer_url, data=json.dumps(body), headers=JSON)
                assert r.status_code == 200, r.text
                probabilities = next(
                    o["data"] for o in r.json()["outputs"] if o["name"] == "arrest_probability"
                )
            version = r.headers["x-model-version"]
            served += [
                {"id": b.get("id"), "version": version, "p": p}
                for b, p in zip(batch, probabilities, strict=True)
            ]
        retry = server.session.post(server.infer_url, data=json.dumps(body), headers=JSON)  # a client retry
        assert retry.status_code == 200
        retried = body["inputs"][0]["shape"][0]
        ids = next((i["data"] for i in body["inputs"] if i["name"] == "id"), [])
        retried_ids = sum(1 for v in ids if v is not None)
    finally:
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
    return {
        "root": root,
        "settings": settings,
        "versions": versions,
        "recent": recent,
        "served": pd.DataFrame(served),
        "retried": retried,
        "retried_ids": retried_ids,
        "server_log": (root / "server.log").read_text(),
    }


def cli(canary: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(ARREST_DATA_DIR=str(canary["settings"].data_dir), ARREST_CPUS="1")
    env = {k: v for k, v in env.items() if not k.startswith("KFP_")}
    return subprocess.run(
        [sys.executable, "-m", "chicago_arrest.cli", *args, "--target", "local"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def offline(canary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each registered model on the records it served, scored again here, against the records' labels."""
    from chicago_arrest.core.names import MODEL_NAME
    from chicago_arrest.model.evaluate import expected_calibration_error
    from chicago_arrest.registry.models import load_arrest_model

    recent = canary["recent"].set_index("id")
    served = canary["served"].dropna(subset=["id"]).drop_duplicates("id")
    out = {}
    with mlflow_state_restored():
        os.environ["MLFLOW_TRACKING_URI"] = canary["settings"].resolved_tracking_uri()
        for version, group in served.groupby("version"):
            records = recent.loc[group["id"].astype(str)].reset_index()
            model = load_arrest_model(f"models:/{MODEL_NAME}/{version}")
            p = model.predict_arrest_probability(records)
            np.testing.assert_allclose(
                p, group["p"].to_numpy(), rtol=0, atol=1e-9
            )  # what the server answered
            y = records["arrest"].str.lower().eq("true").to_numpy().astype(int)
            out[str(version)] = {
                "rows": float(len(group)),
                "roc_auc": roc_auc_score(y, p),
                "pr_auc": average_precision_score(y, p),
                "ece": expected_calibration_error(y, p),
            }
    return out


def test_served_records_are_all_logged_with_their_ids(canary: dict[str, Any]) -> None:
    files = sorted((canary["settings"].data_dir / "serving" / "requests").glob("requests-*.parquet"))
    logged = pd.concat([pd.read_parquet(f) for f in files])
    assert len(logged) == len(canary["served"]) + canary["retried"]  # + the retried request's records
    assert set(canary["served"]["version"]) == set(canary["versions"])  # both served
    assert logged["id"].isna().sum() == canary["served"]["id"].isna().sum()


def test_monitor_measures_each_version_on_what_it_served_once_the_labels_land(canary: dict[str, Any]) -> None:
    from chicago_arrest.core.store import make_store
    from chicago_arrest.data.ingest import land_month

    champion, challenger = canary["versions"]
    recent = canary["recent"]
    store = make_store(canary["settings"])
    for month, frame in recent.groupby(pd.to_datetime(recent["date"]).dt.strftime("%Y-%m")):
        land_month(store, month, frame)
    summary = canary["root"] / "landed.json"
    landed = cli(
        canary, "pipeline", "monitor", "--source", "serving", "--retrain", "never", "--min-labelled", "100",
        "--summary", str(summary),
    )  # fmt: skip
    assert landed.returncode == 0, landed.stderr
    result = json.loads(summary.read_text())
    truth = offline(canary)
    served = result["realised_served"]
    assert set(served) == {champion, challenger}
    for version, entry in served.items():
        assert set(entry) >= {"rows", "labelled_rows", "roc_auc", "pr_auc", "ece"}
        assert entry["labelled_rows"] == truth[version]["rows"]
        for metric in ("roc_auc", "pr_auc", "ece"):
            assert entry[metric] == pytest.approx(truth[version][metric], abs=1e-9), (version, metric)
    assert served[champion]["role"] == "champion"
    assert served[challenger]["role"] == "challenger"
    labels = result["served"]["labels"]
    assert labels["without_id"] == int(canary["served"]["id"].isna().sum())
    assert labels["duplicate_ids"] == canary["retried_ids"] > 0  # the retried request's records counted once
    assert labels["labelled_rows"] == sum(truth[v]["rows"] for v in truth)
    comparison = result["served"]["comparison"]
    assert comparison["verdict"] == "worse"
    assert "canary       " in landed.stdout
    assert "measurably worse" in landed.stdout

    # the same labels given as a file
    labels_file = canary["root"] / "labels.csv"
    recent[["id", "arrest"]].to_csv(labels_file, index=False)
    summary = canary["root"] / "file.json"
    from_file = cli(
        canary, "pipeline", "monitor", "--source", "serving", "--retrain", "never", "--min-labelled", "100",
        "--labels", str(labels_file), "--summary", str(summary),
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(summary.read_text())["realised_served"] == served


def test_status_shows_the_comparison_and_promote_refuses_a_worse_challenger(canary: dict[str, Any]) -> None:
    _champion, challenger = canary["versions"]
    status = cli(canary, "serving", "status")
    assert status.returncode == 0, status.stderr
    assert "Served traffic, challenger against champion:" in status.stdout
    refused = cli(canary, "serving", "promote")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"error: promote refused: served traffic, version {challenger} against champion"
    )
    assert "measurably worse" in refused.stderr
    assert "FORCE=1" in refused.stderr
    forced = cli(canary, "serving", "promote", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"forced: version {challenger} is promoted although measurably worse" in forced.stdout
    after = cli(canary, "serving", "status")
    assert f"@champion:         {challenger}" in after.stdout
    assert "champion forced:   FORCE=1 at " in after.stdout
