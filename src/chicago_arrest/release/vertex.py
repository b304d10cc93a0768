"""Releasing on Vertex AI: the served model folder, the model's container, the gate and the endpoint's champion.

There is no MLflow on Vertex. The champion is the deployed model with the largest traffic share on the
``arrest-predictor`` endpoint (:func:`find_champion`, run by the submitter); its test metrics are the labels it
was uploaded with (:func:`metric_labels`). :func:`gate_decision` applies the project's promotion rule
(:func:`chicago_arrest.release.gate.decide`) and turns the outcome into the endpoint's traffic split.
:func:`container_spec` is how Vertex runs the project image as the model's serving container.

Nothing here imports ``google.cloud.aiplatform``: :func:`find_champion` is handed the module.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chicago_arrest import __version__
from chicago_arrest.core.errors import VertexError
from chicago_arrest.core.names import ISVC_NAME, V1_PREDICT_ROUTE, V2_INFER_ROUTE, V2_READY_ROUTE

#: Where Vertex sends ``endpoints.predict`` (Vertex's ``{"instances"}`` → ``{"predictions"}``): KServe's V1
#: route. ``rawPredict`` posts its body unchanged, presumably to the same route (not stated in Vertex's docs):
#: under Vertex the server answers a V2 body there too (:mod:`arrest_server.vertex`).
PREDICT_ROUTE = V1_PREDICT_ROUTE.format(name=ISVC_NAME)
#: The V2 route a V2 body on :data:`PREDICT_ROUTE` is answered by.
V2_ROUTE = V2_INFER_ROUTE.format(name=ISVC_NAME)
#: Vertex's health checks: 200 once the model is loaded.
HEALTH_ROUTE = V2_READY_ROUTE
#: The container port Vertex sends requests and health checks to (it sets ``AIP_HTTP_PORT`` to it).
SERVING_PORT = 8080
#: Metrics written as model labels (label values allow only ``[a-z0-9_-]``: parts per million as integers).
LABEL_METRICS = ("roc_auc", "pr_auc", "ece", "brier")
_PPM = 1_000_000


def container_spec(image: str) -> dict[str, Any]:
    """Vertex ``containerSpec`` of the project image: the model server, the model from Vertex's copy of it.

    Vertex copies the uploaded model folder and passes its ``gs://`` address as ``AIP_STORAGE_URI``; the server
    loads it with MLflow (``--model_uri``), reports the deployed model's id as the version and listens on
    ``AIP_HTTP_PORT`` (:data:`SERVING_PORT`, the first of ``ports``). Vertex expands ``$(VAR)`` in ``args`` from
    its own ``AIP_*`` variables (``ModelContainerSpec.args``). gRPC is off: Vertex uses one HTTP port.
    """
    return {
        "imageUri": image,
        "command": ["python", "-m", "arrest_server"],
        "args": [
            "--model_uri=$(AIP_STORAGE_URI)",
            "--model_version=$(AIP_DEPLOYED_MODEL_ID)",
            "--http_port=$(AIP_HTTP_PORT)",
            "--enable_grpc=false",
        ],
        "predictRoute": PREDICT_ROUTE,
        "healthRoute": HEALTH_ROUTE,
        "ports": [{"containerPort": SERVING_PORT}],
    }


def input_example(records: Any) -> Any:
    """The first three records' model inputs as text (MLflow's input example of the saved folder)."""
    from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS

    head = records.head(3)
    example = head[[c for c in MODEL_INPUT_COLUMNS if c in head.columns]].astype(object)
    return example.where(example.notna(), None).astype(str).replace({"None": ""})


def save_model_folder(model: Any, out_dir: str | Path, example: Any = None) -> None:
    """Save an ``ArrestModel`` as the MLflow pyfunc folder the serving container loads (``--model_uri``).

    Args:
        model: The trained ``ArrestModel``.
        out_dir: The folder to create (on Vertex the ``/gcs/...`` path of an output artifact).
        example: Model inputs kept as MLflow's input example (text frame), or ``None``.
    """
    import joblib
    import mlflow.pyfunc

    from chicago_arrest.registry.models import ArrestPyfunc, model_signature

    model.set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        mlflow.pyfunc.save_model(
            str(out_dir),
            python_model=ArrestPyfunc(),
            artifacts={"model": str(path)},
            signature=model_signature(),
            input_example=example,
            pip_requirements=[f"chicago-arrest=={__version__}"],
            metadata={"threshold": model.threshold, "model_type": (model.info or {}).get("model_type")},
        )


def save_served_model(
    model_paths: list[str],
    evaluation: Mapping[str, Any],
    out_dir: str | Path,
    test_path: str | Path | None = None,
) -> str:
    """Save the candidate the evaluate step selected as an MLflow pyfunc folder (what the server loads).

    Args:
        model_paths: Saved candidates (train step outputs), in the evaluate step's order.
        evaluation: The evaluate step's output (``selected_index``).
        out_dir: The folder to create (on Vertex the ``/gcs/...`` path of an output artifact).
        test_path: Test records; their first three model inputs become the input example (as in MLflow).

    Returns:
        The model type saved.
    """
    import joblib
    import pandas as pd

    example = input_example(pd.read_parquet(test_path)) if test_path is not None else None
    save_model_folder(joblib.load(model_paths[int(evaluation["selected_index"])]), out_dir, example)
    return str(evaluation["selected"])


def metric_labels(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Vertex model labels for test metrics: ``roc_auc_ppm: "898412"`` (label values cannot hold a dot)."""
    return {f"{k}_ppm": str(round(float(metrics[k]) * _PPM)) for k in LABEL_METRICS if k in metrics}


