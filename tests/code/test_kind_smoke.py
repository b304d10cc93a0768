"""``kind-cluster/smoke.sh`` (``make kind-smoke``) and ``kind-cluster/load-image.sh``, offline.

smoke.sh runs against stub ``kubectl`` / ``curl`` and a stub project Python that record their calls: the checks
run in order, each prints PASS or FAIL, a FAIL names the kubectl command to look closer, and the serving verbs go
without ``--target`` (the recorded cluster decides). load-image.sh runs against stub ``kind`` / ``docker``: the
kind#3795 fallback. smoke.py's own logic (the window, the split tolerance, traffic sampling) is tested directly.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND_DIR = REPO_ROOT / "kind-cluster"

STUB = r"""#!/usr/bin/env bash
name="$(basename "$0")"
printf '%s %s\n' "${name}" "$*" >>"${STUB_DIR}/calls.log"
args=" $* "
if [[ -n "${STUB_FAIL:-}" && "${args}" == *"${STUB_FAIL}"* ]]; then
  echo "stub failure: ${STUB_FAIL}"
  exit 1
fi
case "${name}" in
  kubectl)
    if [[ "${args}" == *"jsonpath={.status.url}"* ]]; then
      printf 'http://arrest-predictor.models.example.com'
    elif [[ "${args}" == *" get pods -o jsonpath="* && "${args}" == *" -n models "* ]]; then
      printf '%b' "${STUB_PODS:-}"
    elif [[ "${args}" == *" get secret minio-root "* ]]; then
      printf 'admin-0001'
    elif [[ "${args}" == *" get secret "* ]]; then
      printf '%s' "${STUB_APP_USER:-app-user}"
    fi
    ;;
  python)
    if [[ "$1" == -c ]]; then
      echo "http://localhost:8180"
    else
      echo "ok: $*"
    fi
    ;;
  kind)
    if [[ "$1 $2" == "load docker-image" && -n "${STUB_DIGEST_ERROR:-}" ]]; then
      echo 'ERROR: failed to load image: command "docker exec ... ctr ... images import" failed' >&2
      echo 'ctr: content digest sha256:0123: not found' >&2
      exit 1
    fi
    ;;
  docker)
    if [[ "$1 $2" == "image inspect" ]]; then
      echo "linux/arm64/v8"
    fi
    ;;
