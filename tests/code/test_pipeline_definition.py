"""The compiled pipeline: golden YAML, one project image for every step, nothing installed at run time."""

from __future__ import annotations

from pathlib import Path

import yaml

from components import IMAGE
from pipelines.compile import COMPILED_DIR, compile_training
from pipelines.training import PIPELINE_NAME

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
    assert fresh == golden, "pipelines/compiled is stale: run `make compile` and commit the YAML"


def test_every_step_runs_the_project_image_and_installs_nothing() -> None:
    spec = _load(GOLDEN)
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 9
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == IMAGE, name
        script = " ".join(container.get("command", []) + container.get("args", []))
        assert "pip install" not in script, name
        assert "packages_to_install" not in script, name


def test_component_bodies_are_thin_wrappers() -> None:
    """Each component imports its logic from the library (thin component, fat library)."""
    spec = _load(GOLDEN)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        source = executor["container"]["command"][-1]
        assert "from chicago_arrest.steps import" in source, name
        assert len(source.splitlines()) < 90, name


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
    assert params["models"]["defaultValue"] == ["logreg", "random_forest", "xgboost"]
    k8s = spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    ingest = next(v for k, v in k8s.items() if "ingest" in k)
    assert ingest["configMapAsEnv"][0]["configMapName"] == "chicago-arrest-config"
    assert ingest["secretAsEnv"][0]["secretName"] == "chicago-arrest-s3"
