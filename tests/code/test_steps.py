"""Step glue: clear failures for users, KFP-safe summaries, the deploy target."""

from __future__ import annotations

import numpy as np
import pytest

from chicago_arrest.data.socrata import SocrataError
from chicago_arrest.pipelines.run import failure_message
from chicago_arrest.steps import kfp_safe, run_step
from chicago_arrest.steps.release import resolve_target


def test_expected_errors_become_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> None:
        raise SocrataError("Socrata query failed after 6 attempt(s)")

    with pytest.raises(SystemExit) as exit_info:
        run_step(fails)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "error: SocrataError: Socrata query failed after 6 attempt(s)"


def test_bugs_keep_their_traceback_and_results_pass_through() -> None:
    with pytest.raises(ZeroDivisionError):
        run_step(lambda x: 1 / x, 0)
    assert run_step(lambda a, *, b: a + b, 1, b=2) == 3


def test_failure_message_hints_at_source_when_offline() -> None:
    exc = RuntimeError(
        "Pipeline \x1b[95m'x'\x1b[0m finished with status FAILURE. Inner task failed: 'ingest'."
    )
    message = failure_message(exc, {"source": ""})
    assert message.startswith("error: Pipeline 'x' finished with status FAILURE")
    assert "SOURCE=path/to/crimes.csv" in message
    assert "SOURCE=" not in failure_message(exc, {"source": "/data/crimes.csv"})


def test_kfp_safe_and_deploy_target(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kfp_safe({"a": None, "b": [np.int64(3), np.float32(0.5)], "c": {"d": None}}) == {
        "a": "",
        "b": [3, 0.5],
        "c": {"d": ""},
    }
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert resolve_target("auto") == "local"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert resolve_target("auto") == "cluster"
    with pytest.raises(ValueError, match="deploy target"):
        resolve_target("moon")
