"""A fake of the parts of ``google.cloud.aiplatform`` and ``google.cloud.storage`` that ``make vertex-smoke`` uses.

:class:`FakeVertex` plays a project: ``PipelineJob.submit`` "runs" the smoke pipeline by calling ``on_run`` (the
test decides what the run leaves behind: a probe file, a model, an endpoint, failed tasks), ``Model.list`` and
``Endpoint.list`` filter by the ``labels.smoke`` value, an endpoint answers ``predict`` / ``raw_predict`` with the
test's ``answer`` callables. Everything it is asked is recorded in ``calls``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml


class FakeBlob:
    def __init__(self, store: FakeStorage, bucket: str, name: str) -> None:
        self.store, self.bucket, self.name = store, bucket, name

    def download_as_bytes(self) -> bytes:
        key = (self.bucket, self.name)
        if key not in self.store.objects:
            raise FileNotFoundError(f"404 gs://{self.bucket}/{self.name}")
        return self.store.objects[key]

    def delete(self) -> None:
        self.store.calls.append(("delete", f"gs://{self.bucket}/{self.name}"))
        del self.store.objects[(self.bucket, self.name)]


class FakeStorage:
    """``google.cloud.storage.Client``: ``bucket().blob().download_as_bytes()``, ``list_blobs``, ``blob.delete``."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def put(self, uri: str, data: bytes) -> None:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        self.objects[(bucket, name)] = data

    def bucket(self, name: str) -> Any:
        return SimpleNamespace(blob=lambda path: FakeBlob(self, name, path))

    def list_blobs(self, bucket: str, prefix: str = "") -> list[FakeBlob]:
        return [
            FakeBlob(self, b, n) for (b, n) in sorted(self.objects) if b == bucket and n.startswith(prefix)
        ]


@dataclass
class FakeResource:
    """A model or an endpoint of the fake project."""

    resource_name: str
    labels: dict[str, str]
    traffic_split: dict[str, int] = field(default_factory=dict)
    vertex: Any = None

    def predict(self, instances: list[Any]) -> Any:
        self.vertex.calls.append(("predict", instances))
        return self.vertex.answer_predict(instances)

    def raw_predict(self, body: bytes, headers: dict[str, str]) -> Any:
        self.vertex.calls.append(("raw_predict", body))
        return self.vertex.answer_raw(body, headers)

    def delete(self, force: bool = False, sync: bool = True) -> None:
        self.vertex.calls.append(("delete", self.resource_name))
        self.vertex.resources.remove(self)


def task(name: str, state: str, message: str = "") -> Any:
    """A ``PipelineTaskDetail``: its name, state and error."""
    return SimpleNamespace(
        task_name=name,
        state=SimpleNamespace(name=f"PIPELINE_TASK_STATE_{state}"),
        error=SimpleNamespace(message=message),
    )


class FakeVertex:
    """The ``aiplatform`` module of a fake project (see the module docstring).

    Args:
        on_run: Called with the submitted job: fills ``job.tasks``, ``job.final``, the storage and ``resources``.
        answer_predict: ``instances -> Prediction`` of the endpoint.
        answer_raw: ``(body, headers) -> requests.Response``-like of the endpoint.
        states: The states ``job.state`` goes through before ``job.final`` (one per poll).
    """

    def __init__(
        self,
        on_run: Callable[[Any], None],
        answer_predict: Callable[[list[Any]], Any] | None = None,
        answer_raw: Callable[[bytes, dict[str, str]], Any] | None = None,
        states: tuple[str, ...] = ("RUNNING",),
    ) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.jobs: list[Any] = []
        self.resources: list[FakeResource] = []
        self.answer_predict = answer_predict or (lambda instances: None)
        self.answer_raw = answer_raw or (lambda body, headers: None)
        fake = self

        class PipelineJob:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs
                self.spec = yaml.safe_load(Path(kwargs["template_path"]).read_text(encoding="utf-8"))
                self.resource_name = "projects/p/locations/r/pipelineJobs/smoke-1"
                self.tasks: list[Any] = []
                self.final = "SUCCEEDED"
                self.pending = list(states)
                self.cancelled = False
                self.gca_resource = SimpleNamespace(service_account="")
                fake.jobs.append(self)

            def submit(self, service_account: str | None = None, network: str | None = None) -> None:
                fake.calls.append(("submit", service_account))
                self.gca_resource.service_account = (
                    service_account or "123-compute@developer.gserviceaccount.com"
                )
                on_run(self)

            @property
            def state(self) -> Any:
                name = self.pending.pop(0) if self.pending else self.final
                return SimpleNamespace(name=f"PIPELINE_STATE_{'CANCELLED' if self.cancelled else name}")

            @property
            def task_details(self) -> list[Any]:
                return list(self.tasks)

            def cancel(self) -> None:
                fake.calls.append(("cancel", self.resource_name))
                self.cancelled, self.pending = True, []

        def lister(kind: str) -> Any:
            def list_(filter: str = "", **kwargs: Any) -> list[FakeResource]:
                fake.calls.append((f"{kind}.list", filter))
                wanted = re.fullmatch(r'labels\.smoke="([^"]+)"', filter)
                assert wanted, filter
                return [
                    r
                    for r in fake.resources
                    if f"/{kind.lower()}s/" in r.resource_name and r.labels.get("smoke") == wanted[1]
                ]

            return staticmethod(list_)

        self.PipelineJob = PipelineJob
        self.Model = type("Model", (), {"list": lister("Model")})
        self.Endpoint = type("Endpoint", (), {"list": lister("Endpoint")})

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))

    def add(
        self, kind: str, number: int, labels: dict[str, str], traffic: dict[str, int] | None = None
    ) -> None:
        """A model (``kind="model"``) or an endpoint the run created."""
        self.resources.append(
            FakeResource(f"projects/p/locations/r/{kind}s/{number}", dict(labels), dict(traffic or {}), self)
        )