esac
exit 0
"""


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("kubectl", "curl", "python", "kind", "docker"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    (data / "cluster.json").write_text(
        json.dumps({"cluster_name": "test", "context": "kind-test", "kfp_host": "http://localhost:3000"})
    )
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "STUB_DIR": str(state),
        "CLUSTER_NAME": "test",
        "PYTHON": str(bin_dir / "python"),
        "ARREST_DATA_DIR": str(data),
    }
    return state, env


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KIND_DIR / script), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _calls(state: Path) -> list[str]:
    return (state / "calls.log").read_text().splitlines()


# ------------------------------------------------------------------------------------------------------------
# smoke.sh
# ------------------------------------------------------------------------------------------------------------

CHECKS = [
    "ready: cert-manager",
    "ready: kubeflow",
    "ready: knative-serving",
    "ready: kourier-system",
    "ready: kserve",
    "ready: minio",
    "ready: mlflow",
    "ready: bucket Job",
    "MinIO: per-app users",
    "KFP: no run active",
    "data: generated records landed (seed 1)",
    "pipeline run 1 (champion)",
    "serving: InferenceService ready",
    "serving: newest revision ready (run 1)",
    "serving: V2 ready through Kourier",
    "traffic: champion alone",
    "data: other generated records landed (seed 2)",
    "pipeline run 2 (challenger at 10 %)",
    "serving: newest revision ready (run 2)",
    "traffic: challenger at about 10 %",
    "canary 50",
    "serving: newest revision ready (canary 50)",
    "traffic: challenger at about 50 %",
    "promote",
    "serving: newest revision ready (promote)",
    "traffic: the former challenger alone",
    "rollback",
    "serving: newest revision ready (rollback)",
    "traffic: one version, as status states",
]


def _results(stdout: str) -> list[str]:
    """The PASS / FAIL lines."""
    return [line for line in stdout.splitlines() if line.startswith(("PASS  ", "FAIL  "))]


def test_smoke_dry_run_passes_every_check_in_order(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("smoke.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    results = _results(result.stdout)
    assert len(results) == len(CHECKS)
    for line, name in zip(results, CHECKS, strict=True):
        assert line.startswith(f"PASS  {name}"), (line, name)
    assert f"==> {len(CHECKS)} passed, 0 failed" in result.stdout

    calls = _calls(state)
    assert all(c.startswith("kubectl --context kind-test ") for c in calls if c.startswith("kubectl"))
    python = [c.split(" ", 1)[1] for c in calls if c.startswith("python ")]
    smoke = [c for c in python if "smoke.py" in c]
    # issue 25: no run active first; after each run and serving verb the newest revision is waited for
    assert [c.split("smoke.py ", 1)[1].split(" --")[0] for c in smoke] == [
        "quiet",
        "land",
        "run",
        "settle",
        "traffic",
        "land",
        "run",
        "settle",
        "traffic",
        "settle",
        "traffic",
        "settle",
        "traffic",
        "settle",
        "traffic",
    ]
    assert all("--timeout 600" in c for c in smoke if " settle" in c)
    assert not list(Path(env["ARREST_DATA_DIR"]).glob("diagnostics/*")), "no archive when everything passed"
    traffic = [c for c in smoke if " traffic " in c]
    assert [c.split("--expect ", 1)[1].split()[0] for c in traffic] == ["0", "10", "50", "0", "0"]
    assert all("--host-header arrest-predictor.models.example.com" in c for c in traffic)
    assert "--expect-champion previous-challenger" in traffic[3]
    # the serving verbs as make runs them: no --target, the recorded cluster decides
    verbs = [c for c in python if "chicago_arrest.cli serving" in c]
    assert [v.split("serving ", 1)[1] for v in verbs] == ["canary --percent 50", "promote", "rollback"]
    # V2 readiness through Kourier with the InferenceService's host
    (curl,) = [c for c in calls if c.startswith("curl ")]
    assert "Host: arrest-predictor.models.example.com" in curl
    assert "http://localhost:8180/v2/models/arrest-predictor/ready" in curl
    # the steps' MinIO keys never on a command line
    assert not any("app-user" in c for c in python)


def test_smoke_fail_names_the_command_to_look_closer(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("smoke.sh", env | {"STUB_FAIL": "--expect 10"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    (fail,) = [i for i, line in enumerate(lines) if line.startswith("FAIL  ")]
    assert lines[fail].startswith("FAIL  traffic: challenger at about 10 %")
    assert lines[fail + 1].startswith("      look closer: ")
    assert "chicago_arrest.cli serving status" in lines[fail + 1]
    assert "kubectl --context kind-test -n models get isvc arrest-predictor -o yaml" in lines[fail + 1]
    # what depends on the failed check is not run
    assert not any("canary" in c for c in _calls(state))
    assert "passed, 1 failed" in result.stdout
    # issue 25: one diagnostics archive, its path on the last line
    last = lines[-1]
    assert last.startswith("diagnostics: ")
    archive = Path(last.split(": ", 1)[1])
    assert archive.parent == Path(env["ARREST_DATA_DIR"]) / "diagnostics"
    assert archive.is_file()
    assert any("smoke.py runs --last 20" in c for c in _calls(state))


def test_smoke_refuses_while_a_kfp_run_is_active(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("smoke.sh", env | {"STUB_FAIL": "smoke.py quiet", "SKIP_DIAGNOSE": "1"})
    assert result.returncode == 1
    (fail,) = [line for line in _results(result.stdout) if line.startswith("FAIL")]
    assert fail.startswith("FAIL  KFP: no run active")
    assert not any("smoke.py land" in c or "smoke.py run " in c for c in _calls(state))


def test_smoke_reports_root_keys_in_an_app_secret(stubs: tuple[Path, dict[str, str]]) -> None:
    _state, env = stubs
    result = _run("smoke.sh", env | {"STUB_APP_USER": "admin-0001"})
    assert result.returncode == 1
    assert "FAIL  MinIO: per-app users: kubeflow/chicago-arrest-s3 holds admin-0001" in result.stdout


def test_smoke_needs_the_record(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    (Path(env["ARREST_DATA_DIR"]) / "cluster.json").unlink()
    result = _run("smoke.sh", env)
    assert result.returncode == 1
    assert "FAIL  prerequisites: no cluster recorded" in result.stdout
    assert "run make kind-up first" in result.stdout
    assert not (state / "calls.log").exists()


# ------------------------------------------------------------------------------------------------------------
# load-image.sh: kind load docker-image, else docker image save --platform + kind load image-archive
# ------------------------------------------------------------------------------------------------------------


def test_load_image_uses_kind_load_when_it_works(stubs: tuple[Path, dict[str, str]]) -> None:
    state, env = stubs
    result = _run("load-image.sh", env, "chicago-arrest:9.9.9", "demo")
    assert result.returncode == 0, result.stderr
    assert _calls(state) == ["kind load docker-image chicago-arrest:9.9.9 --name demo"]


def test_load_image_falls_back_to_an_archive_of_the_image_platform(
    stubs: tuple[Path, dict[str, str]],
) -> None:
    state, env = stubs
    result = _run("load-image.sh", env | {"STUB_DIGEST_ERROR": "1"}, "chicago-arrest:9.9.9")
    assert result.returncode == 0, result.stderr
    assert "content digest sha256:0123: not found" in result.stderr
    assert "kind#3795" in result.stderr
    calls = _calls(state)
    assert calls[0] == "kind load docker-image chicago-arrest:9.9.9 --name chicago-arrest"
    assert calls[1].startswith("docker image inspect -f {{.Os}}/{{.Architecture}}")
    save = calls[2].split()
    assert save[:5] == ["docker", "image", "save", "--platform", "linux/arm64/v8"]
    archive = save[save.index("-o") + 1]
    assert calls[3] == f"kind load image-archive {archive} --name chicago-arrest"
    assert not Path(archive).parent.exists(), "the archive's folder is removed"
    assert "from an image archive" in result.stdout


def test_load_image_fallback_failure_points_to_the_readme(stubs: tuple[Path, dict[str, str]]) -> None:
    _state, env = stubs
    result = _run("load-image.sh", env | {"STUB_DIGEST_ERROR": "1", "STUB_FAIL": "image save"}, "x:1")
    assert result.returncode == 1
    assert "needs Docker >= 28" in result.stderr
    assert "kind-cluster/README.md" in result.stderr


# ------------------------------------------------------------------------------------------------------------
# smoke.py
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke() -> Any:
    spec = importlib.util.spec_from_file_location("kind_smoke", KIND_DIR / "smoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("today", "start"),
    [(dt.date(2026, 11, 29), dt.date(2026, 8, 1)), (dt.date(2026, 2, 1), dt.date(2025, 11, 1))],
)
def test_window_is_the_ingest_steps(smoke: Any, today: dt.date, start: dt.date) -> None:
    from chicago_arrest.data.ingest import plan_months

    assert smoke.window_start(today) == start
    window, to_land = plan_months(today, smoke.MONTHS, [], refresh=0)
    assert window[0] == f"{start:%Y-%m}"
    # after `land`, a run with refresh_months=0 lands nothing, so it asks Socrata for nothing (test_ingest.py)
    assert plan_months(today, smoke.MONTHS, window, refresh=0)[1] == []
    assert to_land == window


def test_within_tolerates_sampling_noise_only(smoke: Any) -> None:
    assert smoke.within(20, 200, 10)
    assert smoke.within(0, 200, 0)
    assert smoke.within(2, 200, 0)  # a request or two in flight while Knative moves traffic
    assert not smoke.within(3, 200, 0)
    assert not smoke.within(100, 200, 10)
    assert smoke.within(112, 200, 50)
    assert not smoke.within(0, 200, 50)
    assert not smoke.within(199, 200, 0)


class _Predictor(BaseHTTPRequestHandler):
    """Answers V2 infer like the InferenceService: version 2 every ``share``-th request, else version 1."""

    count = 0
    every = 5  # 20 % to version 2

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        json.loads(self.rfile.read(length))
        type(self).count += 1
        version = "2" if type(self).count % type(self).every == 0 else "1"
        body = json.dumps(
            {"model_name": "arrest-predictor", "model_version": version, "outputs": []}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        assert self.headers["Host"] == "arrest-predictor.models.example.com"

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def predictor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Predictor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_traffic_compares_answers_with_the_stated_split(
    smoke: Any,
    predictor: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    (tmp_path / "cluster.json").write_text(
        json.dumps(
            {"cluster_name": "c", "context": "kind-c", "kfp_host": "http://x", "ingress_url": predictor}
        )
    )
    split = {"champion": "1", "challenger": "2", "canary_percent": 20}
    monkeypatch.setattr(smoke, "stated_split", lambda: dict(split))
    state = tmp_path / "state.json"
    host = "arrest-predictor.models.example.com"
    assert smoke.traffic(host, 100, 20, None, 1, state) == 0
    assert "answers {'1': 80, '2': 20} of 100" in capsys.readouterr().out
    assert json.loads(state.read_text())["challenger"] == "2"
    # status claims 50 %, the ingress serves 20 %: FAIL, with both numbers
    split["canary_percent"] = 50
    assert smoke.traffic(host, 100, None, None, 1, state) == 1
    assert "challenger answered 20/100, not about 50 %" in capsys.readouterr().out
    # after a promote the former challenger must be the champion
    split.update(champion="1", challenger=None, canary_percent=0)
    assert smoke.traffic(host, 10, 0, "previous-challenger", 1, state) == 1
    assert "expected 2" in capsys.readouterr().out


def test_smoke_py_help_runs_without_a_cluster() -> None:
    result = subprocess.run(
        [sys.executable, str(KIND_DIR / "smoke.py"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("land", "run", "traffic"))


class _Kfp:
    """A kfp.Client stand-in: ``pages`` answers list_runs in turn (the last one again when they run out)."""

    def __init__(self, *pages: list[Any]) -> None:
        self.pages = list(pages)
        self.filters: list[dict[str, Any]] = []

    def list_runs(
        self, page_token: str = "", page_size: int = 10, sort_by: str = "", filter: str = ""
    ) -> Any:
        from types import SimpleNamespace

        self.filters.append(json.loads(filter) if filter else {})
        runs = self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]
        return SimpleNamespace(runs=runs, next_page_token="")


def _kfp_run(name: str, state: str) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(display_name=name, run_id=f"id-{name}", state=state, created_at="t", error=None)


def test_quiet_waits_for_active_runs_and_names_them(
    smoke: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(smoke.time, "sleep", lambda s: None)
    client = _Kfp([_kfp_run("chicago-arrest-training-1", "RUNNING")], [])
    assert smoke.quiet(60, poll_s=0, client=client) == 0
    out = capsys.readouterr().out
    assert (
        "waiting for 1 active KFP run(s): chicago-arrest-training-1 (id-chicago-arrest-training-1, RUNNING)"
        in out
    )
    assert out.strip().endswith(
        "no KFP run active after waiting for chicago-arrest-training-1 "
        "(id-chicago-arrest-training-1, RUNNING)"
    )
    (predicate,) = client.filters[0]["predicates"]
    assert predicate == {
        "operation": "IN",
        "key": "state",
        "stringValues": {"values": ["PENDING", "RUNNING", "CANCELING", "PAUSED"]},
    }


def test_quiet_fails_naming_the_runs_still_active(
    smoke: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(smoke.time, "sleep", lambda s: None)
    # the server filters by state; a finished run in the answer is still ignored
    client = _Kfp([_kfp_run("a", "PENDING"), _kfp_run("b", "SUCCEEDED")])
    assert smoke.quiet(0, poll_s=0, client=client) == 1
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("1 KFP run(s) still active after 0 s: a (id-a, PENDING)")
    assert "b (" not in out


def test_runs_lists_the_last_runs_with_errors(smoke: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    failed = _kfp_run("x", "FAILED")
    failed.error = SimpleNamespace(message="step ingest failed")
    assert smoke.runs(5, client=_Kfp([failed, _kfp_run("y", "SUCCEEDED")])) == 0
    out = capsys.readouterr().out
    assert "x (id-x, FAILED) created t  error: step ingest failed" in out
    assert "2 run(s) shown" in out


# ------------------------------------------------------------------------------------------------------------
# diagnose.sh (make kind-diagnose)
# ------------------------------------------------------------------------------------------------------------


def test_diagnose_writes_one_archive_with_logs_of_pods_not_ready(stubs: tuple[Path, dict[str, str]]) -> None:
    import tarfile

    state, env = stubs
    pods = "ready-1 Running true true\\nbroken-1 Running false true\\npending-1 Pending\\ndone-1 Succeeded false\\n"
    result = _run("diagnose.sh", env | {"STUB_PODS": pods})
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("diagnostics: ")
    archive = Path(last.split(": ", 1)[1])
    assert archive.parent == Path(env["ARREST_DATA_DIR"]) / "diagnostics"
    with tarfile.open(archive) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for namespace in (
        "cert-manager",
        "kubeflow",
        "knative-serving",
        "kourier-system",
        "kserve",
        "minio",
        "mlflow",
        "models",
    ):
        assert {f"{namespace}/resources.txt", f"{namespace}/pods.yaml", f"{namespace}/events.txt"} <= members
    assert {
        "cluster.json",
        "nodes.txt",
        "kfp-runs.txt",
        "commands.txt",
        "models/inferenceservice.yaml",
        "models/revisions.yaml",
        "models/describe.txt",
    } <= members
    assert {
        "models/logs/broken-1.log",
        "models/logs/pending-1.log",
        "models/logs/broken-1.previous.log",
    } <= members
    assert not any("ready-1" in m or "done-1" in m for m in members)
    calls = _calls(state)
    assert all(c.startswith("kubectl --context kind-test ") for c in calls if c.startswith("kubectl"))
    assert not any(verb in c for c in calls for verb in (" apply ", " delete ", " patch ", " create "))
    assert any("smoke.py runs --last 20" in c for c in calls)
    assert "-n models logs broken-1 --all-containers" in "\n".join(calls)
