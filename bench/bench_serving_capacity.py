"""Serving capacity: the highest open-loop rate a server sustains with p99 ≤ 50 ms and no errors.

Servers, one at a time, in one run, on the same model folder and the same requests (single records of the
2017 sample as V2 ``pd`` bodies, natural datatypes, ``bench.bench_serving.v2_body``):

* ``kserve:N`` — ``python -m arrest_server --model_dir <model> --workers N`` (``N=0``: one per CPU, what
  ``make serve`` runs);
* ``kserve-route:N`` — the same with ``ARREST_SERVER_FAST_INFER=false``: every V2 request through KServe's
  FastAPI route (what ``arrest_server.fast_infer`` saves);
* ``baseline:1`` — the same server from another checkout (``--baseline DIR``, e.g. ``git archive <commit>
  serving src | tar -x -C DIR``: its ``serving`` and ``src`` go first on ``PYTHONPATH``), to measure a change;
* ``mlserver:N`` — MLServer 1.7.1 with its MLflow runtime, ``parallel_workers=N`` (its own venv,
  bench/mlserver/README.md).

Per server: single-record latency back to back (p50/p99), 1,000 records in one request (p50), then the
capacity search: open-loop rates from ``--start`` in steps of ``--step`` for ``--seconds`` each, until a rate
fails (p99 > 50 ms or any error); capacity = the last rate that passed. Memory: resident set of the server's
process tree after the search.

The model is the champion of the local registry (``make pipeline-run``: the random forest on the real sample)
unless ``--model-dir`` names a folder. Run from the repository root::

    .venv/bin/python -m bench.bench_serving_capacity                       # kserve:1, kserve:0, mlserver:1
    .venv/bin/python -m bench.bench_serving_capacity --servers kserve:1,kserve:2 --seconds 10

Results: printed as Markdown and written to ``bench/results/serving_capacity.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_serving import (
    MODEL,
    REPO,
    SHARED,
    Running,
    kserve,
    loadavg,
    mlserver_server,
    probabilities,
    v2_body,
    wait_ready,
)
from bench.common import cpu_model
from bench.serving_load import build_request, open_loop, sequential

RESULTS = REPO / "bench" / "results" / "serving_capacity.json"
P99_LIMIT_MS = 50.0


def champion_folder(work: Path) -> tuple[Path, str]:
    """Download the registry's champion into ``work/champion`` (once); returns (folder, description)."""
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.registry.models import CHAMPION, MODEL_NAME

    settings = Settings()
    uri = settings.resolved_tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    folder = work / f"champion-v{version.version}"
    if not any(folder.rglob("MLmodel")):
        shutil.rmtree(folder, ignore_errors=True)
        source = client.get_model_version_download_uri(MODEL_NAME, version.version)
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(folder), tracking_uri=uri)
    model_dir = next(folder.rglob("MLmodel")).parent
    return model_dir, f"{MODEL_NAME} version {version.version} (champion of {uri})"


def model_kind(folder: Path) -> str:
    """The classifier inside the served model (e.g. ``RandomForestClassifier, 150 trees``)."""
    from chicago_arrest.registry.models import load_arrest_model

    clf = load_arrest_model(str(folder)).pipeline.steps[-1][1]
    trees = getattr(clf, "n_estimators", None)
    return type(clf).__name__ + (f", {trees} trees" if trees else "")


def records(n: int) -> list[dict[str, Any]]:
    """``n`` records of the real 2017 sample (December: the pipeline's test month), as text."""
    import pandas as pd

    crimes = pd.read_csv(SHARED / "crimes_sample.csv", dtype=str, keep_default_na=False)
    december = crimes[crimes["date"].str.startswith("2017-12")]
    pool = december if len(december) >= n else crimes
    return list(pool.sample(n=n, random_state=0).to_dict(orient="records"))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children."""
    import psutil

    total = 0.0
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def wait_idle(pid: int, timeout: float = 90.0) -> float:
    """Wait until a server's process tree uses < 5 % of a CPU over a second (every worker has started).

    A server is ready as soon as one worker answers; the others may still be loading the model.

    Returns:
        Seconds waited.
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = tree_cpu_s(pid)
        time.sleep(1.0)
        if tree_cpu_s(pid) - before < 0.05:
            break
    return time.monotonic() - start


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (MiB)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return round(total / 2**20, 1)


def capacity(
    server: Running, raws: Sequence[bytes], start: float, step: float, stop: float, seconds: float
) -> tuple[float, list[dict[str, Any]]]:
    """Raise the open-loop rate until p99 > 50 ms or an error; return (capacity, every step's summary)."""
    steps: list[dict[str, Any]] = []
    best = 0.0
    rate = start
    while rate <= stop:
        result = open_loop(server.url, raws, rate, seconds).summary()
        steps.append(result)
        ok = result["errors"] == 0 and result["p99_ms"] <= P99_LIMIT_MS
        print(
            f"  {rate:6.0f} rps: p50 {result['p50_ms']:7.2f} ms, p99 {result['p99_ms']:8.2f} ms, "
            f"errors {result['errors']}{'' if ok else '  <- fails'}",
            file=sys.stderr,
        )
        if not ok:
            break
        best = rate
        rate += step
        time.sleep(1.0)  # let the queue drain between steps
    return best, steps


