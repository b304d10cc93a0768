"""Three small measurements behind docs/benchmarks.md's capacity discussion (issue 15).

* ``--ab``: server CPU per request of several servers side by side, in alternating rounds of 300 sequential
  single-record requests (the baseline server from ``--baseline DIR``, this one, this one without its request
  log, this one through KServe's FastAPI route with every request in a worker thread, i.e. without
  ``arrest_server.fast_infer`` and ``ARREST_SERVER_INLINE_ROWS``): how much the same server's figure moves from
  round to round on this machine, and what the fast path saves.
* ``--probe RATE``: one open-loop step of 10 s at ``RATE`` against ``--workers N`` servers, with the CPU seconds of
  every process of the server's tree and of the client. ``--pyspy PATH`` records a py-spy profile of the server
  (``py-spy record --format raw``; py-spy is not a project dependency: ``pip install py-spy --target DIR`` and
  pass ``DIR/bin/py-spy``).
* ``--vm-scaling``: a pure-Python CPU loop in one process, then in two at once: how much of a second core this VM
  gives to a second process.
* ``--request-log``: the request log's writer on 3,000 buffered single-record requests: joined column by column in
  slices of 64 (the largest slice, the total) and written, against concatenating the requests' frames in slices
  and in one go, as the writer used to.
* ``--threads``: 1,000 records through the champion in process with one and with two classifier threads.
* ``--thousand``: 1,000 records in one V2 request over HTTP (p50 of 15 a round), in alternating rounds: the
  baseline server (``--baseline DIR``), this one, this one with ``ARREST_SERVER_BATCH_THREADS=1``.
* ``--steady RATE``: ``make serve``'s workers at one open-loop rate for ``--seconds`` (30), with
  ``--server-env KEY=VALUE ...`` (e.g. ``ARREST_SERVER_REQUEST_LOG=false``): p50, p99 and where the stalls were.
  ``--client-gc`` leaves the client's collector on, as the load generator did before
  ``bench.serving_load.no_gc_pauses``, and lists its full collections during the run (when they came, how long).
* ``--stages``: CPU per call of each stage of a request of one record and of 1,000 in process (KServe's
  decoding, parse, raw fields, raw features, classifier, model, the whole ``_score``).
* ``--in-process``: CPU per single-record request through KServe's ASGI app called in process (no HTTP server),
  in ``--rounds`` alternating rounds: this server, with FastAPI's route instead of ``arrest_server.fast_infer``,
  and with every request in a worker thread (``ARREST_SERVER_INLINE_ROWS=0``).

The model is the registry's champion (``make pipeline-run`` first) unless ``--model-dir`` names a folder. Run from
the repository root, e.g.::

    .venv/bin/python -m bench.serving_probe --vm-scaling
    .venv/bin/python -m bench.serving_probe --probe 200 --workers 2
    .venv/bin/python -m bench.serving_probe --ab --baseline /tmp/base     # git archive 85cf160 serving src | ...

Results are printed, not written.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.bench_serving import MODEL, v2_body, wait_ready
from bench.bench_serving_capacity import champion_folder, kserve, records, tree_cpu_s, wait_idle
from bench.serving_load import build_request, open_loop, sequential


def _loop(n: int = 3_000_000) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - start


def vm_scaling(tries: int = 3) -> None:
    """Throughput of two CPU-bound processes at once, relative to one."""
    one = min(_loop() for _ in range(tries))
    with multiprocessing.Pool(2) as pool:
        two = min(max(pool.map(_loop, [3_000_000] * 2)) for _ in range(tries))
    print(f"1 process: {one:.3f} s per unit; 2 processes at once: {two:.3f} s per unit each")
    print(f"throughput of 2 processes / 1 process: {2 * one / two:.2f}")


def request_log(n: int = 3_000) -> None:
    """The writer's work for ``n`` buffered single-record requests: sliced, and in one go."""
    import json
    import tempfile

    from arrest_server.request_log import RequestLog
    from arrest_server.validation import parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    body = json.loads(v2_body(records(1)))
    parsed = parse_v2(InferRequest.from_inference_request(InferenceRequest.model_validate(body), MODEL), 10)
    frame = parsed.frame
    gc.freeze()  # as the server does after loading (arrest_server.process.freeze_heap)
    runs = (
        ("columns joined, in slices of 64", 64, parsed.columns),
        ("frames concatenated, in slices of 64 (before)", 64, None),
        ("frames concatenated in one go (before that)", n, None),
    )
    for label, size, columns in runs:
        with tempfile.TemporaryDirectory() as tmp:
            log = RequestLog(Path(tmp), flush_s=3600, flush_rows=10**9, convert_s=3600, convert_slice=size)
            log._frame([(frame, np.array([0.3]), np.array([False]), "1", "champion", "warm-up", None, None)])
            for i in range(n):
                log.append(
                    frame,
                    np.array([0.3]),
                    np.array([False]),
                    model_version="1",
                    role="champion",
                    request_id=str(i),
                    columns=columns,
                )
            slices: list[float] = []
            convert = log._frame

            def timed(batch: Any, convert: Any = convert, slices: list[float] = slices) -> Any:
                start = time.perf_counter()
                out = convert(batch)
                slices.append((time.perf_counter() - start) * 1000)
                return out

            log._frame = timed  # type: ignore[method-assign]
            start = time.perf_counter()
            log._convert()
            converted = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            log._write()
            written = (time.perf_counter() - start) * 1000
            log.close()
        print(
            f"{label}: convert {converted:.0f} ms in all, largest slice {max(slices):.1f} ms; write {written:.0f} ms"
        )


