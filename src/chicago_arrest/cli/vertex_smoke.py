"""``make vertex-smoke``: prove the image, the bucket, the account and the endpoint on a real Google Cloud project.

It submits ``chicago-arrest-vertex-smoke`` (:mod:`chicago_arrest.pipelines.vertex_smoke`) as ``SERVICE_ACCOUNT``,
waits for it, sends one ``predict`` (Vertex's ``{"instances"}``) and one ``rawPredict`` (a V2 body) to the
endpoint it created, and deletes what it created: the endpoint (its deployed model first), the model, the
objects under the run's own pipeline root ``gs://BUCKET/pipeline-root/smoke-<id>/``. The PipelineJob record
stays, so a failed run can still be looked at in the console. Each check prints ``PASS`` or ``FAIL`` (with
where to look closer), as ``make kind-smoke`` does; the exit code is 1 when one failed.

Everything it creates carries the label ``smoke: <id>`` and the display name ``arrest-smoke-<id>``: the cleanup
finds them by the label, also after a failed or timed-out run (a run still going is cancelled first).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chicago_arrest.core.errors import VertexError
from chicago_arrest.core.schema import FIELD_BY_NAME

#: The record both requests carry (Socrata field names; a theft on a Loop street).
SMOKE_RECORD: dict[str, Any] = {
    "date": "2017-06-01T13:05:00.000",
    "primary_type": "THEFT",
    "iucr": "0820",
    "description": "$500 AND UNDER",
    "location_description": "STREET",
    "domestic": False,
    "beat": "0111",
    "district": "001",
    "ward": 42,
    "community_area": 32,
    "fbi_code": "06",
    "x_coordinate": 1176346.0,
    "y_coordinate": 1901033.0,
    "latitude": 41.8827,
    "longitude": -87.6278,
}
PROBE_TASK = "vertex-smoke-probe"
DEFAULT_TIMEOUT_S = 3600
_DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def v2_body(record: dict[str, Any]) -> bytes:
    """A V2 inference request (``content_type: pd``, one input per field) for one record."""
    inputs = [
        {"name": k, "datatype": FIELD_BY_NAME[k].v2_datatype, "shape": [1], "data": [v]}
        for k, v in record.items()
    ]
    return json.dumps({"id": "vertex-smoke", "parameters": {"content_type": "pd"}, "inputs": inputs}).encode()


def new_smoke_id(now: datetime | None = None) -> str:
    """``20260820-101500-3f2a``: UTC time and a random suffix (valid as a label value and in a name)."""
    return f"{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _state(value: Any) -> str:
    """``PIPELINE_STATE_SUCCEEDED`` / ``SUCCEEDED`` (an enum or text) as ``SUCCEEDED``."""
    name = str(getattr(value, "name", value))
    return name.rsplit("_STATE_", 1)[-1]


def _message(task: Any) -> str:
    """A task's error message (empty when it has none)."""
    return str(getattr(getattr(task, "error", None), "message", "") or "")


@dataclass
class Check:
    """One line of the report."""

    name: str
    passed: bool
    detail: str
    hint: str = ""


