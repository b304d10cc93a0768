"""Recurring runs against a fake kfp.Client: exactly the expected calls, and never a second copy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace as Ns
from typing import Any

import pytest
from typer.testing import CliRunner

from chicago_arrest.cli import main as cli
from chicago_arrest.core.names import TRAINING_PIPELINE as PIPELINE_NAME
from chicago_arrest.pipelines import schedule

runner = CliRunner()


class FakeClient:
    """Records calls; keeps recurring runs in memory like the KFP API would."""

    def __init__(self, pipeline_exists: bool = True, version: str = "v2") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pipeline_id = "p1" if pipeline_exists else None
        self.version = version
        self.runs: list[Any] = []
        self._next = 0

    def _record(self, method: str, /, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))

    def get_pipeline_id(self, name: str) -> str | None:
        self._record("get_pipeline_id", name=name)
        return self.pipeline_id

    def upload_pipeline(self, path: str, pipeline_name: str) -> Any:
        self._record("upload_pipeline", path=path, pipeline_name=pipeline_name)
        self.uploaded = Path(path).read_text(encoding="utf-8")
        self.pipeline_id = "p1"
        return Ns(pipeline_id="p1")

    def upload_pipeline_version(self, path: str, pipeline_version_name: str, pipeline_id: str) -> Any:
        self._record(
            "upload_pipeline_version", path=path, name=pipeline_version_name, pipeline_id=pipeline_id
        )
        self.uploaded = Path(path).read_text(encoding="utf-8")
        return Ns(pipeline_version_id="v-new")

    def run_pipeline(self, **kwargs: Any) -> Any:
        self._record("run_pipeline", **kwargs)
        return Ns(run_id="run-1")

    def list_pipeline_versions(self, pipeline_id: str, sort_by: str, page_size: int) -> Any:
        self._record("list_pipeline_versions", pipeline_id=pipeline_id, sort_by=sort_by, page_size=page_size)
        return Ns(pipeline_versions=[Ns(pipeline_version_id=self.version)])

    def create_experiment(self, name: str) -> Any:
        self._record("create_experiment", name=name)
        return Ns(experiment_id="e1")

    def list_recurring_runs(self, experiment_id: str, page_token: str, page_size: int) -> Any:
        self._record("list_recurring_runs", experiment_id=experiment_id, page_token=page_token)
        return Ns(recurring_runs=list(self.runs), next_page_token="")

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        self._record("delete_recurring_run", recurring_run_id=recurring_run_id)
        self.runs = [r for r in self.runs if r.recurring_run_id != recurring_run_id]

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self._record("create_recurring_run", **kwargs)
        self._next += 1
        run = Ns(
            recurring_run_id=f"r{self._next}",
            display_name=kwargs["job_name"],
            pipeline_version_reference=Ns(
                pipeline_id=kwargs["pipeline_id"], pipeline_version_id=kwargs["version_id"]
            ),
            trigger=Ns(cron_schedule=Ns(cron=kwargs["cron_expression"])),
            max_concurrency=kwargs["max_concurrency"],
            no_catchup=kwargs["no_catchup"],
            runtime_config=Ns(parameters=kwargs["params"]),
            mode="ENABLE",
        )
        self.runs.append(run)
        return run


def names(client: FakeClient) -> list[str]:
    return [c[0] for c in client.calls]


def test_first_schedule_creates_monthly_run_on_latest_version() -> None:
    client = FakeClient()
    result = schedule.ensure_recurring_run(client)
    assert result.action == "created"
    create = dict(client.calls)["create_recurring_run"]
    assert create == {
        "experiment_id": "e1",
        "job_name": schedule.JOB_NAME,
        "description": create["description"],
        "cron_expression": "0 0 2 8 * *",
        "max_concurrency": 1,
        "no_catchup": True,
        "params": {},  # every scheduled run takes the pipeline's own defaults
        "pipeline_id": "p1",
        "version_id": "v2",
        "enabled": True,
    }
    assert dict(client.calls)["list_pipeline_versions"]["sort_by"] == "created_at desc"


def test_rerun_is_idempotent() -> None:
    client = FakeClient()
    schedule.ensure_recurring_run(client)
    client.calls.clear()
    result = schedule.ensure_recurring_run(client)
    assert result.action == "unchanged"
    assert "create_recurring_run" not in names(client)
    assert "delete_recurring_run" not in names(client)
    assert len(client.runs) == 1


def test_new_pipeline_version_replaces_the_run_never_duplicates() -> None:
    client = FakeClient()
    schedule.ensure_recurring_run(client)
    client.version = "v3"
    client.calls.clear()
    result = schedule.ensure_recurring_run(client)
    assert result.action == "updated"
    assert names(client).index("delete_recurring_run") < names(client).index("create_recurring_run")
    assert [r.pipeline_version_reference.pipeline_version_id for r in client.runs] == ["v3"]


def test_duplicates_left_by_hand_are_collapsed_to_one() -> None:
    client = FakeClient()
    schedule.ensure_recurring_run(client)
    client.runs.append(client.runs[0].__class__(**{**vars(client.runs[0]), "recurring_run_id": "manual"}))
    result = schedule.ensure_recurring_run(client)
    assert result.action == "updated"
    assert len(client.runs) == 1


def test_missing_pipeline_is_uploaded_first(tmp_path: Path) -> None:
    client = FakeClient(pipeline_exists=False)
    package = tmp_path / "p.yaml"
    package.write_text("{}")
    schedule.ensure_recurring_run(client, package_path=str(package))
    assert dict(client.calls)["upload_pipeline"] == {"path": str(package), "pipeline_name": PIPELINE_NAME}


def test_unschedule_deletes_and_is_quiet_when_nothing_is_there() -> None:
    client = FakeClient()
    schedule.ensure_recurring_run(client)
    assert schedule.delete_recurring_run(client).action == "deleted"
    assert client.runs == []
    assert schedule.delete_recurring_run(client).action == "unchanged"


@pytest.mark.parametrize("cron", ["0 2 * * *", "0 0 2 1 *", ""])
def test_five_field_cron_is_rejected(cron: str) -> None:
    with pytest.raises(ValueError, match="6 fields"):
        schedule.validate_cron(cron)


def test_cli_schedule_and_unschedule_with_a_fake_kfp(monkeypatch: pytest.MonkeyPatch) -> None:
    import kfp

    client = FakeClient()
    monkeypatch.setattr(kfp, "Client", lambda host: client)
    monkeypatch.delenv("CRON", raising=False)
    result = runner.invoke(cli.app, ["pipeline", "schedule", "--kfp-host", "http://kfp"])
    assert result.exit_code == 0
    assert "created" in result.stdout
    assert "'0 0 2 8 * *'" in result.stdout
    assert (
        "unchanged" in runner.invoke(cli.app, ["pipeline", "schedule"], env={"KFP_HOST": "http://kfp"}).stdout
    )
    assert (
        "updated"
        in runner.invoke(
            cli.app, ["pipeline", "schedule"], env={"KFP_HOST": "h", "CRON": "0 0 3 8 * *"}
        ).stdout
    )
    assert (
        "deleted" in runner.invoke(cli.app, ["pipeline", "unschedule"], env={"KFP_HOST": "http://kfp"}).stdout
    )
    assert client.runs == []


def test_first_schedule_compiles_with_the_clusters_image_into_a_temporary_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 25: `make pipeline-schedule` before any run uploads the recorded image, never the committed YAML."""
    import json

    import kfp

    from chicago_arrest.pipelines.compile import COMPILED_DIR, executor_images

    committed = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in COMPILED_DIR.glob("*.yaml")}
    image = "registry.local/chicago-arrest:recorded"
    client = FakeClient(pipeline_exists=False)
    monkeypatch.setattr(kfp, "Client", lambda host: client)
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ARREST_IMAGE", raising=False)
    monkeypatch.delenv("KFP_HOST", raising=False)
    record = {"cluster_name": "c", "context": "kind-c", "kfp_host": "http://kfp", "image": image}
    (tmp_path / "cluster.json").write_text(json.dumps(record))
    for pipeline, name in (("training", PIPELINE_NAME), ("monitoring", "chicago-arrest-monitoring")):
        client.pipeline_id = None
        result = runner.invoke(cli.app, ["pipeline", "schedule", "--pipeline", pipeline])
        assert result.exit_code == 0, result.output
        upload = [kwargs for method, kwargs in client.calls if method == "upload_pipeline"][-1]
        assert upload["pipeline_name"] == name
        assert Path(upload["path"]).parent != COMPILED_DIR
        assert not Path(upload["path"]).exists()  # the temporary folder is gone
        assert set(executor_images(client.uploaded).values()) == {image}
    # IMAGE= (ARREST_IMAGE) wins over the record, as for pipeline-run
    client.pipeline_id = None
    result = runner.invoke(cli.app, ["pipeline", "schedule"], env={"ARREST_IMAGE": "other:1"})
    assert result.exit_code == 0, result.output
    assert set(executor_images(client.uploaded).values()) == {"other:1"}
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in COMPILED_DIR.glob("*.yaml")} == committed


