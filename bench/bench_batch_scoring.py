"""Benchmark of the batch-scoring step on 1,000,000 records (target: <= 60 s on 2 cores).

Run: ``.venv/bin/python -m bench.bench_batch_scoring [--rows 1000000] [--cpus 2]``. Writes
``bench/results/batch_scoring.json``.

Setup (not timed): an XGBoost model trained as the pipeline trains it on the real 2017 sample (or generated
records when it is absent), registered in a temporary MLflow store as champion with its reference profile;
the sample replicated to ``--rows`` with fresh ids, written as Parquet. Timed: :func:`batch_score_step` as
the KFP component runs it: read the file, the data contract, the probabilities, the Parquet objects in the
local store. The machine's load average is recorded before and after (other work may be running).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import REPO_ROOT, load_sample, machine
from chicago_arrest.model.training import ModelType

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "batch_scoring.json"
TARGET_S = 60.0


def replicate(sample: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``sample`` repeated to ``rows`` records with fresh, unique ids."""
    reps = -(-rows // len(sample))
    frame = pd.concat([sample] * reps, ignore_index=True).iloc[:rows].copy()
    frame["id"] = (np.arange(rows) + 10_000_000).astype(str)
    return frame


def prepare(root: Path, model_type: ModelType = "xgboost", train_rows: int = 40_000) -> dict[str, Any]:
    """A data dir whose registry has a champion with its reference profile; the sample; the test window."""
    import mlflow

    from chicago_arrest.core.names import CHAMPION, MODEL_NAME
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.evaluate import evaluate_model
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model
    from chicago_arrest.steps.monitoring import store_reference_profile

    os.environ["ARREST_DATA_DIR"] = str(root / "data")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    sample, stations, source = load_sample()
    settings = Settings(data_dir=root / "data")
    client = configure_mlflow(settings)
    train, test, _ = time_split(sample)
    started = time.perf_counter()
    model = train_model(train.tail(train_rows), stations, TrainConfig(model_type=model_type)).model
    fit_s = time.perf_counter() - started
    with mlflow.start_run() as run:
        info = log_arrest_model(model, train, MODEL_NAME)
    version = str(info.registered_model_version)
    metrics = {f"test_{k}": v for k, v in evaluate_model(model, test).overall.items()}
    registration = {"run_id": run.info.run_id, "version": version, "metrics": metrics}
    store_reference_profile(client, registration, model, test)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
    return {"settings": settings, "sample": sample, "test": test, "source": source, "fit_s": fit_s}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    os.environ["ARREST_CPUS"] = str(args.cpus)
    from chicago_arrest.steps.monitoring import batch_score_step

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        ready = prepare(root)
        path = root / "records.parquet"
        replicate(ready["sample"], args.rows).to_parquet(path, index=False)
        load_before = os.getloadavg()
        started = time.perf_counter()
        out = batch_score_step(source=str(path), settings=ready["settings"])
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()
    result = {
        "rows": args.rows,
        "cpus": args.cpus,
        "seconds": round(seconds, 2),
        "records_per_s": round(args.rows / seconds),
        "target_s": TARGET_S,
        "passed": seconds <= TARGET_S,
        "scored": out["scored"],
        "quarantined": out["quarantined"],
        "data": ready["source"],
        "model": "xgboost",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "machine": machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
