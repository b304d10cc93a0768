"""The Vertex AI variant (issue 17), release side: the gate, model labels, the submit, the one-line errors.

Nothing here talks to Google Cloud: the submit runs against a fake ``aiplatform`` module, and the missing extra
and missing credentials are simulated.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from chicago_arrest.core.errors import VertexError
from chicago_arrest.core.names import DEFAULT_IMAGE, ISVC_NAME, VERTEX_PIPELINE
from chicago_arrest.core.settings import Settings
from chicago_arrest.pipelines import vertex_submit
from chicago_arrest.release import vertex

pytest.importorskip("google_cloud_pipeline_components")

from chicago_arrest.pipelines.compile import COMPILED_DIR

GOLDEN = COMPILED_DIR / f"{VERTEX_PIPELINE}.yaml"
PIPELINE_NAME = VERTEX_PIPELINE
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _spec(path: Path) -> dict[str, Any]:
    return next(yaml.safe_load_all(path.read_text(encoding="utf-8")))


# -- gate ---------------------------------------------------------------------------------------------------


def _evaluation(roc_auc: float, ece: float) -> dict[str, Any]:
    metrics = {"roc_auc": roc_auc, "ece": ece, "pr_auc": 0.7, "brier": 0.1}
    return {"selected": "random_forest", "selected_index": 0, "candidates": {"random_forest": metrics}}


def _champion(roc_auc: float) -> dict[str, Any]:
    return {
        "model": "projects/p/locations/r/models/9",
        "deployed_model_id": "555",
        "metrics": {"roc_auc": roc_auc, "ece": 0.02},
    }


def test_gate_first_model_is_promoted_to_all_traffic() -> None:
    d = vertex.gate_decision(_evaluation(0.85, 0.02), {})
    assert (d["action"], d["traffic_split"], d["passed"]) == ("promote", {"0": "100"}, True)
    assert d["labels"]["roc_auc_ppm"] == "850000"
    assert d["labels"]["gate"] == "passed"
    assert d["labels"]["model_type"] == "random_forest"
    assert all(LABEL_VALUE.match(v) and LABEL_VALUE.match(k) for k, v in d["labels"].items())


def test_gate_canary_split_and_direct_promotion() -> None:
    d = vertex.gate_decision(_evaluation(0.90, 0.02), _champion(0.88), canary_percent=10)
    assert (d["action"], d["traffic_split"]) == ("canary", {"0": "10", "555": "90"})
    d = vertex.gate_decision(_evaluation(0.90, 0.02), _champion(0.88), canary_percent=0)
    assert (d["action"], d["traffic_split"]) == ("promote", {"0": "100"})


def test_gate_rejects_by_the_same_rule_and_leaves_serving_alone() -> None:
    d = vertex.gate_decision(_evaluation(0.881, 0.02), _champion(0.88), margin=0.002)
    assert (d["action"], d["traffic_split"], d["passed"]) == ("none", {}, False)
    assert d["labels"]["gate"] == "rejected"
    d = vertex.gate_decision(_evaluation(0.99, 0.09), _champion(0.88), max_ece=0.05)
    assert d["action"] == "none"
    assert "ECE" in d["reason"]


def test_gate_uses_the_challengers_bootstrap_se_and_worst_month_like_the_mlflow_gate() -> None:
    evaluation = _evaluation(0.90, 0.02)
    evaluation["candidates"]["random_forest"]["roc_auc_se"] = 0.03  # 0.90 < 0.88 + 0.002 + 1 x 0.03
    assert vertex.gate_decision(evaluation, _champion(0.88), margin=0.002)["action"] == "none"
    evaluation = _evaluation(0.95, 0.02)
    evaluation["candidates"]["random_forest"]["ece_worst_month"] = 0.08
    assert vertex.gate_decision(evaluation, _champion(0.88), max_ece=0.05)["action"] == "none"


def test_gate_reuses_registry_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    import chicago_arrest.release.gate as registry

    seen: list[tuple[Any, ...]] = []

    def fake_decide(*args: Any) -> tuple[bool, str]:
        seen.append(args)
        return False, "sentinel"

    monkeypatch.setattr(registry, "decide", fake_decide)
    assert vertex.gate_decision(_evaluation(0.99, 0.01), _champion(0.5))["reason"] == "sentinel"
    assert seen
    assert seen[0][1] == {"roc_auc": 0.5, "ece": 0.02}


def test_gate_rejects_an_incomplete_champion() -> None:
    with pytest.raises(ValueError, match="deployed_model_id"):
        vertex.gate_decision(_evaluation(0.9, 0.02), {"model": "m", "metrics": {"roc_auc": 0.8, "ece": 0.01}})


def test_metric_labels_round_trip() -> None:
    metrics = {"roc_auc": 0.898412, "ece": 0.024, "pr_auc": 0.77, "brier": 0.0831, "f1": 0.5}
    labels = vertex.metric_labels(metrics)
    assert set(labels) == {"roc_auc_ppm", "ece_ppm", "pr_auc_ppm", "brier_ppm"}
    assert vertex.labels_metrics({**labels, "gate": "passed"}) == {
        k: metrics[k] for k in vertex.LABEL_METRICS
    }


# -- submit -------------------------------------------------------------------------------------------------


class FakeAiplatform:
    """The parts of ``google.cloud.aiplatform`` that :func:`~chicago_arrest.pipelines.vertex_submit.submit` uses."""

    def __init__(self, endpoints: list[Any] | None = None, labels: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.jobs: list[Any] = []
        fake = self

        class PipelineJob:
            def __init__(self, **kwargs: Any) -> None:
                spec = yaml.safe_load(Path(kwargs["template_path"]).read_text(encoding="utf-8"))
                self.kwargs, self.spec, self.submitted = kwargs, spec, False
                self.resource_name = "projects/p/locations/r/pipelineJobs/job-1"
                fake.jobs.append(self)

            def submit(self, service_account: str | None = None) -> None:
                self.submitted, self.service_account = True, service_account

        class Endpoint:
            @staticmethod
            def list(**kwargs: Any) -> list[Any]:
                fake.calls.append(("Endpoint.list", kwargs))
                return endpoints or []

        self.PipelineJob, self.Endpoint = PipelineJob, Endpoint
        self.Model = lambda name: SimpleNamespace(labels=labels or {}, resource_name=name)

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))


ARGS = {
    "source": "",
    "stations_source": "",
    "months": 6,
    "models": ["logreg"],
    "canary_percent": 10,
    "deploy_target": "auto",
}


def test_submit_builds_the_pipeline_job(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAiplatform()
    job = vertex_submit.submit(
        ARGS,
        project="proj",
        region="europe-west4",
        bucket="gs://my-bucket/",
        template=GOLDEN,
        aiplatform=fake,
    )
    assert job is fake.jobs[0]
    assert job.submitted
    assert job.service_account is None  # Vertex's default: the Compute Engine default service account
    kwargs = job.kwargs
    assert kwargs["pipeline_root"] == "gs://my-bucket/pipeline-root"
    assert kwargs["display_name"] == PIPELINE_NAME
    assert kwargs["enable_caching"] is False
    assert (kwargs["project"], kwargs["location"]) == ("proj", "europe-west4")
    image = "europe-west4-docker.pkg.dev/proj/chicago-arrest/chicago-arrest:" + DEFAULT_IMAGE.split(":")[1]
    assert kwargs["parameter_values"] == {
        "months": 6,
        "models": ["logreg"],
        "canary_percent": 10,
        "project": "proj",
        "location": "europe-west4",
        "data_source": "bigquery",
        "stations_source": "",
        "serving_image": image,
        "endpoint": "",
        "champion": {},
    }
    assert set(kwargs["parameter_values"]) <= set(_spec(GOLDEN)["root"]["inputDefinitions"]["parameters"])
    images = {
        e["container"]["image"] for e in job.spec["deploymentSpec"]["executors"].values() if "container" in e
    }
    assert image in images
    assert DEFAULT_IMAGE not in images
    assert (
        "init",
        {"project": "proj", "location": "europe-west4", "staging_bucket": "gs://my-bucket"},
    ) in fake.calls
    assert "submitted projects/p/locations/r/pipelineJobs/job-1" in capsys.readouterr().out


# -- the run's service account (SERVICE_ACCOUNT=) -----------------------------------------------------------

SA = "arrest-pipeline@my-proj.iam.gserviceaccount.com"


def test_the_fake_submit_has_the_real_signature() -> None:
    """What the fake accepts is what google-cloud-aiplatform's PipelineJob.submit takes (installed version)."""
    import inspect

    aiplatform = pytest.importorskip("google.cloud.aiplatform")
    real = inspect.signature(aiplatform.PipelineJob.submit).parameters
    assert "service_account" in real
    assert real["service_account"].default is None
    fake = inspect.signature(FakeAiplatform().PipelineJob.submit).parameters
    assert set(fake) - {"self"} <= set(real)