def classifier_threads(model_dir: Path) -> None:
    """1,000 records in process with one and two classifier threads (p50 of 25, two rounds)."""
    from bench.common import load_sample, median_ms
    from chicago_arrest.registry.models import load_arrest_model

    model = load_arrest_model(str(model_dir))
    thousand = load_sample()[0].tail(1000).reset_index(drop=True)
    for _ in range(2):
        for threads in (1, 2):
            model.set_threads(threads)
            ms = median_ms(lambda: model.predict_arrest_probability(thousand), 25)
            print(f"{threads} thread(s): 1,000 records {ms:.1f} ms")


def probe(model_dir: Path, work: Path, workers: int, rate: float, pyspy: str | None) -> None:
    """One open-loop step with the CPU time of each server process and of the client."""
    import psutil

    single = [v2_body([r], f"probe-{i}") for i, r in enumerate(records(300))]
    with kserve(model_dir, work, workers) as server:
        wait_ready(server)
        wait_idle(server.proc.pid)
        url = f"{server.url}/v2/models/{MODEL}/infer"
        raws = [build_request(url, body) for body in single]
        open_loop(server.url, raws, 50, 3)  # warm-up: every worker answered
        root = psutil.Process(server.proc.pid)
        procs = [root, *root.children(recursive=True)]
        before = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
        spy = None
        if pyspy:
            target = procs[-1].pid  # a worker (the server itself when it has none)
            spy = subprocess.Popen(
                [
                    *(pyspy, "record", "-p", str(target), "-d", "10", "-r", "200", "-f", "raw"),
                    *("-o", str(work / "pyspy.txt"), "--threads", "--nonblocking"),
                ]
            )
            time.sleep(1)
        client_before = time.process_time()
        result = open_loop(server.url, raws, rate, 10).summary()
        client = time.process_time() - client_before
        after = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
        if spy is not None:
            spy.wait()
            print(f"py-spy profile: {work / 'pyspy.txt'}")
    print({k: result[k] for k in ("sent", "errors", "p50_ms", "p99_ms")})
    for p in procs:
        print(f"  pid {p.pid}: {after[p.pid] - before[p.pid]:.2f} CPU-s")
    print(f"  client: {client:.2f} CPU-s")


Spec = tuple[str, Path | None, dict[str, str]]


