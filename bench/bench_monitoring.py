"""Benchmarks of monitoring: the monitor step on 250,000 records (target <= 30 s on 2 cores), and the
latency the server's request log adds to one request (target <= 0.5 ms at p50).

Run: ``.venv/bin/python -m bench.bench_monitoring [--rows 250000] [--cpus 2] [--requests 3000]``. Writes
``bench/results/monitoring.json``.

a. :func:`monitor_step` as the KFP component runs it (read the file, contract, the champion's probabilities,
   PSI, realised metrics, the report, the MLflow run; no retraining), on the real 2017 sample replicated to
   ``--rows`` (labels present, so the realised metrics and the calibration curve are computed too).
b. The scoring path of one single-record request in the model server's worker (the V2 record parsed to a
   frame, the model's probability) with and without :meth:`RequestLog.append`, requests interleaved, the
   background writer flushing every second meanwhile (so its work competes with the requests as it would).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_batch_scoring import prepare, replicate
from bench.common import REPO_ROOT, machine

DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "monitoring.json"
TARGET_S = 30.0
TARGET_LOG_MS = 0.5


def request_log_latency(model: object, records: list, folder: Path) -> dict[str, float]:
    """p50 / p99 of one request's scoring with and without the request log (milliseconds)."""
    import pandas as pd
    from arrest_server.request_log import RequestLog

    requests = RequestLog(folder, flush_s=1.0)
    timings: dict[str, list[float]] = {"off": [], "on": []}
    for i, record in enumerate(records):
        for mode in ("off", "on") if i % 2 else ("on", "off"):
            start = time.perf_counter()
            frame = pd.DataFrame([record])
            p = model.predict_arrest_probability(frame)  # type: ignore[attr-defined]
            if mode == "on":
                requests.append(frame, p, p >= 0.5, model_version="1", role="champion", request_id=str(i))
            timings[mode].append((time.perf_counter() - start) * 1000)
    requests.close()
    out = {}
    for mode, values in timings.items():
        out[f"{mode}_p50_ms"] = round(statistics.median(values), 4)
        out[f"{mode}_p99_ms"] = round(float(np.percentile(values, 99)), 4)
    out["added_p50_ms"] = round(out["on_p50_ms"] - out["off_p50_ms"], 4)
    out["files_written"] = len(list(folder.glob("requests-*.parquet")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    os.environ["ARREST_CPUS"] = str(args.cpus)
    from chicago_arrest.registry.models import load_arrest_model
    from chicago_arrest.steps.monitoring import monitor_step

    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        root = Path(tmp)
        ready = prepare(root)
        path = root / "records.parquet"
        replicate(ready["sample"], args.rows).to_parquet(path, index=False)
        load_before = os.getloadavg()
        started = time.perf_counter()
        out = monitor_step(
            root / "report.html", source=str(path), retrain="never", settings=ready["settings"]
        )
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()
        model = load_arrest_model("models:/chicago-crime-arrest-predictor@champion")
        model.set_threads(1)  # as the server runs it
        columns = [c for c in ready["test"].columns if c not in ("arrest", "id")]
        records = ready["test"][columns].head(args.requests).to_dict("records")
        latency = request_log_latency(model, records, root / "requests")
    result = {
        "monitor": {
            "rows": args.rows,
            "cpus": args.cpus,
            "seconds": round(seconds, 2),
            "target_s": TARGET_S,
            "passed": seconds <= TARGET_S,
            "decision": out["decision"],
            "reasons": out["reasons"],
            "prediction_psi": out["prediction_psi"],
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        },
        "request_log": {
            **latency,
            "requests": len(records),
            "target_added_p50_ms": TARGET_LOG_MS,
            "passed": latency["added_p50_ms"] <= TARGET_LOG_MS,
        },
        "data": ready["source"],
        "model": "xgboost",
        "machine": machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