def test_submit_runs_the_job_as_the_service_account(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeAiplatform()
    job = vertex_submit.submit(
        ARGS, project="p", region="r", bucket="b", template=GOLDEN, service_account=f" {SA} ", aiplatform=fake
    )
    assert job.service_account == SA
    assert f"run as {SA}" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["arrest-pipeline", "me@example.com", "sa@proj.iam.gserviceaccount.com x"])
def test_a_bad_service_account_stops_before_anything_is_called(bad: str) -> None:
    fake = FakeAiplatform()
    with pytest.raises(VertexError, match="SERVICE_ACCOUNT must be a service account's e-mail"):
        vertex_submit.submit(
            ARGS, project="p", region="r", bucket="b", template=GOLDEN, service_account=bad, aiplatform=fake
        )
    assert fake.calls == []
    assert fake.jobs == []


def test_the_cli_passes_the_service_account(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    fake = FakeAiplatform()
    monkeypatch.setattr(vertex_submit, "import_aiplatform", lambda: fake)
    monkeypatch.setattr(vertex_submit, "check_credentials", lambda: None)
    code, out, err = _cli([*VERTEX_RUN, "--service-account", SA], capsys)
    assert code == 0, err
    assert fake.jobs[0].service_account == SA
    assert f"run as {SA}" in out


def test_make_passes_service_account_to_the_cli() -> None:
    import os
    import shutil
    import subprocess

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "IMAGE")}
    out = subprocess.run(
        [make, "-n", "--no-print-directory", "-o", ".venv/.synced", "pipeline-run", "TARGET=vertex",
         "PROJECT=p", "REGION=r", "BUCKET=b", f"SERVICE_ACCOUNT={SA}"],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"--service-account '{SA}'" in out
    assert "--project 'p' --region 'r' --bucket 'b'" in out


def test_submit_passes_the_endpoints_champion() -> None:
    endpoint = SimpleNamespace(
        resource_name="projects/p/locations/r/endpoints/7",
        traffic_split={"111": 90, "222": 10},
        list_models=lambda: [
            SimpleNamespace(id="111", model="projects/p/locations/r/models/1"),
            SimpleNamespace(id="222", model="projects/p/locations/r/models/2"),
        ],
    )
    fake = FakeAiplatform([endpoint], labels={"roc_auc_ppm": "881000", "ece_ppm": "21000", "gate": "passed"})
    job = vertex_submit.submit(
        {**ARGS, "source": "socrata"},
        project="p",
        region="r",
        bucket="b",
        template=GOLDEN,
        image="img:1",
        aiplatform=fake,
    )
    values = job.kwargs["parameter_values"]
    assert values["endpoint"] == "projects/p/locations/r/endpoints/7"
    assert values["champion"] == {
        "model": "projects/p/locations/r/models/1",
        "deployed_model_id": "111",
        "metrics": {"roc_auc": 0.881, "ece": 0.021},
    }
    assert values["data_source"] == "socrata"
    assert values["serving_image"] == "img:1"
    assert fake.calls[1] == (
        "Endpoint.list",
        {"filter": f'display_name="{ISVC_NAME}"', "order_by": "create_time desc"},
    )


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({**ARGS, "source": "crimes.csv"}, "bigquery"), ({**ARGS, "stations_source": "/tmp/s.csv"}, "gs://")],
)
def test_submit_rejects_local_files(arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(VertexError, match=match):
        vertex_submit.submit(
            arguments, project="p", region="r", bucket="b", template=GOLDEN, aiplatform=FakeAiplatform()
        )


def test_submit_needs_project_region_and_bucket() -> None:
    with pytest.raises(VertexError, match="REGION is required"):
        vertex_submit.submit(
            ARGS, project="p", region="", bucket="b", template=GOLDEN, aiplatform=FakeAiplatform()
        )


def test_run_vertex_submits_the_committed_yaml() -> None:
    from chicago_arrest.pipelines.run import run_vertex

    fake = FakeAiplatform()
    run_vertex(ARGS, project="p", region="r", bucket="b", aiplatform=fake)
    assert fake.jobs[0].spec["pipelineInfo"]["name"] == PIPELINE_NAME


# -- the missing extra and missing credentials: one line ----------------------------------------------------


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from chicago_arrest.cli.main import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


VERTEX_RUN = ["pipeline", "run", "--target", "vertex", "--project", "p", "--region", "r", "--bucket", "b"]


def test_missing_extra_is_one_line_naming_uv_sync(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", None)  # import → ImportError
    with pytest.raises(VertexError, match=re.escape("uv sync --extra vertex")):
        vertex_submit.import_aiplatform()
    code, out, err = _cli(VERTEX_RUN, capsys)
    assert code == 1
    assert out.startswith("target: vertex")
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert "uv sync --extra vertex" in err


def test_missing_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**kwargs: Any) -> None:
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    code, _, err = _cli(VERTEX_RUN, capsys)
    assert code == 1
    assert err.count("\n") == 1
    assert "DefaultCredentialsError" in err
    assert "application-default login" in err


def test_vertex_module_imports_no_google_cloud_package() -> None:
    import subprocess

    code = (
        "import sys, chicago_arrest.release.vertex, chicago_arrest.data.bigquery, chicago_arrest.steps.vertex, "
        "chicago_arrest.pipelines.vertex_submit, chicago_arrest.components.vertex_gate, "
        "chicago_arrest.components.bigquery_window, "
        "chicago_arrest.components.land_bigquery, chicago_arrest.components.serve_model; "
        "bad = [m for m in sys.modules if m.startswith(('google.cloud.aiplatform', 'google_cloud_pipeline'))]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).resolve().parents[2]
    )


def test_a_champion_without_metric_labels_stops_the_submit() -> None:
    endpoint = SimpleNamespace(
        resource_name="projects/p/locations/r/endpoints/7",
        traffic_split={"111": 100},
        list_models=lambda: [SimpleNamespace(id="111", model="projects/p/locations/r/models/1")],
    )
    fake = FakeAiplatform([endpoint], labels={"team": "x"})
    with pytest.raises(VertexError, match="no roc_auc_ppm / ece_ppm labels"):
        vertex_submit.submit(ARGS, project="p", region="r", bucket="b", template=GOLDEN, aiplatform=fake)
    assert fake.jobs == []