@dataclass
class Smoke:
    """One smoke run (see the module): ``run()`` prints the checks and returns the exit code.

    Args:
        aiplatform: ``google.cloud.aiplatform`` (or a fake with the same parts).
        storage: A ``google.cloud.storage.Client``.
        project: Google Cloud project.
        region: Vertex AI region.
        bucket: Bucket name (no ``gs://``).
        image: The project image on Artifact Registry.
        service_account: The run's service account (empty: the Compute Engine default).
        smoke_id: The run's id (labels, names, pipeline root).
        timeout_s: How long to wait for the pipeline.
        poll_s: Seconds between state checks.
        keep: Keep what the run created (no cleanup).
        echo: Where lines go.
        sleep: ``time.sleep`` (tests pass a fake).
        clock: ``time.monotonic`` (tests pass a fake).
    """

    aiplatform: Any
    storage: Any
    project: str
    region: str
    bucket: str
    image: str
    service_account: str = ""
    smoke_id: str = field(default_factory=new_smoke_id)
    timeout_s: float = DEFAULT_TIMEOUT_S
    poll_s: float = 30.0
    keep: bool = False
    echo: Callable[[str], Any] = print
    sleep: Callable[[float], Any] = time.sleep
    clock: Callable[[], float] = time.monotonic
    checks: list[Check] = field(default_factory=list)
    job: Any = None

    @property
    def name(self) -> str:
        """Display name of the model, the endpoint and the deployed model."""
        return f"arrest-smoke-{self.smoke_id}"

    @property
    def root(self) -> str:
        """The run's own pipeline root (object prefix, no bucket)."""
        return f"pipeline-root/smoke-{self.smoke_id}"

    @property
    def labels(self) -> dict[str, str]:
        """Labels of everything the run creates."""
        return {"smoke": self.smoke_id, "app": "chicago-arrest"}

    def check(self, name: str, hint: str, fn: Callable[[], str]) -> bool:
        """Run ``fn``; PASS with what it returns, or FAIL with its error and ``hint``."""
        try:
            detail, passed = fn(), True
        except Exception as exc:  # a failed check is reported, never raised: the cleanup must still run
            detail = str(exc) if isinstance(exc, VertexError) else f"{type(exc).__name__}: {exc}"
            passed = False
        self.checks.append(Check(name, passed, detail, hint))
        self.echo(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
        if not passed and hint:
            self.echo(f"      look closer: {hint}")
        return passed

    def skip(self, name: str, why: str) -> None:
        """A check not tried because an earlier one failed (not counted)."""
        self.echo(f"SKIP  {name}: {why}")

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Submit, wait, check, clean up; 0 when every check passed."""
        self.echo(
            f"==> Vertex smoke {self.smoke_id}: project {self.project}, region {self.region}, "
            f"bucket gs://{self.bucket}, image {self.image}, "
            f"run as {self.service_account or 'the Compute Engine default service account'}"
        )
        try:
            if self.check("submit", _HINTS["submit"], self._submit):
                self.check("pipeline run", self._console(), self._wait)
            if self.job is not None:
                self.check("image: the project image ran the probe step", _HINTS["image"], self._probe_task)
                self.check("bucket: written and read back through /gcs", _HINTS["bucket"], self._probe_file)
                self.check("account: the run's service account", _HINTS["account"], self._account)
                self.check("upload: the model in the Model Registry", _HINTS["upload"], self._model)
                endpoint = self._endpoint_or_none()
                if self.check("deploy: the endpoint serves the model", _HINTS["deploy"], self._deployed):
                    self.check(
                        "predict: Vertex's instances", _HINTS["predict"], lambda: self._predict(endpoint)
                    )
                    self.check(
                        "rawPredict: a V2 body", _HINTS["predict"], lambda: self._raw_predict(endpoint)
                    )
                else:
                    self.skip("predict / rawPredict", "no endpoint serving the model")
        finally:
            if self.keep:
                self.skip("cleanup", f"--keep: delete the resources labelled smoke={self.smoke_id} yourself")
            else:
                self.check("cleanup: what the run created is deleted", _HINTS["cleanup"], self._cleanup)
        passed = sum(c.passed for c in self.checks)
        failed = len(self.checks) - passed
        self.echo(f"==> {passed} passed, {failed} failed")
        return 0 if failed == 0 else 1

    def _submit(self) -> str:
        from chicago_arrest.core.names import VERTEX_SMOKE_PIPELINE
        from chicago_arrest.pipelines.compile import COMPILED_DIR
        from chicago_arrest.pipelines.vertex_submit import submit_job

        self.aiplatform.init(project=self.project, location=self.region)
        self.job = submit_job(
            self.aiplatform,
            COMPILED_DIR / f"{VERTEX_SMOKE_PIPELINE}.yaml",
            image=self.image,
            pipeline_root=f"gs://{self.bucket}/{self.root}",
            parameter_values={
                "project": self.project,
                "location": self.region,
                "display_name": self.name,
                "labels": self.labels,
                "probe_dir": f"/gcs/{self.bucket}/{self.root}/probe",
                "serving_image": self.image,
            },
            project=self.project,
            region=self.region,
            service_account=self.service_account,
            labels=self.labels,
        )
        return str(self.job.resource_name)

    def _wait(self) -> str:
        start = self.clock()
        while True:
            state = _state(self.job.state)
            if state in _DONE:
                break
            if self.clock() - start > self.timeout_s:
                raise VertexError(f"still {state} after {self.timeout_s:.0f} s (cancelled by the cleanup)")
            self.sleep(self.poll_s)
        failed = [
            f"{t.task_name}: {_message(t)}"
            for t in self.job.task_details
            if _state(t.state) == "FAILED" and _message(t)
        ]
        if state != "SUCCEEDED":
            raise VertexError(f"{state}" + (f"; {'; '.join(failed)}" if failed else ""))
        return f"SUCCEEDED in {self.clock() - start:.0f} s"

    def _task(self, name: str) -> Any:
        return next((t for t in self.job.task_details if t.task_name == name), None)

    def _probe_task(self) -> str:
        task = self._task(PROBE_TASK)
        if task is None:
            raise VertexError(f"no task {PROBE_TASK} in the run (the image was never started)")
        state = _state(task.state)
        if state != "SUCCEEDED":
            raise VertexError(f"task {PROBE_TASK} {state}: {_message(task) or 'no error message'}")
        return f"task {PROBE_TASK} SUCCEEDED in {self.image}"

    def _probe_file(self) -> str:
        path = f"{self.root}/probe/probe.json"
        blob = self.storage.bucket(self.bucket).blob(path)
        probe = json.loads(blob.download_as_bytes())
        return f"gs://{self.bucket}/{path} written by uid {probe['uid']} (chicago-arrest {probe['version']})"

    def _account(self) -> str:
        actual = str(getattr(self.job.gca_resource, "service_account", "") or "")
        expected = self.service_account
        if expected and actual != expected:
            raise VertexError(f"the run's service account is {actual or '(default)'}, not {expected}")
        return f"ran as {actual or 'the Compute Engine default service account'}"

    def _labelled(self, kind: Any) -> list[Any]:
        return list(kind.list(filter=f'labels.smoke="{self.smoke_id}"'))

    def _model(self) -> str:
        models = self._labelled(self.aiplatform.Model)
        if not models:
            raise VertexError(f"no model labelled smoke={self.smoke_id}")
        return ", ".join(str(m.resource_name) for m in models)

    def _endpoint_or_none(self) -> Any:
        try:
            endpoints = self._labelled(self.aiplatform.Endpoint)
        except Exception:  # reported by the deploy check
            return None
        return endpoints[0] if endpoints else None

    def _deployed(self) -> str:
        endpoints = self._labelled(self.aiplatform.Endpoint)
        if not endpoints:
            raise VertexError(f"no endpoint labelled smoke={self.smoke_id}")
        split = {k: int(v) for k, v in (endpoints[0].traffic_split or {}).items()}
        if list(split.values()) != [100]:
            raise VertexError(
                f"{endpoints[0].resource_name}: traffic split {split}, expected one model at 100 %"
            )
        return f"{endpoints[0].resource_name}: deployed model {next(iter(split))} at 100 %"

    def _predict(self, endpoint: Any) -> str:
        prediction = endpoint.predict(instances=[SMOKE_RECORD])
        (answer,) = list(prediction.predictions)
        probability = float(answer["arrest_probability"])
        if not 0.0 <= probability <= 1.0 or not isinstance(answer["arrest"], bool):
            raise VertexError(f"unexpected prediction {answer}")
        deployed = getattr(prediction, "deployed_model_id", "")
        return f"arrest_probability {probability:.4f}, arrest {answer['arrest']} (deployed model {deployed})"

    def _raw_predict(self, endpoint: Any) -> str:
        response = endpoint.raw_predict(
            body=v2_body(SMOKE_RECORD), headers={"Content-Type": "application/json"}
        )
        if response.status_code != 200:
            raise VertexError(f"HTTP {response.status_code}: {response.text[:300]}")
        outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
        (probability,) = outputs["arrest_probability"]
        if not 0.0 <= float(probability) <= 1.0:
            raise VertexError(f"unexpected V2 outputs {outputs}")
        return f"V2 outputs arrest_probability {float(probability):.4f}, arrest {outputs['arrest'][0]}"

    def _cleanup(self) -> str:
        done: list[str] = []
        if self.job is not None and _state(self.job.state) not in _DONE:
            self.job.cancel()
            done.append(f"cancelled {self.job.resource_name}")
        endpoints = self._labelled(self.aiplatform.Endpoint)
        for endpoint in endpoints:
            endpoint.delete(force=True)  # undeploys its models first
        models = self._labelled(self.aiplatform.Model)
        for model in models:
            model.delete()
        blobs = list(self.storage.list_blobs(self.bucket, prefix=f"{self.root}/"))
        for blob in blobs:
            blob.delete()
        done.append(
            f"deleted {len(endpoints)} endpoint(s), {len(models)} model(s), {len(blobs)} object(s) under "
            f"gs://{self.bucket}/{self.root}/"
        )
        if self.job is not None:
            done.append(f"the PipelineJob record {self.job.resource_name} stays")
        return "; ".join(done)

    def _console(self) -> str:
        return (
            f"https://console.cloud.google.com/vertex-ai/pipelines/runs?project={self.project} "
            f"(region {self.region}; the run's labels: smoke={self.smoke_id})"
        )


_HINTS = {
    "submit": "the submitter needs roles/aiplatform.user and roles/iam.serviceAccountUser on SERVICE_ACCOUNT, "
    "and the bucket must exist in the project (docs/vertex.md, 'Identity')",
    "image": "the image must be in Artifact Registry, pushed for linux/amd64: make vertex-image PROJECT= REGION= "
    "(docs/vertex.md, 'The image'); the task's log is in the run's page in the console",
    "bucket": "a PermissionError as the image's user: make vertex-image IMAGE_USER=0; otherwise the run's service "
    "account needs roles/storage.objectAdmin on the bucket (docs/vertex.md)",
    "account": "SERVICE_ACCOUNT= is passed to PipelineJob.submit(service_account=...) (docs/vertex.md, 'Identity')",
    "upload": "the upload task's log in the console; the Vertex AI Service Agent pulls the image at upload",
    "deploy": "the deploy task's log; the container's log in Cloud Logging "
    "(resource.type=aiplatform.googleapis.com/Endpoint)",
    "predict": "the container's log in Cloud Logging (resource.type=aiplatform.googleapis.com/Endpoint); "
    "the same requests against a local server: tests/e2e/test_vertex_server.py",
    "cleanup": "delete what is left by hand: gcloud ai endpoints list / models list --region=REGION "
    "--filter=labels.smoke=ID; gcloud storage rm -r gs://BUCKET/pipeline-root/smoke-ID",
}


def run_smoke(
    *,
    project: str,
    region: str,
    bucket: str,
    service_account: str = "",
    image: str = "",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    keep: bool = False,
    poll_s: float = 30.0,
    aiplatform: Any = None,
    storage: Any = None,
    echo: Callable[[str], Any] = print,
) -> int:
    """``make vertex-smoke``: prerequisites (one FAIL line each), then :meth:`Smoke.run`.

    Args:
        project: Google Cloud project.
        region: Vertex AI region.
        bucket: GCS bucket (with or without ``gs://``).
        service_account: The run's service account (empty: the Compute Engine default).
        image: The project image (default: ``REGION-docker.pkg.dev/PROJECT/chicago-arrest/chicago-arrest:VERSION``).
        timeout_s: How long to wait for the pipeline.
        keep: Keep what the run created.
        poll_s: Seconds between checks of the run's state.
        aiplatform: ``google.cloud.aiplatform`` (default: imported, credentials checked).
        storage: A ``google.cloud.storage.Client`` (default: one for ``project``).
        echo: Where lines go.

    Returns:
        The exit code: 0 when every check passed.
    """
    from chicago_arrest.pipelines.vertex_submit import (
        check_credentials,
        check_service_account,
        default_image,
        import_aiplatform,
        require,
    )

    try:
        bucket = require(project, region, bucket)
        service_account = check_service_account(service_account)
        if aiplatform is None:
            aiplatform = import_aiplatform()
            check_credentials()
        if storage is None:
            from google.cloud import storage as gcs

            storage = gcs.Client(project=project)
    except VertexError as exc:
        echo(f"FAIL  prerequisites: {exc}")
        return 1
    smoke = Smoke(
        aiplatform,
        storage,
        project=project,
        region=region,
        bucket=bucket,
        image=image or default_image(project, region),
        service_account=service_account,
        timeout_s=timeout_s,
        poll_s=poll_s,
        keep=keep,
        echo=echo,
    )
    return smoke.run()
