"""Serving benchmark: the KServe ``arrest_server`` and MLServer 1.7.1 serving the same model, in the same run.

What is measured, on loopback, one server at a time (each a single process with one model thread):

* in-process floor: ``ArrestModel.predict_arrest_probability`` for 1 row and for 1,000 rows;
* per server: ``/v2/health/ready`` (the HTTP stack alone), single-row V2 requests back to back, single-row
  requests on an open-loop schedule (fixed rate; latency counted from the scheduled send time, so a server
  that falls behind is charged for the queue), and 1,000-row batches;
* where the time goes: the server's own handler time (from its access log) against the client's, and the model's
  stages on one row (validation, raw features, the rest of the pipeline, calibration, response).

The model is the real XGBoost model trained on ``../shared/data/crimes_sample.csv`` when that file exists (else
on generated records), logged exactly as the pipeline logs it, cached under ``<ARREST_DATA_DIR>/bench/serving``.
Both servers get the same V2 body (``content_type: "pd"``, one input per raw field; BYTES inputs carry
``content_type: "str"`` for MLServer's codec, which the arrest server ignores) and must return the same
probabilities.

Run from the repository root (MLServer needs its own venv, see bench/mlserver/README.md)::

    .venv/bin/python -m bench.bench_serving                  # full run, ~6 minutes on 2 cores
    .venv/bin/python -m bench.bench_serving --quick          # smoke run
    .venv/bin/python -m bench.bench_serving --no-mlserver

Results: printed as Markdown and written to ``<ARREST_DATA_DIR>/bench/serving/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import cpu_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARREST_SHARED_DATA", REPO.parent / "shared" / "data"))
MLSERVER_VENV = REPO / "bench" / ".mlserver-venv"
MLSERVER_TEMPLATES = REPO / "bench" / "mlserver"
MODEL = "arrest-predictor"
JSON_HEADERS = {"content-type": "application/json"}
#: Natural V2 datatypes of the raw fields in the benchmark body (numbers as FP64 so empty values can be null).
DATATYPES = {"domestic": "BOOL", "ward": "FP64", "community_area": "FP64"}
NUMERIC = ("x_coordinate", "y_coordinate", "latitude", "longitude", "ward", "community_area")


# ------------------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) in milliseconds of values given in seconds."""
    return float(np.percentile(np.asarray(values, dtype=float), q) * 1000.0) if values else float("nan")


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds."""
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 2),
        "p90_ms": round(pct(values, 90), 2),
        "p99_ms": round(pct(values, 99), 2),
        "mean_ms": round(statistics.fmean(values) * 1000.0, 2) if values else float("nan"),
    }


def free_port() -> int:
    """A free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a server: one thread per native library, bytecode cached outside the venv if needed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARREST_", "MLFLOW_", "MLSERVER_"))}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(REPO / ".pytest_cache" / "pycache")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    env.update(extra)
    return env