def test_pipeline_run_on_a_small_cluster_compiles_with_its_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 25: `make kind-up CLUSTER_PROFILE=small` is recorded; pipeline run compiles the train requests for it."""
    import json

    from chicago_arrest.pipelines import run

    seen: dict[str, Any] = {}

    def run_cluster(arguments: dict[str, Any], host: str, **kwargs: Any) -> str:
        seen.update(host=host, **kwargs)
        return "http://kfp/#/runs/details/r1"

    monkeypatch.setattr(run, "run_cluster", run_cluster)
    monkeypatch.setenv("ARREST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ARREST_IMAGE", raising=False)
    monkeypatch.delenv("KFP_HOST", raising=False)
    record = {"cluster_name": "c", "context": "kind-c", "kfp_host": "http://kfp", "image": "x:1"}
    (tmp_path / "cluster.json").write_text(json.dumps(record | {"cluster_profile": "small"}))
    result = runner.invoke(cli.app, ["pipeline", "run"])
    assert result.exit_code == 0, result.output
    assert seen == {"host": "http://kfp", "image": "x:1", "profile": "small"}


def test_a_cluster_run_uploads_the_pipeline_and_starts_it_in_the_experiment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``pipeline run`` on a cluster: a new version of a known pipeline, or the pipeline itself the first time."""
    from chicago_arrest.core.names import KFP_EXPERIMENT
    from chicago_arrest.pipelines.run import run_cluster_pipeline

    def compile_fn(folder: Path, image: str | None = None, profile: str | None = None) -> Path:
        path = folder / "pipeline.yaml"
        path.write_text(f"image: {image}\n", encoding="utf-8")
        return path

    known = FakeClient()
    url = run_cluster_pipeline(
        compile_fn, PIPELINE_NAME, {"months": 3}, "http://kfp:3000/", known, image="img:1"
    )
    assert names(known) == ["get_pipeline_id", "upload_pipeline_version", "create_experiment", "run_pipeline"]
    assert known.uploaded == "image: img:1\n"
    calls = dict(known.calls)
    assert calls["upload_pipeline_version"]["name"].startswith(f"{PIPELINE_NAME}-")
    assert calls["create_experiment"] == {"name": KFP_EXPERIMENT}
    run = calls["run_pipeline"]
    assert (run["pipeline_id"], run["version_id"], run["experiment_id"]) == ("p1", "v-new", "e1")
    assert run["params"] == {"months": 3}
    assert run["job_name"] == calls["upload_pipeline_version"]["name"]
    assert run["enable_caching"] is False
    assert url == "http://kfp:3000/#/runs/details/run-1"
    assert url in capsys.readouterr().out

    first = FakeClient(pipeline_exists=False)
    run_cluster_pipeline(compile_fn, PIPELINE_NAME, {}, "http://kfp:3000", first)
    assert names(first) == [
        "get_pipeline_id",
        "upload_pipeline",
        "list_pipeline_versions",
        "create_experiment",
        "run_pipeline",
    ]
    assert dict(first.calls)["run_pipeline"]["version_id"] == "v2"
