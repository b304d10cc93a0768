"""The one command line: usage errors exit 2, expected failures print one line and exit 1, and ``pipeline
run``'s options are exactly the pipeline's parameters and defaults."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from chicago_arrest.cli import main as cli
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.core.settings import Settings
from chicago_arrest.pipelines import run as pipeline_run
from chicago_arrest.pipelines.training import training_pipeline

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(cli.app, list(args), env=env)


@pytest.fixture(autouse=True)
def _no_cluster_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A data dir without .data/cluster.json: the target is local unless a test names it."""
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path / "no-record"))


def result_lines(result: Any) -> list[str]:
    """stdout without the target line that every serving and pipeline command prints first."""
    lines = result.stdout.splitlines()
    assert lines, result.output
    assert lines[0].startswith("target: "), lines[0]
    return lines[1:]


def run_command() -> Any:
    """The click command behind ``pipeline run`` (built on demand from the pipeline's signature)."""
    root = typer.main.get_command(cli.app)
    ctx = root.make_context("chicago-arrest", ["pipeline", "run"], resilient_parsing=True)
    pipeline = root.get_command(ctx, "pipeline")  # type: ignore[attr-defined]
    return pipeline.get_command(ctx, "run")


class FakeRelease:
    """Records the verbs; ``fail`` makes every verb raise a ReleaseError."""

    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def _do(self, verb: str, arg: Any = None) -> Any:
        self.calls.append((verb, arg))
        if self.fail:
            raise ReleaseError(self.fail)
        return type("Outcome", (), {"message": lambda _self: f"{verb} done"})()

    def canary(self, percent: int) -> Any:
        return self._do("canary", percent)

    def promote(self, force: bool = False) -> Any:
        return self._do("promote")

    def rollback(self) -> Any:
        return self._do("rollback")

    def status(self) -> dict[str, Any]:
        self._do("status")
        return {"target": "cluster", "serving": None, "backend": {}, "notes": [], "registry": {}}


@pytest.fixture
def release(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRelease, list[dict[str, Any]]]:
    from chicago_arrest.release import ops

    fake, opened = FakeRelease(), []

    def open_release(target: str, **kwargs: Any) -> FakeRelease:
        opened.append({"target": target, **kwargs})
        return fake

    monkeypatch.setattr(ops, "open_release", open_release)
    monkeypatch.setattr(ops, "format_status", lambda report: f"status of {report['target']}")
    return fake, opened


# -- usage errors: exit 2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["serving", "canary"],
        ["serving", "canary", "--percent", "101"],
        ["serving", "canary", "--percent", "ten"],
        ["serving", "promote", "--target", "moon"],
        ["serving", "teleport"],
        ["store", "ensure-buckets"],
        ["model", "evaluate"],
        ["model", "evaluate", "--source", "x.csv", "--split", "sideways"],
        ["pipeline", "run", "--models", "logreg,magic"],
        ["pipeline", "run", "--models", ""],
        ["pipeline", "run", "--canary-percent", "150"],
        ["pipeline", "run", "--split", "sideways"],
        ["pipeline", "run", "--deploy-target", "moon"],
        ["pipeline", "run", "--months", "twelve"],
        ["pipeline", "schedule", "--cron", "0 2 * * *"],
    ],
)
def test_bad_usage_exits_2(args: list[str], release: Any) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert release[0].calls == []


# -- expected failures: one line, exit 1 ----------------------------------------------------------------------


def assert_one_line_error(result: Any, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert all(line.startswith("target: ") for line in result.stdout.splitlines())  # the first line, if any
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_release_error_is_one_line(release: Any) -> None:
    release[0].fail = "the registry moved, serving did not: run `make promote` again"
    assert_one_line_error(invoke("serving", "promote", "--target", "cluster"), "make promote")


def test_missing_source_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(
        invoke("pipeline", "run", "--source", str(tmp_path / "nope.csv")), "SOURCE", "nope.csv"
    )


def test_schedule_without_kfp_host_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert_one_line_error(invoke("pipeline", "schedule"), "KFP_HOST")


def test_ensure_buckets_without_s3_is_one_line(settings: Settings) -> None:
    assert_one_line_error(invoke("store", "ensure-buckets", "data"), "ARREST_STORE_BACKEND=s3")


def test_evaluate_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = invoke("model", "evaluate", "--source", str(tmp_path / "crimes.csv"))
    assert_one_line_error(result, "crimes.csv")


def test_unexpected_errors_are_not_hidden(release: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeRelease, "rollback", lambda self: 1 / 0)
    result = invoke("serving", "rollback")
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)