def loadavg() -> list[float]:
    """1/5/15-minute load averages."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


# ------------------------------------------------------------------------------------------------------------
# The model and the requests
# ------------------------------------------------------------------------------------------------------------


def prepare_model(work: Path, rebuild: bool, rows: int) -> dict[str, Any]:
    """Train (or reuse) the benchmark model; keep test-month records for the requests.

    Returns:
        Metadata: source, model type, training rows/seconds, path.
    """
    import pandas as pd

    model_dir, records_path, meta_path = work / "model", work / "records.json", work / "model.json"
    if not rebuild and (model_dir / "MLmodel").is_file() and records_path.is_file() and meta_path.is_file():
        try:
            from chicago_arrest.registry.models import load_arrest_model

            load_arrest_model(str(model_dir)).predict_arrest_probability(
                pd.DataFrame(json.loads(records_path.read_text())[:2])
            )
            meta: dict[str, Any] = json.loads(meta_path.read_text())
            return meta
        except Exception as exc:  # trained by older code: rebuild
            print(f"cached model unusable ({type(exc).__name__}: {exc}); rebuilding", file=sys.stderr)

    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    import mlflow

    from chicago_arrest.core.settings import Settings
    from chicago_arrest.data.split import time_split
    from chicago_arrest.data.synthetic import generate_crimes, generate_stations
    from chicago_arrest.model.training import TrainConfig, train_model
    from chicago_arrest.registry.models import configure_mlflow, log_arrest_model

    crimes_csv, stations_csv = SHARED / "crimes_sample.csv", SHARED / "police_stations.csv"
    if crimes_csv.is_file() and stations_csv.is_file():
        crimes = pd.read_csv(crimes_csv, dtype=str, keep_default_na=False)
        stations = pd.read_csv(stations_csv, dtype=str, keep_default_na=False)
        source = f"real: {crimes_csv.name} ({len(crimes):,} records of 2017)"
    else:
        stations = generate_stations()
        crimes = generate_crimes(50_000, stations=stations)
        source = "generated: 50,000 records (shared data not found)"
    train, test, window = time_split(crimes, test_months=1)
    print(f"training xgboost on {len(train):,} rows ({source}) ...", file=sys.stderr)
    result = train_model(train, stations, TrainConfig(model_type="xgboost"))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        configure_mlflow(Settings(data_dir=Path(tmp)))
        with mlflow.start_run():
            info = log_arrest_model(result.model, train)
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(model_dir))
    sample = test.sample(n=min(rows, len(test)), random_state=0)
    records_path.write_text(json.dumps(sample.to_dict(orient="records")))
    meta = {
        "source": source,
        "model_type": "xgboost",
        "train_rows": len(train),
        "window": window.as_dict(),
        "fit_seconds": round(result.fit_seconds, 1),
        "calibration_auc": round(result.calibration_auc, 4),
        "model_dir": str(model_dir),
        "model_kib": round(sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()) / 1024),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def v2_body(records: Sequence[dict[str, Any]], request_id: str | None = None) -> bytes:
    """One V2 ``pd`` request for raw text records (natural datatypes; MLServer's ``str`` hints on BYTES)."""
    from chicago_arrest.core.parsing import parse_bools, parse_numbers
    from chicago_arrest.core.schema import MODEL_INPUT_COLUMNS

    inputs = []
    for name in MODEL_INPUT_COLUMNS:
        raw = [r.get(name, "") for r in records]
        datatype = DATATYPES.get(name, "FP64" if name in NUMERIC else "BYTES")
        item: dict[str, Any] = {"name": name, "shape": [len(raw)], "datatype": datatype}
        if datatype == "BOOL":
            item["data"] = parse_bools(raw).values.to_numpy(dtype=object, na_value=None).tolist()
        elif datatype == "FP64":
            numbers = parse_numbers(raw).values
            item["data"] = [None if v != v else v for v in numbers.tolist()]
        else:
            item["data"] = [str(v) for v in raw]
            item["parameters"] = {"content_type": "str"}
        inputs.append(item)
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if request_id:
        body["id"] = request_id
    return json.dumps(body).encode()


def probabilities(response: dict[str, Any]) -> list[float]:
    """The probability output of either server (``arrest_probability``, or MLServer's single output)."""
    outputs = response["outputs"]
    chosen = next((o for o in outputs if o["name"] == "arrest_probability"), outputs[0])
    return [float(x) for x in np.ravel(chosen["data"])]


# ------------------------------------------------------------------------------------------------------------
# In-process floor and stage breakdown
# ------------------------------------------------------------------------------------------------------------


def in_process(model_dir: Path, records: list[dict[str, Any]], n_single: int, n_batch: int) -> dict[str, Any]:
    """``predict_arrest_probability`` latency and where a single row's time goes."""
    import cProfile
    import io
    import pstats

    import pandas as pd
    from arrest_server.validation import parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest
    from kserve.utils.utils import get_predict_response
    from threadpoolctl import threadpool_limits

    from chicago_arrest.registry.models import load_arrest_model

    threadpool_limits(1)
    model = load_arrest_model(str(model_dir)).set_threads(1)
    frames = [pd.DataFrame([r]) for r in records[:200]]
    batch = pd.DataFrame(records[:1000])
    for f in frames[:20]:
        model.predict_arrest_probability(f)

    def timed(fn: Callable[[], Any], n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return out

    it = iter(range(10**9))
    single = timed(lambda: model.predict_arrest_probability(frames[next(it) % len(frames)]), n_single)
    thousand = timed(lambda: model.predict_arrest_probability(batch), n_batch)

    # Stage breakdown on one row, as the server runs it.
    body = json.loads(v2_body(records[:1], "x"))
    request = InferRequest.from_inference_request(InferenceRequest.model_validate(body), MODEL)
    frame = parse_v2(request, 10).frame
    pipeline = model.pipeline
    calibrator = model.calibrator
    assert pipeline is not None
    assert calibrator is not None
    raw_step = pipeline.steps[0][1]
    raw_features = getattr(raw_step, "transform_arrays", raw_step.transform)
    scores = (
        model.raw_scores(frame) if hasattr(model, "raw_scores") else model.predict_arrest_probability(frame)
    )
    result = pd.DataFrame({"arrest_probability": scores, "arrest": scores > 0.5})
    offsets = 2 if getattr(model, "distance_grid_m", 0) else 1
    fast = getattr(model, "fast_encoder_", None) is not None
    stages = {
        "decode V2 JSON (pydantic + InferRequest)": timed(
            lambda: InferRequest.from_inference_request(InferenceRequest.model_validate(body), MODEL), 200
        ),
        "validate + typed frame (parse_v2)": timed(lambda: parse_v2(request, 10), 200),
        "raw features (coerce + enrich)": timed(lambda: raw_features(frame), 200),
        f"raw_scores (features, {'compiled' if fast else 'scikit-learn'} encoder, classifier; "
        f"{offsets} classifier calls on the distance grid)": timed(lambda: model.raw_scores(frame), 200)
        if hasattr(model, "raw_scores")
        else [],
        "calibration": timed(lambda: calibrator.transform(scores), 200),
        "predict_arrest_probability total": timed(lambda: model.predict_arrest_probability(frame), 200),
        "build V2 response (get_predict_response + to_rest)": timed(
            lambda: get_predict_response(request, result, MODEL).to_rest(), 200
        ),
    }
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(100):
        model.predict_arrest_probability(frame)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    return {
        "single_row": summary(single),
        "rows_1000": summary(thousand),
        "stages_p50_ms": {k: round(pct(v, 50), 3) for k, v in stages.items() if v},
        "profile_top_cumulative": text.getvalue(),
        "distance_grid_m": float(getattr(model, "distance_grid_m", 0) or 0),
    }


# ------------------------------------------------------------------------------------------------------------
# Servers and load
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A server process."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    sessions: threading.local = field(default_factory=threading.local)

    def session(self) -> Any:
        import requests

        if not hasattr(self.sessions, "s"):
            self.sessions.s = requests.Session()
        return self.sessions.s

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_ready(server: Running, timeout: float = 240.0) -> float:
    """Block until the model is ready; return seconds waited."""
    import requests

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/v2/models/{MODEL}/ready", timeout=2).status_code == 200:
                return time.monotonic() - start
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f}s")


@contextlib.contextmanager
def kserve(
    model_dir: Path, work: Path, workers: int, baseline: Path | None = None, **env: str
) -> Iterator[Running]:
    """``python -m arrest_server --model_dir ... --workers N`` (from ``baseline``'s sources when given)."""
    port = free_port()
    log = work / f"kserve-{workers}{'-baseline' if baseline else ''}.log"
    if baseline is not None:
        env["PYTHONPATH"] = f"{baseline / 'serving'}{os.pathsep}{baseline / 'src'}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "arrest_server",
                "--model_dir",
                str(model_dir),
                "--http_port",
                str(port),
                "--grpc_port",
                str(free_port()),
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env=child_env(ARREST_SERVER_MODEL_VERSION="bench", ARREST_DATA_DIR=str(work / "data"), **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    name = f"arrest_server --workers {workers}" + (f" (baseline {baseline.name})" if baseline else "")
    if env.get("ARREST_SERVER_FAST_INFER") == "false":
        name += ", FastAPI route"
    server = Running(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def mlserver_server(model_dir: Path, work: Path, parallel_workers: int) -> Iterator[Running]:
    """``mlserver start`` with the mlflow runtime on the same model folder (its own venv)."""
    binary = MLSERVER_VENV / "bin" / "mlserver"
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} not found: set up the MLServer venv (bench/mlserver/README.md)")
    folder = work / f"mlserver-{parallel_workers}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = free_port()
    settings = json.loads((MLSERVER_TEMPLATES / "settings.json").read_text())
    settings.update(
        http_port=port, grpc_port=free_port(), metrics_port=free_port(), parallel_workers=parallel_workers
    )
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = json.loads((MLSERVER_TEMPLATES / "model-settings.json").read_text())
    model_settings["parameters"]["uri"] = str(model_dir)
    (folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    log = work / f"mlserver-{parallel_workers}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "start", str(folder)],
            cwd=REPO,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Running(
        f"MLServer 1.7.1 (parallel_workers={parallel_workers})", proc, f"http://127.0.0.1:{port}", log
    )
    try:
        yield server
    finally:
        server.stop()


def post(server: Running, body: bytes) -> tuple[float, int, bytes]:
    """One inference request; returns (seconds, status, body)."""
    start = time.perf_counter()
    r = server.session().post(f"{server.url}/v2/models/{MODEL}/infer", data=body, headers=JSON_HEADERS)
    return time.perf_counter() - start, r.status_code, r.content


def sequential(server: Running, bodies: Sequence[bytes], n: int) -> list[float]:
    """``n`` requests back to back (cycling through ``bodies``); raises on any non-200."""
    out = []
    for i in range(n):
        seconds, status, content = post(server, bodies[i % len(bodies)])
        if status != 200:
            raise RuntimeError(f"{server.name}: HTTP {status}: {content[:300]!r}")
        out.append(seconds)
    return out


def open_loop(server: Running, bodies: Sequence[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Send at a fixed rate regardless of responses; latency from each request's scheduled time."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(scheduled: float, body: bytes) -> None:
        nonlocal errors
        try:
            _, status, _ = post(server, body)
        except Exception:
            status = 0
        done = time.perf_counter()
        with lock:
            latencies.append(done - scheduled)
            errors += status != 200

    start = time.perf_counter() + 0.1
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, scheduled, bodies[i % len(bodies)])
    elapsed = time.perf_counter() - start
    return {
        "rate_rps": rate,
        "sent": n,
        "errors": errors,
        "achieved_rps": round(n / elapsed, 1),
        **summary(latencies),
    }


def access_log_latencies(log: Path, since_line: int) -> list[float]:
    """Handler latencies (seconds) from the arrest server's JSON access log, after line ``since_line``."""
    out = []
    for line in log.read_text(errors="replace").splitlines()[since_line:]:
        if '"arrest_server.access"' in line:
            with contextlib.suppress(ValueError, KeyError):
                out.append(json.loads(line)["latency_ms"] / 1000.0)
    return out


def measure_server(
    server: Running, single: Sequence[bytes], batch: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    """All load phases against one server."""
    ready_s = wait_ready(server)
    sequential(server, single, 30)  # warm-up
    health = []
    for _ in range(args.n_health):
        t = time.perf_counter()
        server.session().get(f"{server.url}/v2/health/ready")
        health.append(time.perf_counter() - t)
    mark = len(server.log.read_text(errors="replace").splitlines())
    seq = sequential(server, single, args.n_single)
    handler = access_log_latencies(server.log, mark)
    loads = [open_loop(server, single, rate, args.open_loop_seconds) for rate in args.rates]
    sequential(server, [batch], 2)
    batches = sequential(server, [batch], args.n_batch)
    _, _, content = post(server, batch)
    return {
        "server": server.name,
        "ready_after_s": round(ready_s, 1),
        "health_ready": summary(health),
        "single_row_sequential": summary(seq),
        "single_row_handler": summary(handler) if handler else None,
        "open_loop": loads,
        "rows_1000": summary(batches),
        "batch_probabilities": probabilities(json.loads(content)),
    }


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (pasted into docs/benchmarks.md)."""
    env = results["environment"]
    floor = results["in_process"]
    lines = [
        f"Run {env['date']} on {env['cpu']} ({env['cpus']} CPUs), load average {env['load_before']} before and "
        f"{env['load_after']} after; commit {env['commit']}. Model: {results['model']['source']}, "
        f"{results['model']['model_type']}, {results['model']['model_kib']} KiB folder.",
        "",
        "| | single row p50 / p99 (ms) | "
        + " | ".join(f"open loop {r:g} rps p50 / p99 (ms), achieved rps" for r in results["args"]["rates"])
        + " | 1,000 rows p50 (ms) | /v2/health/ready p50 (ms) |",
        "|---|---|" + "---|" * len(results["args"]["rates"]) + "---|---|",
        f"| in-process `predict_arrest_probability` | {floor['single_row']['p50_ms']} / "
        f"{floor['single_row']['p99_ms']} | " + " | ".join("-" for _ in results["args"]["rates"]) + f" | "
        f"{floor['rows_1000']['p50_ms']} | - |",
    ]
    for s in results["servers"]:
        loads = " | ".join(
            f"{o['p50_ms']} / {o['p99_ms']}, {o['achieved_rps']}"
            + (f" ({o['errors']} errors)" if o["errors"] else "")
            for o in s["open_loop"]
        )
        lines.append(
            f"| {s['server']} | {s['single_row_sequential']['p50_ms']} / {s['single_row_sequential']['p99_ms']} | "
            f"{loads} | {s['rows_1000']['p50_ms']} | {s['health_ready']['p50_ms']} |"
        )
    lines += ["", "Single-row stages in-process (p50 ms):", ""]
    lines += [f"- {k}: {v}" for k, v in floor["stages_p50_ms"].items()]
    for s in results["servers"]:
        if s.get("single_row_handler"):
            lines.append(
                f"- {s['server']}: handler p50 {s['single_row_handler']['p50_ms']} ms of "
                f"{s['single_row_sequential']['p50_ms']} ms seen by the client"
            )
    if results.get("same_predictions") is not None:
        lines.append(
            f"- identical 1,000-row predictions across servers (|Δ| ≤ 1e-9): {results['same_predictions']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rebuild", action="store_true", help="retrain the benchmark model")
    parser.add_argument("--quick", action="store_true", help="few requests (smoke test)")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer")
    parser.add_argument(
        "--mlserver-parallel-workers", default="0,1", help="MLServer variants (0: in-process inference)"
    )
    parser.add_argument("--rates", default="100,20", help="open-loop rates (requests/s)")
    parser.add_argument("--open-loop-seconds", type=float, default=10.0)
    parser.add_argument("--n-single", type=int, default=500)
    parser.add_argument("--n-batch", type=int, default=30)
    parser.add_argument("--n-health", type=int, default=200)
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if args.quick:
        args.n_single, args.n_batch, args.n_health, args.open_loop_seconds = 60, 5, 30, 3.0

    from chicago_arrest.core.runtime import pin_thread_env
    from chicago_arrest.core.settings import Settings

    pin_thread_env(1)
    work = Settings().data_dir.resolve() / "bench" / "serving"
    work.mkdir(parents=True, exist_ok=True)
    load_before = loadavg()
    model_meta = prepare_model(work, args.rebuild, rows=1000)
    model_dir = Path(model_meta["model_dir"])
    records = json.loads((work / "records.json").read_text())
    single = [v2_body([r], f"bench-{i}") for i, r in enumerate(records[:200])]
    batch = v2_body(records[:1000], "batch")

    print("in-process floor ...", file=sys.stderr)
    floor = in_process(model_dir, records, args.n_single, args.n_batch)
    servers = []
    print("kserve arrest_server ...", file=sys.stderr)
    with kserve(model_dir, work, 1) as server:
        servers.append(measure_server(server, single, batch, args))
    if not args.no_mlserver:
        for workers in [int(w) for w in args.mlserver_parallel_workers.split(",") if w]:
            print(f"MLServer (parallel_workers={workers}) ...", file=sys.stderr)
            with mlserver_server(model_dir, work, workers) as server:
                servers.append(measure_server(server, single, batch, args))

    reference = servers[0]["batch_probabilities"]
    same = (
        all(np.allclose(s["batch_probabilities"], reference, rtol=0, atol=1e-9) for s in servers[1:])
        if len(servers) > 1
        else None
    )
    for s in servers:
        s.pop("batch_probabilities")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
    )
    results = {
        "environment": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": loadavg(),
            "python": platform.python_version(),
            "commit": commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else ""),
        },
        "args": {k: v for k, v in vars(args).items()},
        "model": model_meta,
        "in_process": floor,
        "servers": servers,
        "same_predictions": same,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\nresults: {work / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
