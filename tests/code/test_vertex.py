"""The Vertex AI variant (issue 17): golden YAML, wiring, the BigQuery SQL, landing, the gate, the submit.

Nothing here talks to Google Cloud: the submit runs against a fake ``aiplatform`` module, and the missing extra
and missing credentials are simulated.
"""

from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml

from chicago_arrest import vertex
from chicago_arrest.names import DEFAULT_IMAGE, ISVC_NAME, MODEL_NAME
from chicago_arrest.schema import RAW_COLUMNS
from chicago_arrest.settings import Settings
from chicago_arrest.synthetic import generate_crimes

pytest.importorskip("google_cloud_pipeline_components")

from pipelines.compile import COMPILED_DIR, compile_vertex
from pipelines.vertex_training import PIPELINE_NAME

GOLDEN = COMPILED_DIR / f"{PIPELINE_NAME}.yaml"
TRAINING = COMPILED_DIR / "chicago-arrest-training.yaml"
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _spec(path: Path) -> dict[str, Any]:
    """The pipeline spec (a platform spec, if any, is the second YAML document)."""
    return next(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def _tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the pipeline, flattened out of the dsl.If / ParallelFor sub-DAGs."""
    found: dict[str, dict[str, Any]] = {}
    for comp in [spec["root"], *spec["components"].values()]:
        found.update(comp.get("dag", {}).get("tasks", {}))
    return found


# -- compiled pipeline --------------------------------------------------------------------------------------


def test_committed_yaml_matches_the_source(tmp_path: Path) -> None:
    fresh = compile_vertex(tmp_path)
    assert fresh is not None
    assert _spec(fresh) == _spec(GOLDEN), (
        "pipelines/compiled is stale: run `make compile` and commit the YAML"
    )


def test_compile_vertex_is_skipped_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("google_cloud") else real(name, *a),
    )
    assert compile_vertex(tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_task_graph_uses_gcpc_and_the_projects_own_components() -> None:
    spec = _spec(GOLDEN)
    tasks = _tasks(spec)
    refs = {name: task["componentRef"]["name"] for name, task in tasks.items()}
    for step in ("validate", "split", "enrich", "train", "evaluate", "ingest"):
        assert f"comp-{step}" in refs.values(), step
    gcpc = {
        "bigquery-query-job": "google_cloud_pipeline_components.container.v1.bigquery.query_job.launcher",
        "model-upload": "google_cloud_pipeline_components.container.v1.model.upload_model.launcher",
        "endpoint-create": "google_cloud_pipeline_components.container.v1.endpoint.create_endpoint.launcher",
        "model-deploy": "google_cloud_pipeline_components.container.v1.endpoint.deploy_model.launcher",
    }
    executors = spec["deploymentSpec"]["executors"]
    for name, launcher in gcpc.items():
        container = executors[f"exec-{name}"]["container"]
        assert container["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components"), name
        assert launcher in " ".join(container["command"] + container.get("args", [])), name
    # Two deploy branches (new endpoint / existing endpoint), each one ModelDeployOp.
    assert sorted(r for r in refs.values() if r.startswith("comp-model-deploy")) == [
        "comp-model-deploy",
        "comp-model-deploy-2",
    ]


def test_project_steps_are_the_training_pipelines_executors_not_copies() -> None:
    vertex_exec = _spec(GOLDEN)["deploymentSpec"]["executors"]
    training_exec = _spec(TRAINING)["deploymentSpec"]["executors"]
    for step in ("ingest", "validate", "split", "enrich", "train", "evaluate"):
        mine, theirs = vertex_exec[f"exec-{step}"]["container"], training_exec[f"exec-{step}"]["container"]
        # The same component code and image; only train's resources differ (Vertex sizes machines by limits).
        assert {k: v for k, v in mine.items() if k != "resources"} == {
            k: v for k, v in theirs.items() if k != "resources"
        }, step
    own = [
        n
        for n, e in vertex_exec.items()
        if "container" in e and "google-cloud-pipeline" not in e["container"]["image"]
    ]
    assert len(own) == 10
    for name in own:
        container = vertex_exec[name]["container"]
        assert container["image"] == DEFAULT_IMAGE, name
        assert "pip install" not in " ".join(container["command"] + container.get("args", [])), name


def test_bigquery_branch_wiring() -> None:
    tasks = _tasks(_spec(GOLDEN))
    query = tasks["bigquery-query-job"]["inputs"]["parameters"]
    assert query["query"]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "bigquery-window",
    }
    assert query["location"]["componentInputParameter"].endswith("bigquery_location")
    assert query["project"]["componentInputParameter"].endswith("project")
    land = tasks["land-bigquery"]
    assert "bigquery-query-job" in land["dependentTasks"]
    assert land["inputs"]["artifacts"]["export"]["taskOutputArtifact"] == {
        "outputArtifactKey": "export",
        "producerTask": "bigquery-window",
    }
    root = _spec(GOLDEN)["root"]
    assert root["inputDefinitions"]["parameters"]["bigquery_location"]["defaultValue"] == "US"
    conditions = {
        name: task.get("triggerPolicy", {}).get("condition", "")
        for name, task in root["dag"]["tasks"].items()
    }
    assert "== 'bigquery'" in conditions["condition-branches-1"] or any(
        "== 'bigquery'" in c for c in _all_conditions(_spec(GOLDEN))
    )


def _all_conditions(spec: dict[str, Any]) -> list[str]:
    return [t.get("triggerPolicy", {}).get("condition", "") for t in _tasks(spec).values()]


def test_validate_reads_one_of_the_two_ingest_branches() -> None:
    spec = _spec(GOLDEN)
    raw = _tasks(spec)["validate"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    branches = spec["components"][f"comp-{raw['producerTask']}"]["outputDefinitions"]["artifacts"]
    assert raw["outputArtifactKey"] in branches
    selectors = spec["components"][f"comp-{raw['producerTask']}"]["dag"]["outputs"]["artifacts"]
    producers = {s["producerSubtask"] for s in selectors[raw["outputArtifactKey"]]["artifactSelectors"]}
    assert producers == {"condition-2", "condition-3"}


def test_upload_and_deploy_wiring() -> None:
    spec = _spec(GOLDEN)
    tasks = _tasks(spec)
    upload = tasks["model-upload"]["inputs"]
    assert upload["parameters"]["display_name"]["runtimeValue"]["constant"] == MODEL_NAME
    assert upload["parameters"]["labels"]["taskOutputParameter"] == {
        "outputParameterKey": "labels",
        "producerTask": "vertex-gate",
    }
    assert (
        upload["artifacts"]["unmanaged_container_model"]["taskOutputArtifact"]["producerTask"] == "importer"
    )
    importer = spec["deploymentSpec"]["executors"]["exec-importer"]["importer"]
    container = importer["metadata"]["containerSpec"]
    assert container["predictRoute"] == f"/v2/models/{ISVC_NAME}/infer"
    assert container["healthRoute"] == "/v2/health/ready"
    assert container["ports"] == [{"containerPort": 8080}]
    assert container["args"] == [
        "--model_uri=$(AIP_STORAGE_URI)",
        "--model_version=$(AIP_DEPLOYED_MODEL_ID)",
        "--http_port=8080",
    ]
    assert container["imageUri"] == "{{$.inputs.parameters['metadata']}}"  # the serving_image parameter
    assert (
        tasks["importer"]["inputs"]["parameters"]["uri"]["taskOutputParameter"]["producerTask"]
        == "serve-model"
    )

    create = tasks["endpoint-create"]["inputs"]["parameters"]
    assert create["display_name"]["runtimeValue"]["constant"] == ISVC_NAME
    for deploy in ("model-deploy", "model-deploy-2"):
        params = tasks[deploy]["inputs"]["parameters"]
        assert params["traffic_split"]["componentInputParameter"].endswith("vertex-gate-traffic_split"), (
            deploy
        )
        assert tasks[deploy]["inputs"]["artifacts"]["model"]["componentInputArtifact"].endswith(
            "model-upload-model"
        )
    assert tasks["model-deploy"]["inputs"]["artifacts"]["endpoint"]["taskOutputArtifact"]["producerTask"] == (
        "endpoint-create"
    )
    assert tasks["model-deploy-2"]["inputs"]["artifacts"]["endpoint"]["taskOutputArtifact"][
        "producerTask"
    ] == ("importer-2")
    conditions = _all_conditions(spec)
    assert any("vertex-gate-action'] != 'none'" in c for c in conditions), conditions
    assert any("pipelinechannel--endpoint'] == ''" in c for c in conditions), conditions


# -- BigQuery SQL -------------------------------------------------------------------------------------------

EXPORT = "gs://bucket/root/123/bigquery-window/export"


def test_window_sql_month_boundaries_are_midnight_in_chicago() -> None:
    sql = vertex.window_sql(EXPORT, months=3, end_month="2024-03")
    assert "date >= TIMESTAMP('2024-01-01 00:00:00', 'America/Chicago')" in sql
    assert "date < TIMESTAMP('2024-04-01 00:00:00', 'America/Chicago')" in sql
    assert "2024-01..2024-03 (3 months" in sql
    assert f"uri = '{EXPORT}/crimes-*.parquet'" in sql
    assert "format = 'PARQUET'" in sql
    assert "FROM `bigquery-public-data.chicago_crime.crime`" in sql


def test_window_sql_across_a_year_and_the_default_last_full_month() -> None:
    sql = vertex.window_sql(EXPORT, months=2, end_month="2024-01")
    assert "TIMESTAMP('2023-12-01 00:00:00', 'America/Chicago')" in sql
    assert "TIMESTAMP('2024-02-01 00:00:00', 'America/Chicago')" in sql
    default = vertex.window_sql(EXPORT, months=12, today=date(2024, 3, 15))
    assert "TIMESTAMP('2023-03-01 00:00:00', 'America/Chicago')" in default
    assert "TIMESTAMP('2024-03-01 00:00:00', 'America/Chicago')" in default
    assert vertex.window_months(1, today=date(2024, 1, 1)) == ["2023-12"]


def test_window_sql_selects_every_raw_field_renamed_as_text_in_socrata_order() -> None:
    sql = vertex.window_sql(EXPORT, months=1, end_month="2024-03")
    select = sql.split("SELECT\n", 1)[1].split("\nFROM", 1)[0].splitlines()
    assert [line.rsplit(" AS ", 1)[1].rstrip(",") for line in select] == list(RAW_COLUMNS)
    items = {line.rsplit(" AS ", 1)[1].rstrip(","): line.rsplit(" AS ", 1)[0].strip() for line in select}
    assert items["id"] == "CAST(unique_key AS STRING)"
    assert items["date"] == "FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E3S', date, 'America/Chicago')"
    assert items["updated_on"] == "FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E3S', updated_on, 'America/Chicago')"
    assert items["beat"] == "LPAD(CAST(beat AS STRING), 4, '0')"
    assert items["district"] == "LPAD(CAST(district AS STRING), 3, '0')"
    assert items["arrest"] == "CAST(arrest AS STRING)"
    assert items["iucr"] == "iucr"
    assert items["ward"] == "CAST(ward AS STRING)"
    assert "location " not in sql.replace("location_description", "")


@pytest.mark.parametrize(
    ("uri", "months", "end"),
    [
        ("/gcs/bucket/x", 1, ""),
        ("gs://bucket/x' OR 1=1 --", 1, ""),
        ("gs://bucket/*", 1, ""),
        (EXPORT, 0, ""),
        (EXPORT, 1, "2024-13"),
        (EXPORT, 1, "2024-3"),
    ],
)
def test_window_sql_rejects_bad_input(uri: str, months: int, end: str) -> None:
    with pytest.raises(ValueError, match=r"export_uri|months|end_month"):
        vertex.window_sql(uri, months=months, end_month=end)


def test_landed_export_passes_the_data_contract(
    tmp_path: Path, settings: Settings, stations: pd.DataFrame
) -> None:
    from chicago_arrest.steps.data import validate_step

    crimes = generate_crimes(1_200, start="2024-01-01", months=3, stations=stations)
    export = tmp_path / "export"
    export.mkdir()
    for k, part in enumerate((crimes.iloc[:500], crimes.iloc[500:])):
        part.to_parquet(export / f"crimes-{k:012d}.parquet", index=False)
    stations_file = tmp_path / "stations.parquet"
    stations.to_parquet(stations_file, index=False)
    metadata: dict[str, Any] = {}
    summary = vertex.land_export(
        export,
        tmp_path / "raw.parquet",
        tmp_path / "stations_out.parquet",
        months=3,
        stations_source=str(stations_file),
        settings=settings,
        raw_metadata=metadata,
    )
    assert summary["source"] == "bigquery:bigquery-public-data.chicago_crime.crime"
    assert summary["shards"] == 2
    assert summary["window"] == ["2024-01", "2024-02", "2024-03"]
    assert summary["rows"] == metadata["rows"] == len(pd.read_parquet(tmp_path / "raw.parquet"))
    counts = validate_step(tmp_path / "raw.parquet", tmp_path / "valid.parquet", tmp_path / "q.parquet")
    assert counts["valid"] > 0.95 * len(crimes)


def test_land_export_without_shards_says_where(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(FileNotFoundError, match="no Parquet shard"):
        vertex.land_export(tmp_path, tmp_path / "r", tmp_path / "s", months=1, settings=settings)


# -- gate ---------------------------------------------------------------------------------------------------


def _evaluation(roc_auc: float, ece: float) -> dict[str, Any]:
    metrics = {"roc_auc": roc_auc, "ece": ece, "pr_auc": 0.7, "brier": 0.1}
    return {"selected": "random_forest", "selected_index": 0, "candidates": {"random_forest": metrics}}


def _champion(roc_auc: float) -> dict[str, Any]:
    return {
        "model": "projects/p/locations/r/models/9",
        "deployed_model_id": "555",
        "metrics": {"roc_auc": roc_auc, "ece": 0.02},
    }


def test_gate_first_model_is_promoted_to_all_traffic() -> None:
    d = vertex.gate_decision(_evaluation(0.85, 0.02), {})
    assert (d["action"], d["traffic_split"], d["passed"]) == ("promote", {"0": "100"}, True)
    assert d["labels"]["roc_auc_ppm"] == "850000"
    assert d["labels"]["gate"] == "passed"
    assert d["labels"]["model_type"] == "random_forest"
    assert all(LABEL_VALUE.match(v) and LABEL_VALUE.match(k) for k, v in d["labels"].items())


def test_gate_canary_split_and_direct_promotion() -> None:
    d = vertex.gate_decision(_evaluation(0.90, 0.02), _champion(0.88), canary_percent=10)
    assert (d["action"], d["traffic_split"]) == ("canary", {"0": "10", "555": "90"})
    d = vertex.gate_decision(_evaluation(0.90, 0.02), _champion(0.88), canary_percent=0)
    assert (d["action"], d["traffic_split"]) == ("promote", {"0": "100"})


def test_gate_rejects_by_the_same_rule_and_leaves_serving_alone() -> None:
    d = vertex.gate_decision(_evaluation(0.881, 0.02), _champion(0.88), margin=0.002)
    assert (d["action"], d["traffic_split"], d["passed"]) == ("none", {}, False)
    assert d["labels"]["gate"] == "rejected"
    d = vertex.gate_decision(_evaluation(0.99, 0.09), _champion(0.88), max_ece=0.05)
    assert d["action"] == "none"
    assert "ECE" in d["reason"]


def test_gate_uses_the_challengers_bootstrap_se_and_worst_month_like_the_mlflow_gate() -> None:
    evaluation = _evaluation(0.90, 0.02)
    evaluation["candidates"]["random_forest"]["roc_auc_se"] = 0.03  # 0.90 < 0.88 + 0.002 + 1 x 0.03
    assert vertex.gate_decision(evaluation, _champion(0.88), margin=0.002)["action"] == "none"
    evaluation = _evaluation(0.95, 0.02)
    evaluation["candidates"]["random_forest"]["ece_worst_month"] = 0.08
    assert vertex.gate_decision(evaluation, _champion(0.88), max_ece=0.05)["action"] == "none"


def test_gate_reuses_registry_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    import chicago_arrest.registry as registry

    seen: list[tuple[Any, ...]] = []

    def fake_decide(*args: Any) -> tuple[bool, str]:
        seen.append(args)
        return False, "sentinel"

    monkeypatch.setattr(registry, "decide", fake_decide)
    assert vertex.gate_decision(_evaluation(0.99, 0.01), _champion(0.5))["reason"] == "sentinel"
    assert seen
    assert seen[0][1] == {"roc_auc": 0.5, "ece": 0.02}


def test_gate_rejects_an_incomplete_champion() -> None:
    with pytest.raises(ValueError, match="deployed_model_id"):
        vertex.gate_decision(_evaluation(0.9, 0.02), {"model": "m", "metrics": {"roc_auc": 0.8, "ece": 0.01}})


def test_metric_labels_round_trip() -> None:
    metrics = {"roc_auc": 0.898412, "ece": 0.024, "pr_auc": 0.77, "brier": 0.0831, "f1": 0.5}
    labels = vertex.metric_labels(metrics)
    assert set(labels) == {"roc_auc_ppm", "ece_ppm", "pr_auc_ppm", "brier_ppm"}
    assert vertex.labels_metrics({**labels, "gate": "passed"}) == {
        k: metrics[k] for k in vertex.LABEL_METRICS
    }


# -- submit -------------------------------------------------------------------------------------------------


class FakeAiplatform:
    """The parts of ``google.cloud.aiplatform`` that :func:`chicago_arrest.vertex.submit` uses, recorded."""

    def __init__(self, endpoints: list[Any] | None = None, labels: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.jobs: list[Any] = []
        fake = self

        class PipelineJob:
            def __init__(self, **kwargs: Any) -> None:
                spec = yaml.safe_load(Path(kwargs["template_path"]).read_text(encoding="utf-8"))
                self.kwargs, self.spec, self.submitted = kwargs, spec, False
                self.resource_name = "projects/p/locations/r/pipelineJobs/job-1"
                fake.jobs.append(self)

            def submit(self) -> None:
                self.submitted = True

        class Endpoint:
            @staticmethod
            def list(**kwargs: Any) -> list[Any]:
                fake.calls.append(("Endpoint.list", kwargs))
                return endpoints or []

        self.PipelineJob, self.Endpoint = PipelineJob, Endpoint
        self.Model = lambda name: SimpleNamespace(labels=labels or {}, resource_name=name)

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))


ARGS = {
    "source": "",
    "stations_source": "",
    "months": 6,
    "models": ["logreg"],
    "canary_percent": 10,
    "deploy_target": "auto",
}


def test_submit_builds_the_pipeline_job(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAiplatform()
    job = vertex.submit(
        ARGS,
        project="proj",
        region="europe-west4",
        bucket="gs://my-bucket/",
        template=GOLDEN,
        aiplatform=fake,
    )
    assert job is fake.jobs[0]
    assert job.submitted
    kwargs = job.kwargs
    assert kwargs["pipeline_root"] == "gs://my-bucket/pipeline-root"
    assert kwargs["display_name"] == PIPELINE_NAME
    assert kwargs["enable_caching"] is False
    assert (kwargs["project"], kwargs["location"]) == ("proj", "europe-west4")
    image = "europe-west4-docker.pkg.dev/proj/chicago-arrest/chicago-arrest:" + DEFAULT_IMAGE.split(":")[1]
    assert kwargs["parameter_values"] == {
        "months": 6,
        "models": ["logreg"],
        "canary_percent": 10,
        "project": "proj",
        "location": "europe-west4",
        "data_source": "bigquery",
        "stations_source": "",
        "serving_image": image,
        "endpoint": "",
        "champion": {},
    }
    assert set(kwargs["parameter_values"]) <= set(_spec(GOLDEN)["root"]["inputDefinitions"]["parameters"])
    images = {
        e["container"]["image"] for e in job.spec["deploymentSpec"]["executors"].values() if "container" in e
    }
    assert image in images
    assert DEFAULT_IMAGE not in images
    assert (
        "init",
        {"project": "proj", "location": "europe-west4", "staging_bucket": "gs://my-bucket"},
    ) in fake.calls
    assert "submitted projects/p/locations/r/pipelineJobs/job-1" in capsys.readouterr().out


def test_submit_passes_the_endpoints_champion() -> None:
    endpoint = SimpleNamespace(
        resource_name="projects/p/locations/r/endpoints/7",
        traffic_split={"111": 90, "222": 10},
        list_models=lambda: [
            SimpleNamespace(id="111", model="projects/p/locations/r/models/1"),
            SimpleNamespace(id="222", model="projects/p/locations/r/models/2"),
        ],
    )
    fake = FakeAiplatform([endpoint], labels={"roc_auc_ppm": "881000", "ece_ppm": "21000", "gate": "passed"})
    job = vertex.submit(
        {**ARGS, "source": "socrata"},
        project="p",
        region="r",
        bucket="b",
        template=GOLDEN,
        image="img:1",
        aiplatform=fake,
    )
    values = job.kwargs["parameter_values"]
    assert values["endpoint"] == "projects/p/locations/r/endpoints/7"
    assert values["champion"] == {
        "model": "projects/p/locations/r/models/1",
        "deployed_model_id": "111",
        "metrics": {"roc_auc": 0.881, "ece": 0.021},
    }
    assert values["data_source"] == "socrata"
    assert values["serving_image"] == "img:1"
    assert fake.calls[1] == (
        "Endpoint.list",
        {"filter": f'display_name="{ISVC_NAME}"', "order_by": "create_time desc"},
    )


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({**ARGS, "source": "crimes.csv"}, "bigquery"), ({**ARGS, "stations_source": "/tmp/s.csv"}, "gs://")],
)
def test_submit_rejects_local_files(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(vertex.VertexError, match=match):
        vertex.submit(
            arguments, project="p", region="r", bucket="b", template=GOLDEN, aiplatform=FakeAiplatform()
        )


def test_submit_needs_project_region_and_bucket() -> None:
    with pytest.raises(vertex.VertexError, match="REGION is required"):
        vertex.submit(ARGS, project="p", region="", bucket="b", template=GOLDEN, aiplatform=FakeAiplatform())


def test_run_vertex_submits_the_committed_yaml() -> None:
    from pipelines.run import run_vertex

    fake = FakeAiplatform()
    run_vertex(ARGS, project="p", region="r", bucket="b", aiplatform=fake)
    assert fake.jobs[0].spec["pipelineInfo"]["name"] == PIPELINE_NAME


# -- the missing extra and missing credentials: one line ----------------------------------------------------


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from chicago_arrest.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


VERTEX_RUN = ["pipeline", "run", "--target", "vertex", "--project", "p", "--region", "r", "--bucket", "b"]


def test_missing_extra_is_one_line_naming_uv_sync(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # import → ImportError
    with pytest.raises(vertex.VertexError, match=re.escape("uv sync --extra vertex")):
        vertex.import_aiplatform()
    code, out, err = _cli(VERTEX_RUN, capsys)
    assert code == 1
    assert out.startswith("target: vertex")
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert "uv sync --extra vertex" in err


def test_missing_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**kwargs: Any) -> None:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    code, _, err = _cli(VERTEX_RUN, capsys)
    assert code == 1
    assert err.count("\n") == 1
    assert "DefaultCredentialsError" in err
    assert "application-default login" in err


def test_vertex_module_imports_no_google_cloud_package() -> None:
    import subprocess

    code = (
        "import sys, chicago_arrest.vertex, components.vertex_gate, components.bigquery_window, "
        "components.land_bigquery, components.serve_model; "
        "bad = [m for m in sys.modules if m.startswith(('google.cloud.aiplatform', 'google_cloud_pipeline'))]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).resolve().parents[2]
    )


def test_served_model_is_the_selected_candidate_as_an_mlflow_folder(
    tmp_path: Path, stations: pd.DataFrame
) -> None:
    import joblib

    from chicago_arrest.registry import load_arrest_model
    from chicago_arrest.split import time_split
    from chicago_arrest.training import TrainConfig, train_model

    train, test, _ = time_split(generate_crimes(5_000, stations=stations, seed=5))
    model = train_model(train, stations, TrainConfig(model_type="logreg")).model
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"m{k}.joblib"))
        joblib.dump(model, paths[-1])
    evaluation = {"selected": "logreg", "selected_index": 1}
    test.to_parquet(tmp_path / "test.parquet", index=False)
    served_dir = tmp_path / "served"
    assert vertex.save_served_model(paths, evaluation, served_dir, tmp_path / "test.parquet") == "logreg"
    assert "input_example" in (served_dir / "MLmodel").read_text(encoding="utf-8")
    assert (tmp_path / "served" / "MLmodel").is_file()
    served = load_arrest_model(str(tmp_path / "served"))
    expected = model.predict_arrest_probability(test.head(20))
    assert served.predict_arrest_probability(test.head(20)).tolist() == pytest.approx(expected.tolist())


def test_shared_parameters_take_the_training_pipelines_defaults() -> None:
    import inspect

    from pipelines.training import training_pipeline
    from pipelines.vertex_training import vertex_training_pipeline

    training = inspect.signature(training_pipeline.pipeline_func).parameters
    mine = inspect.signature(vertex_training_pipeline.pipeline_func).parameters
    for name in (*vertex.SHARED_PARAMETERS, "stations_source"):
        assert mine[name].default == training[name].default, name


def test_a_champion_without_metric_labels_stops_the_submit() -> None:
    endpoint = SimpleNamespace(
        resource_name="projects/p/locations/r/endpoints/7",
        traffic_split={"111": 100},
        list_models=lambda: [SimpleNamespace(id="111", model="projects/p/locations/r/models/1")],
    )
    fake = FakeAiplatform([endpoint], labels={"team": "x"})
    with pytest.raises(vertex.VertexError, match="no roc_auc_ppm / ece_ppm labels"):
        vertex.submit(ARGS, project="p", region="r", bucket="b", template=GOLDEN, aiplatform=fake)
    assert fake.jobs == []


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_new_components_run_under_kfp_local(
    tmp_path: Path, stations: pd.DataFrame, settings: Settings
) -> None:
    """land_bigquery → the project's validate, and vertex_gate, as KFP components (kfp.local subprocesses)."""
    from kfp import dsl, local
    from kfp.dsl import Dataset

    from components.land_bigquery import land_bigquery
    from components.validate import validate
    from components.vertex_gate import vertex_gate

    export = tmp_path / "export"
    export.mkdir()
    generate_crimes(600, start="2024-01-01", months=2, stations=stations).to_parquet(
        export / "crimes-000000000000.parquet", index=False
    )
    stations.to_parquet(tmp_path / "stations.parquet", index=False)

    def landing() -> str:
        imported = dsl.importer(artifact_uri=str(export), artifact_class=Dataset)
        land = land_bigquery(
            export=imported.output, stations_source=str(tmp_path / "stations.parquet"), months=2
        )
        validate(raw=land.outputs["raw"])
        gate = vertex_gate(
            evaluation=_evaluation(0.9, 0.02),
            champion=_champion(0.85),
            promotion_margin=0.0,
            max_ece=0.05,
            canary_percent=25,
        )
        return gate.outputs["action"]

    landing.__annotations__["return"] = str  # this module postpones annotations; KFP needs the type itself
    pipeline = dsl.pipeline(landing)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp"),
        raise_on_error=True,
    )
    run = pipeline()
    assert run.output == "canary"
    valid = next((tmp_path / "kfp").glob("landing-*/validate/valid"))
    assert len(pd.read_parquet(valid)) > 550
