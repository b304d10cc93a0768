"""The Vertex AI variant (issue 17), pipeline side: golden YAML, wiring, the served model, the components.

Nothing here talks to Google Cloud (test_bigquery.py covers the BigQuery source, test_vertex_submit.py the gate,
the submit and the one-line errors, test_vertex_smoke.py the smoke run, tests/e2e/test_vertex_server.py the
server under Vertex's environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from chicago_arrest.core.names import DEFAULT_IMAGE, ISVC_NAME, MODEL_NAME
from chicago_arrest.core.settings import Settings
from chicago_arrest.data.synthetic import generate_crimes

pytest.importorskip("google_cloud_pipeline_components")

from chicago_arrest.pipelines.compile import COMPILED_DIR, compile_vertex
from chicago_arrest.pipelines.vertex_training import PIPELINE_NAME

GOLDEN = COMPILED_DIR / f"{PIPELINE_NAME}.yaml"
TRAINING = COMPILED_DIR / "chicago-arrest-training.yaml"


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
        "src/chicago_arrest/pipelines/compiled is stale: run `make compile` and commit the YAML"
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
    assert container["predictRoute"] == f"/v1/models/{ISVC_NAME}:predict"  # Vertex's predict: instances
    assert container["healthRoute"] == "/v2/health/ready"
    assert container["ports"] == [{"containerPort": 8080}]
    assert container["args"] == [
        "--model_uri=$(AIP_STORAGE_URI)",
        "--model_version=$(AIP_DEPLOYED_MODEL_ID)",
        "--http_port=$(AIP_HTTP_PORT)",
        "--enable_grpc=false",
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


# -- served model, shared parameters, the components under kfp.local -------------------------------------


def test_served_model_is_the_selected_candidate_as_an_mlflow_folder(
    tmp_path: Path, stations: pd.DataFrame
) -> None:
    import joblib

    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import load_arrest_model
    from chicago_arrest.release.vertex import save_served_model

    train, test, _ = time_split(generate_crimes(5_000, stations=stations, seed=5))
    model = train_model(train, stations, TrainConfig(model_type="logreg")).model
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / f"m{k}.joblib"))
        joblib.dump(model, paths[-1])
    evaluation = {"selected": "logreg", "selected_index": 1}
    test.to_parquet(tmp_path / "test.parquet", index=False)
    served_dir = tmp_path / "served"
    assert save_served_model(paths, evaluation, served_dir, tmp_path / "test.parquet") == "logreg"
    assert "input_example" in (served_dir / "MLmodel").read_text(encoding="utf-8")
    assert (tmp_path / "served" / "MLmodel").is_file()
    served = load_arrest_model(str(tmp_path / "served"))
    expected = model.predict_arrest_probability(test.head(20))
    assert served.predict_arrest_probability(test.head(20)).tolist() == pytest.approx(expected.tolist())


def test_shared_parameters_take_the_training_pipelines_defaults() -> None:
    import inspect

    from chicago_arrest.pipelines.training import training_pipeline
    from chicago_arrest.pipelines.vertex_submit import SHARED_PARAMETERS
    from chicago_arrest.pipelines.vertex_training import vertex_training_pipeline

    training = inspect.signature(training_pipeline.pipeline_func).parameters
    mine = inspect.signature(vertex_training_pipeline.pipeline_func).parameters
    for name in (*SHARED_PARAMETERS, "stations_source"):
        assert mine[name].default == training[name].default, name


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_new_components_run_under_kfp_local(
    tmp_path: Path, stations: pd.DataFrame, settings: Settings
) -> None:
    """land_bigquery → the project's validate, and vertex_gate, as KFP components (kfp.local subprocesses)."""
    from kfp import dsl, local
    from kfp.dsl import Dataset

    from chicago_arrest.components.land_bigquery import land_bigquery
    from chicago_arrest.components.validate import validate
    from chicago_arrest.components.vertex_gate import vertex_gate
    from tests.bigquery_loader import write_export

    export = tmp_path / "export"
    write_export(generate_crimes(600, start="2024-01-01", months=2, stations=stations), export, bug=False)
    stations.to_parquet(tmp_path / "stations.parquet", index=False)

    def landing() -> str:
        imported = dsl.importer(artifact_uri=str(export), artifact_class=Dataset)
        land = land_bigquery(
            export=imported.output, stations_source=str(tmp_path / "stations.parquet"), months=2
        )
        validate(raw=land.outputs["raw"])
        gate = vertex_gate(
            evaluation={
                "selected": "logreg",
                "selected_index": 0,
                "candidates": {"logreg": {"roc_auc": 0.9, "ece": 0.02, "pr_auc": 0.7, "brier": 0.1}},
            },
            champion={"model": "m", "deployed_model_id": "5", "metrics": {"roc_auc": 0.85, "ece": 0.02}},
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
