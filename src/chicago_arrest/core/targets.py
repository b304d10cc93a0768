"""Where a command goes: ``local``, ``cluster`` (or ``vertex`` for ``pipeline run``), and why.

The one rule (the TARGET contract of the Makefile and the CLI): an explicit target wins (``--target``, which
``make ... TARGET=x`` passes); otherwise ``cluster`` when ``make kind-up`` recorded a cluster
(``<data dir>/cluster.json``, written by ``kind-cluster/up.sh`` and removed by ``kind-cluster/down.sh``), and
``local`` otherwise. Every command prints :meth:`Resolved.line` first, so the user sees the target and why.

The record also says where the cluster's services are from the host: the KFP API (``pipeline run`` and
``pipeline schedule`` use it when ``KFP_HOST`` is unset), the kubeconfig context (the serving verbs use it when
no ``--context`` is given) and the MLflow server (used when no tracking URI is set, so ``promote`` moves the
cluster's registry alias).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from chicago_arrest.core.errors import ArrestError

#: Targets a command may name explicitly.
TARGETS = ("local", "cluster", "vertex")
#: File name of the record, under the data directory (``ARREST_DATA_DIR``, default ``.data``).
RECORD_NAME = "cluster.json"


class TargetError(ArrestError, ValueError):
    """An unknown target, or a record that cannot be read (one line says which and why)."""


class ClusterRecord(BaseModel):
    """What ``make kind-up`` recorded about the cluster it brought up.

    Attributes:
        cluster_name: kind cluster name.
        context: kubeconfig context of the cluster (``kind-<cluster_name>``).
        kfp_host: KFP UI/API URL from the host.
        mlflow_uri: MLflow tracking URL from the host.
        ingress_url: Kourier (the Knative ingress) from the host.
        s3_endpoint: ``host:port`` of MinIO's S3 API from the host.
        image: The project image ``up.sh`` loaded (the KFP steps' image of ``pipeline run`` on this cluster).
        serving_profile: The predictor's resource profile the deploy step uses on this cluster (``kind``; the
            ConfigMap ``chicago-arrest-config`` holds the same, and wins).
        cluster_profile: ``laptop`` or ``small`` (``CLUSTER_PROFILE`` of ``make kind-up``): the train tasks'
            requests of the pipelines compiled for this cluster (``pipelines.training.TRAIN_RESOURCES``).
        recorded_at: When ``up.sh`` finished (ISO 8601, UTC).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    cluster_name: str
    context: str
    kfp_host: str
    mlflow_uri: str | None = None
    ingress_url: str | None = None
    s3_endpoint: str | None = None
    image: str | None = None
    serving_profile: str | None = None
    cluster_profile: str | None = None
    recorded_at: str | None = None


@dataclass(frozen=True)
class Resolved:
    """The target a command uses and the reason, plus the cluster record when there is one.

    Attributes:
        target: ``local``, ``cluster`` or ``vertex``.
        reason: Why, in a few words (printed after the target).
        record: The recorded cluster (also when an explicit target is not ``cluster``).
    """

    target: str
    reason: str
    record: ClusterRecord | None = None

    def line(self) -> str:
        """The first line every command prints: ``target: cluster (make kind-up recorded ...)``."""
        return f"target: {self.target} ({self.reason})"

    @property
    def cluster_record(self) -> ClusterRecord | None:
        """The record, only when the target is ``cluster``."""
        return self.record if self.target == "cluster" else None

    def kfp_host(self, explicit: str | None) -> str:
        """The KFP host: ``explicit`` (``--kfp-host`` / ``KFP_HOST``), else the record's on the cluster target."""
        if explicit:
            return explicit
        record = self.cluster_record
        return record.kfp_host if record else ""

    def context(self, explicit: str | None) -> str | None:
        """The kubeconfig context: ``explicit``, else the record's on the cluster target, else None (current)."""
        if explicit:
            return explicit
        record = self.cluster_record
        return record.context if record else None

    def use_cluster_mlflow(self) -> str | None:
        """On the cluster target, point MLflow at the cluster's server unless a tracking URI is set.

        Returns:
            The URI it set (``MLFLOW_TRACKING_URI`` in this process's environment), or None.
        """
        record = self.cluster_record
        if record is None or not record.mlflow_uri:
            return None
        if os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("ARREST_MLFLOW_TRACKING_URI"):
            return None
        os.environ["MLFLOW_TRACKING_URI"] = record.mlflow_uri
        return record.mlflow_uri


def record_path(data_dir: Path | None = None) -> Path:
    """``<data dir>/cluster.json``; the data dir is ``ARREST_DATA_DIR`` (as the settings read it) or ``.data``.

    Args:
        data_dir: The data directory (default: from the settings).
    """
    if data_dir is None:
        from chicago_arrest.core.settings import get_settings

        data_dir = get_settings().data_dir
    return data_dir / RECORD_NAME


def read_record(path: Path) -> ClusterRecord | None:
    """The cluster record at ``path``, or None when there is none.

    Raises:
        TargetError: When the file exists but is not a valid record.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ClusterRecord.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise TargetError(
            f"{path} is not a cluster record ({first}): re-run `make kind-up`, or delete the file"
        ) from None


def resolve_target(
    explicit: str | None, *, kfp_host: str | None = None, data_dir: Path | None = None
) -> Resolved:
    """Decide the target of a command.

    Args:
        explicit: ``--target`` as given (``make ... TARGET=x``); None or empty when not given.
        kfp_host: ``KFP_HOST`` / ``--kfp-host`` of the pipeline commands: when set (and no explicit target),
            the target is ``cluster``, that KFP.
        data_dir: Where to look for the record (default: the settings' data directory).

    Returns:
        The target, the reason, and the cluster record if one exists.

    Raises:
        TargetError: For an unknown explicit target or an unreadable record.
    """
    path = record_path(data_dir)
    if explicit:
        if explicit not in TARGETS:
            raise TargetError(f"target {explicit!r} is not one of {', '.join(TARGETS)}")
        # An unreadable record must not block an explicit local run.
        try:
            record = read_record(path)
        except TargetError:
            record = None
        return Resolved(explicit, f"asked for: TARGET={explicit}", record)
    record = read_record(path)
    if kfp_host:
        return Resolved("cluster", f"KFP_HOST={kfp_host} given", record)
    if record is not None:
        return Resolved(
            "cluster",
            f"make kind-up recorded kind cluster {record.cluster_name} in {path}; TARGET=local runs locally",
            record,
        )
    return Resolved("local", f"no cluster recorded in {path}; TARGET=cluster or make kind-up to change")
