"""Where a request's CPU time goes, in process: the levers of serving capacity, measured one by one.

For one record and for 1,000 records of the 2017 sample (V2 ``pd`` bodies as ``bench.bench_serving.v2_body``
builds them), median of repeated runs, one thread:

* request parsing: ``json.loads`` + KServe's pydantic ``InferenceRequest`` + ``InferRequest`` (what FastAPI and
  KServe do before the model sees the request), then the server's own validation (``parse_v2``);
* the model: raw features (``transform_arrays``), the classifier at the distance grid's two points
  (``positive_scores``; for a random forest also the per-tree ``predict_proba`` it replaced), the whole
  ``predict_arrest_probability``.

Models: any MLflow model folders given with ``--model NAME=DIR`` (default: the registry's champion, and the
XGBoost model of ``bench.bench_serving`` when it has been built). Run from the repository root::

    .venv/bin/python -m bench.bench_serving_levers
    .venv/bin/python -m bench.bench_serving_levers --model rf=/path/to/model --model xgb=/path/to/other

Results: printed as Markdown and written to ``bench/results/serving_levers.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_serving import REPO, loadavg, v2_body
from bench.bench_serving_capacity import champion_folder, records
from bench.common import cpu_model, median_ms

RESULTS = REPO / "bench" / "results" / "serving_levers.json"


def per_tree_predict_proba(clf: Any, X: np.ndarray) -> np.ndarray:
    """The random-forest path before this change: each tree's ``predict_proba`` (with its per-call checks)."""
    x32 = np.ascontiguousarray(X, dtype=np.float32)
    total = np.zeros(len(x32))
    for tree in clf.estimators_:
        total += tree.predict_proba(x32, check_input=False)[:, 1]
    return total / len(clf.estimators_)


def stages(model_dir: Path, recs: list[dict[str, Any]], n_rows: int, reps: int) -> dict[str, float]:
    """Median ms of each stage for ``n_rows`` records."""
    from arrest_server.validation import parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from sklearn.ensemble import RandomForestClassifier

    from chicago_arrest.model.artifact import positive_scores
    from chicago_arrest.registry.models import load_arrest_model

    model = load_arrest_model(str(model_dir))
    model.set_threads(1)
    body = v2_body(recs[:n_rows], "levers")

    def decode() -> InferRequest:
        return InferRequest.from_inference_request(InferenceRequest(**json.loads(body)), "arrest-predictor")

    request = decode()
    frame = parse_v2(request, 10_000).frame
    steps = model.pipeline.named_steps
    raw_step, clf = model.pipeline.steps[0][1], steps["classifier"]
    support = np.asarray(steps["select"].support_)
    arrays = raw_step.transform_arrays(frame)
    fast = model.fast_encoder_
    out = {
        "json + pydantic + InferRequest": median_ms(decode, reps),
        "parse_v2 (validation, typed frame)": median_ms(lambda: parse_v2(request, 10_000), reps),
        "raw features (transform_arrays)": median_ms(lambda: raw_step.transform_arrays(frame), reps),
        "predict_arrest_probability (whole model)": median_ms(
            lambda: model.predict_arrest_probability(frame), reps
        ),
    }
    if fast is None:  # no compiled encoder: the classifier's inputs are not built here
        return out
    encoded = fast.transform(arrays)
    stacked = np.vstack([encoded, encoded])[:, support]  # the grid's two points (same shape and cost)
    out["classifier at the two grid points"] = median_ms(lambda: positive_scores(clf, stacked), reps)
    if isinstance(clf, RandomForestClassifier):
        out["classifier, per-tree predict_proba (before)"] = median_ms(
            lambda: per_tree_predict_proba(clf, stacked), reps
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the stages for every model."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR (repeatable)")
    parser.add_argument("--reps", type=int, default=200, help="repetitions for one record (1,000: a tenth)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from chicago_arrest.core.runtime import pin_thread_env
    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.models import load_arrest_model

    pin_thread_env(1)
    work = Settings().data_dir.resolve() / "bench"
    models: dict[str, Path] = {}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        models[name] = Path(folder)
    if not models:
        models["champion"] = champion_folder(work / "serving-capacity")[0]
        xgb = work / "serving" / "model"
        if (xgb / "MLmodel").is_file():
            models["xgboost (bench_serving)"] = xgb
    recs = records(1000)
    load_before = loadavg()
    results: dict[str, Any] = {}
    for name, folder in models.items():
        clf = load_arrest_model(str(folder)).pipeline.steps[-1][1]
        kind = type(clf).__name__ + (f", {clf.n_estimators} trees" if hasattr(clf, "n_estimators") else "")
        print(f"{name}: {kind} ...", file=sys.stderr)
        results[name] = {
            "classifier": kind,
            "1 record": stages(folder, recs, 1, args.reps),
            "1,000 records": stages(folder, recs, 1000, max(5, args.reps // 10)),
        }
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cpu": cpu_model(),
        "load_before": load_before,
        "load_after": loadavg(),
        "models": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    names = list(results)
    print(f"Run {doc['date']} UTC, load {load_before} → {doc['load_after']}; median ms, one thread.\n")
    print("| stage | " + " | ".join(f"{n}: 1 / 1,000 records" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for stage in dict.fromkeys(s for r in results.values() for s in r["1 record"]):
        cells = [
            f"{r['1 record'].get(stage, '-')} / {r['1,000 records'].get(stage, '-')}"
            for r in results.values()
        ]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print(" ".join(f"{n}: {r['classifier']}." for n, r in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
