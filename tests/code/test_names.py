"""One home per name: the YAML under manifests/, kind-cluster/up.sh and the Makefile spell the names of
:mod:`chicago_arrest.core.names`, and the version is pyproject.toml's, read from the package metadata."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

import chicago_arrest
from chicago_arrest.core import names

ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = {names.MODELS_NAMESPACE, names.KFP_NAMESPACE, names.MLFLOW_NAMESPACE, names.MINIO_NAMESPACE}


def pyproject_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_version_comes_from_the_package_metadata_of_pyproject() -> None:
    assert chicago_arrest.__version__ == version("chicago-arrest") == pyproject_version()
    assert f"{names.IMAGE_REPOSITORY}:{pyproject_version()}" == names.DEFAULT_IMAGE


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):  # JSON patches (lists) name no objects
                yield path.relative_to(ROOT), doc


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def test_manifests_use_the_project_image_and_namespaces() -> None:
    images, namespaces = set(), set()
    for _, doc in manifests():
        for key, value in walk(doc):
            if key == "image" and str(value).startswith(f"{names.IMAGE_REPOSITORY}:"):
                images.add(value)
            if key == "namespace" and isinstance(value, str):
                namespaces.add(value)
    assert images == {names.DEFAULT_IMAGE}
    assert namespaces <= NAMESPACES
    assert names.MODELS_NAMESPACE in namespaces


def test_inference_service_and_bucket_job_spell_the_names() -> None:
    docs = [doc for _, doc in manifests()]
    (isvc,) = [d for d in docs if d.get("kind") == "InferenceService"]
    assert (isvc["metadata"]["name"], isvc["metadata"]["namespace"]) == (
        names.ISVC_NAME,
        names.MODELS_NAMESPACE,
    )
    env = {item["name"]: item.get("value") for key, value in walk(isvc) if key == "env" for item in value}
    assert names.MODEL_VERSION_ENV in env
    assert env["STORAGE_URI"].startswith(f"s3://{names.MODELS_BUCKET}/{names.ISVC_NAME}/v")
    (job,) = [d for d in docs if d.get("kind") == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["chicago-arrest", "store", "ensure-buckets", *names.BUCKETS]


def shell_defaults(text: str) -> dict[str, str]:
    """``NAME="value"`` and ``NAME="${NAME:-value}"`` assignments of a shell script."""
    found = {}
    for name, value in re.findall(r'^([A-Z_]+)="([^"]*)"$', text, flags=re.M):
        default = re.fullmatch(r"\$\{" + name + r":-(.*)\}", value)
        found[name] = default[1] if default else value
    return found


def test_kind_up_script_spells_the_names() -> None:
    text = (ROOT / "kind-cluster" / "up.sh").read_text()
    values = shell_defaults(text)
    assert values["IMAGE"] == values["DEFAULT_IMAGE"] == names.DEFAULT_IMAGE
    assert (
        values["DATA_BUCKET"],
        values["MLFLOW_BUCKET"],
        values["MODELS_BUCKET"],
        values["SERVED_BUCKET"],
    ) == names.BUCKETS
    assert f"-n {names.KFP_NAMESPACE} create configmap {names.STEP_CONFIG_MAP}" in text
    assert f"apply_secret {names.KFP_NAMESPACE} {names.STEP_SECRET} " in text
    assert f"-n {names.MODELS_NAMESPACE} get isvc {names.ISVC_NAME}" in text


def make_dry_run(*args: str) -> str:
    """``make -n`` of the real Makefile (the install stamp treated as up to date), without pipeline variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        # MAKELEVEL/MAKEFLAGS: under `make test` a nested make would print "make[1]: Entering directory".
        if k
        not in {"SOURCE", "STATIONS", "MONTHS", "TEST_MONTHS", "MODELS", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"}
    }
    env.pop("IMAGE", None)
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/.synced", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_image_is_the_versioned_default_and_pipeline_defaults_are_not_repeated() -> None:
    assert f"docker build -t {names.DEFAULT_IMAGE} ." in make_dry_run("image")
    assert f"IMAGE={names.DEFAULT_IMAGE} kind-cluster/up.sh" in make_dry_run("kind-up")
    assert make_dry_run("pipeline-run").split() == [
        ".venv/bin/python",
        "-m",
        "chicago_arrest.cli",
        "pipeline",
        "run",
    ]
    assert make_dry_run("pipeline-run", "MONTHS=3", "MODELS=logreg").split()[-4:] == [
        "--months",
        "'3'",
        "--models",
        "'logreg'",
    ]
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^(MONTHS|TEST_MONTHS|MODELS) \??=", makefile, flags=re.M)