def measure(
    server: Running, single: Sequence[bytes], batch: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    """Latency, batch and capacity of one running server."""
    ready_s = wait_ready(server)
    ready_s += wait_idle(server.proc.pid)
    url = server.url + f"/v2/models/{MODEL}/infer"
    raws = [build_request(url, body) for body in single]
    for _ in range(4):
        sequential(server.url, raws, 50)  # warm-up: new connections reach every worker
    cpu_before, client_before = tree_cpu_s(server.proc.pid), time.process_time()
    seq = sequential(server.url, raws, args.n_single)
    cpu_ms = (tree_cpu_s(server.proc.pid) - cpu_before) / len(seq) * 1000
    client_ms = (time.process_time() - client_before) / len(seq) * 1000
    batch_raw = build_request(url, batch)
    sequential(server.url, [batch_raw], 3)
    batch_times = sequential(server.url, [batch_raw], args.n_batch)
    best, steps = capacity(server, raws, args.start, args.step, args.stop, args.seconds)
    import requests

    content = requests.post(url, data=batch, headers={"content-type": "application/json"}, timeout=60).json()
    return {
        "server": server.name,
        "ready_after_s": round(ready_s, 1),
        "single_p50_ms": round(float(np.percentile(seq, 50)) * 1000, 2),
        "single_p99_ms": round(float(np.percentile(seq, 99)) * 1000, 2),
        "server_cpu_ms_per_request": round(cpu_ms, 2),
        "client_cpu_ms_per_request": round(client_ms, 2),
        "rows_1000_p50_ms": round(float(np.percentile(batch_times, 50)) * 1000, 2),
        "capacity_rps": best,
        "steps": steps,
        "rss_mib": tree_rss_mib(server.proc.pid),
        "batch_probabilities": probabilities(content),
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    env = results["environment"]
    lines = [
        f"Run {env['date']} UTC on {env['cpu']} ({env['cpus']} CPUs), load average {env['load_before']} before "
        f"and {env['load_after']} after; commit {env['commit']}. Model: {results['model']}. Open-loop steps of "
        f"{results['args']['seconds']:g} s; capacity = highest rate with p99 ≤ {P99_LIMIT_MS:g} ms and no errors.",
        "",
        "| server | capacity (rps) | single record p50 / p99 (ms) | server CPU per record (ms) | "
        "1,000 records p50 (ms) | memory (MiB) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for s in results["servers"]:
        lines.append(
            f"| {s['server']} | **{s['capacity_rps']:g}** | {s['single_p50_ms']} / {s['single_p99_ms']} | "
            f"{s['server_cpu_ms_per_request']} | {s['rows_1000_p50_ms']} | {s['rss_mib']} |"
        )
    lines += ["", "Open-loop steps (rate: p50 / p99 ms, errors):", ""]
    for s in results["servers"]:
        steps = "; ".join(
            f"{o['rate_rps']:g}: {o['p50_ms']} / {o['p99_ms']}"
            + (f", {o['errors']} err" if o["errors"] else "")
            for o in s["steps"]
        )
        lines.append(f"- {s['server']}: {steps}")
    if results.get("same_predictions") is not None:
        lines.append(
            f"- identical 1,000-record probabilities across servers (|Δ| ≤ 1e-9): {results['same_predictions']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the capacity benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", default="kserve:1,kserve:0,mlserver:1", help="kserve:N / mlserver:N, ..."
    )
    parser.add_argument("--model-dir", type=Path, help="model folder (default: the registry's champion)")
    parser.add_argument("--start", type=float, default=100.0, help="first open-loop rate (rps)")
    parser.add_argument("--step", type=float, default=50.0, help="rate step (rps)")
    parser.add_argument("--stop", type=float, default=1000.0, help="highest rate tried (rps)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    parser.add_argument("--n-single", type=int, default=300)
    parser.add_argument("--n-batch", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--baseline", type=Path, help="sources of the baseline:N server (serving/, src/)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the list of servers this many times, in turn (the VM's speed drifts)",
    )
    args = parser.parse_args(argv)

    from chicago_arrest.core.runtime import pin_thread_env
    from chicago_arrest.core.settings import Settings

    pin_thread_env(1)
    work = Settings().data_dir.resolve() / "bench" / "serving-capacity"
    work.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    if args.model_dir:
        model_dir, source = args.model_dir.resolve(), f"folder {args.model_dir}"
    else:
        model_dir, source = champion_folder(work)
    model = f"{source}, {model_kind(model_dir)}"
    recs = records(1000)
    single = [v2_body([r], f"cap-{i}") for i, r in enumerate(recs[:300])]
    batch = v2_body(recs, "batch")
    servers = []
    for spec in args.servers.split(",") * args.rounds:
        kind, _, n = spec.partition(":")
        workers = int(n or 1)
        print(f"{spec} ...", file=sys.stderr)
        if kind == "kserve":
            context = kserve(model_dir, work, workers)
        elif kind == "kserve-route":
            context = kserve(model_dir, work, workers, ARREST_SERVER_FAST_INFER="false")
        elif kind == "baseline" and args.baseline:
            context = kserve(model_dir, work, workers, baseline=args.baseline.resolve())
        elif kind == "mlserver":
            context = mlserver_server(model_dir, work, workers)
        else:
            parser.error(
                f"unknown server {spec!r}: kserve:N, kserve-route:N, baseline:N (with --baseline) or mlserver:N"
            )
        with context as server:
            servers.append(measure(server, single, batch, args))
    reference = servers[0]["batch_probabilities"]
    same = (
        all(np.allclose(s["batch_probabilities"], reference, rtol=0, atol=1e-9) for s in servers[1:])
        if len(servers) > 1
        else None
    )
    for s in servers:
        s.pop("batch_probabilities")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    results = {
        "environment": {
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": loadavg(),
            "commit": commit.stdout.strip(),
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model": model,
        "servers": servers,
        "same_predictions": same,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