@contextlib.contextmanager
def side_by_side(
    model_dir: Path, work: Path, baseline: Path | None, specs: list[Spec]
) -> Iterator[dict[str, Any]]:
    """One-process servers side by side, ready and idle, by name.

    ``specs`` are (name, sources or ``None`` for this checkout, environment); the baseline server from
    ``baseline``'s sources comes first when given.
    """
    if baseline is not None:
        specs = [("baseline", baseline, {}), *specs]
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, base, env in specs:
            servers[name] = stack.enter_context(kserve(model_dir, work, 1, baseline=base, **env))
            wait_ready(servers[name])
        for server in servers.values():
            wait_idle(server.proc.pid)
        yield servers


def ab(model_dir: Path, work: Path, baseline: Path | None, rounds: int) -> None:
    """Server CPU per request, servers side by side in alternating rounds."""
    single = [v2_body([r], f"ab-{i}") for i, r in enumerate(records(300))]
    specs: list[Spec] = [
        ("this server", None, {}),
        ("this server, no request log", None, {"ARREST_SERVER_REQUEST_LOG": "false"}),
        (
            "this server, FastAPI route and thread hop",
            None,
            {"ARREST_SERVER_FAST_INFER": "false", "ARREST_SERVER_INLINE_ROWS": "0"},
        ),
    ]
    cpu: dict[str, list[float]] = {}
    with side_by_side(model_dir, work, baseline, specs) as servers:
        for _ in range(rounds):
            for name, server in servers.items():
                url = f"{server.url}/v2/models/{MODEL}/infer"
                raws = [build_request(url, body) for body in single]
                sequential(server.url, raws, 30)
                before = tree_cpu_s(server.proc.pid)
                sequential(server.url, raws, 300)
                cpu.setdefault(name, []).append((tree_cpu_s(server.proc.pid) - before) / 300 * 1000)
    for name, values in cpu.items():
        print(f"{name}: server CPU ms per request by round {[round(v, 2) for v in values]}")


def thousand(model_dir: Path, work: Path, baseline: Path | None, rounds: int) -> None:
    """1,000 records in one request, p50 of 15, servers side by side in alternating rounds."""
    import statistics

    batch = v2_body(records(1000), "thousand")
    specs: list[Spec] = [
        ("this server", None, {}),
        ("this server, one classifier thread", None, {"ARREST_SERVER_BATCH_THREADS": "1"}),
    ]
    p50: dict[str, list[float]] = {}
    with side_by_side(model_dir, work, baseline, specs) as servers:
        for _ in range(rounds):
            for name, server in servers.items():
                raw = [build_request(f"{server.url}/v2/models/{MODEL}/infer", batch)]
                sequential(server.url, raw, 3)
                p50.setdefault(name, []).append(statistics.median(sequential(server.url, raw, 15)) * 1000)
    for name, values in p50.items():
        print(f"{name}: 1,000 records p50 ms by round {[round(v, 1) for v in values]}")