def test_main_returns_the_exit_code(release: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serving", "rollback"]) == 0
    assert cli.main(["serving", "canary", "--percent", "101"]) == 2
    release[0].fail = "nothing is served"
    assert cli.main(["serving", "rollback"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: nothing is served"


# -- serving: one code path for both targets ------------------------------------------------------------------


def test_serving_verbs_open_the_release_of_the_target(release: Any) -> None:
    fake, opened = release
    assert result_lines(invoke("serving", "canary", "--percent", "30")) == ["canary done"]
    assert result_lines(invoke("serving", "promote", "--target", "cluster", "--context", "kind-x")) == [
        "promote done"
    ]
    assert (
        invoke("serving", "rollback", "--target", "cluster", "--namespace", "ns", "--name", "isvc").exit_code
        == 0
    )
    assert fake.calls == [("canary", 30), ("promote", None), ("rollback", None)]
    assert opened == [
        {"target": "local", "context": None, "namespace": None, "name": None, "record": None},
        {"target": "cluster", "context": "kind-x", "namespace": None, "name": None, "record": None},
        {"target": "cluster", "context": None, "namespace": "ns", "name": "isvc", "record": None},
    ]


def test_status_text_and_json(release: Any) -> None:
    assert result_lines(invoke("serving", "status", "--target", "cluster")) == ["status of cluster"]
    as_json = invoke("serving", "status", "--json")
    assert as_json.stderr.startswith("target: local (")  # stdout stays pure JSON
    report = json.loads(as_json.stdout)
    assert report["target"] == "cluster"
    assert report["serving"] is None


# -- pipeline run: options derived from the pipeline's signature ---------------------------------------------


def test_pipeline_run_options_are_the_pipeline_parameters_and_defaults() -> None:
    signature = inspect.signature(training_pipeline.pipeline_func)
    options = {p.name: p for p in run_command().params if p.name != "help"}
    vertex = {"project", "region", "bucket", "service_account"}  # --target vertex (issues 17, 28)
    assert set(options) == {*signature.parameters, "kfp_host", "target", "verbose", *vertex}
    for name, param in signature.parameters.items():
        default = ",".join(param.default) if isinstance(param.default, list) else param.default
        assert options[name].default == default, name
        assert f"--{name.replace('_', '-')}" in options[name].opts
        assert options[name].help, f"{name} has no help (Args section of training_pipeline's docstring)"
    assert options["stations_source"].opts == ["--stations-source", "--stations"]
    assert options["split_kind"].opts == ["--split-kind", "--split"]
    assert options["kfp_host"].envvar == "KFP_HOST"


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        pipeline_run,
        "run_local",
        lambda arguments, verbose=False: calls.append(("local-verbose" if verbose else "local", arguments)),
    )
    monkeypatch.setattr(
        pipeline_run,
        "run_cluster",
        lambda arguments, host, image=None, profile=None: calls.append((host, arguments)),
    )
    monkeypatch.delenv("KFP_HOST", raising=False)
    return calls


def test_pipeline_run_passes_the_pipeline_defaults(runs: list[tuple[str, dict[str, Any]]]) -> None:
    assert invoke("pipeline", "run").exit_code == 0
    defaults = {
        k: p.default for k, p in inspect.signature(training_pipeline.pipeline_func).parameters.items()
    }
    assert runs == [("local", defaults)]
    assert invoke("pipeline", "run", "--verbose").exit_code == 0
    assert runs[-1] == ("local-verbose", defaults)


def test_pipeline_run_maps_and_resolves_options(
    runs: list[tuple[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("crimes.csv").write_text("id\n")
    args = [
        "--source",
        "crimes.csv",
        "--stations",
        "st.csv",
        "--split",
        "random",
        "--models",
        " logreg , xgboost",
    ]
    assert invoke("pipeline", "run", *args, "--months", "3", "--canary-percent", "0").exit_code == 0
    ((where, arguments),) = runs
    assert where == "local"
    assert arguments["source"] == str(tmp_path / "crimes.csv")
    assert arguments["stations_source"] == str(tmp_path / "st.csv")
    assert (arguments["split_kind"], arguments["months"], arguments["canary_percent"]) == ("random", 3, 0)
    assert arguments["models"] == ["logreg", "xgboost"]


def test_pipeline_run_resolves_several_sources(
    runs: list[tuple[str, dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOURCE=a.csv.gz,b.parquet or a folder: each part made absolute; a missing one is one line."""
    monkeypatch.chdir(tmp_path)
    Path("years").mkdir()
    for name in ("a.csv.gz", "years/b.parquet"):
        Path(name).write_text("id\n")
    assert invoke("pipeline", "run", "--source", "a.csv.gz, years/b.parquet", "--months", "24").exit_code == 0
    assert runs[-1][1]["source"] == f"{tmp_path / 'a.csv.gz'},{tmp_path / 'years' / 'b.parquet'}"
    assert runs[-1][1]["months"] == 24
    assert invoke("pipeline", "run", "--source", "years").exit_code == 0
    assert runs[-1][1]["source"] == str(tmp_path / "years")
    assert_one_line_error(invoke("pipeline", "run", "--source", "a.csv.gz,nope.csv"), "SOURCE", "nope.csv")


def test_pipeline_run_on_kfp_keeps_paths_as_given(runs: list[tuple[str, dict[str, Any]]]) -> None:
    result = invoke("pipeline", "run", "--source", "/in/pod.csv", env={"KFP_HOST": "http://kfp"})
    assert result.exit_code == 0
    assert runs == [("http://kfp", {**runs[0][1], "source": "/in/pod.csv"})]
    assert "readable inside the step's pod" in result.stderr


def test_failed_local_run_prints_the_step_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(arguments: dict[str, Any], verbose: bool = False) -> None:
        raise RuntimeError("Task 'ingest' finished with status FAILURE")

    monkeypatch.setattr(pipeline_run, "run_local", fail)
    result = invoke("pipeline", "run")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Task 'ingest' finished with status FAILURE")
    assert "SOURCE=path/to/crimes.csv" in result.stderr


# -- pipeline schedule / unschedule / compile -----------------------------------------------------------------


def test_compile(tmp_path: Path) -> None:
    result = invoke("pipeline", "compile", "--out-dir", str(tmp_path))
    assert result.exit_code == 0
    assert (tmp_path / "chicago-arrest-training.yaml").is_file()


# -- start-up ------------------------------------------------------------------------------------------------


def test_the_pipeline_commands_work_outside_the_checkout(tmp_path: Path) -> None:
    """The pipelines are part of the installed package: no project folder, no sys.path tricks (issue 24)."""
    env = {**os.environ, "PYTHONPATH": ""}
    compiled = subprocess.run(
        [
            sys.executable,
            "-m",
            "chicago_arrest.cli",
            "pipeline",
            "compile",
            "--out-dir",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert (tmp_path / "out" / "chicago-arrest-training.yaml").is_file()
    helped = subprocess.run(
        [sys.executable, "-m", "chicago_arrest.cli", "pipeline", "run", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert helped.returncode == 0, helped.stderr
    assert "--months" in helped.stdout


def test_module_entry_point_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from chicago_arrest.cli import main; "
        "print(sorted(m for m in ('kfp', 'mlflow', 'pandas', 'sklearn', 'kubernetes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run(
        [sys.executable, "-m", "chicago_arrest.cli", "pipeline", "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0
    assert all(verb in help_text.stdout for verb in ("run", "schedule", "unschedule", "compile"))


def test_console_script_from_the_project_folder_knows_the_pipeline_options() -> None:
    """The ``chicago-arrest`` script does not put the current folder on sys.path (``python -m`` does)."""
    script = Path(sys.executable).with_name("chicago-arrest")
    if not script.is_file():
        pytest.skip("the chicago-arrest console script is not installed beside this interpreter")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": ""}
    result = subprocess.run(
        [str(script), "pipeline", "run", "--help"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "--source" in result.stdout
    assert "--search-budget-s" in result.stdout
