"""The compiled pipeline: golden YAML, the graph, one project image for every step, nothing installed."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import yaml

from chicago_arrest.core.names import DEFAULT_IMAGE
from chicago_arrest.model.training import MODEL_TYPES, TrainConfig
from chicago_arrest.pipelines.compile import COMPILED_DIR, compile_training
from chicago_arrest.pipelines.training import PIPELINE_NAME, training_pipeline
from chicago_arrest.steps.experiment import evaluate_file
from chicago_arrest.steps.training import train_step

REPO = Path(__file__).resolve().parents[2]
GOLDEN = COMPILED_DIR / f"{PIPELINE_NAME}.yaml"


def _load(path: Path) -> dict:
    """The pipeline spec with the platform (Kubernetes) spec under ``platforms``."""
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    spec = dict(docs[0])
    for extra in docs[1:]:
        spec.update(extra)
    return spec


def test_committed_yaml_matches_the_source(tmp_path: Path) -> None:
    fresh = _load(compile_training(tmp_path))
    golden = _load(GOLDEN)
    assert fresh == golden, (
        "src/chicago_arrest/pipelines/compiled is stale: run `make compile` and commit the YAML"
    )


def test_every_step_runs_the_project_image_and_installs_nothing() -> None:
    spec = _load(GOLDEN)
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 9
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == DEFAULT_IMAGE, name
        script = " ".join(container.get("command", []) + container.get("args", []))
        assert "pip install" not in script, name
        assert "packages_to_install" not in script, name


def test_arrest_image_overrides_the_image_at_compile_time(tmp_path: Path) -> None:
    image = "registry.example/chicago-arrest:9.9.9"
    code = (
        "from pathlib import Path; import chicago_arrest.pipelines.compile as c; "
        f"c.compile_training(Path({str(tmp_path)!r}))"
    )
    env = {**os.environ, "ARREST_IMAGE": image}
    subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, check=True, capture_output=True, timeout=120
    )
    executors = _load(tmp_path / GOLDEN.name)["deploymentSpec"]["executors"]
    assert len(executors) == 9
    assert {e["container"]["image"] for e in executors.values()} == {image}


def test_component_bodies_are_one_run_step_call() -> None:
    """Each component imports one step function and calls it through run_step (the boilerplate is written once)."""
    spec = _load(GOLDEN)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        source = executor["container"]["command"][-1]
        body = source[source.rindex('"""') + 3 :]
        assert "from chicago_arrest.steps import run_step" in body, name
        assert body.count("run_step(") == 1, name
        code = [line.strip() for line in body.splitlines() if line.strip()]
        assert code[0].startswith("from chicago_arrest.steps import run_step"), name
        assert code[1].startswith("from chicago_arrest.steps."), name
        assert code[2].startswith(("return run_step(", "run_step(")), name


def test_graph_enrich_is_a_report_branch() -> None:
    """Split and train consume the validated records; enrich's output feeds only the evaluate report."""
    tasks = _load(GOLDEN)["root"]["dag"]["tasks"]
    records = tasks["split"]["inputs"]["artifacts"]["records"]["taskOutputArtifact"]
    assert records == {"outputArtifactKey": "valid", "producerTask": "validate"}
    consumers = {
        name
        for name, task in tasks.items()
        if "enrich" in str(task.get("inputs", {})) or "enrich" in task.get("dependentTasks", [])
    }
    assert consumers == {"evaluate"}


def test_parameters_and_cluster_config() -> None:
    spec = _load(GOLDEN)
    params = spec["root"]["inputDefinitions"]["parameters"]
    for name in (
        "source",
        "months",
        "test_months",
        "models",
        "mi_threshold",
        "promotion_margin",
        "canary_percent",
        "split_kind",
        "deploy_target",
    ):
        assert name in params, name
    assert params["models"]["defaultValue"] == ["xgboost", "random_forest", "logreg"]
    k8s = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ingest = next(v for k, v in k8s.items() if "ingest" in k)
    assert ingest["configMapAsEnv"][0]["configMapName"] == "chicago-arrest-config"
    assert ingest["secretAsEnv"][0]["secretName"] == "chicago-arrest-s3"


def test_model_evaluate_and_train_defaults_are_the_pipeline_defaults() -> None:
    """``model evaluate`` gives the pipeline's numbers only if both train with the same defaults."""
    pipeline = {
        k: p.default for k, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()
    }
    evaluate = {k: p.default for k, p in inspect.signature(evaluate_file).parameters.items()}
    train = {k: p.default for k, p in inspect.signature(train_step).parameters.items()}
    config = TrainConfig()
    assert evaluate["months"] == pipeline["months"]
    assert evaluate["split"] == pipeline["split_kind"] == train["split"]
    assert evaluate["test_months"] == pipeline["test_months"]
    assert list(evaluate["models"]) == pipeline["models"] == list(MODEL_TYPES)
    assert pipeline["mi_threshold"] == train["mi_threshold"] == config.mi_threshold
    assert pipeline["calibration"] == train["calibration"] == config.calibration
    assert pipeline["search_budget_s"] == train["search_budget_s"] == config.search_budget_s
    assert train["random_state"] == config.random_state


