"""Fill a fresh local MLflow registry for the end-to-end server tests: champion 1, challenger 2.

Run as a subprocess, in parallel with the golden server's start::

    python tests/e2e/make_registry.py <data_dir>

Both versions are logistic regressions trained exactly as the pipeline trains them
(:func:`chicago_arrest.model.training.train_model`, on generated records, with different regularisation so they give
different probabilities) and logged with :func:`chicago_arrest.registry.models.log_arrest_model`.
Prints ``{"champion": "1", "challenger": "2"}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(data_dir: str) -> int:
    """Register the two versions and set the aliases."""
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")  # the model does not need the project's uv.lock
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import (
        CHALLENGER,
        CHAMPION,
        MODEL_NAME,
        configure_mlflow,
        log_arrest_model,
    )

    client = configure_mlflow(Settings(data_dir=Path(data_dir)))
    stations = generate_stations()
    train, _, _ = time_split(generate_crimes(3_000, stations=stations, seed=11))
    versions = []
    for seed, c in ((0, 1.0), (1, 0.05)):
        result = train_model(
            train, stations, TrainConfig(model_type="logreg", params={"C": c}, random_state=seed)
        )
        with mlflow.start_run():
            info = log_arrest_model(result.model, train, MODEL_NAME)
        versions.append(str(info.registered_model_version))
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, versions[0])
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, versions[1])
    print(json.dumps({CHAMPION: versions[0], CHALLENGER: versions[1]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
