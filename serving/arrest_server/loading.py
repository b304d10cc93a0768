"""Loading a served model: from a folder, a ``runs:/`` URI or the registry (``models:/name/version|@alias``).

The version's files are downloaded with a client of the configured tracking URI (MLflow's global state is never
used or set), loaded as the project's :class:`~chicago_arrest.model.artifact.ArrestModel`, pinned to the
server's threads and warmed up with one record before they get traffic.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time

import pandas as pd

from arrest_server.router import LoadedModel
from chicago_arrest.core.errors import ReleaseError
from chicago_arrest.model.explain import explainer_for
from chicago_arrest.registry.aliases import MlflowAliases
from chicago_arrest.registry.state import ModelRef

log = logging.getLogger(__name__)

MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")
#: A record used to warm a freshly loaded model up before it gets traffic.
WARMUP = {
    "date": ["2017-06-01T12:00:00.000"],
    "primary_type": ["THEFT"],
    "iucr": ["0820"],
    "domestic": [False],
}


def download(uri: str, tracking_uri: str, folder: str) -> str:
    """Copy the model behind a ``models:/`` or ``runs:/`` URI into ``folder``, resolved in ``tracking_uri``.

    MLflow resolves ``models:/`` URIs against its global registry URI; this resolves the version's location
    with a client of ``tracking_uri`` first, so the server never depends on (or sets) MLflow's global state.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    match = MODELS_URI.match(uri)
    if match is not None:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = match["version"] or client.get_model_version_by_alias(match["name"], match["alias"]).version
        uri = client.get_model_version_download_uri(match["name"], str(version))
    return str(
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri)
    )


def load_model(
    ref: ModelRef, threads: int = 1, tracking_uri: str | None = None, batch_threads: int | None = None
) -> LoadedModel:
    """Load, pin and warm up one model.

    Args:
        ref: Version and URI (``models:/...``, ``runs:/...`` or a local MLflow model folder).
        threads: Classifier threads.
        tracking_uri: MLflow tracking/registry URI that ``models:/`` and ``runs:/`` URIs resolve against
            (passed explicitly: MLflow's global URI is not used).
        batch_threads: Classifier threads for large requests (``ArrestModel.set_threads``; default
            ``threads``).

    Returns:
        The loaded model.
    """
    from chicago_arrest.registry.models import load_arrest_model, model_card_reference

    start = time.perf_counter()
    if tracking_uri and ref.uri.startswith(("models:/", "runs:/")):
        with tempfile.TemporaryDirectory(prefix="arrest-model-") as tmp:
            folder = download(ref.uri, tracking_uri, tmp)
            model, card = load_arrest_model(folder), model_card_reference(folder)
    else:
        model, card = load_arrest_model(ref.uri), model_card_reference(ref.uri)
    model.set_threads(threads, batch=batch_threads)
    # The first calls are slow (lazy imports, caches): pay them now, not in a request.
    model.predict_arrest_probability(pd.DataFrame(WARMUP))
    explainer_for(model).explain(pd.DataFrame(WARMUP))  # builds the explainer (a forest's is converted)
    log.info("loaded model version %s from %s in %.1fs", ref.version, ref.uri, time.perf_counter() - start)
    return LoadedModel(ref.version, ref.uri, model, card)


def resolve_uri(uri: str, version: str | None, tracking_uri: str) -> ModelRef:
    """Pin ``models:/<name>@<alias>`` to the version the alias names now (and report that version).

    Args:
        uri: A model URI or folder.
        version: The version to report (default: the one in the URI, or the alias's).
        tracking_uri: The MLflow registry that resolves an alias.

    Raises:
        ReleaseError: When the alias names no version.
    """
    match = MODELS_URI.match(uri)
    if match is None:
        return ModelRef(version or "unknown", uri)
    if match["version"]:
        return ModelRef(version or match["version"], uri)
    aliases = MlflowAliases(tracking_uri, match["name"])
    resolved = aliases.get(match["alias"])
    if resolved is None:
        raise ReleaseError(f"{uri}: no such alias in the MLflow registry at {aliases.where()}")
    return ModelRef(version or resolved, f"models:/{match['name']}/{resolved}")