# ------------------------------------------------------------------------------------------------------------
# Issue 25: what every task gets on a cluster (pull policy), and the network steps' retries
# ------------------------------------------------------------------------------------------------------------

#: The pipelines that run on the kind cluster, and their tasks that talk to services over the network.
CLUSTER_PIPELINES = {
    "chicago-arrest-training": {"ingest", "register", "deploy"},
    "chicago-arrest-batch-scoring": {"batch-score"},
    "chicago-arrest-monitoring": {"monitor"},
}


def _all_tasks(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline: the root DAG's and those of sub-DAGs (the ParallelFor of train)."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_every_executor_pulls_the_image_if_not_present() -> None:
    """A `:latest` IMAGE would mean imagePullPolicy Always: a pull from Docker Hub of an image only kind has."""
    for name in CLUSTER_PIPELINES:
        spec = _load(COMPILED_DIR / f"{name}.yaml")
        executors = spec["deploymentSpec"]["executors"]
        k8s = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert set(k8s) == set(executors), name
        assert {e.get("imagePullPolicy") for e in k8s.values()} == {"IfNotPresent"}, name


def test_network_steps_retry_with_backoff_and_nothing_else_does() -> None:
    from chicago_arrest.steps.retry import NETWORK

    expected = {
        "maxRetryCount": NETWORK.retries,
        "backoffDuration": f"{NETWORK.backoff_s:g}s",
        "backoffFactor": NETWORK.factor,
        "backoffMaxDuration": f"{NETWORK.max_backoff_s:g}s",
    }
    assert NETWORK.retries >= 1
    assert NETWORK.backoff_s > 0
    for name, network in CLUSTER_PIPELINES.items():
        tasks = _all_tasks(_load(COMPILED_DIR / f"{name}.yaml"))
        retried = {task for task, spec in tasks.items() if "retryPolicy" in spec}
        assert retried == network, name
        for task in network:
            assert tasks[task]["retryPolicy"] == expected, (name, task)
            assert tasks[task]["cachingOptions"] == {}, (name, task)  # never served from the cache


def test_local_runs_strip_the_retries_and_give_them_back() -> None:
    from chicago_arrest.pipelines.run import without_retries

    graph = training_pipeline.component_spec.implementation.graph

    def retried() -> set[str]:
        return {n for n, t in graph.root.dag.tasks.items() if t.HasField("retry_policy")}

    assert retried() == CLUSTER_PIPELINES["chicago-arrest-training"]
    with without_retries(training_pipeline):
        assert retried() == set()
    assert retried() == CLUSTER_PIPELINES["chicago-arrest-training"]


def test_run_local_pipeline_runs_without_retries(tmp_path: Path, monkeypatch) -> None:
    import pytest

    from chicago_arrest.pipelines import run

    seen: list[set[str]] = []

    class Pipeline:
        component_spec = training_pipeline.component_spec

        def __call__(self, **arguments: object) -> None:
            graph = self.component_spec.implementation.graph
            seen.append({n for n, t in graph.root.dag.tasks.items() if t.HasField("retry_policy")})
            raise RuntimeError("stop here")

    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="stop here"):
        run.run_local_pipeline(Pipeline(), "test", {})
    assert seen == [set()]


def test_small_profile_lowers_only_the_train_requests(tmp_path: Path) -> None:
    """Issue 25: on a 4 vCPU runner the platform requests ~3 CPUs: a train pod asking for 1 CPU never runs."""
    from chicago_arrest.pipelines.training import TRAIN_RESOURCES

    small = _load(compile_training(tmp_path / "small", profile="small"))
    laptop = _load(compile_training(tmp_path / "laptop", profile="laptop"))
    assert laptop == _load(GOLDEN)
    resources = small["deploymentSpec"]["executors"]["exec-train"]["container"].pop("resources")
    golden = laptop["deploymentSpec"]["executors"]["exec-train"]["container"].pop("resources")
    assert small == laptop  # nothing else changes
    assert resources == {
        "cpuLimit": 2.0,
        "cpuRequest": 0.25,
        "memoryLimit": 4.0,
        "memoryRequest": 1.0,
        "resourceCpuLimit": "2",
        "resourceCpuRequest": "250m",
        "resourceMemoryLimit": "4G",
        "resourceMemoryRequest": "1G",
    }
    assert golden["resourceCpuRequest"] == TRAIN_RESOURCES["laptop"]["cpu_request"] == "1"
    import pytest

    with pytest.raises(ValueError, match="cluster profile must be one of laptop, small"):
        compile_training(tmp_path / "x", profile="huge")
