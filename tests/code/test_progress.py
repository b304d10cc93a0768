"""The quiet console of a local run (:mod:`chicago_arrest.pipelines.progress`): step lines, log files, live line,
failure.

A small pipeline that is not the training pipeline runs under the real ``kfp.local`` here (the mechanism is
generic); the training pipeline itself is covered end to end in tests/e2e/test_pipeline_local.py.
"""

import builtins
import io
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local
from typer.testing import CliRunner

from chicago_arrest.cli import main as cli
from chicago_arrest.cli import reports as cli_reports
from chicago_arrest.cli.reports import latest_reports
from chicago_arrest.pipelines.progress import LocalRun, Step, progress_message
from chicago_arrest.pipelines.run import StepFailedError, failure_message
from chicago_arrest.steps import SUMMARY_PREFIX, log_summary

# ------------------------------------------------------------------------------------------ a small pipeline


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count(rows: int, metrics: dsl.Output[dsl.Metrics], page: dsl.Output[dsl.HTML]) -> dict:
    import logging

    from chicago_arrest.steps import log_summary

    logging.getLogger("demo").info("counted %d rows", rows)
    log_summary(f"{rows:,} rows counted (demo)")
    metrics.log_metric("rows", rows)
    with open(page.path, "w") as handle:
        handle.write("<html><body>demo</body></html>")
    return {"rows": rows, "kind": "demo"}


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def square(rows: int, factor: int) -> int:
    print(f"squaring with {factor}")
    if factor < 0:
        print("error: ValueError: factor must be >= 0, got", factor)
        raise SystemExit(1)
    return rows * factor


@dsl.pipeline(name="demo-pipeline")
def demo_pipeline(rows: int = 3, factors: list = [1, 2]) -> None:  # noqa: B006 - KFP default value
    counted = count(rows=rows)
    with dsl.ParallelFor(factors) as factor:
        square(rows=rows, factor=factor).after(counted)


def run_demo(root: Path, stream: io.StringIO, **arguments: Any) -> LocalRun:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    reporter = LocalRun(root, stream=stream)
    with reporter.capture():
        demo_pipeline(**arguments)
    return reporter


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalRun, str, str]:
    root = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    stdout = io.StringIO()
    sys_stdout = sys.stdout
    sys.stdout = stdout  # anything kfp.local printed past the reporter would land here
    try:
        reporter = run_demo(root, stream)
    finally:
        sys.stdout = sys_stdout
    return reporter, stream.getvalue(), stdout.getvalue()


def test_quiet_run_prints_one_line_per_step(demo: tuple[LocalRun, str, str]) -> None:
    reporter, console, leaked = demo
    lines = console.splitlines()
    assert [line.split()[0] for line in lines] == ["count", "square", "square"]
    assert sorted(line.split()[1] for line in lines[1:]) == ["#0", "#1"]
    assert re.fullmatch(r"  count +\d+\.\d s  3 rows counted \(demo\)", lines[0])
    assert re.fullmatch(r"  square #[01] +\d+\.\d s", lines[1])  # it logged no summary
    assert leaked == ""
    assert "executor_input" not in console
    assert "KFP Executor" not in console
    assert [s.ok for s in reporter.steps] == [True, True, True]


def test_each_step_has_its_full_log_and_kfp_its_own(demo: tuple[LocalRun, str, str]) -> None:
    reporter, _, _ = demo
    assert reporter.run_dir is not None
    logs = reporter.run_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "count.log",
        "kfp.log",
        "square-0.log",
        "square-1.log",
        "steps.json",
    ]
    assert "counted 3 rows" in (logs / "count.log").read_text()
    assert "Got executor_input" in (logs / "count.log").read_text()
    assert "squaring with 2" in (logs / "square-1.log").read_text()
    kfp_log = (logs / "kfp.log").read_text()
    assert "finished with status" in kfp_log
    assert "demo-pipeline" in kfp_log
    assert reporter.kfp_log == logs / "kfp.log"
    assert not list(reporter.root.glob(".kfp-local-*"))


