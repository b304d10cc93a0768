"""IMAGE reaches every executor of the compiled pipeline (``make compile IMAGE=...``, a cluster run's image);
the committed YAML keeps the default. Runs the real Makefile (``-o .venv/.synced``, as test_make_cluster_targets)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from chicago_arrest.core import names
from tests.code.test_make_cluster_targets import (
    _SCRUB,
    MAKE,
    REPO_ROOT,
    STAMP,
    Sandbox,
    kube,
    pytestmark,
    sandbox,
)

__all__ = ["kube", "pytestmark", "sandbox"]  # fixtures and skip marks shared with test_make_cluster_targets

# ----------------------------------------------------------------------------------------------------------
# IMAGE: every executor of the compiled pipeline (the committed YAML keeps the default)
# ------------------------------------------------------------------------------------------------------------

CUSTOM_IMAGE = "registry.example/chicago-arrest:9.9.9"


def _executor_images(path: Path) -> set[str]:
    from chicago_arrest.pipelines.compile import executor_images

    return set(executor_images(path.read_text()).values())


def test_make_compile_writes_image_into_every_executor(sandbox: Sandbox) -> None:
    committed = (
        REPO_ROOT / "src" / "chicago_arrest" / "pipelines" / "compiled" / "chicago-arrest-training.yaml"
    )
    before = committed.read_bytes()
    out = sandbox.root / "compiled"
    result = sandbox.make("compile", f"IMAGE={CUSTOM_IMAGE}", f"COMPILE_DIR={out}")
    assert result.returncode == 0, result.stderr
    compiled = out / "chicago-arrest-training.yaml"
    spec = next(yaml.safe_load_all(compiled.read_text()))
    assert len(spec["deploymentSpec"]["executors"]) >= 9  # ingest ... deploy
    assert _executor_images(compiled) == {CUSTOM_IMAGE}
    assert names.DEFAULT_IMAGE not in compiled.read_text()
    assert committed.read_bytes() == before
    assert _executor_images(committed) == {names.DEFAULT_IMAGE}


def test_compile_training_rewrites_the_image_for_a_cluster_run(tmp_path: Path) -> None:
    from chicago_arrest.pipelines.compile import compile_training

    path = compile_training(tmp_path, image=CUSTOM_IMAGE)
    assert _executor_images(path) == {CUSTOM_IMAGE}
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 2  # the platform spec (ConfigMap and Secret as env) is kept
    assert "platforms" in docs[1]
    assert _executor_images(compile_training(tmp_path / "default")) == {names.DEFAULT_IMAGE}


def test_pipeline_run_passes_only_a_user_set_image() -> None:
    assert MAKE is not None
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}

    def dry(*args: str, extra: dict[str, str] | None = None) -> str:
        out = subprocess.run(
            [MAKE, "--no-print-directory", "-n", "-C", str(REPO_ROOT), "-o", STAMP, "pipeline-run", *args],
            env=env | (extra or {}),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.strip().splitlines()[-1]

    assert "ARREST_IMAGE" not in dry()
    assert f"ARREST_IMAGE='{CUSTOM_IMAGE}'" in dry(f"IMAGE={CUSTOM_IMAGE}")
    assert f"ARREST_IMAGE='{CUSTOM_IMAGE}'" in dry(extra={"IMAGE": CUSTOM_IMAGE})
    assert "--target 'cluster'" in dry("TARGET=cluster")
