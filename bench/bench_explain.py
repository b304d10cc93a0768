"""Explanations: one-record latency (in process and over HTTP) and the additivity contract on real records.

For each model type, trained with the default parameters on the 2017 sample's training window (at most
``--rows`` rows; generated records when the sample is absent):

* in process: the p50 / p95 of ``Explainer.explain(one record).records()`` over ``--repeats`` different test
  records, beside ``predict_arrest_probability`` of the same record;
* the contract on ``--check`` test records: max |base + Σ contributions − log-odds| and the largest remainder
  the distance interpolation puts into ``location``;
* over HTTP (``--http``): the real server (``python -m arrest_server --model_dir``, one process) answering
  one-record ``POST /v1/models/arrest-predictor:explain`` and V2 infer with ``"explain": true``, p50 / p95
  (client time: round trip included).

Run from the repository root::

    .venv/bin/python -m bench.bench_explain --http

Results: printed as Markdown and written to ``bench/results/explain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.bench_serving import v2_body
from bench.common import REPO_ROOT, load_sample, machine, markdown_table

RESULTS = REPO_ROOT / "bench" / "results" / "explain.json"
MODEL = "arrest-predictor"


def pct(values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) of ``values``."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def in_process(model: Any, test: pd.DataFrame, repeats: int, check: int) -> dict[str, float]:
    """Latency of one-record explain and predict, and the additivity contract on ``check`` records."""
    from chicago_arrest.model.explain import Explainer

    start = time.perf_counter()
    explainer = Explainer(model)
    build_ms = (time.perf_counter() - start) * 1000
    rows = [test.iloc[[i % len(test)]] for i in range(repeats)]
    explainer.explain(rows[0]).records()
    model.predict_arrest_probability(rows[0])
    explain_ms, predict_ms = [], []
    for row in rows:
        t0 = time.perf_counter()
        explainer.explain(row).records()
        t1 = time.perf_counter()
        model.predict_arrest_probability(row)
        t2 = time.perf_counter()
        explain_ms.append((t1 - t0) * 1000)
        predict_ms.append((t2 - t1) * 1000)
    part = test.head(check)
    explanation = explainer.explain(part)
    total = explanation.base_value + explanation.contributions.sum(axis=1)
    return {
        "explainer_build_ms": build_ms,
        "explain_p50_ms": pct(explain_ms, 50),
        "explain_p95_ms": pct(explain_ms, 95),
        "predict_p50_ms": pct(predict_ms, 50),
        "max_additivity_error": float(np.max(np.abs(total - explanation.log_odds))),
        "max_interpolation_remainder": float(np.max(np.abs(explanation.interpolation))),
        "probability_equal_to_predict": bool(
            np.array_equal(explanation.probability, model.predict_arrest_probability(part))
        ),
        "checked_rows": len(part),
    }


def over_http(model: Any, train: pd.DataFrame, test: pd.DataFrame, repeats: int) -> dict[str, float]:
    """One-record explain requests against the real server serving ``model`` from a model folder."""
    import mlflow
    import requests

    from chicago_arrest.registry.models import log_arrest_model
    from tests.e2e.helpers import start_server

    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        root = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        with mlflow.start_run():
            info = log_arrest_model(model, train)
        folder = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / "model"))
        mlflow.set_tracking_uri("")
        server = start_server(["--model_dir", folder], root / "server.log", ARREST_DATA_DIR=str(root / "d"))
        try:
            server.wait_ready()
            session = requests.Session()
            raw = test.astype(object).where(test.notna(), "").astype(str)
            records = raw.to_dict(orient="records")
            v1_ms, v2_ms, infer_ms = [], [], []
            for i in range(repeats + 5):
                record = records[i % len(records)]
                t0 = time.perf_counter()
                r1 = session.post(f"{server.url}/v1/models/{MODEL}:explain", json={"instances": [record]})
                t1 = time.perf_counter()
                body = json.loads(v2_body([record]))
                body["parameters"]["explain"] = True
                r2 = session.post(server.infer_url, json=body)
                t2 = time.perf_counter()
                r3 = session.post(
                    server.infer_url, data=v2_body([record]), headers={"content-type": "application/json"}
                )
                t3 = time.perf_counter()
                for r in (r1, r2, r3):
                    r.raise_for_status()
                if i >= 5:  # warm-up
                    v1_ms.append((t1 - t0) * 1000)
                    v2_ms.append((t2 - t1) * 1000)
                    infer_ms.append((t3 - t2) * 1000)
        finally:
            server.stop()
    return {
        "v1_explain_p50_ms": pct(v1_ms, 50),
        "v1_explain_p95_ms": pct(v1_ms, 95),
        "v2_explain_p50_ms": pct(v2_ms, 50),
        "v2_explain_p95_ms": pct(v2_ms, 95),
        "v2_infer_p50_ms": pct(infer_ms, 50),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Train, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="logreg,random_forest,xgboost")
    parser.add_argument("--rows", type=int, default=30_000, help="training rows at most")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--check", type=int, default=2_000)
    parser.add_argument(
        "--http", action="store_true", help="also measure over HTTP (starts a server per model)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results JSON (merged into an existing one)"
    )
    args = parser.parse_args(argv)

    from chicago_arrest.data.split import time_split
    from chicago_arrest.model.training import TrainConfig, train_model

    crimes, stations, source = load_sample()
    train, test, _ = time_split(crimes)
    if len(train) > args.rows:
        train = train.sort_values("date").tail(args.rows)
    results: dict[str, Any] = {
        "machine": machine(),
        "source": source,
        "train_rows": len(train),
        "test_rows": len(test),
        "models": {},
    }
    rows = []
    for model_type in args.models.split(","):
        t0 = time.perf_counter()
        model = train_model(train, stations, TrainConfig(model_type=model_type, backtest_folds=0)).model
        model.set_threads(1)
        fit_s = time.perf_counter() - t0
        measured = {"fit_s": fit_s, **in_process(model, test, args.repeats, args.check)}
        if args.http:
            measured.update(over_http(model, train, test, args.repeats))
        results["models"][model_type] = measured
        rows.append(
            [
                model_type,
                f"{measured['explain_p50_ms']:.2f}",
                f"{measured['explain_p95_ms']:.2f}",
                f"{measured['predict_p50_ms']:.2f}",
                f"{measured.get('v1_explain_p50_ms', float('nan')):.1f}",
                f"{measured.get('v2_explain_p50_ms', float('nan')):.1f}",
                f"{measured.get('v2_infer_p50_ms', float('nan')):.1f}",
                f"{measured['max_additivity_error']:.1e}",
                f"{measured['max_interpolation_remainder']:.3f}",
            ]
        )
        print(f"{model_type}: {json.dumps(measured)}", file=sys.stderr)
    results["load_average_at_end"] = list(os.getloadavg())
    print(
        markdown_table(
            [
                "model",
                "explain p50 ms (in process)",
                "p95",
                "predict p50 ms",
                "HTTP :explain p50 ms",
                "HTTP V2 explain p50 ms",
                "HTTP V2 infer p50 ms",
                "max |base + sum - log-odds|",
                "max interpolation remainder",
            ],
            rows,
        )
    )
    out: Path = args.out
    if out.is_file():  # keep the other model types' results of an earlier run
        earlier = json.loads(out.read_text(encoding="utf-8"))
        results["models"] = {**earlier.get("models", {}), **results["models"]}
        before = {k: v for k, v in earlier.items() if k != "models"}
        results["earlier_runs"] = [*earlier.get("earlier_runs", []), before]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