def test_each_step_records_its_wall_cpu_time_and_peak_memory(demo: tuple[LocalRun, str, str]) -> None:
    """``logs/steps.json``: what ``bench.bench_pipeline`` reads (per-step wall, CPU time, peak resident memory)."""
    reporter, _, _ = demo
    assert reporter.run_dir is not None
    rows = json.loads((reporter.run_dir / "logs" / "steps.json").read_text())
    assert sorted(r["step"] for r in rows) == sorted(s.label for s in reporter.steps)
    for row in rows:
        assert row["ok"] is True
        assert row["wall_s"] > 0
        assert 0 < row["cpu_s"] < 10 * row["wall_s"]
        assert 20 < row["peak_rss_mb"] < 4096  # a Python process with pandas and KFP's executor loaded


def test_html_artifacts_get_an_html_copy(demo: tuple[LocalRun, str, str]) -> None:
    reporter, _, _ = demo
    assert reporter.run_dir is not None
    page = reporter.run_dir / "count" / "page.html"
    assert page.read_text() == "<html><body>demo</body></html>"
    found = latest_reports(reporter.root)
    assert found is not None
    assert found.main == page
    assert found.run_dir == reporter.run_dir


def test_builtin_print_and_the_root_logger_are_restored(demo: tuple[LocalRun, str, str]) -> None:
    assert builtins.print.__module__ == "builtins"
    handlers = logging.getLogger().handlers
    assert not [h for h in handlers if getattr(getattr(h, "stream", None), "closed", False)]


def test_a_failing_step_is_named_with_its_error_and_log(tmp_path: Path) -> None:
    stream = io.StringIO()
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True
    )
    reporter = LocalRun(tmp_path, stream=stream)
    with pytest.raises(RuntimeError), reporter.capture():
        demo_pipeline(factors=[-1])
    failed = reporter.failed
    assert failed is not None
    assert failed.label == "square #0"
    assert failed.error == "ValueError: factor must be >= 0, got -1"
    assert "squaring with -1" in failed.log.read_text()
    assert stream.getvalue().splitlines()[-1].split() == [
        "square",
        "#0",
        f"{failed.seconds:.1f}",
        "s",
        "FAILED",
    ]
    message = failure_message(StepFailedError(failed.label, failed.error, failed.log), {"source": "x.csv"})
    assert (
        message
        == f"error: step 'square #0' failed: ValueError: factor must be >= 0, got -1 (log: {failed.log})"
    )
    assert "\n" not in message


def test_verbose_streams_everything_and_still_writes_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True
    )
    console = io.StringIO()
    reporter = LocalRun(tmp_path, verbose=True, stream=console)
    with reporter.capture():
        demo_pipeline(factors=[1])
    out = capsys.readouterr().out
    assert "squaring with 1" in out
    assert "Got executor_input" in out
    assert reporter.run_dir is not None
    assert "squaring with 1" in (reporter.run_dir / "logs" / "square-0.log").read_text()
    assert console.getvalue() == ""  # the step lines are for the quiet console only


# ------------------------------------------------------------------------------------------- the live line