def steady(
    model_dir: Path, work: Path, rate: float, seconds: float, env: dict[str, str], client_gc: bool = False
) -> None:
    """``make serve``'s workers at one open-loop rate for ``seconds``: percentiles and where the stalls were.

    ``client_gc``: leave this process's garbage collector on during the run, as the load generator did before
    ``no_gc_pauses``, and print its full collections (what they did to the figures).
    """
    single = [v2_body([r], f"steady-{i}") for i, r in enumerate(records(300))]
    pauses: list[tuple[float, float]] = []  # (seconds into the run, ms) of each full collection
    began: list[float] = []

    def timer(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            began.append(time.perf_counter())
        elif began:
            start = began.pop()
            pauses.append((start - run_start, (time.perf_counter() - start) * 1000))

    with kserve(model_dir, work, 0, **env) as server:
        wait_ready(server)
        wait_idle(server.proc.pid)
        url = f"{server.url}/v2/models/{MODEL}/infer"
        raws = [build_request(url, body) for body in single]
        open_loop(server.url, raws, 50, 3)  # warm-up: every worker answered
        run_start = time.perf_counter()
        gc.callbacks.append(timer)
        try:
            outcome = open_loop(server.url, raws, rate, seconds, quiet_gc=not client_gc)
        finally:
            gc.callbacks.remove(timer)
    print({k: outcome.summary()[k] for k in ("sent", "errors", "p50_ms", "p99_ms", "max_ms")})
    if client_gc:  # otherwise there are none by construction (the collection before the run is not in it)
        print(
            "the client's full collections during the run (s, ms):",
            [(round(at, 2), round(ms, 1)) for at, ms in pauses],
        )
    stalls: list[list[float]] = []  # [start s, worst ms, requests over 50 ms]
    for at, latency in sorted(zip(outcome.scheduled, outcome.latencies, strict=True)):
        if latency <= 0.05:
            continue
        if stalls and at - stalls[-1][0] <= 0.3:
            stalls[-1][1] = max(stalls[-1][1], latency * 1000)
            stalls[-1][2] += 1
        else:
            stalls.append([at, latency * 1000, 1])
    print(
        "stalls (start s, worst ms, requests over 50 ms):",
        [[round(a, 2), round(w), int(n)] for a, w, n in stalls],
    )


def stages(model_dir: Path, calls: int = 2_000) -> None:
    """CPU per call of each stage of a V2 request of one record and of 1,000, in process (the fourth round's
    table; ``bench.bench_serving_levers`` measured the same stages before it was folded in here)."""
    from arrest_server.model import ArrestPredictor, _Scored
    from arrest_server.process import setup_process
    from arrest_server.settings import ServerSettings
    from arrest_server.validation import parse_v2
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    from chicago_arrest.model.artifact import positive_scores
    from chicago_arrest.model.inputs import model_input_arrays

    settings = ServerSettings(model_dir=model_dir)
    setup_process(settings)
    predictor = ArrestPredictor(settings)
    predictor.load()
    served, role = predictor.holder.current.choose("stages")  # type: ignore[union-attr]
    model = served.model
    raw = model.pipeline.steps[0][1]
    fast = model.fast_encoder_
    wanted = None if fast is None else fast.input_columns
    clf = model.pipeline.named_steps["classifier"]
    for n in (1, 1000):
        body = v2_body(records(n), "stages")

        def decode(body: bytes = body) -> Any:
            return InferRequest.from_inference_request(
                InferenceRequest.model_validate(orjson.loads(body)), MODEL
            )

        request = decode()
        columns = parse_v2(request, n).columns
        X = np.vstack(model.selected_variants(columns)[0])
        timed: dict[str, Any] = {
            "KServe's decoding (JSON, InferenceRequest, InferRequest)": decode,
            "parse and validate (parse_v2)": lambda r=request, n=n: parse_v2(r, n),
            "raw fields (model_input_arrays)": lambda c=columns: model_input_arrays(c),
            "raw features (transform_arrays)": lambda c=columns: raw.transform_arrays(c, wanted),
            "classifier at the grid's two points (positive_scores)": lambda X=X: positive_scores(clf, X),
            "the model (predict_arrest_probability)": lambda c=columns: model.predict_arrest_probability(c),
            "parse, score, respond, log (_score)": lambda r=request: predictor._score(
                r, "stages", served, role, _Scored()
            ),
        }
        repeats = calls if n == 1 else max(20, calls // 100)
        print(f"{n:,} record(s), {repeats:,} calls a stage:")
        for name, call in timed.items():
            for _ in range(min(50, repeats)):
                call()
            start = time.process_time()
            for _ in range(repeats):
                call()
            print(f"  {name}: {(time.process_time() - start) / repeats * 1000:.3f} ms CPU per call")


def in_process(model_dir: Path, rounds: int) -> None:
    """CPU per single-record V2 request through KServe's ASGI app called in process (no HTTP server): this
    server, without the fast path, and without inline scoring, in alternating rounds of 150 requests."""
    import asyncio
    import statistics

    from arrest_server import fast_infer
    from arrest_server.model import ArrestPredictor
    from arrest_server.process import setup_process
    from arrest_server.settings import ServerSettings
    from kserve import ModelServer
    from kserve.model_server import app
    from kserve.protocol.rest.server import RESTServer

    settings = ServerSettings(model_dir=model_dir)
    setup_process(settings)
    model = ArrestPredictor(settings)
    model.load()
    server = ModelServer(workers=1, enable_grpc=False)
    server.register_model(model)
    RESTServer(
        "kserve.model_server:app", server.dataplane, server.model_repository_extension, 0
    ).create_application()
    body = v2_body(records(1), "in-process")
    path = f"/v2/models/{MODEL}/infer"

    async def call() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}  # fmt: skip
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"HTTP {sent[0]['status']}: {sent[1].get('body', b'')[:300]!r}")

    fast = fast_infer.FastInferMiddleware._predictor
    modes = {
        "this server": (fast, settings.inline_rows),
        "FastAPI route": (lambda self, scope, headers: None, settings.inline_rows),
        "thread hop": (fast, 0),
    }
    cpu: dict[str, list[float]] = {name: [] for name in modes}

    async def run() -> None:
        for _ in range(100):
            await call()
        for _ in range(rounds):
            for name, (predictor, inline) in modes.items():
                fast_infer.FastInferMiddleware._predictor = predictor  # type: ignore[method-assign]
                model.settings = settings.model_copy(update={"inline_rows": inline})
                start = time.process_time()
                for _ in range(150):
                    await call()
                cpu[name].append((time.process_time() - start) / 150 * 1000)

    asyncio.run(run())
    for name, values in cpu.items():
        print(
            f"{name}: CPU ms per request, median {statistics.median(values):.2f},"
            f" by round {[round(v, 2) for v in values]}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen measurement."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vm-scaling", action="store_true")
    parser.add_argument("--probe", type=float, metavar="RATE")
    parser.add_argument("--ab", action="store_true")
    parser.add_argument("--thousand", action="store_true")
    parser.add_argument("--steady", type=float, metavar="RATE")
    parser.add_argument("--seconds", type=float, default=30.0, help="--steady: duration")
    parser.add_argument(
        "--server-env", nargs="*", default=[], metavar="KEY=VALUE", help="--steady: server env"
    )
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--stages", action="store_true")
    parser.add_argument(
        "--client-gc", action="store_true", help="--steady: leave the client's garbage collector on"
    )
    parser.add_argument("--request-log", action="store_true")
    parser.add_argument("--threads", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="sources of the baseline server (serving/, src/)")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--pyspy", help="py-spy executable: record a profile of the server during --probe")
    args = parser.parse_args(argv)
    if args.vm_scaling:
        vm_scaling()
        return 0
    if args.request_log:
        request_log()
        return 0
    chosen = (args.probe, args.steady)
    flags = (args.ab, args.threads, args.thousand, args.in_process, args.stages)
    if all(c is None for c in chosen) and not any(flags):
        parser.error(
            "choose --vm-scaling, --request-log, --threads, --probe RATE, --steady RATE, --ab, --thousand,"
            " --in-process or --stages"
        )

    from chicago_arrest.core.runtime import pin_thread_env
    from chicago_arrest.core.settings import Settings

    pin_thread_env(1)
    work = Settings().data_dir.resolve() / "bench" / "serving-probe"
    work.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir.resolve() if args.model_dir else champion_folder(work)[0]
    if args.threads:
        classifier_threads(model_dir)
    if args.probe is not None:
        probe(model_dir, work, args.workers, args.probe, args.pyspy)
    if args.ab:
        ab(model_dir, work, args.baseline.resolve() if args.baseline else None, args.rounds)
    if args.thousand:
        thousand(model_dir, work, args.baseline.resolve() if args.baseline else None, args.rounds)
    if args.steady is not None:
        env = dict(kv.split("=", 1) for kv in args.server_env)
        steady(model_dir, work, args.steady, args.seconds, env, args.client_gc)
    if args.in_process:
        in_process(model_dir, args.rounds)
    if args.stages:
        stages(model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
