"""Fill a fresh local MLflow registry for the end-to-end server tests.

Run as a subprocess, in parallel with the golden server's start::

    python tests/e2e/make_registry.py <data_dir>

* Versions 1 and 2: logistic regressions trained exactly as the pipeline trains them
  (:func:`chicago_arrest.model.train_model`) on generated records; aliases ``champion`` → 1, ``challenger`` → 2.
* Versions 3 and 4: *prior-only* :class:`~chicago_arrest.model.ArrestModel` s (a ``DummyClassifier`` and a
  calibrator, no feature pipeline). The canary split test sends 2,000 requests; routing does not depend on the
  model, and the real feature pipeline costs 20-40 ms per single-row request on two shared cores, so the split
  is measured on these (about 5 ms per request) while everything else uses the real models.

All four are logged with :func:`chicago_arrest.registry.log_arrest_model`, as the pipeline logs models.
Prints ``{"champion": "1", "challenger": "2", "fast": ["3", "4"]}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def prior_model(train: Any, rate: float) -> Any:
    """An :class:`ArrestModel` that answers ``rate`` for every record (after calibration: about ``rate``)."""
    import numpy as np
    from imblearn.pipeline import Pipeline as ImbPipeline
    from sklearn.dummy import DummyClassifier

    from chicago_arrest.model import ArrestModel, Calibrator

    rng = np.random.default_rng(0)
    y = (rng.random(len(train)) < rate).astype(int)
    pipeline = ImbPipeline([("classifier", DummyClassifier(strategy="prior"))]).fit(train, y)
    calibrator = Calibrator("sigmoid").fit(pipeline.predict_proba(train)[:, 1], y)
    return ArrestModel(pipeline, calibrator, threshold=0.5, info={"model_type": "prior", "rate": rate})


def main(data_dir: str) -> int:
    """Register the four versions and set the aliases."""
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")  # the model does not need the project's uv.lock
    import mlflow

    from chicago_arrest.model import TrainConfig, train_model
    from chicago_arrest.registry import CHALLENGER, CHAMPION, MODEL_NAME, configure_mlflow, log_arrest_model
    from chicago_arrest.settings import Settings
    from chicago_arrest.split import time_split
    from chicago_arrest.synthetic import generate_crimes, generate_stations

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
    fast = []
    for rate in (0.2, 0.3):
        with mlflow.start_run():
            info = log_arrest_model(prior_model(train, rate), train, MODEL_NAME)
        fast.append(str(info.registered_model_version))
    print(json.dumps({CHAMPION: versions[0], CHALLENGER: versions[1], "fast": fast}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