def test_live_line_shows_running_steps_and_their_last_message(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = LocalRun(tmp_path, stream=stream, live=True)
    output_file = tmp_path / "run-1" / "slow" / "executor_output.json"
    output_file.parent.mkdir(parents=True)
    script = (
        "import time\n"
        "print('[KFP Executor 2026-01-01 10:00:00,000 INFO]: Got executor_input:', flush=True)\n"
        "print('10:00:01 INFO chicago_arrest.data.socrata: crimes: page 2, 100000 rows so far', flush=True)\n"
        "time.sleep(1.2)\n"
        f"print('10:00:02 INFO chicago_arrest.steps: {SUMMARY_PREFIX}7 pages', flush=True)\n"
    )
    executor_input = {"outputs": {"outputFile": str(output_file)}, "inputs": {"parameterValues": {}}}
    with reporter.capture():
        code = reporter.run_task(
            [sys.executable, "-c", script, "--executor_input", json.dumps(executor_input)]
        )
    assert code == 0
    raw = stream.getvalue()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # the terminal's cursor and erase sequences
    assert "\x1b[2K" in raw  # rich redrew the live line in place
    assert re.search(r"  … slow \d s  \| crimes: page 2, 100000 rows so far", text)
    assert "Got executor_input" not in text
    assert re.search(r"  slow +\d+\.\d s  7 pages\n", text)
    assert reporter.steps[0].summary == "7 pages"
    assert reporter.steps[0].last_line == "crimes: page 2, 100000 rows so far"


def test_progress_message_keeps_step_messages_only() -> None:
    assert progress_message("[KFP Executor 2026-11-29 21:02:11,105 INFO]: landed 2017-12: 253 rows") == (
        "landed 2017-12: 253 rows"
    )
    assert progress_message("21:02:11 INFO chicago_arrest.model.training: logreg trained") == "logreg trained"
    assert progress_message("[KFP Executor 2026-11-29 21:02:13,378 INFO]: Got executor_input:") is None
    assert progress_message('    "rows": 2747.0') is None


# ------------------------------------------------------------------------------------------- the summary


def test_a_steps_summary_is_its_logged_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="chicago_arrest.steps"):
        log_summary("5,996 valid, 3 quarantined (of 5,999)")
    (message,) = [r.getMessage() for r in caplog.records]
    line = f"[KFP Executor 2026-11-29 21:02:11,105 INFO]: {message}"
    assert progress_message(line) == "summary: 5,996 valid, 3 quarantined (of 5,999)"
    assert progress_message(f"21:02:11 INFO chicago_arrest.steps: {message}") == progress_message(line)


def test_a_step_in_a_loop_is_named_by_its_parameter(tmp_path: Path) -> None:
    reporter = LocalRun(tmp_path, stream=io.StringIO())
    executor_input = {
        "outputs": {"outputFile": str(tmp_path / "run-1" / "for-loop-1-iteration-2" / "train" / "x.json")},
        "inputs": {"parameterValues": {"model_type": "xgboost"}},
    }
    step = reporter._start(executor_input)
    assert isinstance(step, Step)
    assert step.label == "train xgboost"
    assert step.log == tmp_path / "run-1" / "logs" / "train-xgboost.log"


# ----------------------------------------------------------------------------------------------- reports


def test_browser_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli_reports.browser_command() is None
    assert cli_reports.open_in_browser(Path("x.html")) is False
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cli_reports.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert cli_reports.browser_command() == ["xdg-open"]
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli_reports.browser_command() == ["open"]


def test_pipeline_report_prints_the_newest_training_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["pipeline", "report"])
    assert result.exit_code == 1
    assert "no HTML report under" in result.output
    run = tmp_path / "kfp" / "p-2026-01-01"
    for step in ("validate", "evaluate", "gate"):
        (run / step).mkdir(parents=True)
        (run / step / "report.html").write_text("<html></html>")
    result = runner.invoke(cli.app, ["pipeline", "report"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == str(run / "evaluate" / "report.html")
    assert len(lines) == 3
    assert "no browser here" in result.output


def test_steps_json_survives_steps_finishing_at_the_same_moment(tmp_path: Path) -> None:
    """Parallel tasks finish in threads of their own: their writes of ``steps.json`` must not collide."""
    import threading

    reporter = LocalRun(tmp_path, stream=io.StringIO())
    reporter.run_dir = tmp_path / "run"
    (reporter.run_dir / "logs").mkdir(parents=True)
    reporter.steps = [
        Step(task="square", label=f"square {i}", log=tmp_path / f"{i}.log", started=0.0, seconds=1.0, ok=True)
        for i in range(4)
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def finish() -> None:
        start.wait()
        try:
            for _ in range(100):
                reporter._write_resources()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=finish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = json.loads((reporter.run_dir / "logs" / "steps.json").read_text())
    assert [r["step"] for r in rows] == [f"square {i}" for i in range(4)]
    assert list((reporter.run_dir / "logs").iterdir()) == [reporter.run_dir / "logs" / "steps.json"]