def labels_metrics(labels: Mapping[str, str]) -> dict[str, float]:
    """The metrics :func:`metric_labels` wrote (labels that are not metrics are ignored)."""
    out = {}
    for key in LABEL_METRICS:
        value = labels.get(f"{key}_ppm")
        if value is not None and value.isdigit():
            out[key] = int(value) / _PPM
    return out


def gate_decision(
    evaluation: Mapping[str, Any],
    champion: Mapping[str, Any],
    *,
    margin: float = 0.002,
    max_ece: float = 0.05,
    canary_percent: int = 10,
) -> dict[str, Any]:
    """The project's promotion rule (:func:`chicago_arrest.release.gate.decide`) and the endpoint's traffic split.

    The champion's metrics are those it was uploaded with (its own test window), not a re-score on the
    challenger's window as in the MLflow gate: the Vertex pipeline has no registry to load it from.

    Args:
        evaluation: The evaluate step's output (the selected candidate's test metrics).
        champion: ``{"model", "deployed_model_id", "metrics"}`` found by :func:`find_champion`; empty when the
            endpoint serves no model yet.
        margin: Required ROC-AUC improvement.
        max_ece: Upper bound of the challenger's ECE.
        canary_percent: Share of a passing challenger; 0 or 100 promotes it directly.

    Returns:
        ``action`` (``promote``, ``canary`` or ``none``), ``traffic_split`` for ``ModelDeployOp`` (``"0"`` is
        the model being deployed; percentages as text, GCPC's ``Dict[str, str]``: KFP would turn numbers into
        floats), ``labels`` for ``ModelUploadOp``, ``passed``, ``reason``, both metric sets.

    Raises:
        ValueError: For a champion without metrics or a deployed model id.
    """
    from chicago_arrest.release.gate import decide

    chosen = evaluation["candidates"][evaluation["selected"]]
    challenger = {k: float(chosen[k]) for k in LABEL_METRICS}
    challenger.update({k: float(chosen[k]) for k in ("roc_auc_se", "ece_worst_month") if k in chosen})
    champ: dict[str, float] | None = None
    if champion:
        champ = {k: float(v) for k, v in dict(champion.get("metrics") or {}).items()}
        if not {"roc_auc", "ece"} <= set(champ) or not champion.get("deployed_model_id"):
            raise ValueError(
                f"champion {champion.get('model')!r}: needs metrics roc_auc and ece and a deployed_model_id, "
                f"got {dict(champion)}"
            )
    passed, reason = decide(challenger, champ, margin, max_ece)
    if not passed:
        action, split = "none", {}
    elif champ is not None and 0 < canary_percent < 100:
        action = "canary"
        split = {"0": str(canary_percent), str(champion["deployed_model_id"]): str(100 - canary_percent)}
    else:
        action, split = "promote", {"0": "100"}
    labels = {
        **metric_labels(challenger),
        "model_type": re.sub(r"[^a-z0-9_-]", "-", str(evaluation["selected"]).lower()),
        "gate": "passed" if passed else "rejected",
    }
    return {
        "action": action,
        "traffic_split": split,
        "labels": labels,
        "passed": passed,
        "reason": reason,
        "challenger": challenger,
        "champion": champ or {},
        "champion_model": str(champion.get("model", "")) if champion else "",
    }


def find_champion(aiplatform: Any, endpoint_name: str = ISVC_NAME) -> tuple[str, dict[str, Any]]:
    """The ``arrest-predictor`` endpoint and its champion: the deployed model with the largest traffic share.

    Args:
        aiplatform: The ``google.cloud.aiplatform`` module (initialised with project and region).
        endpoint_name: Display name of the endpoint.

    Returns:
        ``(endpoint resource name, champion)``; ``("", {})`` when there is no endpoint, and ``{}`` as the
        champion when it serves nothing. The champion is ``{"model", "deployed_model_id", "metrics"}``.

    Raises:
        VertexError: When the champion has no metric labels (it was not uploaded by this pipeline).
    """
    endpoints = aiplatform.Endpoint.list(
        filter=f'display_name="{endpoint_name}"', order_by="create_time desc"
    )
    if not endpoints:
        return "", {}
    endpoint = endpoints[0]
    split = {k: int(v) for k, v in (endpoint.traffic_split or {}).items() if int(v) > 0}
    if not split:
        return str(endpoint.resource_name), {}
    deployed_id = max(split, key=lambda k: (split[k], k))
    deployed = next(d for d in endpoint.list_models() if str(d.id) == deployed_id)
    metrics = labels_metrics(aiplatform.Model(deployed.model).labels or {})
    if not {"roc_auc", "ece"} <= set(metrics):
        raise VertexError(
            f"champion {deployed.model} on {endpoint.resource_name} has no roc_auc_ppm / ece_ppm labels: it was "
            "not uploaded by this pipeline; label it, or take it off the endpoint's traffic"
        )
    return str(endpoint.resource_name), {
        "model": str(deployed.model),
        "deployed_model_id": deployed_id,
        "metrics": metrics,
    }
